// The phase-GEMM transposed convolution (graph/phaseupsample.ts) computes what ORT's ConvTranspose
// computes, random weights and bias, for the geometries it takes (the book's k64 s32 p16 at reduced
// channels, k32 s16 p8, k = s with no padding, k = 3s), at odd input sizes and batch 2; its argmax
// placed from the GEMM's layout equals the ArgMax of the NCHW result; geometries it does not take are
// refused. Then the book's FCN-32s and FCN-16s through compileInference with upsample 'phases': logits
// and mask-only graphs against the ConvTranspose graph, also at an odd size padded inside the graph.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../src/graph/onnx.js';
import { Session, type EngineTensor } from '../src/engine/session.js';
import { argmaxPhases, emitPhaseGemm, phaseGeometry, phaseWeights, placePhases } from '../src/graph/phaseupsample.js';
import { fcnResNet18, initParameters, seededRandom } from '../src/model/index.js';
import { forEachFormSize } from './helpers/inference-forms.js';
import type { ConvTransposeLayer } from '../src/model/layers.js';
import { maxAbsDiff } from './helpers/fixtures.js';

const layerOf = (k: number, s: number, p: number, C: number, groups?: number): ConvTransposeLayer => ({
  op: 'convtranspose', name: 'up', input: 'x', output: 'y', inChannels: C, outChannels: C, kernel: k, stride: s, pad: p, bias: true, init: 'bilinear',
  ...(groups ? { groups } : {}),
});

async function runGraph(g: GraphBuilder, x: EngineTensor): Promise<Record<string, EngineTensor>> {
  const s = await Session.create(g.encode('t'), { threads: 1 });
  try {
    return await s.run({ x });
  } finally {
    await s.dispose();
  }
}

for (const [k, s, p, C, wholeCols] of [[64, 32, 16, 3, false], [64, 32, 16, 3, true], [32, 16, 8, 4, false], [32, 16, 8, 4, true], [8, 8, 0, 3, false], [48, 16, 16, 2, true]] as const) {
  test(`phase GEMM equals ConvTranspose: k${k} s${s} p${p}, ${C} channels${wholeCols ? ', columns whole' : ''}`, async () => {
    const layer = layerOf(k, s, p, C);
    const geo = phaseGeometry(layer, wholeCols);
    assert.ok(geo, 'applies');
    const W = new Float32Array(C * C * k * k).map((_, i) => Math.sin(i * 0.61) * 0.3);
    const bias = new Float32Array(C).map((_, i) => 0.1 * (i + 1));
    const [N, h, w] = [2, 3, 5];
    const x: EngineTensor = { dtype: 'float32', dims: [N, C, h, w], data: new Float32Array(N * C * h * w).map((_, i) => Math.cos(i * 0.37)) };

    const ref = new GraphBuilder('ref');
    ref.input('x', 'float32', ['N', C, 'H', 'W']);
    ref.initializer('w', 'float32', [C, C, k, k], W);
    ref.initializer('b', 'float32', [C], bias);
    ref.node('ConvTranspose', ['x', 'w', 'b'], { kernel_shape: [k, k], strides: [s, s], pads: [p, p, p, p] }, 'y');
    ref.node('ArgMax', ['y'], { axis: 1, keepdims: 0 }, 'mask');
    ref.output('y', 'float32', ['N', C, 'H2', 'W2']);
    ref.output('mask', 'int64', ['N', 'H2', 'W2']);

    const g = new GraphBuilder('phases');
    g.input('x', 'float32', ['N', C, 'H', 'W']);
    const pw = phaseWeights(layer, geo, W, bias);
    g.initializer('wp', 'float32', [geo.rows.phases * geo.cols.phases, pw.rows, pw.cols], pw.data);
    emitPhaseGemm(g, 'x', 'wp', layer, geo, true, 'phased');
    placePhases(g, 'phased', s, 'y');
    argmaxPhases(g, 'phased', s, 'mask');
    g.output('y', 'float32', ['N', C, 'H2', 'W2']);
    g.output('mask', 'int64', ['N', 'H2', 'W2']);

    const [a, b] = [await runGraph(ref, x), await runGraph(g, x)];
    assert.deepEqual(b.y!.dims, [N, C, h * s, w * s]);
    assert.deepEqual(b.y!.dims, a.y!.dims);
    const d = maxAbsDiff(a.y!.data as Float32Array, b.y!.data as Float32Array);
    assert.ok(d < 1e-5, `max |diff| ${d}`);
    assert.deepEqual(b.mask!.data, a.mask!.data);
    assert.ok(new Set(a.mask!.data as BigInt64Array).size > 1);
  });
}

test('phase GEMM: geometries it does not take', () => {
  assert.equal(phaseGeometry(layerOf(4, 2, 1, 3)), undefined, 'sub-blocks of 1 pixel (FCN-8s x2)');
  assert.equal(phaseGeometry(layerOf(16, 8, 4, 3)), undefined, 'sub-blocks of 4 pixels');
  assert.equal(phaseGeometry(layerOf(64, 32, 8, 3)), undefined, 'output not s times the input');
  assert.equal(phaseGeometry(layerOf(64, 32, 16, 3, 3)), undefined, 'grouped');
  // the book's: row offsets 0..15 read input rows A and A − 1 (z 0, 1), 16..31 rows A + 1 and A (z −1, 0)
  const phased = { phases: 2, size: 16, taps: [[0, 1], [-1, 0]] };
  assert.deepEqual(phaseGeometry(layerOf(64, 32, 16, 3)), { rows: phased, cols: phased });
  assert.deepEqual(phaseGeometry(layerOf(64, 32, 16, 3), true), { rows: phased, cols: { phases: 1, size: 32, taps: [[-1, 0, 1]] } });
});

for (const [variant, upsample] of [['fcn32s', 'phases'], ['fcn16s', 'phases'], ['fcn32s', 'phaserows']] as const) {
  test(`${variant}: upsample '${upsample}' logits and mask-only graphs equal ConvTranspose's`, async () => {
    const arch = fcnResNet18({ numClasses: 5, variant });
    const w = initParameters(arch, seededRandom(2));
    // upsamplers away from their bilinear start (not per-class separable), skip scorers away from zero
    for (const [name, v] of w) {
      if (name.endsWith('transpose_conv.weight') || name.startsWith('upscore')) v.forEach((x, i) => (v[i] = x + Math.sin(i * 0.13) * 0.05));
      else if (v.every((x) => x === 0)) v.forEach((_, i) => (v[i] = Math.sin(i) * 0.01));
    }
    await forEachFormSize(arch, w, async (H, W, run) => {
      const ref = await run({ upsample: 'convtranspose' }, ['logits', 'mask']);
      const logits = await run({ upsample, argmax: false }, ['logits']);
      const mask = await run({ upsample, logits: false }, ['mask']);
      assert.deepEqual(logits.logits!.dims, [2, 5, H, W]);
      const d = maxAbsDiff(ref.logits!.data as Float32Array, logits.logits!.data as Float32Array);
      assert.ok(d < 1e-5, `${H}x${W} logits differ by ${d}`);
      assert.deepEqual(mask.mask!.dims, [2, H, W]);
      assert.deepEqual(mask.mask!.data, ref.mask!.data, `${H}x${W} masks`);
    });
  });
}
