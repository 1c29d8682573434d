// The layer kinds torchvision's segmentation networks add, each through its kind module
// (src/graph/ops/): inference emission and training forward against PyTorch's outputs, the backward
// against PyTorch's autograd and against central finite differences of its own forward (fixtures:
// scripts/make_layer_fixtures.py). Dilated convolutions with every weight-gradient formulation;
// bilinear resize up, down, from 1x1 and mixed; global average pooling; concat; dropout's mask
// statistics and its backward through the same mask; torchvision's loss with its auxiliary term;
// MobileNetV3's depthwise convolutions, hard swish, hard sigmoid, sigmoid and broadcast product.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../src/graph/onnx.js';
import { softmaxCrossEntropy, type Shape4 } from '../src/graph/backward.js';
import { Session, type EngineTensor } from '../src/engine/session.js';
import { seededRandom } from '../src/model/params.js';
import type { ConvLayer, Layer } from '../src/model/layers.js';
import { interpolationMatrix } from '../src/graph/ops/resize.js';
import { gradcheck as gradcheckWith, type CaseInput } from './helpers/gradcheck.js';
import { emitTrainLayer, evalLayerGraph, layerShapes } from './helpers/layer-graph.js';
import { loadFixture, maxAbsDiff } from './helpers/fixtures.js';
import type { TrainGraphTuning } from '../src/graph/tuning.js';

const fx = loadFixture('layers');
const random = seededRandom(20261201);
function normal(): number {
  const u = 1 - random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}
const normals = (n: number, scale = 1): Float32Array => Float32Array.from({ length: n }, () => normal() * scale);
const gradcheck = (c: Parameters<typeof gradcheckWith>[0]) => gradcheckWith(c, normals);
const LINEAR_TOL = 1e-5;

/** max |a − b| relative to max |b|. */
function relMax(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (const v of b) m = Math.max(m, Math.abs(v));
  return maxAbsDiff(a, b) / Math.max(m, 1e-30);
}

const f32 = (name: string) => fx.f32(name);
const shape4 = (name: string) => f32(name).shape as Shape4;

interface LayerCase {
  name: string;
  layer: Layer;
  /** Fixture names of the layer's input values and parameters, by graph name. */
  values: Record<string, string>;
  params: Record<string, string>;
  /** Inputs that only give a shape (resize's `like`). */
  shapeOnly?: Record<string, Shape4>;
}

/** Runs the training forward + backward on the fixture's inputs with dy = R; compares y and every gradient with PyTorch's. */
async function trainParity(c: LayerCase, tuning?: TrainGraphTuning): Promise<number> {
  const g = new GraphBuilder(c.name);
  const shapes = new Map<string, Shape4>();
  const feeds: Record<string, EngineTensor> = {};
  for (const [v, fxName] of Object.entries({ ...c.values, ...c.params })) {
    const t = f32(fxName);
    g.input(v, 'float32', t.shape);
    if (v in c.values) shapes.set(v, t.shape as Shape4);
    feeds[v] = { dtype: 'float32', dims: t.shape, data: t.data };
  }
  for (const [v, s] of Object.entries(c.shapeOnly ?? {})) {
    g.input(v, 'float32', s);
    shapes.set(v, s);
    feeds[v] = { dtype: 'float32', dims: s, data: new Float32Array(s.reduce((a, b) => a * b, 1)) };
  }
  const R = f32(`${c.name}/R`);
  g.input('dy', 'float32', R.shape);
  feeds.dy = { dtype: 'float32', dims: R.shape, data: R.data };
  const { y, grads } = emitTrainLayer(g, c.layer, shapes, tuning);
  g.output(y, 'float32', R.shape);
  const names = Object.keys({ ...c.values, ...c.params });
  for (const v of names) {
    g.node('Identity', [grads[v]!], {}, `grad_${v}`);
    g.output(`grad_${v}`, 'float32', f32({ ...c.values, ...c.params }[v]!).shape);
  }
  const s = await Session.create(g.encode(), { threads: 1 });
  const out = await s.run(feeds);
  await s.dispose();
  let worst = relMax(out[y]!.data as Float32Array, f32(`${c.name}/y`).data);
  for (const v of names) {
    const fxName = { ...c.values, ...c.params }[v]!;
    const ref = f32(fxName.replace(`${c.name}/`, `${c.name}/grad/`)).data;
    worst = Math.max(worst, relMax(out[`grad_${v}`]!.data as Float32Array, ref));
  }
  return worst;
}

/** The inference emission (symbolic shapes) on the fixture's inputs against PyTorch's y. */
async function evalParity(c: LayerCase): Promise<number> {
  const values = Object.entries(c.values).map(([name, fxName]) => ({ name, channels: shape4(fxName)[1] }));
  const like = Object.entries(c.shapeOnly ?? {}).map(([name, s]) => ({ name, channels: s[1] }));
  const params = Object.entries(c.params).map(([name, fxName]) => ({ name, shape: f32(fxName).shape }));
  const s = await Session.create(evalLayerGraph(c.layer, [...values, ...like], params), { threads: 1 });
  const feeds: Record<string, EngineTensor> = {};
  for (const [v, fxName] of Object.entries({ ...c.values, ...c.params })) feeds[v] = { dtype: 'float32', dims: f32(fxName).shape, data: f32(fxName).data };
  for (const [v, sh] of Object.entries(c.shapeOnly ?? {})) feeds[v] = { dtype: 'float32', dims: sh, data: new Float32Array(sh.reduce((a, b) => a * b, 1)) };
  const out = await s.run(feeds);
  await s.dispose();
  return relMax(out[c.layer.output]!.data as Float32Array, f32(`${c.name}/y`).data);
}

/** Central finite differences of the kind's own forward against its backward, on the fixture's inputs. */
async function finiteDifferences(c: LayerCase, tuning?: TrainGraphTuning): Promise<number> {
  const inputs: CaseInput[] = Object.entries({ ...c.values, ...c.params }).map(([name, fxName]) => ({
    name, shape: f32(fxName).shape, data: Float32Array.from(f32(fxName).data), diff: true,
  }));
  for (const [name, s] of Object.entries(c.shapeOnly ?? {})) inputs.push({ name, shape: s, data: new Float32Array(s.reduce((a, b) => a * b, 1)) });
  const shapes = new Map<string, Shape4>(inputs.filter((i) => i.shape.length === 4).map((i) => [i.name, i.shape as Shape4]));
  return gradcheck({
    inputs, outShape: f32(`${c.name}/y`).shape, eps: 1,
    emit: (g) => emitTrainLayer(g, c.layer, new Map(shapes), tuning),
  });
}

function convCase(name: string): LayerCase {
  const s = fx.meta.results[name] as { stride: number; pad: number; dilation: number; groups: number; bias: boolean; out: number; in: number; kernel: number };
  const layer: ConvLayer = {
    op: 'conv', name: 'c', input: 'x', output: 'y', inChannels: s.in, outChannels: s.out, kernel: s.kernel, stride: s.stride, pad: s.pad,
    dilation: s.dilation, groups: s.groups, bias: s.bias, init: 'pytorch_default',
  };
  const params: Record<string, string> = { 'c.weight': `${name}/weight` };
  if (s.bias) params['c.bias'] = `${name}/bias`;
  return { name, layer, values: { x: `${name}/x` }, params };
}

function resizeCase(name: string): LayerCase {
  const [H, W] = fx.meta.results[name].size as [number, number];
  const x = shape4(`${name}/x`);
  return { name, layer: { op: 'resize', input: 'x', like: 'like', output: 'y' }, values: { x: `${name}/x` }, params: {}, shapeOnly: { like: [x[0], 1, H, W] } };
}

test('dilated (and grouped) convolutions: inference, training forward and gradients match PyTorch; every weight-gradient form matches finite differences', async (t) => {
  for (const name of ['conv_d2', 'conv_d3s2', 'conv_d2k1p1']) {
    const c = convCase(name);
    const ev = await evalParity(c);
    t.diagnostic(`${name}: inference vs PyTorch ${ev.toExponential(2)}`);
    assert.ok(ev < 1e-5, `${name} inference: ${ev}`);
    for (const tuning of [{}, { convGradWeight: 'dilated', convGradInput: 'convtranspose' }, { convGradWeight: 'shifts' }, { convGradWeight: 'im2col' }, { convGradWeight: 'tapconv' }] as TrainGraphTuning[]) {
      const tp = await trainParity(c, tuning);
      const fd = await finiteDifferences(c, tuning);
      t.diagnostic(`${name} ${JSON.stringify(tuning)}: vs PyTorch ${tp.toExponential(2)}, finite differences ${fd.toExponential(2)}`);
      assert.ok(tp < 1e-5, `${name} ${JSON.stringify(tuning)} vs PyTorch: ${tp}`);
      assert.ok(fd < LINEAR_TOL, `${name} ${JSON.stringify(tuning)} finite differences: ${fd}`);
    }
  }
  const grouped = convCase('conv_g2');
  const ev = await evalParity(grouped);
  t.diagnostic(`conv_g2 (2 groups): inference vs PyTorch ${ev.toExponential(2)}`);
  assert.ok(ev < 1e-5);
  for (const tuning of [{}, { convGradWeight: 'dilated', convGradInput: 'convtranspose' }, { convGradWeight: 'im2col' }] as TrainGraphTuning[]) {
    const tp = await trainParity(grouped, tuning);
    const fd = await finiteDifferences(grouped, tuning);
    t.diagnostic(`conv_g2 ${JSON.stringify(tuning)}: vs PyTorch ${tp.toExponential(2)}, finite differences ${fd.toExponential(2)}`);
    assert.ok(tp < 1e-5 && fd < LINEAR_TOL, `conv_g2 ${JSON.stringify(tuning)}: ${tp}, ${fd}`);
  }
});

test('bilinear resize (align_corners=False): up, down, from 1x1, mixed and x8 match PyTorch in both graphs and finite differences', async (t) => {
  for (const name of ['resize_up', 'resize_down', 'resize_1x1', 'resize_mixed', 'resize_x8']) {
    const c = resizeCase(name);
    const ev = await evalParity(c);
    const tp = await trainParity(c);
    const fd = await finiteDifferences(c);
    t.diagnostic(`${name}: inference ${ev.toExponential(2)}, training + gradient ${tp.toExponential(2)} vs PyTorch; finite differences ${fd.toExponential(2)}`);
    assert.ok(ev < 1e-5 && tp < 1e-5, `${name} vs PyTorch: ${ev}, ${tp}`);
    assert.ok(fd < LINEAR_TOL, `${name} finite differences: ${fd}`);
  }
  // the interpolation matrices' rows are convex weights
  for (const [a, b] of [[4, 9], [9, 4], [1, 5], [3, 24]] as const) {
    const m = interpolationMatrix(a, b);
    for (let i = 0; i < b; i++) {
      const row = m.subarray(i * a, (i + 1) * a);
      assert.ok(Math.abs(row.reduce((s, v) => s + v, 0) - 1) < 1e-6 && row.every((v) => v >= 0));
    }
  }
});

test('global average pooling matches PyTorch and finite differences', async (t) => {
  const c: LayerCase = { name: 'gap', layer: { op: 'globalavgpool', input: 'x', output: 'y' }, values: { x: 'gap/x' }, params: {} };
  const [ev, tp, fd] = [await evalParity(c), await trainParity(c), await finiteDifferences(c)];
  t.diagnostic(`gap: inference ${ev.toExponential(2)}, training ${tp.toExponential(2)}, finite differences ${fd.toExponential(2)}`);
  assert.ok(ev < 1e-6 && tp < 1e-6 && fd < LINEAR_TOL);
});

test('channel concatenation: forward and the split gradient match finite differences', async (t) => {
  const shapes: Shape4[] = [[2, 3, 4, 5], [2, 1, 4, 5], [2, 2, 4, 5]];
  const layer: Layer = { op: 'concat', inputs: ['a', 'b', 'c'], output: 'y' };
  assert.deepEqual(layerShapes(layer, shapes).outShape, [2, 6, 4, 5]);
  assert.throws(() => layerShapes(layer, [[2, 3, 4, 5], [2, 1, 4, 6]]), /concat 'y'/);
  const inputs: CaseInput[] = ['a', 'b', 'c'].map((name, i) => ({ name, shape: shapes[i]!, data: normals(shapes[i]!.reduce((x, y) => x * y, 1)), diff: true }));
  const fd = await gradcheck({
    inputs, outShape: [2, 6, 4, 5], eps: 1,
    emit: (g) => emitTrainLayer(g, layer, new Map(inputs.map((i) => [i.name, i.shape as Shape4]))),
  });
  t.diagnostic(`concat: finite differences ${fd.toExponential(2)}`);
  assert.ok(fd < LINEAR_TOL);
});

test('dropout: identity at inference; in training x·keep/(1−p), and the backward uses the same mask', async () => {
  const p = 0.3;
  const shape: Shape4 = [2, 4, 6, 5];
  const n = shape.reduce((a, b) => a * b, 1);
  const layer: Layer = { op: 'dropout', input: 'x', output: 'y', p };
  const ev = await Session.create(evalLayerGraph(layer, [{ name: 'x', channels: 4 }], []), { threads: 1 });
  const x = normals(n);
  const yEval = (await ev.run({ x: { dtype: 'float32', dims: shape, data: x } })).y!.data as Float32Array;
  await ev.dispose();
  assert.deepEqual(Array.from(yEval), Array.from(x));

  const g = new GraphBuilder('dropout');
  g.input('x', 'float32', shape);
  g.input('dy', 'float32', shape);
  const { y, grads } = emitTrainLayer(g, layer, new Map([['x', shape]]));
  g.output(y, 'float32', shape);
  g.node('Identity', [grads.x!], {}, 'dx');
  g.output('dx', 'float32', shape);
  const keep = Uint8Array.from({ length: n }, () => (random() >= p ? 1 : 0));
  const dy = normals(n);
  const s = await Session.create(g.encode(), { threads: 1 });
  const out = await s.run({
    x: { dtype: 'float32', dims: shape, data: x }, dy: { dtype: 'float32', dims: shape, data: dy },
    'y:keep': { dtype: 'bool', dims: shape, data: keep },
  });
  await s.dispose();
  const yt = out.y!.data as Float32Array;
  const dx = out.dx!.data as Float32Array;
  const scale = Math.fround(1 / (1 - p));
  for (let i = 0; i < n; i++) {
    assert.equal(yt[i], keep[i] ? Math.fround(x[i]! * scale) : 0, `y at ${i}`);
    assert.equal(dx[i], keep[i] ? Math.fround(dy[i]! * scale) : 0, `dx at ${i}`);
  }
});

test("torchvision's loss: mean cross-entropy over the batch's valid pixels + 0.5 x the auxiliary output's, as PyTorch (loss and both gradients) and finite differences", async (t) => {
  const out = f32('loss_tv/out');
  const aux = f32('loss_tv/aux');
  const labels = fx.u8('loss_tv/labels');
  const emit = (g: GraphBuilder) => {
    const main = softmaxCrossEntropy(g, 'out', 'labels', 255, { loss: 'main' }, 0, undefined, { perBatch: true });
    const a = softmaxCrossEntropy(g, 'aux', 'labels', 255, { loss: 'auxloss' }, 0, undefined, { perBatch: true, weight: 0.5, hint: 'ce_aux' });
    g.node('Add', [main.loss, a.loss], {}, 'loss');
    return { y: 'loss', grads: { out: main.dlogits, aux: a.dlogits } };
  };
  const g = new GraphBuilder('tvloss');
  g.input('out', 'float32', out.shape);
  g.input('aux', 'float32', aux.shape);
  g.input('labels', 'uint8', labels.shape);
  const r = emit(g);
  g.output('loss', 'float32', []);
  g.node('Identity', [r.grads.out], {}, 'dout');
  g.node('Identity', [r.grads.aux], {}, 'daux');
  g.output('dout', 'float32', out.shape);
  g.output('daux', 'float32', aux.shape);
  const s = await Session.create(g.encode(), { threads: 1 });
  const res = await s.run({
    out: { dtype: 'float32', dims: out.shape, data: out.data }, aux: { dtype: 'float32', dims: aux.shape, data: aux.data },
    labels: { dtype: 'uint8', dims: labels.shape, data: labels.data },
  });
  await s.dispose();
  const loss = (res.loss!.data as Float32Array)[0]!;
  const ref = fx.meta.results.loss_tv.loss as number;
  const dOut = relMax(res.dout!.data as Float32Array, f32('loss_tv/grad/out').data);
  const dAux = relMax(res.daux!.data as Float32Array, f32('loss_tv/grad/aux').data);
  t.diagnostic(`loss ${loss} vs PyTorch ${ref}; gradients ${dOut.toExponential(2)} (out), ${dAux.toExponential(2)} (aux)`);
  assert.ok(Math.abs(loss - ref) < 1e-6 * ref);
  assert.ok(dOut < 1e-5 && dAux < 1e-5);
  const fd = await gradcheck({
    inputs: [
      { name: 'out', shape: out.shape, data: Float32Array.from(out.data), diff: true },
      { name: 'aux', shape: aux.shape, data: Float32Array.from(aux.data), diff: true },
      { name: 'labels', shape: labels.shape, data: labels.data, dtype: 'uint8' },
    ],
    outShape: [], eps: 1e-2, directions: 3, emit,
  });
  t.diagnostic(`finite differences ${fd.toExponential(2)}`);
  assert.ok(fd < 1e-3);
});

test('depthwise convolutions (groups = channels; dilated, strided): inference, training forward and gradients match PyTorch and finite differences', async (t) => {
  for (const name of ['conv_dw_d2', 'conv_dw_s2']) {
    const c = convCase(name);
    const ev = await evalParity(c);
    assert.ok(ev < 1e-5, `${name} inference: ${ev}`);
    for (const tuning of [{}, { depthwise: 'split' }, { depthwise: 'split', convGradWeight: 'dilated', convGradInput: 'convtranspose' }] as TrainGraphTuning[]) {
      const tp = await trainParity(c, tuning);
      const fd = await finiteDifferences(c, tuning);
      t.diagnostic(`${name} ${JSON.stringify(tuning)}: inference ${ev.toExponential(2)}, vs PyTorch ${tp.toExponential(2)}, finite differences ${fd.toExponential(2)}`);
      assert.ok(tp < 1e-5 && fd < LINEAR_TOL, `${name} ${JSON.stringify(tuning)}: ${tp}, ${fd}`);
    }
  }
});

/** Finite differences with a small step, for the kinds that are not linear. */
async function finiteDifferencesNonlinear(c: LayerCase): Promise<number> {
  const inputs: CaseInput[] = Object.entries({ ...c.values, ...c.params }).map(([name, fxName]) => ({
    name, shape: f32(fxName).shape, data: Float32Array.from(f32(fxName).data), diff: true,
  }));
  return gradcheck({
    inputs, outShape: f32(`${c.name}/y`).shape, eps: 1e-2, directions: 3,
    emit: (g) => emitTrainLayer(g, c.layer, new Map(inputs.map((i) => [i.name, i.shape as Shape4]))),
  });
}

test('hard swish, hard sigmoid and sigmoid match PyTorch (inference, training, gradient) and finite differences', async (t) => {
  for (const op of ['hardswish', 'hardsigmoid', 'sigmoid'] as const) {
    const c: LayerCase = { name: op, layer: { op, input: 'x', output: 'y' }, values: { x: `${op}/x` }, params: {} };
    const [ev, tp, fd] = [await evalParity(c), await trainParity(c), await finiteDifferencesNonlinear(c)];
    t.diagnostic(`${op}: inference ${ev.toExponential(2)}, training + gradient ${tp.toExponential(2)} vs PyTorch; finite differences ${fd.toExponential(2)}`);
    assert.ok(ev < 1e-6 && tp < 1e-6, `${op} vs PyTorch: ${ev}, ${tp}`);
    assert.ok(fd < 5e-4, `${op} finite differences: ${fd}`);
  }
});

test('broadcast product ([N,C,H,W]·[N,C,1,1] either way, and equal shapes) matches PyTorch and finite differences', async (t) => {
  for (const name of ['mul_gate', 'mul_gate_first', 'mul_same']) {
    const c: LayerCase = { name, layer: { op: 'mul', inputs: ['a', 'b'], output: 'y' }, values: { a: `${name}/a`, b: `${name}/b` }, params: {} };
    const [ev, tp, fd] = [await evalParity(c), await trainParity(c), await finiteDifferencesNonlinear(c)];
    t.diagnostic(`${name}: inference ${ev.toExponential(2)}, training + gradients ${tp.toExponential(2)} vs PyTorch; finite differences ${fd.toExponential(2)}`);
    assert.ok(ev < 1e-6 && tp < 1e-5, `${name} vs PyTorch: ${ev}, ${tp}`);
    assert.ok(fd < 5e-4, `${name} finite differences: ${fd}`);
  }
  assert.throws(() => layerShapes({ op: 'mul', inputs: ['a', 'b'], output: 'y' }, [[1, 3, 4, 5], [1, 2, 1, 1]]), /mul 'y' .* dimension 1 neither equal nor 1/);
});

test('per-class (grouped) transposed convs, the book net\'s upsampler above 32 classes: inference, training forward and gradients match PyTorch and finite differences', async (t) => {
  for (const name of ['convt_g2', 'convt_g8']) {
    const s = fx.meta.results[name] as { stride: number; pad: number; groups: number; in: number; out: number; kernel: number };
    const c: LayerCase = {
      name, values: { x: `${name}/x` }, params: { 'u.weight': `${name}/weight`, 'u.bias': `${name}/bias` },
      layer: { op: 'convtranspose', name: 'u', input: 'x', output: 'y', inChannels: s.in, outChannels: s.out, kernel: s.kernel, stride: s.stride, pad: s.pad, groups: s.groups, bias: true, init: 'bilinear' },
    };
    for (const tuning of [{}, { convTranspose: 'convtranspose' }] as TrainGraphTuning[]) {
      const [ev, tp, fd] = [await evalParity(c), await trainParity(c, tuning), await finiteDifferences(c, tuning)];
      t.diagnostic(`${name} ${JSON.stringify(tuning)}: inference ${ev.toExponential(2)}, training + gradients ${tp.toExponential(2)} vs PyTorch; finite differences ${fd.toExponential(2)}`);
      assert.ok(ev < 1e-5 && tp < 1e-5, `${name} vs PyTorch: ${ev}, ${tp}`);
      assert.ok(fd < LINEAR_TOL, `${name} finite differences: ${fd}`);
    }
  }
});
