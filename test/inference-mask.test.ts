// The inference graph's mask taken in the block-GEMM upsampler's layout (compileInference with
// logits: false, what `fcn predict` runs) equals the ArgMax of the NCHW logits of ORT's own
// ConvTranspose, and the logits placed from the block layout equal ConvTranspose's, for the book's
// three variants, batch 2, at a stride-multiple size and at an odd size padded inside the graph.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fcnResNet18, initParameters, seededRandom } from '../src/model/index.js';
import { compileInference } from '../src/graph/inference.js';
import { forEachFormSize } from './helpers/inference-forms.js';

for (const variant of ['fcn32s', 'fcn8s'] as const) {
  test(`${variant}: mask-only graph and block-placed logits agree with ConvTranspose`, async () => {
    const arch = fcnResNet18({ numClasses: 5, variant });
    const w = initParameters(arch, seededRandom(1));
    // the skip scorers start at zero: give them values so the 8s skips matter
    for (const v of w.values()) if (v.every((x) => x === 0)) v.forEach((_, i) => (v[i] = Math.sin(i) * 0.01));
    await forEachFormSize(arch, w, async (H, W, run) => {
      const ref = await run({ upsample: 'convtranspose' }, ['logits', 'mask']);
      const maskOnly = await run({ logits: false }, ['mask']);
      const logitsOnly = await run({ argmax: false }, ['logits']);
      assert.deepEqual(maskOnly.mask!.dims, [2, H, W]);
      assert.deepEqual(logitsOnly.logits!.dims, [2, 5, H, W]);
      assert.deepEqual(maskOnly.mask!.data, ref.mask!.data, `${H}x${W} masks`);
      const a = logitsOnly.logits!.data as Float32Array;
      const b = ref.logits!.data as Float32Array;
      let worst = 0;
      for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
      assert.ok(worst < 1e-5, `${H}x${W} logits differ by ${worst}`);
      // the masks are not trivially constant
      assert.ok(new Set(maskOnly.mask!.data as BigInt64Array).size > 1);
    });
  });
}

test('compileInference refuses a graph with neither output', () => {
  const arch = fcnResNet18({ numClasses: 3 });
  assert.throws(() => compileInference(arch, initParameters(arch, seededRandom(0)), { logits: false, argmax: false }), /neither logits nor mask/);
});
