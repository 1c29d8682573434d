// One SGD step of torchvision's networks (width-reduced fcn_resnet50, deeplabv3_resnet50 and
// deeplabv3_mobilenet_v3_large with their aux heads, lraspp_mobilenet_v3_large without one) against PyTorch autograd as torchvision's segmentation reference takes it: the loss
// (cross-entropy over the batch's valid pixels + 0.5 x the aux head's), every gradient, the weights
// after SGD with weight decay and the running statistics, with the same dropout masks fed to both;
// gradients within fp32 noise (3x PyTorch's own fp32-vs-fp64 error, per tensor plus the median)
// (test/fixtures/torchvision/, scripts/make_torchvision_fixtures.py).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fcnParameters } from '../src/model/params.js';
import { compileTrainStep, gradientName, updatedName, TRAIN_IO } from '../src/graph/train.js';
import { Session, type EngineTensor } from '../src/engine/session.js';
import { nchwcBlockSize } from '../src/train/step.js';
import { loadCheckpoint } from '../src/weights/checkpoint.js';
import { fixturesRoot, loadFixture, relL2 } from './helpers/fixtures.js';

const fx = loadFixture('torchvision');
const T = fx.meta.results['train'] as {
  settings: { batch: number; height: number; width: number; lr: number; wd: number; classes: number };
} & Record<string, { loss: number; pth: string; masks: string[]; fp32Noise: Record<string, number> }>;
const { batch: N, height: H, width: W, lr, wd } = T.settings;

for (const name of ['fcn_resnet50', 'deeplabv3_resnet50', 'lraspp_mobilenet_v3_large', 'deeplabv3_mobilenet_v3_large']) {
  test(`${name}: one SGD step matches PyTorch (loss with 0.5 x aux where there is one, every gradient, updated weights, running statistics)`, async (t) => {
    const r = T[name]!;
    const ckpt = await loadCheckpoint(path.join(fixturesRoot, 'torchvision', r.pth));
    const arch = ckpt.arch;
    assert.equal(arch.name, name);
    assert.equal(arch.loss, 'torchvision');
    // LR-ASPP has no aux head (and no dropout): its loss is the main output's alone
    assert.equal(arch.auxOutput, name.startsWith('lraspp') ? undefined : 'aux_logits');
    // every convolution whose channels allow on ORT's NCHWc kernels, as TrainStep runs them (from 64 channels)
    const graph = compileTrainStep(arch, {
      mode: 'full', batch: N, height: H, width: W, weightDecay: wd, momentum: 0, gradients: true, nchwcBlock: await nchwcBlockSize(), tuning: { nchwcMinChannels: 8 },
    });
    assert.deepEqual(graph.stepInputs.map((d) => d.name).sort(), [...r.masks].sort());
    const feeds: Record<string, EngineTensor> = {
      [TRAIN_IO.image]: { dtype: 'float32', dims: [N, 3, H, W], data: fx.f32('train/x').data },
      [TRAIN_IO.labels]: { dtype: 'uint8', dims: [N, H, W], data: fx.u8('train/labels').data },
      [TRAIN_IO.lr]: { dtype: 'float32', dims: [], data: Float32Array.of(lr) },
    };
    for (const d of graph.stepInputs) {
      const keep = fx.u8(`train/${name}/${d.name}`);
      assert.deepEqual(keep.shape, d.shape, d.name);
      feeds[d.name] = { dtype: 'bool', dims: d.shape, data: keep.data };
    }
    for (const s of [...graph.trained, ...graph.state]) feeds[s.name] = { dtype: 'float32', dims: s.shape, data: ckpt.weights.get(s.name)! };
    const session = await Session.create(graph.bytes, { threads: 1 });
    const out = await session.run(feeds);
    await session.dispose();
    const loss = (out[TRAIN_IO.loss]!.data as Float32Array)[0]!;
    t.diagnostic(`loss ${loss} vs PyTorch ${r.loss}`);
    assert.ok(Math.abs(loss - r.loss) < 1e-5 * r.loss, `loss ${loss} vs ${r.loss}`);
    const trainable = fcnParameters(arch).filter((s) => s.trainable);
    assert.equal(graph.trained.length, trainable.length);
    const grads = graph.trained.map((s) => [s.name, relL2(out[gradientName(s.name)]!.data as Float32Array, fx.f32(`train/${name}/grad/${s.name}`).data)] as const);
    const sorted = [...grads].sort((a, b) => a[1] - b[1]);
    const worst = sorted[sorted.length - 1]!;
    t.diagnostic(`${grads.length} gradients: median relative L2 ${sorted[sorted.length >> 1]![1].toExponential(2)}, worst ${worst[1].toExponential(2)} (${worst[0]})`);
    // within fp32 noise: PyTorch's own fp32 gradient is fp32Noise (relative L2) away from its float64
    // one; two independent fp32 computations differ by about sqrt(2) times that. Summation orders differ
    // per tensor, so the bound is per tensor plus the network's typical (median) noise.
    const noise = Object.values(r.fp32Noise).sort((a, b) => a - b);
    const typical = noise[noise.length >> 1]!;
    for (const [k, e] of grads) assert.ok(e <= 3 * (r.fp32Noise[k]! + typical), `${k}: ${e} (PyTorch's own fp32 error ${r.fp32Noise[k]}, median ${typical})`);
    assert.ok(sorted[sorted.length >> 1]![1] < 2e-4);
    let worstNew = 0;
    for (const s of [...graph.trained, ...graph.state]) {
      const e = relL2(out[updatedName(s.name)]!.data as Float32Array, fx.f32(`train/${name}/new/${s.name}`).data);
      worstNew = Math.max(worstNew, e);
      assert.ok(e < 1e-5, `${s.name} after the step: ${e}`);
    }
    t.diagnostic(`weights and running statistics after the step: worst relative L2 ${worstNew.toExponential(2)}`);
  });
}
