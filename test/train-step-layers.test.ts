// The training step of a network built from the new layer kinds (test/helpers/mininet.ts: dilated
// convolutions, image pooling, bilinear resizes, concat, dropout, an auxiliary head, torchvision's
// loss) against PyTorch autograd on the same weights, inputs and dropout mask
// (scripts/make_layer_fixtures.py); dropout's seeded masks in TrainStep; inference of the same net.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fcnParameters, initParameters, seededRandom, type TensorMap } from '../src/model/index.js';
import { compileTrainStep, gradientName, updatedName, TRAIN_IO } from '../src/graph/train.js';
import { compileInference } from '../src/graph/inference.js';
import { Session, type EngineTensor } from '../src/engine/session.js';
import { TrainStep, keepMask } from '../src/train/step.js';
import { loadFixture, relL2 } from './helpers/fixtures.js';
import { miniNet } from './helpers/mininet.js';

const fx = loadFixture('layers');
const M = fx.meta.results.mininet as { classes: number; batch: number; height: number; width: number; p: number; loss: number };
const arch = miniNet(M.classes, M.p);
const [N, H, W] = [M.batch, M.height, M.width];
const weights: TensorMap = new Map(fcnParameters(arch).map((s) => [s.name, fx.f32(`mininet/param/${s.name}`).data]));

test('mini network of the new kinds: loss, every gradient and the running statistics match PyTorch (torchvision loss with aux, dropout mask fed)', async (t) => {
  const graph = compileTrainStep(arch, { mode: 'full', batch: N, height: H, width: W, weightDecay: 0, momentum: 0, gradients: true });
  assert.deepEqual(graph.stepInputs.map((d) => [d.name, d.shape, d.keepMask.p]), [['dropped:keep', [N, 4, H / 2, W / 2], M.p]]);
  const feeds: Record<string, EngineTensor> = {
    [TRAIN_IO.image]: { dtype: 'float32', dims: [N, 3, H, W], data: fx.f32('mininet/x').data },
    [TRAIN_IO.labels]: { dtype: 'uint8', dims: [N, H, W], data: fx.u8('mininet/labels').data },
    [TRAIN_IO.lr]: { dtype: 'float32', dims: [], data: Float32Array.of(0) },
    'dropped:keep': { dtype: 'bool', dims: [N, 4, H / 2, W / 2], data: fx.u8('mininet/keep').data },
  };
  for (const s of [...graph.trained, ...graph.state]) feeds[s.name] = { dtype: 'float32', dims: s.shape, data: weights.get(s.name)! };
  const session = await Session.create(graph.bytes, { threads: 1 });
  const out = await session.run(feeds);
  await session.dispose();
  const loss = (out[TRAIN_IO.loss]!.data as Float32Array)[0]!;
  t.diagnostic(`loss ${loss} vs PyTorch ${M.loss}`);
  assert.ok(Math.abs(loss - M.loss) < 1e-5 * M.loss, `loss ${loss} vs ${M.loss}`);
  const errors: [string, number][] = graph.trained.map((s) => [s.name, relL2(out[gradientName(s.name)]!.data as Float32Array, fx.f32(`mininet/grad/${s.name}`).data)]);
  errors.sort((a, b) => a[1] - b[1]);
  const worst = errors[errors.length - 1]!;
  t.diagnostic(`${errors.length} gradients, median relative L2 ${errors[errors.length >> 1]![1].toExponential(2)}, worst ${worst[1].toExponential(2)} (${worst[0]})`);
  assert.equal(errors.length, fcnParameters(arch).filter((s) => s.trainable).length);
  assert.ok(worst[1] < 1e-4, `${worst[0]}: ${worst[1]}`);
  for (const s of graph.state) {
    const e = relL2(out[updatedName(s.name)]!.data as Float32Array, fx.f32(`mininet/new/${s.name}`).data);
    assert.ok(e < 1e-5, `${s.name}: ${e}`);
  }
});

test('dropout masks: Bernoulli(1 − p) statistics, reproducible by seed, and the step repeats exactly with the same seed', async () => {
  const n = 200_000;
  for (const p of [0.1, 0.5]) {
    const m = keepMask(7, 0, n, p);
    const kept = m.reduce((a, b) => a + b, 0) / n;
    assert.ok(Math.abs(kept - (1 - p)) < 4 * Math.sqrt(p * (1 - p) / n), `p ${p}: kept ${kept}`);
    // neighbours are independent: P(both kept) ≈ (1 − p)²
    let both = 0;
    for (let i = 1; i < n; i++) both += m[i]! & m[i - 1]!;
    assert.ok(Math.abs(both / (n - 1) - (1 - p) ** 2) < 0.01, `p ${p}: pairs ${both / (n - 1)}`);
  }
  assert.deepEqual(keepMask(3, 1, 1000, 0.5), keepMask(3, 1, 1000, 0.5));
  assert.notDeepEqual(keepMask(3, 1, 1000, 0.5), keepMask(4, 1, 1000, 0.5));
  assert.notDeepEqual(keepMask(3, 0, 1000, 0.5), keepMask(3, 1, 1000, 0.5));

  const fresh = initParameters(arch, seededRandom(1));
  const image = fx.f32('mininet/x').data;
  const labels = fx.u8('mininet/labels').data;
  const opts = { mode: 'full' as const, batch: N, height: H, width: W, weightDecay: 1e-4, momentum: 0.9, threads: 1 };
  const losses: number[] = [];
  for (const seed of [5, 5, 6, 0, undefined]) {
    const step = await TrainStep.create(arch, fresh, opts);
    losses.push((await step.run(image, labels, 0.01, seed)).loss);
    await step.dispose();
  }
  assert.equal(losses[0], losses[1], 'same seed, same step');
  assert.notEqual(losses[0], losses[2], 'another seed draws another mask');
  assert.equal(losses[4], losses[3], 'without a seed, step n draws with seed n');
});

test('mini network: inference at the image\'s own size (stride 1) and a frozen-body head step compile and run', async () => {
  const session = await Session.create(compileInference(arch, weights), { threads: 1 });
  for (const [h, w] of [[16, 20], [13, 7]]) {
    const out = await session.run({ image: { dtype: 'float32', dims: [1, 3, h, w], data: new Float32Array(3 * h * w).fill(0.5) } });
    assert.deepEqual(out.out!.dims, [1, M.classes, h, w]);
    assert.deepEqual(out.mask!.dims, [1, h, w]);
  }
  await session.dispose();
  const step = await TrainStep.create(arch, weights, { mode: 'head', batch: N, height: H, width: W, weightDecay: 0, momentum: 0, threads: 1 });
  const r = await step.run(fx.f32('mininet/x').data, fx.u8('mininet/labels').data, 0.1, 1);
  assert.ok(Number.isFinite(r.loss) && r.valid > 0);
  const after = step.weights();
  assert.deepEqual(after.get('conv1.weight'), weights.get('conv1.weight'), 'the body is frozen');
  assert.notDeepEqual(after.get('head.weight'), weights.get('head.weight'));
  await step.dispose();
});

test("the step's torchvision loss (main + 0.5 aux): its gradients of the heads match central finite differences of the step's own loss", async (t) => {
  const graph = compileTrainStep(arch, { mode: 'full', batch: N, height: H, width: W, weightDecay: 0, momentum: 0, gradients: true });
  const session = await Session.create(graph.bytes, { threads: 1 });
  const feeds = (override?: [string, Float32Array]): Record<string, EngineTensor> => {
    const f: Record<string, EngineTensor> = {
      [TRAIN_IO.image]: { dtype: 'float32', dims: [N, 3, H, W], data: fx.f32('mininet/x').data },
      [TRAIN_IO.labels]: { dtype: 'uint8', dims: [N, H, W], data: fx.u8('mininet/labels').data },
      [TRAIN_IO.lr]: { dtype: 'float32', dims: [], data: Float32Array.of(0) },
      'dropped:keep': { dtype: 'bool', dims: [N, 4, H / 2, W / 2], data: fx.u8('mininet/keep').data },
    };
    for (const s of [...graph.trained, ...graph.state]) {
      f[s.name] = { dtype: 'float32', dims: s.shape, data: override?.[0] === s.name ? override[1] : weights.get(s.name)! };
    }
    return f;
  };
  const base = await session.run(feeds());
  const random = seededRandom(99);
  const eps = 1e-2;
  try {
    // the heads after the last nonlinearity: the loss is smooth in them, so float32 differences are accurate to ~1e-3
    for (const name of ['head.weight', 'head.bias', 'aux.weight', 'aux.bias']) {
      const grad = base[gradientName(name)]!.data as Float32Array;
      const w = weights.get(name)!;
      const v = Float32Array.from(w, () => random() * 2 - 1);
      const loss = async (sign: number) => {
        const out = await session.run(feeds([name, Float32Array.from(w, (x, i) => x + sign * eps * v[i]!)]), [TRAIN_IO.loss]);
        return (out[TRAIN_IO.loss]!.data as Float32Array)[0]!;
      };
      const numeric = (await loss(1) - await loss(-1)) / (2 * eps);
      const analytic = grad.reduce((s, gi, i) => s + gi * v[i]!, 0);
      const err = Math.abs(numeric - analytic) / Math.abs(analytic);
      t.diagnostic(`${name}: directional derivative ${analytic.toExponential(4)}, finite difference ${numeric.toExponential(4)} (relative ${err.toExponential(2)})`);
      assert.ok(err < 1e-2, `${name}: ${err}`);
    }
  } finally {
    await session.dispose();
  }
});
