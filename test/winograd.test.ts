// Winograd F(2x2,3x3) / F(4x4,3x3) (src/graph/winograd.ts) against ORT's direct Conv: the transform
// tables, the bias on ξ = (1, 1), odd sizes (whole tiles cropped back), symbolic and static shapes;
// the batch norm folded in; and the book network's inference graph with and without it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder, readOnnxSummary } from '../src/graph/onnx.js';
import { Session } from '../src/engine/session.js';
import { emitWinogradConv, winogradApplies, winogradMatrices } from '../src/graph/winograd.js';
import { compileExport, compileInference } from '../src/graph/inference.js';
import { fcnResNet18, initParameters, seededRandom } from '../src/model/index.js';
import type { ConvLayer } from '../src/model/layers.js';
import { maxRelDiff } from './helpers/fixtures.js';

const wave = (n: number, phase: number, scale: number) => new Float32Array(n).map((_, i) => Math.sin(i * 0.37 + phase) * scale);

test('the tables: Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A is the 3x3 correlation of one tile (TypeScript, float64)', () => {
  for (const m of [2, 4] as const) {
    const { alpha, BT, G, AT } = winogradMatrices(m);
    const mul = (a: number[][], b: number[][]) => a.map((r) => b[0]!.map((_, j) => r.reduce((s, v, k) => s + v * b[k]![j]!, 0)));
    const tr = (a: number[][]) => a[0]!.map((_, j) => a.map((r) => r[j]!));
    const d = Array.from({ length: alpha }, (_, i) => Array.from({ length: alpha }, (_, j) => Math.sin(i * 1.3 + j * 0.7)));
    const g = Array.from({ length: 3 }, (_, i) => Array.from({ length: 3 }, (_, j) => Math.cos(i * 0.9 - j * 1.1)));
    const U = mul(mul(G, g), tr(G));
    const V = mul(mul(BT, d), tr(BT));
    const Y = mul(mul(AT, U.map((r, i) => r.map((u, j) => u * V[i]![j]!))), tr(AT));
    for (let a = 0; a < m; a++) {
      for (let b = 0; b < m; b++) {
        let direct = 0;
        for (let p = 0; p < 3; p++) for (let q = 0; q < 3; q++) direct += g[p]![q]! * d[a + p]![b + q]!;
        assert.ok(Math.abs(Y[a]![b]! - direct) < 1e-12, `F(${m},3) output (${a}, ${b}): ${Y[a]![b]} vs ${direct}`);
      }
    }
  }
});

test('emitWinogradConv equals a direct Conv: F(2,3) and F(4,3), bias, odd sizes, static and symbolic shapes', async () => {
  for (const [C, K] of [[8, 16], [3, 5]] as const) {
    const weight = wave(K * C * 9, 1, 0.3);
    const bias = wave(K, 2, 0.5);
    for (const symbolic of [false, true]) {
      for (const [H, W] of [[8, 12], [7, 9], [1, 5]] as const) {
        const g = new GraphBuilder('wino');
        g.input('x', 'float32', symbolic ? ['N', C, 'H', 'W'] : [2, C, H, W]);
        g.initializer('w', 'float32', [K, C, 3, 3], weight);
        g.initializer('b', 'float32', [K], bias);
        g.node('Conv', ['x', 'w', 'b'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, 'direct');
        const shape = { inChannels: C, outChannels: K, height: symbolic ? undefined : H, width: symbolic ? undefined : W };
        emitWinogradConv(g, 'x', weight, bias, shape, 'f2', 2, 'f2');
        emitWinogradConv(g, 'x', weight, undefined, shape, 'f4', 4, 'f4');
        for (const o of ['direct', 'f2', 'f4']) g.output(o, 'float32', symbolic ? ['N', K, 'H', 'W'] : [2, K, H, W]);
        const s = await Session.create(g.encode(), { threads: 1 });
        try {
          const out = await s.run({ x: { dtype: 'float32', dims: [2, C, H, W], data: wave(2 * C * H * W, 3, 1) } });
          const direct = out.direct!.data as Float32Array;
          assert.deepEqual(out.f2!.dims, [2, K, H, W]);
          assert.deepEqual(out.f4!.dims, [2, K, H, W]);
          const f4 = (out.f4!.data as Float32Array).map((v, i) => v + bias[Math.floor(i / (H * W)) % K]!);
          const at = `${C}->${K} ${H}x${W}${symbolic ? ' symbolic' : ''}`;
          assert.ok(maxRelDiff(out.f2!.data as Float32Array, direct) < 1e-5, `F(2,3) ${at}: ${maxRelDiff(out.f2!.data as Float32Array, direct)}`);
          assert.ok(maxRelDiff(f4, direct) < 1e-4, `F(4,3) ${at}: ${maxRelDiff(f4, direct)}`);
        } finally {
          await s.dispose();
        }
      }
    }
  }
});

test('winogradApplies: wide undilated stride-1 3x3 convolutions only (≥1024 input channels unless told)', () => {
  const conv = (o: Partial<ConvLayer>): ConvLayer => ({
    op: 'conv', name: 'c', input: 'x', output: 'y', inChannels: 256, outChannels: 256, kernel: 3, stride: 1, pad: 1, bias: false, init: 'kaiming_fan_out', ...o,
  } as ConvLayer);
  assert.equal(winogradApplies(conv({ inChannels: 2048, outChannels: 512 })), true);
  assert.equal(winogradApplies(conv({})), false);
  assert.equal(winogradApplies(conv({}), 256), true);
  assert.equal(winogradApplies(conv({ inChannels: 128, outChannels: 128 }), 256), false);
  assert.equal(winogradApplies(conv({ stride: 2 })), false);
  assert.equal(winogradApplies(conv({ dilation: 2, pad: 2 })), false);
  assert.equal(winogradApplies(conv({ kernel: 1, pad: 0 })), false);
  assert.equal(winogradApplies(conv({ groups: 256 })), false);
});

test('the book network with winograd: the same logits as the plain graph, its batch norms folded; export stays plain Conv', async () => {
  const arch = fcnResNet18({ numClasses: 5 });
  const weights = initParameters(arch, seededRandom(3));
  // running statistics away from 0 / 1, so the folded batch norms matter
  for (const [name, v] of weights) {
    if (name.endsWith('running_mean')) v.forEach((_, i) => (v[i] = Math.sin(i) * 0.1));
    if (name.endsWith('running_var')) v.forEach((_, i) => (v[i] = 1 + 0.5 * Math.cos(i)));
  }
  const plain = compileInference(arch, weights, { argmax: false });
  // the default threshold leaves the book's convolutions direct; 256 input channels takes layer3 and layer4
  assert.equal(readOnnxSummary(compileInference(arch, weights, { argmax: false, winograd: true })).ops.DepthToSpace ?? 0, 0);
  const wino = compileInference(arch, weights, { argmax: false, winograd: 256 });
  const ops = readOnnxSummary(wino).ops;
  // layer3 and layer4: 2 blocks x 2 convs each, less the two strided first convs
  assert.equal(ops.DepthToSpace, 6);
  assert.equal(readOnnxSummary(plain).ops.DepthToSpace ?? 0, 0);
  assert.equal(ops.BatchNormalization, readOnnxSummary(plain).ops.BatchNormalization! - 6);
  assert.equal(readOnnxSummary(compileExport(arch, weights, { classes: ['a', 'b', 'c', 'd', 'e'], colors: [], normalization: {} })).ops.DepthToSpace ?? 0, 0);
  const [H, W] = [64, 96];
  const x = { dtype: 'float32' as const, dims: [1, 3, H, W], data: wave(3 * H * W, 0, 1.5) };
  const outs: Float32Array[] = [];
  for (const bytes of [plain, wino]) {
    const s = await Session.create(bytes, { threads: 1 });
    try {
      outs.push((await s.run({ image: x }, ['logits'])).logits!.data as Float32Array);
    } finally {
      await s.dispose();
    }
  }
  assert.ok(maxRelDiff(outs[1]!, outs[0]!) < 1e-4, `logits differ by ${maxRelDiff(outs[1]!, outs[0]!)} of their largest`);
});
