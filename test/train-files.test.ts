// The training run's pieces without training: the options table and its one validator (messages
// name options, or whatever the caller names them), the saved run config derived from the table,
// the order of the end-of-epoch writes and the repair of best.safetensors after a kill between
// them (simulated by calling the pieces), stale temp files, the output folder a failed run leaves,
// and the one preprocessing path (training batches and inference normalise by the same function
// with the model card's normalisation; the browser can load it).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadFixture, repoRoot } from './helpers/fixtures.js';
import { fcnResNet18 } from '../src/model/fcn.js';
import { initParameters, seededRandom } from '../src/model/params.js';
import { defaultCard } from '../src/model/card.js';
import { loadCheckpoint } from '../src/weights/checkpoint.js';
import { TRAIN_OPTIONS, resolveTrainOptions, type TrainOptionKey } from '../src/train/options.js';
import { checkResumable, decodeTrainState, recordEpoch, runConfig, type EpochMetrics, type TrainState } from '../src/train/state.js';
import {
  missingFolders, removeIfEmpty, removeStaleTemps, repairBest, runFiles, writeBest, writeLast, writeRecords, type EpochCheckpoint,
} from '../src/train/checkpoints.js';
import { flagOf } from '../src/cli/train.js';
import { normalizeToNCHW, meanColor, IMAGENET_MEAN_RGB } from '../src/data/transforms.js';
import { normalizeBatch, normalizeWindow, type ChannelNormalization } from '../src/infer/preprocess.js';
import { epochBatches } from '../src/data/batches.js';
import { generateSynthVoc } from '../src/data/synth.js';
import { openVoc } from '../src/data/dataset.js';
import { Rng } from '../src/data/rng.js';
import { readImage, type RgbImage } from '../src/data/image.js';

let tmp: string;
before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fcn-train-files-')); });
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('one validator: defaults from the table, messages name the option (or the caller\'s name for it), nothing names a flag', () => {
  const s = resolveTrainOptions({ data: 'd' });
  assert.equal(s.data, path.resolve('d'));
  assert.equal(s.batchSize, 32);
  assert.deepEqual(s.crop, [320, 480]);
  assert.equal(s.evalLimit, null);
  assert.ok(s.threads >= 1);
  const bad: [Parameters<typeof resolveTrainOptions>[0], RegExp][] = [
    [{ data: 'd', batchSize: 0 }, /^batchSize expects an integer >= 1, got 0$/],
    [{ data: 'd', momentum: 1 }, /^momentum expects a number in \[0, 1\), got 1$/],
    [{ data: 'd', crop: [100, 96] }, /^crop expects HxW with both sides multiples of 32/],
    [{ data: 'd', variant: 'fcn4s' as 'fcn8s' }, /^variant expects one of fcn32s, fcn16s, fcn8s, got 'fcn4s'$/],
    [{ data: 'd', backbone: 'a.pth', scratch: true }, /^backbone and scratch choose different starting weights/],
    [{ data: '' }, /^data is required/],
    // more threads than cores only oversubscribe them
    [{ data: 'd', threads: 100000 }, /^threads 100000 is more than the \d+ cores? of this machine \(expected 1\.\.\d+\)$/],
  ];
  for (const [o, message] of bad) {
    assert.throws(() => resolveTrainOptions(o), (e: Error & { exitCode?: number }) => message.test(e.message) && e.exitCode === 2, message.source);
  }
  // the CLI's names come from the caller
  assert.throws(() => resolveTrainOptions({ data: 'd', weightDecay: -1, optionName: flagOf }), { message: '--wd expects a number >= 0, got -1' });
  assert.equal(flagOf('batchSize'), '--batch-size');
  assert.equal(flagOf('gridImages'), '--grid');
  // the library's own messages never spell a flag
  const src = fs.readdirSync(path.join(repoRoot, 'src', 'train')).map((f) => fs.readFileSync(path.join(repoRoot, 'src', 'train', f), 'utf8')).join('\n');
  assert.doesNotMatch(src.replace(/^\s*(\/\/|\*|\/\*\*).*$/gm, ''), /['`"][^'`"\n]*--[a-z]/);
});

test('the saved run config is the table\'s run and extendable settings; a resume names the first changed one', () => {
  const s = resolveTrainOptions({ data: 'd', lr: 0.01 });
  const config = runConfig(s, 21, 'scratch');
  const runKeys = (Object.keys(TRAIN_OPTIONS) as TrainOptionKey[]).filter((k) => TRAIN_OPTIONS[k].role !== 'invocation');
  assert.deepEqual(Object.keys(config).sort(), [...runKeys, 'numClasses', 'init'].sort());
  assert.ok(!('threads' in config) && !('out' in config) && !('resume' in config));
  checkResumable(config, { ...config, epochs: 9, init: 'imagenet:x' }, 'last');
  assert.throws(() => checkResumable(config, { ...config, lr: 0.02 }, 'last'), { message: /^last: cannot resume: lr was 0\.01 in the saved run but is 0\.02 now/ });
  assert.throws(() => checkResumable(config, { ...config, lr: 0.02 }, 'last', flagOf), { message: /cannot resume: --lr was 0\.01/ });
  assert.throws(() => checkResumable({ ...config, lrSchedule: 'poly' }, { ...config, lrSchedule: 'poly', epochs: 9 }, 'last'), { message: /epochs was 5/ });
  assert.throws(() => checkResumable(config, { ...config, numClasses: 5 }, 'last'), { message: /the number of classes was 21/ });
});

// ---- the end of an epoch on disk, killed between its writes ----

const arch = fcnResNet18({ numClasses: 2 });
const weightsOf = (seed: number) => initParameters(arch, seededRandom(seed));
const ckptOf = (seed: number): EpochCheckpoint => ({ arch, weights: weightsOf(seed), ...defaultCard(2), extra: new Map() });
const metrics = (epoch: number, miou: number, best: boolean): EpochMetrics => ({
  epoch, epochs: 3, loss: 1 / epoch, trainAccuracy: 0.5, testAccuracy: 0.5, testMeanIoU: miou, examples: 2, examplesPerSecond: 1,
  trainSeconds: 1, evalSeconds: 1, testImages: 1, threads: 1, best,
});
const config = runConfig(resolveTrainOptions({ data: 'd', epochs: 3 }), 2, 'scratch');
const epochOf = async (file: string) => decodeTrainState((await loadCheckpoint(file)).metadata, file).epoch;

test('killed after last.safetensors of a best epoch: resume rewrites best from last, and says so', async () => {
  const files = runFiles(path.join(tmp, 'kill1'));
  // epoch 1 (a best) written whole
  const s1 = recordEpoch(undefined, config, metrics(1, 0.2, true), [1, 2, 3, 4]);
  await writeLast(files, ckptOf(1), s1);
  await writeBest(files);
  // epoch 2, a new best: last written, killed before best was copied (best still holds epoch 1)
  const s2 = recordEpoch(s1, config, metrics(2, 0.3, true), [5, 6, 7, 8]);
  assert.deepEqual(s2.bestFile, { epoch: 2, testMeanIoU: 0.3 });
  await writeLast(files, ckptOf(2), s2);
  assert.equal(await epochOf(files.best), 1);
  const notes: string[] = [];
  const repaired = await repairBest(files, decodeTrainState((await loadCheckpoint(files.last)).metadata, files.last), (l) => notes.push(l));
  assert.equal(await epochOf(files.best), 2);
  assert.deepEqual(repaired.bestFile, { epoch: 2, testMeanIoU: 0.3 });
  assert.match(notes.join('\n'), /best\.safetensors held epoch 1; rewrote it with epoch 2/);
  // the same weights as last's, bit for bit
  assert.deepEqual(fs.readFileSync(files.best), fs.readFileSync(files.last));
  // a second look finds nothing to do
  notes.length = 0;
  await repairBest(files, repaired, (l) => notes.push(l));
  assert.deepEqual(notes, []);

  // killed during epoch 1's copy of a fresh run: best never written
  const fresh = runFiles(path.join(tmp, 'kill2'));
  await writeLast(fresh, ckptOf(1), s1);
  await repairBest(fresh, s1, () => {});
  assert.equal(await epochOf(fresh.best), 1);
});

test('a best epoch whose weights are gone: best is rewritten with the last epoch and the state records that epoch', async () => {
  const files = runFiles(path.join(tmp, 'gone'));
  const s1 = recordEpoch(undefined, config, metrics(1, 0.4, true), [1, 2, 3, 4]);
  const s2 = recordEpoch(s1, config, metrics(2, 0.3, false), [1, 2, 3, 4]);
  assert.deepEqual([s2.best, s2.bestFile], [{ epoch: 1, testMeanIoU: 0.4 }, { epoch: 1, testMeanIoU: 0.4 }]);
  await writeLast(files, ckptOf(2), s2);
  await writeRecords(files, s2.history, 3);
  const notes: string[] = [];
  const repaired = await repairBest(files, s2, (l) => notes.push(l));
  assert.equal(await epochOf(files.best), 2);
  assert.deepEqual(repaired.best, { epoch: 1, testMeanIoU: 0.4 }); // still decides what a new best is
  assert.deepEqual(repaired.bestFile, { epoch: 2, testMeanIoU: 0.3 }); // what is on disk
  assert.match(notes[0]!, /was missing and epoch 1's weights are gone; it now holds epoch 2/);
  // a later best moves both
  const s3 = recordEpoch(repaired, config, metrics(3, 0.5, true), [1, 2, 3, 4]);
  assert.deepEqual([s3.best, s3.bestFile], [{ epoch: 3, testMeanIoU: 0.5 }, { epoch: 3, testMeanIoU: 0.5 }]);
});

test('temp files of a killed run are removed; those of a live process stay', async () => {
  const out = path.join(tmp, 'temps');
  fs.mkdirSync(out);
  const dead = `.last.safetensors.${2 ** 22 + 12345}.1700000000000.tmp`;
  const live = `.metrics.jsonl.${process.pid}.1700000000000.tmp`;
  for (const n of [dead, live, 'keep.tmp', 'last.safetensors']) fs.writeFileSync(path.join(out, n), 'x');
  assert.deepEqual(await removeStaleTemps(out), [dead]);
  assert.deepEqual(fs.readdirSync(out).sort(), [live, 'keep.tmp', 'last.safetensors'].sort());
  assert.deepEqual(await removeStaleTemps(path.join(tmp, 'none')), []);
});

test('a run that fails before its first whole file removes the folders it created, and only those', async () => {
  const parent = path.join(tmp, 'made');
  fs.mkdirSync(parent);
  const out = path.join(parent, 'a', 'b');
  const created = await missingFolders(out);
  assert.deepEqual(created, [out, path.join(parent, 'a')]);
  fs.mkdirSync(out, { recursive: true });
  await removeIfEmpty(created);
  assert.deepEqual(fs.readdirSync(parent), []);
  // a folder that holds something stays, and so do its parents
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'last.safetensors'), 'x');
  await removeIfEmpty(created);
  assert.ok(fs.existsSync(path.join(out, 'last.safetensors')));
});

// ---- one preprocessing path ----

function picture(width: number, height: number, seed: number): RgbImage {
  const rng = new Rng(seed);
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = rng.int(256);
  return { width, height, data };
}

test('inference and training normalise with the same function and the card\'s normalisation; inference pads with exact zeros', () => {
  const norm: ChannelNormalization = { mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.3] };
  const img = picture(40, 24, 1);
  const batch = normalizeBatch([img], norm);
  const x = normalizeWindow(img, { mean: [...norm.mean], std: [...norm.std] }, 0, 0, 24, 40, 32);
  assert.deepEqual([x.height, x.width], [32, 64]);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < 32; y++) {
      for (let xx = 0; xx < 64; xx++) {
        const v = x.data[(c * 32 + y) * 64 + xx]!;
        if (y < 24 && xx < 40) assert.equal(v, batch[(c * 24 + y) * 40 + xx]!);
        else assert.equal(v, 0);
      }
    }
  }
  // PyTorch's float32 steps: (x/255 - mean)/std
  const f = Math.fround;
  assert.equal(batch[0], f(f(f(img.data[0]! / 255) - f(0.5)) / f(0.2)));
  assert.deepEqual(meanColor({ mean: [0.485, 0.456, 0.406] }), [...IMAGENET_MEAN_RGB]);
  // the data module's ImageNet default computes the very same values
  const imgs = [picture(33, 17, 2), picture(33, 17, 3)];
  assert.deepEqual(normalizeBatch(imgs, defaultCard(21).normalization), normalizeToNCHW(imgs));
});

test('training batches use the normalisation they are given (the network\'s card), padding small images with its mean colour', async () => {
  const data = path.join(tmp, 'synth');
  await generateSynthVoc(data, { train: 2, val: 1, size: [80, 80], seed: 3 });
  const ds = await openVoc(data, 'train');
  const norm: ChannelNormalization = { mean: [0.2, 0.3, 0.4], std: [0.5, 0.5, 0.5] };
  const opts = { batchSize: 2, crop: [128, 128] as [number, number], shuffle: false, small: 'pad' as const };
  const [a] = await collect(epochBatches(ds, ds.ids, { ...opts, rng: new Rng(1), normalize: (im) => normalizeBatch(im, norm), padColor: meanColor(norm) }));
  const [b] = await collect(epochBatches(ds, ds.ids, { ...opts, rng: new Rng(1) }));
  // same pixels, other normalisation: x_a * std_a + mean_a == x_b * std_b + mean_b (up to float32 rounding)
  const P = 128 * 128;
  let padded = 0;
  for (let i = 0; i < a!.images.length; i++) {
    const c = Math.floor(i / P) % 3;
    const label = a!.labels[Math.floor(i / (3 * P)) * P + (i % P)];
    const va = a!.images[i]! * norm.std[c]! + norm.mean[c]!;
    const vb = b!.images[i]! * [0.229, 0.224, 0.225][c]! + [0.485, 0.456, 0.406][c]!;
    if (label === 255 && Math.abs(a!.images[i]!) < 0.02) padded++;
    else assert.ok(Math.abs(va - vb) < 2e-3, `value ${i}: ${va} vs ${vb}`);
  }
  assert.ok(padded > 0, 'padding normalises to ~0 under the given normalisation');
});

async function collect<T>(gen: AsyncGenerator<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of gen) out.push(x);
  return out;
}

test('the browser can load the preprocessing: tiled.js and preprocess.js import nothing the server does not hand out', () => {
  // the server gives the page /lib/infer/tiled.js and /lib/infer/preprocess.js and nothing else from dist/
  const served = new Set(['infer/tiled.js', 'infer/preprocess.js']);
  const root = path.join(repoRoot, 'dist', 'src');
  for (const start of served) {
    const text = fs.readFileSync(path.join(root, start), 'utf8');
    for (const m of text.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]/gm)) {
      const spec = m[1] ?? m[2]!;
      const target = path.relative(root, path.resolve(path.dirname(path.join(root, start)), spec)).split(path.sep).join('/');
      assert.ok(spec.startsWith('.') && served.has(target), `${start} imports '${spec}', which the page cannot load`);
    }
  }
});

test('inference preprocessing equals PyTorch\'s ToTensor + Normalize bit for bit (the 97x131 fixture image), padded with zeros', async () => {
  const fx = loadFixture('infer');
  const image = await readImage(fx.imagePath('image_b'));
  const ref = fx.f32('x_b');
  assert.deepEqual(ref.shape, [1, 3, 97, 131]);
  const x = normalizeWindow(image, defaultCard(21).normalization, 0, 0, 97, 131, 32);
  let differ = 0;
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < 128; y++) {
      for (let xx = 0; xx < 160; xx++) {
        const v = x.data[(c * 128 + y) * 160 + xx]!;
        if (y >= 97 || xx >= 131) assert.equal(v, 0);
        else if (v !== ref.data[(c * 97 + y) * 131 + xx]) differ++;
      }
    }
  }
  assert.equal(differ, 0);
});
