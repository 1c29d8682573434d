// The inference graph's separable bilinear resize (ops/resize.ts, EvalContext.resize 'separable': a
// MatMul with the width's interpolation matrix built in the graph, then a one-axis Resize) against
// y = A_h·x·A_wᵀ with interpolationMatrix (itself checked against PyTorch in gradcheck-layers) and
// against ONNX's 2-D Resize, at symbolic sizes: up, down, from 1x1, mixed, x8, batch 2.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../src/graph/onnx.js';
import { kindOf } from '../src/graph/ops/index.js';
import { interpolationMatrix } from '../src/graph/ops/resize.js';
import { Session } from '../src/engine/session.js';
import type { ResizeLayer } from '../src/model/layers.js';
import { maxAbsDiff } from './helpers/fixtures.js';

function resizeGraph(form: 'onnx' | 'separable'): Uint8Array {
  const g = new GraphBuilder('resize');
  g.input('x', 'float32', ['N', 3, 'h', 'w']);
  g.input('like', 'float32', ['N', 1, 'H', 'W']);
  const layer: ResizeLayer = { op: 'resize', input: 'x', like: 'like', output: 'y' };
  kindOf(layer).emitEval({ g, param: (n) => n, weight: () => undefined, shape: () => undefined, upsample: 'blocks', resize: form }, layer);
  g.output('y', 'float32', ['N', 3, 'H', 'W']);
  return g.encode();
}

/** y = A_h·x·A_wᵀ per plane, in float64. */
function reference(x: Float32Array, planes: number, h: number, w: number, H: number, W: number): Float64Array {
  const ah = interpolationMatrix(h, H);
  const aw = interpolationMatrix(w, W);
  const y = new Float64Array(planes * H * W);
  for (let p = 0; p < planes; p++) {
    for (let i = 0; i < H; i++) {
      for (let j = 0; j < W; j++) {
        let s = 0;
        for (let a = 0; a < h; a++) for (let b = 0; b < w; b++) s += ah[i * h + a]! * x[p * h * w + a * w + b]! * aw[j * w + b]!;
        y[p * H * W + i * W + j] = s;
      }
    }
  }
  return y;
}

test('separable bilinear resize equals A_h·x·A_wᵀ and ONNX\'s Resize: up, down, from 1x1, mixed, x8, batch 2', async () => {
  const [sep, plain] = await Promise.all([Session.create(resizeGraph('separable'), { threads: 1 }), Session.create(resizeGraph('onnx'), { threads: 1 })]);
  try {
    const cases: [number, number, number, number, number][] = [
      [1, 5, 7, 13, 11], [1, 13, 11, 5, 7], [2, 1, 1, 6, 9], [1, 4, 20, 9, 6], [1, 9, 9, 72, 72], [2, 33, 17, 65, 40],
    ];
    for (const [n, h, w, H, W] of cases) {
      const x = new Float32Array(n * 3 * h * w).map((_, i) => Math.sin(i * 0.731) * 2);
      const feeds = {
        x: { dtype: 'float32' as const, dims: [n, 3, h, w], data: x },
        like: { dtype: 'float32' as const, dims: [n, 1, H, W], data: new Float32Array(n * H * W) },
      };
      const got = (await sep.run(feeds, ['y']))['y']!;
      assert.deepEqual(got.dims, [n, 3, H, W]);
      const ref = reference(x, n * 3, h, w, H, W);
      const what = `${n}x3x${h}x${w} -> ${H}x${W}`;
      assert.ok(maxAbsDiff(got.data as Float32Array, ref) <= 2e-6, `${what}: against A_h·x·A_wᵀ`);
      const d = maxAbsDiff(got.data as Float32Array, (await plain.run(feeds, ['y']))['y']!.data as Float32Array);
      // ORT's Resize takes the source coordinate as (i + ½)/(out/in) − ½, PyTorch (and the matrices)
      // as (i + ½)·(in/out) − ½: the last bits differ (2.8e-6 here at 33 → 65)
      assert.ok(d <= 1e-5, `${what}: against ONNX's Resize, max diff ${d}`);
    }
  } finally {
    await Promise.all([sep.dispose(), plain.dispose()]);
  }
});
