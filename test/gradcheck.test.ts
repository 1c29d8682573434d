// Per-op gradient checks for the training-step emitters (src/graph/backward.ts), run through
// onnxruntime on tiny shapes: each emitter's backward against central finite differences of its own
// forward, along random directions. ORT's Conv has no float64 kernel, so everything is float32 and
// the difference quotient is summed in float64 in JS. Linear ops (conv, transposed conv, and relu /
// max-pool away from their kinks) are differenced with a large step, where the quotient is exact up
// to rounding; batch-norm and the loss are smooth and use a small step. Forward values of the
// hand-written parts (train-mode batch-norm, running statistics, the loss and pixel counts) are
// checked against float64 formulas in JS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder, type DType } from '../src/graph/onnx.js';
import {
  batchNormGrad, batchNormGradThroughMaxPool, batchNormRunningUpdate, batchNormTrain, biasGrad, convGradInput, convGradWeight, convOutSize,
  convTransposeGradInput, convTransposeGradWeight, convTransposeOutSize, convTransposeBlocks, convTransposeBlocksGradInput,
  convTransposeBlocksGradOutput, convTransposeBlocksGradWeight, maxPoolGrad, maxPoolWithIndices, reluGrad,
  softmaxCrossEntropy, type BatchNormForm, type GradInputForm, type GradWeightForm, type Shape4, type Window,
} from '../src/graph/backward.js';
import { Session } from '../src/engine/session.js';
import { gradcheck as gradcheckWith, type CaseInput, type OpCase } from './helpers/gradcheck.js';
import { seededRandom } from '../src/model/params.js';

const random = seededRandom(20240611);
function normal(): number {
  const u = 1 - random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}
const normals = (n: number, scale = 1): Float32Array => Float32Array.from({ length: n }, () => normal() * scale);
const size = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
const dot = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
};

const gradcheck = (c: OpCase): Promise<number> => gradcheckWith(c, normals);

function convCase(xShape: Shape4, outC: number, win: Window, bias: boolean, form: GradInputForm = 'convtranspose',
  wForm: GradWeightForm = 'dilated'): OpCase {
  const [N, C, H, W] = xShape;
  const k = win.kernel;
  const yShape: Shape4 = [N, outC, convOutSize(H, win), convOutSize(W, win)];
  const inputs: CaseInput[] = [
    { name: 'x', shape: xShape, data: normals(size(xShape)), diff: true },
    { name: 'w', shape: [outC, C, k, k], data: normals(outC * C * k * k, 0.3), diff: true },
  ];
  if (bias) inputs.push({ name: 'b', shape: [outC], data: normals(outC), diff: true });
  return {
    inputs, outShape: yShape, eps: 1,
    emit(g) {
      const y = g.node('Conv', bias ? ['x', 'w', 'b'] : ['x', 'w'], {
        kernel_shape: [k, k], strides: [win.stride, win.stride], pads: [win.pad, win.pad, win.pad, win.pad],
      }, 'y');
      const grads: Record<string, string> = {
        x: convGradInput(g, 'dy', 'w', win, xShape, yShape, form),
        w: convGradWeight(g, 'x', 'dy', win, xShape, yShape, 'conv', wForm),
      };
      if (bias) grads.b = biasGrad(g, 'dy');
      return { y, grads };
    },
  };
}

function convTransposeCase(xShape: Shape4, outC: number, win: Window, blocks = false): OpCase {
  const [N, C, h, w] = xShape;
  const k = win.kernel;
  const yShape: Shape4 = [N, outC, convTransposeOutSize(h, win), convTransposeOutSize(w, win)];
  return {
    inputs: [
      { name: 'x', shape: xShape, data: normals(size(xShape)), diff: true },
      { name: 'w', shape: [C, outC, k, k], data: normals(C * outC * k * k, 0.3), diff: true },
      { name: 'b', shape: [outC], data: normals(outC), diff: true },
    ],
    outShape: yShape, eps: 1,
    emit(g) {
      if (blocks) {
        const saved = convTransposeBlocks(g, 'x', 'w', 'b', win, xShape, outC, 'y');
        const dD = convTransposeBlocksGradOutput(g, 'dy', win, xShape, outC);
        return {
          y: 'y',
          grads: {
            x: convTransposeBlocksGradInput(g, dD, saved, win, xShape),
            w: convTransposeBlocksGradWeight(g, dD, saved, win, C, outC),
            b: biasGrad(g, 'dy'),
          },
        };
      }
      const y = g.node('ConvTranspose', ['x', 'w', 'b'], {
        kernel_shape: [k, k], strides: [win.stride, win.stride], pads: [win.pad, win.pad, win.pad, win.pad],
      }, 'y');
      return {
        y,
        grads: {
          x: convTransposeGradInput(g, 'dy', 'w', win),
          w: convTransposeGradWeight(g, 'x', 'dy', win, xShape, yShape),
          b: biasGrad(g, 'dy'),
        },
      };
    },
  };
}

/** Distinct values at least `gap` apart, shuffled: no ties, and a small step never changes an argmax or a sign. */
function distinct(n: number, gap: number): Float32Array {
  const v = Float32Array.from({ length: n }, (_, i) => (i - n / 2 + 0.5) * gap);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [v[i], v[j]] = [v[j]!, v[i]!];
  }
  return v;
}

const LINEAR_TOL = 1e-5;

test('conv gradients (dX, dW, db) match finite differences: 3x3 s1/s2, 7x7/2 stem, 1x1 s1/s2', async (t) => {
  const cases: [string, OpCase][] = [
    ['3x3 s1 p1', convCase([2, 3, 6, 5], 4, { kernel: 3, stride: 1, pad: 1 }, false)],
    ['3x3 s1 p1 (dX as Conv of flipped W)', convCase([2, 3, 6, 5], 4, { kernel: 3, stride: 1, pad: 1 }, false, 'conv')],
    ['3x3 s2 p1, even side', convCase([2, 3, 8, 6], 5, { kernel: 3, stride: 2, pad: 1 }, false)],
    ['3x3 s2 p1, odd side', convCase([1, 2, 7, 9], 3, { kernel: 3, stride: 2, pad: 1 }, false)],
    ['7x7 s2 p3 stem', convCase([2, 3, 16, 12], 4, { kernel: 7, stride: 2, pad: 3 }, false)],
    ['1x1 s2 downsample', convCase([2, 4, 8, 6], 6, { kernel: 1, stride: 2, pad: 0 }, false)],
    ['1x1 s1 with bias (scoring conv)', convCase([2, 5, 3, 4], 3, { kernel: 1, stride: 1, pad: 0 }, true)],
  ];
  for (const wForm of ['shifts', 'im2col', 'tapconv'] as const) {
    cases.push([`3x3 s1 p1, dW by ${wForm}`, convCase([2, 3, 6, 5], 4, { kernel: 3, stride: 1, pad: 1 }, false, 'convtranspose', wForm)]);
    cases.push([`3x3 s2 p1 odd side, dW by ${wForm}`, convCase([1, 2, 7, 9], 3, { kernel: 3, stride: 2, pad: 1 }, false, 'convtranspose', wForm)]);
    cases.push([`7x7 s2 p3 stem, dW by ${wForm}`, convCase([2, 3, 16, 12], 4, { kernel: 7, stride: 2, pad: 3 }, false, 'convtranspose', wForm)]);
  }
  for (const [name, c] of cases) {
    const err = await gradcheck(c);
    t.diagnostic(`${name}: worst relative error ${err.toExponential(2)}`);
    assert.ok(err < LINEAR_TOL, `${name}: worst relative error ${err.toExponential(2)} ≥ ${LINEAR_TOL}`);
  }
});

test('transposed-conv gradients match finite differences: k4 s2 p1 and the k64 s32 p16 upsampler', async (t) => {
  const cases: [string, OpCase][] = [
    ['k4 s2 p1', convTransposeCase([2, 3, 3, 4], 2, { kernel: 4, stride: 2, pad: 1 })],
    ['k64 s32 p16', convTransposeCase([2, 3, 2, 3], 3, { kernel: 64, stride: 32, pad: 16 })],
    ['k64 s32 p16 as block GEMMs', convTransposeCase([2, 3, 2, 3], 3, { kernel: 64, stride: 32, pad: 16 }, true)],
    ['k4 s2 p1 as block GEMMs', convTransposeCase([2, 3, 3, 4], 2, { kernel: 4, stride: 2, pad: 1 }, true)],
    ['k6 s2 p0 (three taps) as block GEMMs', convTransposeCase([1, 2, 3, 2], 3, { kernel: 6, stride: 2, pad: 0 }, true)],
  ];
  for (const [name, c] of cases) {
    const err = await gradcheck(c);
    t.diagnostic(`${name}: worst relative error ${err.toExponential(2)}`);
    assert.ok(err < LINEAR_TOL, `${name}: worst relative error ${err.toExponential(2)} ≥ ${LINEAR_TOL}`);
  }
});

test('the block form of a transposed conv computes what ConvTranspose computes', async () => {
  for (const [xShape, outC, win] of [[[2, 3, 2, 3], 4, { kernel: 64, stride: 32, pad: 16 }], [[1, 2, 3, 4], 3, { kernel: 6, stride: 2, pad: 1 }]] as [Shape4, number, Window][]) {
    const [N, C, h, w] = xShape;
    const k = win.kernel;
    const yShape = [N, outC, convTransposeOutSize(h, win), convTransposeOutSize(w, win)];
    const g = new GraphBuilder('blocks');
    g.input('x', 'float32', xShape);
    g.input('w', 'float32', [C, outC, k, k]);
    g.input('b', 'float32', [outC]);
    g.node('ConvTranspose', ['x', 'w', 'b'], { kernel_shape: [k, k], strides: [win.stride, win.stride], pads: [win.pad, win.pad, win.pad, win.pad] }, 'ref');
    convTransposeBlocks(g, 'x', 'w', 'b', win, xShape, outC, 'y');
    g.output('ref', 'float32', yShape);
    g.output('y', 'float32', yShape);
    const session = await Session.create(g.encode(), { threads: 1 });
    const res = await session.run({
      x: { dtype: 'float32', dims: xShape, data: normals(size(xShape)) },
      w: { dtype: 'float32', dims: [C, outC, k, k], data: normals(C * outC * k * k) },
      b: { dtype: 'float32', dims: [outC], data: normals(outC) },
    });
    await session.dispose();
    const ref = res.ref!.data as Float32Array;
    const y = res.y!.data as Float32Array;
    assert.equal(y.length, size(yShape));
    for (let i = 0; i < y.length; i++) assert.ok(Math.abs(y[i]! - ref[i]!) < 1e-5 * (1 + Math.abs(ref[i]!)), `k${k}: y[${i}] ${y[i]} vs ${ref[i]}`);
  }
});

test('relu and max-pool 3/2/1 gradients match finite differences (no ties, steps smaller than the gaps)', async (t) => {
  const xShape: Shape4 = [2, 3, 7, 8];
  const relu: OpCase = {
    inputs: [{ name: 'x', shape: xShape, data: distinct(size(xShape), 0.01), diff: true }],
    outShape: xShape, eps: 1e-4,
    emit(g) {
      const y = g.node('Relu', ['x'], {}, 'y');
      return { y, grads: { x: reluGrad(g, y, 'dy') } };
    },
  };
  const reluErr = await gradcheck(relu);
  t.diagnostic(`relu: worst relative error ${reluErr.toExponential(2)}`);
  assert.ok(reluErr < LINEAR_TOL);
  const win = { kernel: 3, stride: 2, pad: 1 };
  for (const shape of [[2, 3, 8, 8], [1, 2, 7, 9]] as Shape4[]) {
    const yShape: Shape4 = [shape[0], shape[1], convOutSize(shape[2], win), convOutSize(shape[3], win)];
    const pool: OpCase = {
      inputs: [{ name: 'x', shape, data: distinct(size(shape), 0.01), diff: true }],
      outShape: yShape, eps: 1e-4, directions: 3,
      emit(g) {
        const idx = maxPoolWithIndices(g, 'x', win, 'y');
        return { y: 'y', grads: { x: maxPoolGrad(g, 'dy', idx, shape) } };
      },
    };
    const err = await gradcheck(pool);
    t.diagnostic(`maxpool ${shape.join('x')}: worst relative error ${err.toExponential(2)}`);
    assert.ok(err < LINEAR_TOL, `maxpool ${shape.join('x')}: ${err.toExponential(2)}`);
  }
});

test('max-pool gradient routes each window to its argmax (overlaps summed, batch and channel offsets)', async (t) => {
  // 2x2x4x4 input, window 3/2/1: output 2x2 per plane; targets computed by brute force below
  const shape: Shape4 = [2, 2, 4, 4];
  const x = new Float32Array(size(shape));
  // plane (n, c): its maximum at (1, 1) (value 100 + plane); the other values are smaller and distinct
  for (let p = 0; p < 4; p++) for (let i = 0; i < 16; i++) x[p * 16 + i] = i === 5 ? 100 + p : i * 0.1 - p;
  const g = new GraphBuilder('pool');
  g.input('x', 'float32', shape);
  g.input('dy', 'float32', [2, 2, 2, 2]);
  const idx = maxPoolWithIndices(g, 'x', { kernel: 3, stride: 2, pad: 1 }, 'y');
  g.node('Identity', [maxPoolGrad(g, 'dy', idx, shape)], {}, 'dx');
  g.output('dx', 'float32', shape);
  const session = await Session.create(g.encode(), { threads: 1 });
  const dy = Float32Array.from({ length: 16 }, (_, i) => i + 1);
  const dx = (await session.run({ x: { dtype: 'float32', dims: shape, data: x }, dy: { dtype: 'float32', dims: [2, 2, 2, 2], data: dy } })).dx!.data as Float32Array;
  await session.dispose();
  for (let p = 0; p < 4; p++) {
    // windows: rows {0,1} or {1,2,3}, cols likewise; (1,1) lies in all four
    const plane = x.subarray(p * 16, p * 16 + 16);
    const expect = new Float64Array(16);
    for (let a = 0; a < 2; a++) for (let b = 0; b < 2; b++) {
      let best = -1;
      for (let i = Math.max(0, 2 * a - 1); i <= Math.min(3, 2 * a + 1); i++) {
        for (let j = Math.max(0, 2 * b - 1); j <= Math.min(3, 2 * b + 1); j++) if (best < 0 || plane[i * 4 + j]! > plane[best]!) best = i * 4 + j;
      }
      expect[best] += dy[p * 4 + a * 2 + b]!;
    }
    assert.deepEqual(Array.from(dx.subarray(p * 16, p * 16 + 16)), Array.from(expect), `plane ${p}`);
    assert.equal(dx[p * 16 + 5], dy[p * 4]! + dy[p * 4 + 1]! + dy[p * 4 + 2]! + dy[p * 4 + 3]!, 'the shared maximum collects all four windows');
  }
});

test('train-mode batch-norm: forward and running statistics equal float64 formulas; gradients match finite differences', async (t) => {
  const xShape: Shape4 = [3, 4, 5, 6];
  const [N, C, H, W] = xShape;
  const M = N * H * W;
  const x = normals(size(xShape), 2);
  for (let i = 0; i < x.length; i++) x[i]! += ((Math.floor(i / (H * W)) % C) - 1.5); // per-channel offsets
  const gamma = Float32Array.from({ length: C }, () => 0.5 + random());
  const beta = normals(C);
  const runningMean = normals(C);
  const runningVar = Float32Array.from({ length: C }, () => 0.5 + random());
  for (const form of ['explicit', 'centered'] as BatchNormForm[]) {
  const bnCase: OpCase = {
    inputs: [
      { name: 'x', shape: xShape, data: x, diff: true },
      { name: 'gamma', shape: [C], data: gamma, diff: true },
      { name: 'beta', shape: [C], data: beta, diff: true },
    ],
    outShape: xShape, eps: 1e-2, directions: 3,
    emit(g) {
      const out = batchNormTrain(g, 'x', 'gamma', 'beta', 1e-5, xShape, 'y', 'bn', form);
      const r = batchNormGrad(g, 'dy', out.saved, 'gamma');
      return { y: 'y', grads: { x: r.dx!, gamma: r.dgamma, beta: r.dbeta } };
    },
  };
  const err = await gradcheck(bnCase);
  t.diagnostic(`batch-norm (${form}): worst relative error ${err.toExponential(2)}`);
  assert.ok(err < 5e-4, `batch-norm (${form}): worst relative error ${err.toExponential(2)}`);
  }

  // forward values and PyTorch's running-statistics rule (unbiased variance), momentum 0.1
  for (const form of ['explicit', 'centered'] as BatchNormForm[]) {
  const g = new GraphBuilder('bn');
  g.input('x', 'float32', xShape);
  for (const n of ['gamma', 'beta', 'rm', 'rv']) g.input(n, 'float32', [C]);
  const out = batchNormTrain(g, 'x', 'gamma', 'beta', 1e-5, xShape, 'y', 'bn', form);
  batchNormRunningUpdate(g, out, 'rm', 'rv', 0.1, ['rm_new', 'rv_new']);
  g.output('y', 'float32', xShape);
  g.output('rm_new', 'float32', [C]);
  g.output('rv_new', 'float32', [C]);
  const session = await Session.create(g.encode(), { threads: 1 });
  const res = await session.run({
    x: { dtype: 'float32', dims: xShape, data: x },
    gamma: { dtype: 'float32', dims: [C], data: gamma },
    beta: { dtype: 'float32', dims: [C], data: beta },
    rm: { dtype: 'float32', dims: [C], data: runningMean },
    rv: { dtype: 'float32', dims: [C], data: runningVar },
  });
  await session.dispose();
  const y = res.y!.data as Float32Array;
  for (let c = 0; c < C; c++) {
    let sum = 0;
    const at = (n: number, i: number) => (n * C + c) * H * W + i;
    for (let n = 0; n < N; n++) for (let i = 0; i < H * W; i++) sum += x[at(n, i)]!;
    const mean = sum / M;
    let ss = 0;
    for (let n = 0; n < N; n++) for (let i = 0; i < H * W; i++) ss += (x[at(n, i)]! - mean) ** 2;
    const variance = ss / M;
    for (let n = 0; n < N; n++) {
      for (let i = 0; i < H * W; i++) {
        const expect = ((x[at(n, i)]! - mean) / Math.sqrt(variance + 1e-5)) * gamma[c]! + beta[c]!;
        assert.ok(Math.abs(y[at(n, i)]! - expect) < 2e-5 * (1 + Math.abs(expect)), `y[${n},${c},${i}] ${y[at(n, i)]} vs ${expect}`);
      }
    }
    const rm = 0.9 * runningMean[c]! + 0.1 * mean;
    const rv = 0.9 * runningVar[c]! + 0.1 * (ss / (M - 1));
    assert.ok(Math.abs((res.rm_new!.data as Float32Array)[c]! - rm) < 1e-5 * (1 + Math.abs(rm)), `running_mean[${c}]`);
    assert.ok(Math.abs((res.rv_new!.data as Float32Array)[c]! - rv) < 1e-5 * (1 + Math.abs(rv)), `running_var[${c}]`);
  }
  }
});

test('batch-norm under a max-pool: its gradients taken straight from the pool\'s match finite differences (every form)', async (t) => {
  const xShape: Shape4 = [2, 3, 7, 8];
  const [, C, H, W] = xShape;
  const win = { kernel: 3, stride: 2, pad: 1 };
  const yShape: Shape4 = [xShape[0], C, convOutSize(H, win), convOutSize(W, win)];
  // distinct values 0.2 apart (no ties in a window) with per-channel offsets: steps of 1e-2 along the
  // random directions keep every argmax (smaller steps only add float32 noise to the quotient)
  const x = distinct(size(xShape), 0.2);
  for (let i = 0; i < x.length; i++) x[i]! += (Math.floor(i / (H * W)) % C) - 1;
  const gamma = Float32Array.from({ length: C }, () => 0.5 + random());
  const beta = normals(C);
  for (const form of ['explicit', 'centered', 'affine'] as BatchNormForm[]) {
    const err = await gradcheck({
      inputs: [
        { name: 'x', shape: xShape, data: x, diff: true },
        { name: 'gamma', shape: [C], data: gamma, diff: true },
        { name: 'beta', shape: [C], data: beta, diff: true },
      ],
      outShape: yShape, eps: 1e-2, directions: 3,
      emit(g) {
        const out = batchNormTrain(g, 'x', 'gamma', 'beta', 1e-5, xShape, 'z', 'bn', form);
        const idx = maxPoolWithIndices(g, 'z', win, 'y');
        const r = batchNormGradThroughMaxPool(g, 'dy', idx, out.saved, 'gamma', xShape);
        return { y: 'y', grads: { x: r.dx!, gamma: r.dgamma, beta: r.dbeta } };
      },
    });
    t.diagnostic(`batch-norm → max-pool (${form}): worst relative error ${err.toExponential(2)}`);
    assert.ok(err < 5e-4, `batch-norm → max-pool (${form}): worst relative error ${err.toExponential(2)}`);
  }
});

test('softmax cross-entropy with ignore 255: loss, counts and gradient', async (t) => {
  const N = 3;
  const C = 4;
  const H = 5;
  const W = 6;
  const logits = normals(N * C * H * W, 2);
  const labels = Uint8Array.from({ length: N * H * W }, (_, i) => (i < H * W ? 255 : random() < 0.2 ? 255 : Math.floor(random() * C)));
  // image 0 is all void: it must add nothing (PyTorch's mean over zero pixels would be NaN)
  const ceCase: OpCase = {
    inputs: [
      { name: 'logits', shape: [N, C, H, W], data: logits, diff: true },
      { name: 'labels', shape: [N, H, W], data: labels, dtype: 'uint8' },
    ],
    outShape: [], eps: 1e-2, directions: 3,
    emit(g) {
      const r = softmaxCrossEntropy(g, 'logits', 'labels', 255, { loss: 'loss', correct: 'correct', valid: 'valid' });
      g.output('correct', 'int64', []);
      g.output('valid', 'int64', []);
      return { y: 'loss', grads: { logits: r.dlogits } };
    },
  };
  const err = await gradcheck(ceCase);
  t.diagnostic(`cross-entropy: worst relative error ${err.toExponential(2)}`);
  assert.ok(err < 1e-3, `cross-entropy: worst relative error ${err.toExponential(2)}`);

  const g = new GraphBuilder('ce');
  g.input('logits', 'float32', [N, C, H, W]);
  g.input('labels', 'uint8', [N, H, W]);
  const r = softmaxCrossEntropy(g, 'logits', 'labels', 255, { loss: 'loss', correct: 'correct', valid: 'valid' });
  g.output('loss', 'float32', []);
  g.output('correct', 'int64', []);
  g.output('valid', 'int64', []);
  g.node('Identity', [r.dlogits], {}, 'dlogits');
  g.output('dlogits', 'float32', [N, C, H, W]);
  const session = await Session.create(g.encode(), { threads: 1 });
  const res = await session.run({
    logits: { dtype: 'float32', dims: [N, C, H, W], data: logits },
    labels: { dtype: 'uint8', dims: [N, H, W], data: labels },
  });
  await session.dispose();
  let loss = 0;
  let correct = 0;
  let valid = 0;
  const dlogits = res.dlogits!.data as Float32Array;
  for (let n = 0; n < N; n++) {
    let sum = 0;
    let count = 0;
    for (let i = 0; i < H * W; i++) {
      const t = labels[n * H * W + i]!;
      const z = Array.from({ length: C }, (_, c) => logits[(n * C + c) * H * W + i]!);
      const mx = Math.max(...z);
      const lse = mx + Math.log(z.reduce((a, v) => a + Math.exp(v - mx), 0));
      if (t === 255) {
        for (let c = 0; c < C; c++) assert.ok(dlogits[(n * C + c) * H * W + i] === 0, 'ignored pixels get no gradient');
        continue;
      }
      sum += lse - z[t]!;
      count++;
      if (z.indexOf(mx) === t) correct++;
    }
    valid += count;
    if (count) loss += sum / count;
  }
  assert.ok(Math.abs((res.loss!.data as Float32Array)[0]! - loss) < 1e-6 * loss, `loss ${res.loss!.data[0]} vs ${loss}`);
  assert.equal(Number(res.correct!.data[0]), correct);
  assert.equal(Number(res.valid!.data[0]), valid);
  assert.ok(valid > 0 && valid < N * H * W);

  // logits 2 pixels wider on every side (an uncropped transposed conv), labels padded with 255 inside
  const P = 2;
  const [Hp, Wp] = [H + 2 * P, W + 2 * P];
  const wide = normals(N * C * Hp * Wp, 5);
  for (let nc = 0; nc < N * C; nc++) {
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) wide[(nc * Hp + y + P) * Wp + x + P] = logits[(nc * H + y) * W + x]!;
  }
  const g2 = new GraphBuilder('ce-pad');
  g2.input('logits', 'float32', [N, C, Hp, Wp]);
  g2.input('labels', 'uint8', [N, H, W]);
  const r2 = softmaxCrossEntropy(g2, 'logits', 'labels', 255, { loss: 'loss', correct: 'correct', valid: 'valid' }, P);
  for (const [name, dtype] of [['loss', 'float32'], ['correct', 'int64'], ['valid', 'int64']] as const) g2.output(name, dtype, []);
  g2.node('Identity', [r2.dlogits], {}, 'dlogits');
  g2.output('dlogits', 'float32', [N, C, Hp, Wp]);
  const s2 = await Session.create(g2.encode(), { threads: 1 });
  const res2 = await s2.run({
    logits: { dtype: 'float32', dims: [N, C, Hp, Wp], data: wide },
    labels: { dtype: 'uint8', dims: [N, H, W], data: labels },
  });
  await s2.dispose();
  assert.ok(Math.abs((res2.loss!.data as Float32Array)[0]! - loss) < 1e-6 * loss, 'the padded border adds no loss');
  assert.equal(Number(res2.correct!.data[0]), correct);
  assert.equal(Number(res2.valid!.data[0]), valid);
  const d2 = res2.dlogits!.data as Float32Array;
  for (let nc = 0; nc < N * C; nc++) {
    for (let y = 0; y < Hp; y++) {
      for (let x = 0; x < Wp; x++) {
        const inside = y >= P && y < H + P && x >= P && x < W + P;
        const expect = inside ? dlogits[(nc * H + y - P) * W + x - P]! : 0;
        assert.ok(Math.abs(d2[(nc * Hp + y) * Wp + x]! - expect) <= 1e-7, `dlogits at plane ${nc} (${y}, ${x})`);
      }
    }
  }
});
