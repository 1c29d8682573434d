// The training loop end to end on a tiny synthetic set (8 train / 4 val images, 64x64 crops, batch 2):
// metrics.jsonl and checkpoints with the right keys, the epoch numbers against an independent
// recomputation (the same SGD steps run by hand; the saved model re-scored with evaluate), loss going
// down, a small demo reaching a stated mIoU floor, divergence and flag errors from the CLI.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { repoRoot } from './helpers/fixtures.js';
import { generateSynthVoc } from '../src/data/synth.js';
import { openVoc } from '../src/data/dataset.js';
import { epochBatches, prepareSplit } from '../src/data/batches.js';
import { Rng } from '../src/data/rng.js';
import { fcnResNet18 } from '../src/model/fcn.js';
import { fcnParameters, initParameters, seededRandom } from '../src/model/params.js';
import { loadCheckpoint, saveCheckpoint } from '../src/weights/checkpoint.js';
import { encodeSafetensors } from '../src/weights/safetensors.js';
import { loadModel } from '../src/infer/model.js';
import { defaultCard } from '../src/model/card.js';
import { evaluate } from '../src/infer/evaluate.js';
import { TrainStep } from '../src/train/step.js';
import { train, type TrainResult } from '../src/train/loop.js';
import { decodeTrainState, MOMENTUM_PREFIX, type EpochMetrics } from '../src/train/state.js';
import { demo } from '../src/train/demo.js';

let tmp: string;
let data: string;
const cli = (args: string[]) => spawnSync(process.execPath, ['bin/fcn.js', ...args], { cwd: repoRoot, encoding: 'utf8' });
const sha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

const METRIC_KEYS = [
  'best', 'epoch', 'epochs', 'evalSeconds', 'examples', 'examplesPerSecond', 'loss', 'testAccuracy', 'testImages', 'testMeanIoU',
  'threads', 'trainAccuracy', 'trainSeconds',
].sort();

// The run every test below inspects: 3 epochs, momentum on (so its buffers are saved), seed 3.
const DEMO_TEST_EPOCHS = 20;
const RUN = { epochs: 3, batchSize: 2, crop: [64, 64] as [number, number], lr: 0.002, momentum: 0.9, weightDecay: 1e-3, seed: 3, threads: 2 };
let run: TrainResult;
const seen: EpochMetrics[] = [];

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fcn-train-'));
  data = path.join(tmp, 'data');
  await generateSynthVoc(data, { train: 8, val: 4, size: [112, 144], seed: 1 });
  run = await train({ data, out: path.join(tmp, 'a'), ...RUN, scratch: true, gridImages: 2, onEpoch: (m) => seen.push(m) });
});

after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('train() reports each epoch, writes metrics.jsonl with one object per epoch and the curves and grid pictures', async () => {
  assert.deepEqual(seen.map((m) => m.epoch), [1, 2, 3]);
  assert.deepEqual(run.history, seen);
  const lines = fs.readFileSync(path.join(tmp, 'a', 'metrics.jsonl'), 'utf8').trimEnd().split('\n');
  assert.equal(lines.length, 3);
  const rows = lines.map((l) => JSON.parse(l) as EpochMetrics);
  for (const row of rows) {
    assert.deepEqual(Object.keys(row).sort(), METRIC_KEYS);
    assert.equal(row.examples, 8); // 8 images, batch 2, drop_last: 4 full batches
    assert.equal(row.testImages, 4);
    assert.equal(row.threads, 2);
    for (const k of ['loss', 'trainAccuracy', 'testAccuracy', 'testMeanIoU'] as const) assert.ok(Number.isFinite(row[k]), k);
    for (const k of ['trainAccuracy', 'testAccuracy', 'testMeanIoU'] as const) assert.ok(row[k] >= 0 && row[k] <= 1, k);
  }
  assert.deepEqual(rows, run.history);
  // the loss goes down on a tiny set (mean loss per example, from ~ln(6) = 1.8 at the start; 4 steps an epoch, so noisy)
  assert.ok(Math.min(rows[1]!.loss, rows[2]!.loss) < 0.8 * rows[0]!.loss, `loss ${rows.map((r) => r.loss.toFixed(3)).join(' -> ')}`);
  const curves = await sharp(path.join(tmp, 'a', 'curves.png')).metadata();
  assert.deepEqual([curves.format, curves.width, curves.height], ['png', 960, 400]);
  const grid = await sharp(path.join(tmp, 'a', 'grid.png')).metadata();
  assert.equal(grid.format, 'png');
  assert.ok(grid.width! > 2 * 100 && grid.height! > 3 * 100, `grid ${grid.width}x${grid.height}`);
});

test('last.safetensors holds weights, momentum buffers and the resume state; best.safetensors the best val mIoU epoch', async () => {
  const arch = fcnResNet18();
  const trained = fcnParameters(arch).filter((s) => s.trainable).map((s) => s.name).sort();
  const last = await loadCheckpoint(path.join(tmp, 'a', 'last.safetensors'));
  const state = decodeTrainState(last.metadata, 'last');
  assert.equal(state.epoch, 3);
  assert.equal(state.rng.length, 4);
  assert.ok(state.rng.every((w) => Number.isInteger(w) && w >= 0 && w < 2 ** 32));
  assert.deepEqual(state.history, run.history);
  assert.equal(state.config.lr, 0.002);
  assert.equal(state.config.momentum, 0.9);
  assert.deepEqual(state.config.crop, [64, 64]);
  assert.equal(state.config.seed, 3);
  assert.equal(state.config.init, 'scratch');
  assert.deepEqual([...last.extra.keys()].sort(), trained.map((n) => MOMENTUM_PREFIX + n));
  for (const [name, t] of last.weights) assert.ok(t.every(Number.isFinite), name);
  // momentum buffers are live: non-zero after 12 steps
  assert.ok(last.extra.get(MOMENTUM_PREFIX + 'final_conv.weight')!.some((v) => v !== 0));

  const ious = run.history.map((m) => m.testMeanIoU);
  const bestEpoch = ious.indexOf(Math.max(...ious)) + 1;
  assert.deepEqual(run.best, { epoch: bestEpoch, testMeanIoU: Math.max(...ious) });
  const best = await loadCheckpoint(path.join(tmp, 'a', 'best.safetensors'));
  assert.equal(decodeTrainState(best.metadata, 'best').epoch, bestEpoch);
  assert.deepEqual(run.history.map((m) => m.best), run.history.map((m, i) => m.testMeanIoU > Math.max(-1, ...ious.slice(0, i))));
});

test('epoch numbers equal a recomputation: the same SGD steps by hand, and the saved model scored by evaluate', async () => {
  // Epoch 1 again, outside the loop: the seed's initial weights, the seed's data order, one TrainStep.
  // The synthetic set's labelmap.txt names 6 classes (background and the five shapes).
  const arch = fcnResNet18({ numClasses: 6 });
  const ds = await openVoc(data, 'train');
  const { ids } = await prepareSplit(ds, RUN.crop, 'filter');
  const step = await TrainStep.create(arch, initParameters(arch, seededRandom(RUN.seed)), {
    mode: 'full', batch: RUN.batchSize, height: 64, width: 64, weightDecay: RUN.weightDecay, momentum: RUN.momentum, threads: RUN.threads,
  });
  const losses: number[] = [];
  let correct = 0;
  let valid = 0;
  try {
    for await (const b of epochBatches(ds, ids, { batchSize: 2, crop: RUN.crop, shuffle: true, rng: new Rng(RUN.seed), dropLast: true })) {
      const r = await step.run(b.images, b.labels, RUN.lr);
      losses.push(r.loss);
      correct += r.correct;
      valid += r.valid;
    }
  } finally {
    await step.dispose();
  }
  assert.equal(losses.length, 4);
  // the book's reduction: Σ batch losses (each already Σ over its images) / number of examples
  assert.equal(run.history[0]!.loss, (losses[0]! + losses[1]! + losses[2]! + losses[3]!) / 8);
  assert.equal(run.history[0]!.trainAccuracy, correct / valid);

  // The last epoch's val numbers are those of the saved weights on the full val images.
  const model = await loadModel(path.join(tmp, 'a', 'last.safetensors'), { threads: 2 });
  try {
    const m = (await evaluate(model, await openVoc(data, 'val'))).metrics();
    assert.equal(run.history[2]!.testAccuracy, m.pixelAccuracy);
    assert.equal(run.history[2]!.testMeanIoU, m.meanIoU);
  } finally {
    await model.dispose();
  }
});

test('a small demo run fits its images: 8 training images scored as the val split reach mIoU > 0.5 (all-background: ~0.15)', async () => {
  // The demo's settings on a handful of images, with the val list pointing at the training images:
  // this checks that the whole loop (data, steps, BN statistics, evaluation on full images) learns,
  // in seconds rather than the demo's minutes.
  const out = path.join(tmp, 'demo');
  const small = path.join(out, 'data');
  await generateSynthVoc(small, { train: 8, val: 1, size: [80, 80], seed: 4 });
  const lists = path.join(small, 'ImageSets', 'Segmentation');
  fs.copyFileSync(path.join(lists, 'train.txt'), path.join(lists, 'val.txt'));
  const res = await demo({ out, epochs: DEMO_TEST_EPOCHS, batchSize: 2, threads: 2 });
  assert.equal(res.generated, false);
  assert.equal(res.train.history.length, DEMO_TEST_EPOCHS);
  assert.ok(fs.existsSync(res.train.files.grid!));
  const last = res.train.history[DEMO_TEST_EPOCHS - 1]!;
  assert.ok(last.testMeanIoU > 0.5, `mIoU by epoch: ${res.train.history.map((m) => m.testMeanIoU.toFixed(3)).join(' ')}`);
});

test('--backbone loads torchvision-named weights into the body; with --freeze-backbone they stay as loaded; --init continues from a checkpoint', async () => {
  // A stand-in for torchvision's resnet18 state_dict: the body of a differently seeded network under
  // torchvision's names, plus the classifier (fc.*) that the FCN drops.
  const arch = fcnResNet18();
  const donor = initParameters(arch, seededRandom(99));
  const entries = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const spec of fcnParameters(arch).filter((s) => s.backbone)) entries.set(spec.name, { shape: spec.shape, data: donor.get(spec.name)! });
  entries.set('fc.weight', { shape: [1000, 512], data: new Float32Array(512000) });
  entries.set('fc.bias', { shape: [1000], data: new Float32Array(1000) });
  const file = path.join(tmp, 'resnet18-standin.safetensors');
  fs.writeFileSync(file, encodeSafetensors(entries));

  const lines: string[] = [];
  const head = await train({
    data, out: path.join(tmp, 'head'), epochs: 1, batchSize: 2, crop: [64, 64], lr: 0.01, freezeBackbone: true, backbone: file,
    threads: 2, gridImages: 0, log: (l) => lines.push(l),
  });
  assert.equal(head.init, `imagenet:${file}`);
  assert.ok(lines.some((l) => l.includes(`starting from ImageNet weights: ${file}`)), lines.join('\n'));
  const ckpt = await loadCheckpoint(head.files.last);
  for (const spec of fcnParameters(arch)) {
    const got = ckpt.weights.get(spec.name)!;
    if (spec.backbone) assert.deepEqual(got, donor.get(spec.name), spec.name); // running statistics included: eval-mode BN
    else if (spec.name === 'final_conv.weight') assert.notDeepEqual(got, initParameters(arch, seededRandom(0)).get(spec.name), spec.name);
  }
  // --init starts a new run from that checkpoint's weights
  const init = await train({ data, out: path.join(tmp, 'init'), epochs: 1, batchSize: 2, crop: [64, 64], lr: 0, init: head.files.last, threads: 2, gridImages: 0 });
  assert.equal(init.init, `checkpoint:${head.files.last}`);
  const after = await loadCheckpoint(init.files.last);
  // lr 0: the weights are the starting checkpoint's (batch-norm running statistics do move in full mode)
  assert.deepEqual(after.weights.get('final_conv.weight'), ckpt.weights.get('final_conv.weight'));
  assert.deepEqual(after.weights.get('layer4.1.conv2.weight'), ckpt.weights.get('layer4.1.conv2.weight'));
});

test('fcn train: a diverging run (--lr 1e30) stops with exit 1 and one line, and leaves the last good checkpoint as it was', () => {
  const out = path.join(tmp, 'a');
  const prior = { last: sha256(path.join(out, 'last.safetensors')), metrics: fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8') };
  const r = cli(['train', '--data', data, '--out', out, '--epochs', '2', '--batch-size', '2', '--crop', '64x64', '--lr', '1e30',
    '--scratch', '--threads', '2', '--grid', '0']);
  assert.equal(r.status, 1, r.stderr);
  const lines = r.stderr.split('\n').filter((l) => l.startsWith('fcn:'));
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /^fcn: training diverged: the (loss became (NaN|-?Infinity)|weight '.+' is no longer finite) .*--lr 1e\+30/);
  assert.equal(sha256(path.join(out, 'last.safetensors')), prior.last);
  assert.equal(fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8'), prior.metrics);
  assert.deepEqual(fs.readdirSync(out).filter((n) => n.endsWith('.tmp')), []);
});

test('2 classes on data with more labels: fcn train and fcn eval stop with one line naming the mask file or the class counts', async () => {
  const arch = fcnResNet18({ numClasses: 2 });
  const ckptFile = path.join(tmp, 'two-classes.safetensors');
  await saveCheckpoint(ckptFile, { arch, weights: initParameters(arch, seededRandom(5)), ...defaultCard(2), metadata: {}, extra: new Map() });
  const out = path.join(tmp, 'two');
  const r = cli(['train', '--data', data, '--classes', 'background,circle', '--out', out, '--epochs', '1', '--batch-size', '2', '--crop', '64x64', '--threads', '2', '--grid', '0', '--scratch']);
  assert.equal(r.status, 1, r.stderr);
  const lines = r.stderr.split('\n').filter((l) => l.startsWith('fcn:'));
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /SegmentationClass[\\/]train_\d+\.png: label \d+ at x=\d+ y=\d+ is outside the label space \(expected 0\.\.1 for the 2 classes of --classes, or 255 for void\)$/);
  assert.doesNotMatch(r.stderr, /internal error|\n\s+at /);
  assert.equal(fs.existsSync(path.join(out, 'last.safetensors')), false);
  const e = cli(['eval', '--model', ckptFile, '--data', data, '--threads', '2']);
  assert.equal(e.status, 1, e.stderr);
  assert.match(e.stderr, /^fcn: .*two-classes\.safetensors: the model has 2 classes but the dataset .* has 6 \(from .*labelmap\.txt\)/m);
  assert.doesNotMatch(e.stderr, /internal error|\n\s+at /);
});

test('fcn train: bad flags are usage errors (exit 2) and create nothing', () => {
  const out = path.join(tmp, 'bad');
  const cases: [string[], RegExp][] = [
    [['--crop', '100x100'], /--crop.*multiples of 32/],
    [['--crop', '64'], /--crop expects HxW/],
    [['--epochs', '0'], /--epochs expects an integer >= 1/],
    [['--lr', 'fast'], /--lr expects a number/],
    [['--momentum', '1.5'], /--momentum expects a number in \[0, 1\)/],
    [['--batch-size', '2.5'], /--batch-size expects an integer/],
    [['--variant', 'fcn4s'], /fcn4s/],
    [['--small', 'grow'], /grow/],
    [['--backbone', 'a.pth', '--init', 'b.safetensors'], /--backbone and --init/],
    [['--no-such-flag'], /no-such-flag/],
  ];
  for (const [flags, message] of cases) {
    const r = cli(['train', '--data', data, '--out', out, ...flags]);
    assert.equal(r.status, 2, `${flags.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, flags.join(' '));
    assert.ok(r.stderr.trim().split('\n').length <= 2, r.stderr);
  }
  const missing = cli(['train', '--out', out]);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /--data/);
  assert.equal(fs.existsSync(out), false);
  // a dataset that is not there is the user's mistake too, but not a usage error: exit 1, the folder named
  const none = cli(['train', '--data', path.join(tmp, 'nowhere'), '--out', out]);
  assert.equal(none.status, 1);
  assert.match(none.stderr, /^fcn: .*nowhere: no such directory/);
  assert.equal(fs.existsSync(out), false);
});
