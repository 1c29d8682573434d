// The book net's per-class (grouped) upsamplers (issue 14, many classes): chosen above 32 classes or
// when asked; parameters grow as classes, not classes²; the bilinear initialisation is the full
// kernel's diagonal, so a fresh grouped network computes what the full one does; its weight gradient
// is the diagonal of the full one's (whole training step, FCN-8s); checkpoints carry which upsampler
// (the architecture name) and files without our metadata are recognised by the weight's shape. The
// layer itself against PyTorch and finite differences: gradcheck-layers.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fcnResNet18, fcnParameters, initParameters, numel, seededRandom, type TensorMap } from '../src/model/index.js';
import { defaultUpsampler, parseArchitectureName } from '../src/model/fcn.js';
import { bilinearKernel, groupedBilinearKernel } from '../src/model/bilinear.js';
import { compileExport, compileInference } from '../src/graph/inference.js';
import { decodeFcnOnnx } from '../src/infer/onnx-file.js';
import { compileTrainStep, gradientName, TRAIN_IO } from '../src/graph/train.js';
import { Session, type EngineTensor } from '../src/engine/session.js';
import { encodeCheckpoint, inferArchitecture, loadCheckpoint } from '../src/weights/checkpoint.js';
import { defaultCard } from '../src/model/card.js';
import { checkArchitectureName } from '../src/weights/torchvision.js';
import { tempDirs } from './helpers/tmp.js';
import { maxAbsDiff } from './helpers/fixtures.js';

const tmp = tempDirs('fcn-grouped-').root;

const paramCount = (arch: ReturnType<typeof fcnResNet18>): number => fcnParameters(arch).reduce((n, s) => n + numel(s.shape), 0);

test('above 32 classes the upsamplers are grouped (or as asked); parameters grow as classes, not classes²', () => {
  assert.equal(defaultUpsampler(32), 'full');
  assert.equal(defaultUpsampler(33), 'grouped');
  const ade = fcnResNet18({ numClasses: 150 });
  assert.equal(ade.name, 'fcn32s-resnet18-grouped');
  assert.equal(ade.upsampler, 'grouped');
  const up = fcnParameters(ade).find((s) => s.name === 'transpose_conv.weight')!;
  assert.deepEqual(up.shape, [150, 1, 64, 64]);
  const full = fcnResNet18({ numClasses: 150, upsampler: 'full' });
  assert.equal(full.name, 'fcn32s-resnet18');
  // the book's 150-class upsampler alone is 150²·64² = 92 M weights; grouped, 150·64² = 0.6 M
  assert.equal(paramCount(full) - paramCount(ade), 150 * 149 * 64 * 64);
  assert.equal(fcnResNet18({ numClasses: 21 }).upsampler, 'full');
  assert.equal(fcnResNet18({ numClasses: 6, variant: 'fcn8s', upsampler: 'grouped' }).name, 'fcn8s-resnet18-grouped');
  assert.deepEqual(parseArchitectureName('fcn8s-resnet18-grouped'), { variant: 'fcn8s', upsampler: 'grouped' });
  assert.deepEqual(parseArchitectureName('fcn16s-resnet18'), { variant: 'fcn16s', upsampler: 'full' });
  assert.equal(parseArchitectureName('fcn8s-resnet18-grouped2'), undefined);
  // the upsampler's kind is not another network: --arch fcn32s accepts a grouped file
  checkArchitectureName('fcn32s-resnet18-grouped', 'fcn32s', 'f');
  assert.throws(() => checkArchitectureName('fcn32s-resnet18-grouped', 'fcn8s', 'f'), /holds fcn32s-resnet18-grouped, not fcn8s/);
});

test("the grouped bilinear initialisation is the full kernel's diagonal", () => {
  const [C, k] = [5, 16];
  const full = bilinearKernel(C, C, k);
  const grouped = groupedBilinearKernel(C, 1, k);
  for (let c = 0; c < C; c++) {
    assert.deepEqual(grouped.subarray(c * k * k, (c + 1) * k * k), full.subarray((c * C + c) * k * k, (c * C + c + 1) * k * k), `class ${c}`);
  }
});

/** The same network with full upsamplers whose weights are the grouped ones on the diagonal (zeros elsewhere). */
function asFull(grouped: TensorMap, C: number, variant: 'fcn32s' | 'fcn8s'): { arch: ReturnType<typeof fcnResNet18>; weights: TensorMap } {
  const arch = fcnResNet18({ numClasses: C, variant, upsampler: 'full' });
  const weights: TensorMap = new Map(grouped);
  for (const s of fcnParameters(arch).filter((p) => p.layer.op === 'convtranspose' && p.name.endsWith('.weight'))) {
    const k = s.shape[2]!;
    const g = grouped.get(s.name)!;
    const w = new Float32Array(numel(s.shape));
    for (let c = 0; c < C; c++) w.set(g.subarray(c * k * k, (c + 1) * k * k), (c * C + c) * k * k);
    weights.set(s.name, w);
  }
  return { arch, weights };
}

test('inference: a grouped network computes what the full one with the diagonal kernel does (random upsampler weights)', async () => {
  const C = 5;
  const arch = fcnResNet18({ numClasses: C, variant: 'fcn8s', upsampler: 'grouped' });
  const random = seededRandom(3);
  const weights = initParameters(arch, random);
  // not only the bilinear start: perturb every grouped filter
  for (const s of fcnParameters(arch).filter((p) => p.layer.op === 'convtranspose' && p.name.endsWith('.weight'))) {
    weights.set(s.name, weights.get(s.name)!.map((v) => v + 0.05 * (random() - 0.5)));
  }
  const full = asFull(weights, C, 'fcn8s');
  const image = Float32Array.from({ length: 3 * 64 * 96 }, () => random() - 0.5);
  const run = async (bytes: Uint8Array) => {
    const s = await Session.create(bytes, { threads: 1 });
    const out = await s.run({ image: { dtype: 'float32', dims: [1, 3, 64, 96], data: image } });
    await s.dispose();
    return out[arch.output]!.data as Float32Array;
  };
  const [a, b] = [await run(compileInference(arch, weights)), await run(compileInference(full.arch, full.weights))];
  assert.equal(a.length, C * 64 * 96);
  assert.ok(maxAbsDiff(a, b) < 1e-4, `grouped vs full: ${maxAbsDiff(a, b)}`);
});

test("training step (FCN-8s, full mode): the grouped upsamplers' gradients are the diagonal of the full ones'; the rest agree", async () => {
  const C = 4;
  const arch = fcnResNet18({ numClasses: C, variant: 'fcn8s', upsampler: 'grouped' });
  const weights = initParameters(arch, seededRandom(5));
  const full = asFull(weights, C, 'fcn8s');
  const random = seededRandom(9);
  const [N, H, W] = [1, 64, 64];
  const image = Float32Array.from({ length: N * 3 * H * W }, () => random() - 0.5);
  const labels = Uint8Array.from({ length: N * H * W }, () => (random() < 0.1 ? 255 : Math.floor(random() * C)));
  const grads = async (a: typeof arch, w: TensorMap) => {
    const graph = compileTrainStep(a, { mode: 'full', batch: N, height: H, width: W, weightDecay: 0, momentum: 0, gradients: true });
    const feeds: Record<string, EngineTensor> = {
      [TRAIN_IO.image]: { dtype: 'float32', dims: [N, 3, H, W], data: image },
      [TRAIN_IO.labels]: { dtype: 'uint8', dims: [N, H, W], data: labels },
      [TRAIN_IO.lr]: { dtype: 'float32', dims: [], data: Float32Array.of(0) },
    };
    for (const t of [...graph.trained, ...graph.state]) feeds[t.name] = { dtype: 'float32', dims: t.shape, data: w.get(t.name)! };
    const s = await Session.create(graph.bytes, { threads: 2 });
    const out = await s.run(feeds);
    await s.dispose();
    return { out, loss: (out[TRAIN_IO.loss]!.data as Float32Array)[0]! };
  };
  const [g, f] = [await grads(arch, weights), await grads(full.arch, full.weights)];
  assert.ok(Math.abs(g.loss - f.loss) < 1e-5 * f.loss, `loss ${g.loss} vs ${f.loss}`);
  for (const s of fcnParameters(arch).filter((p) => p.trainable)) {
    const ours = g.out[gradientName(s.name)]!.data as Float32Array;
    let ref = f.out[gradientName(s.name)]!.data as Float32Array;
    if (s.layer.op === 'convtranspose' && s.name.endsWith('.weight')) {
      const kk = s.shape[2]! * s.shape[3]!;
      ref = Float32Array.from({ length: C * kk }, (_, i) => ref[(Math.floor(i / kk) * (C + 1)) * kk + (i % kk)]!);
    }
    let scale = 0;
    for (const v of ref) scale = Math.max(scale, Math.abs(v));
    assert.ok(maxAbsDiff(ours, ref) <= 1e-4 * Math.max(scale, 1e-6), `${s.name}: ${maxAbsDiff(ours, ref)} (scale ${scale})`);
  }
});

test('checkpoints: the architecture name carries the upsampler; a file without our metadata is recognised by the weight\'s shape', async () => {
  const arch = fcnResNet18({ numClasses: 40 });
  const weights = initParameters(arch, seededRandom(1));
  const file = path.join(tmp, 'grouped.safetensors');
  fs.writeFileSync(file, encodeCheckpoint({ arch, weights, ...defaultCard(40), metadata: {}, extra: new Map() }));
  const back = await loadCheckpoint(file);
  assert.equal(back.arch.name, 'fcn32s-resnet18-grouped');
  assert.deepEqual(back.weights.get('transpose_conv.weight'), weights.get('transpose_conv.weight'));
  const shapes = new Map(fcnParameters(arch).map((s) => [s.name, { shape: s.shape, data: weights.get(s.name)! }]));
  assert.equal(inferArchitecture(shapes as never, 'f').name, 'fcn32s-resnet18-grouped');
  const fullShapes = new Map(fcnParameters(fcnResNet18({ numClasses: 40, upsampler: 'full' })).map((s) => [s.name, { shape: s.shape }]));
  assert.equal(inferArchitecture(fullShapes as never, 'f').name, 'fcn32s-resnet18');
  // fcn export's ONNX file of it reads back as the grouped network
  const onnx = decodeFcnOnnx(compileExport(arch, weights, defaultCard(40)), 'g.onnx');
  assert.equal(onnx.arch.name, 'fcn32s-resnet18-grouped');
  assert.deepEqual(fcnParameters(onnx.arch).find((s) => s.name === 'transpose_conv.weight')!.shape, [40, 1, 64, 64]);
});

test('--init across label spaces compares whole shapes: 6 full classes and 36 grouped ones have upsamplers of the same size', async () => {
  const { adaptClassLayers } = await import('../src/train/classes.js');
  const old = fcnResNet18({ numClasses: 6 });
  const next = fcnResNet18({ numClasses: 36 });
  assert.equal(next.upsampler, 'grouped');
  assert.equal(6 * 6 * 64 * 64, 36 * 1 * 64 * 64);
  const adapted = adaptClassLayers(initParameters(old, seededRandom(1)), next, initParameters(next, seededRandom(2)), old);
  assert.deepEqual(adapted.reinitialised, ['final_conv.weight', 'final_conv.bias', 'transpose_conv.weight', 'transpose_conv.bias']);
});
