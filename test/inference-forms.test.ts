// The inference graph's speed-only forms compute what the plain graph computes: the symbolic sizes
// declared for ORT (sizes.ts) and 1x1 convolutions as MatMuls with batch-norm folded in
// (pointwise.ts, fold.ts). With the sizes declared, ORT's NCHWc pass fuses the residual sums of
// dilated stages into their convolutions (none left as separate Add nodes); without, it could not.
// A width-reduced fcn_resnet50 (base width 16: channel counts NCHWc takes) at 29x43, not a multiple of 8.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { torchvisionNetwork } from '../src/model/torchvision.js';
import { initParameters, seededRandom } from '../src/model/index.js';
import { compileInference, type InferenceGraphOptions } from '../src/graph/inference.js';
import { symbolicSizes } from '../src/graph/sizes.js';
import { readOnnxSummary } from '../src/graph/onnx.js';
import { Session } from '../src/engine/session.js';
import type { Layer } from '../src/model/layers.js';
import { tempDirs } from './helpers/tmp.js';
import { maxRelDiff } from './helpers/fixtures.js';

const { tempDir } = tempDirs('fcn-inference-forms-');
const arch = torchvisionNetwork('fcn_resnet50', { numClasses: 5, width: 16, aux: false });
const weights = initParameters(arch, seededRandom(3));
// running statistics away from 0/1, so a wrong fold shows
for (const [name, data] of weights) {
  if (name.endsWith('running_mean')) data.forEach((_, i) => { data[i] = Math.sin(i + name.length) * 0.2; });
  if (name.endsWith('running_var')) data.forEach((_, i) => { data[i] = 0.6 + 0.3 * Math.cos(i * 0.7); });
}
const [H, W] = [29, 43];
const x = new Float32Array(3 * H * W).map((_, i) => Math.sin(i * 0.37) * 1.5);

/**
 * Logits, and the op counts of ORT's optimised graph (read back from the graph cache's file); the final
 * resize as ONNX's Resize, so that the only Add nodes can be residual sums.
 */
async function run(opts: InferenceGraphOptions): Promise<{ logits: Float32Array; ops: Record<string, number> }> {
  const dir = tempDir('graph');
  const s = await Session.create(compileInference(arch, weights, { argmax: false, resize: 'onnx', ...opts }), { threads: 1, graphCache: dir });
  try {
    const out = await s.run({ image: { dtype: 'float32', dims: [1, 3, H, W], data: x } }, ['logits']);
    const file = fs.readdirSync(dir).find((f) => f.endsWith('.onnx'));
    const ops = file ? readOnnxSummary(fs.readFileSync(`${dir}/${file}`)).ops : {};
    return { logits: out.logits!.data as Float32Array, ops };
  } finally {
    await s.dispose();
  }
}

test('symbolic sizes: windows that keep the size keep the symbol (dilated ones too); a strided 3x3 and its strided 1x1 shortcut agree', () => {
  const conv = (name: string, input: string, k: number, stride: number, pad: number, dilation = 1): Layer => ({
    op: 'conv', name, input, output: name, inChannels: 8, outChannels: 8, kernel: k, stride, pad, dilation, bias: false, init: 'zeros',
  });
  const layers: Layer[] = [
    conv('d2', 'x', 3, 1, 2, 2), conv('s3', 'x', 3, 2, 1), conv('s1', 'x', 1, 2, 0), conv('valid', 'x', 3, 1, 0),
    { op: 'add', inputs: ['s3', 's1'], output: 'sum' }, { op: 'add', inputs: ['s3', 'valid'], output: 'mismatch' },
    { op: 'globalavgpool', input: 'd2', output: 'pooled' }, { op: 'resize', input: 'pooled', like: 'sum', output: 'back' },
    { op: 'convtranspose', name: 'up', input: 'sum', output: 'up', inChannels: 8, outChannels: 8, kernel: 4, stride: 2, pad: 1, bias: false, init: 'bilinear' },
    { op: 'relu', input: 'up', output: 'after' },
  ];
  const s = symbolicSizes(layers, 'x', 'H', 'W');
  assert.deepEqual(s.get('d2'), ['H', 'W']);
  assert.deepEqual(s.get('s3'), s.get('s1'));
  assert.deepEqual(s.get('sum'), s.get('s3'));
  assert.notDeepEqual(s.get('valid'), s.get('x'));
  assert.equal(s.get('mismatch'), undefined);
  assert.deepEqual(s.get('pooled'), [1, 1]);
  assert.deepEqual(s.get('back'), s.get('sum'));
  // kinds without a rule here declare nothing, nor does what follows them
  assert.equal(s.get('up'), undefined);
  assert.equal(s.get('after'), undefined);
  // numbers stay numbers: floor((29 + 2 - 2 - 1) / 2) + 1 = 15
  assert.deepEqual(symbolicSizes(layers, 'x', 29, 43).get('s1'), [15, 22]);
});

test('fcn_resnet50 (width-reduced): size hints, 1x1 convs as MatMuls (its default), both or neither give the same logits; the hints fuse every residual sum', async () => {
  const plain = await run({ sizeHints: false, pointwise: 'conv' });
  const hinted = await run({ sizeHints: true, pointwise: 'conv' });
  const matmul = await run({ pointwise: 'matmul' });
  const both = await run({});
  for (const [what, r] of [['hinted', hinted], ['matmul', matmul], ['default', both]] as const) {
    const d = maxRelDiff(r.logits, plain.logits);
    assert.ok(d < 1e-5, `${what}: max |logits - plain| / max |plain| = ${d}`);
  }
  assert.ok((matmul.ops.MatMul ?? 0) > 0, 'the MatMul form has MatMuls');
  assert.deepEqual(both.ops, matmul.ops, 'torchvision\'s ResNet networks default to the MatMul form');
  // where the machine has NCHWc kernels (x86), the dilated stages' sums are left unfused without the hints only
  if ((plain.ops.ReorderOutput ?? 0) > 0) {
    assert.ok((plain.ops.Add ?? 0) > 0, `without hints ORT could not fuse the dilated blocks' sums: ${JSON.stringify(plain.ops)}`);
    assert.equal(hinted.ops.Add ?? 0, 0, `with hints every sum is fused: ${JSON.stringify(hinted.ops)}`);
  }
});
