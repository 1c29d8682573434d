// Own data end to end through the CLI, as a user brings it: a CVAT export (colour masks, labelmap.txt
// of 5 classes in custom colours, a single default.txt) trains a 5-class network whose checkpoint,
// eval --json (perClassIoU keyed by the names) and predict (palette PNGs holding the colours) carry
// those classes, as does fcn score against the export's masks; an mmsegmentation folder and an ADE20K folder train and evaluate the same way;
// --init from a checkpoint with other classes keeps the body and says so; --scale trains.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { encode as encodePng, decode as decodePng } from 'fast-png';
import { repoRoot } from './helpers/fixtures.js';
import { encodeImage, type RgbImage } from '../src/data/image.js';
import { loadCheckpoint } from '../src/weights/checkpoint.js';

let tmp: string;
const cli = (args: string[]) => spawnSync(process.execPath, ['bin/fcn.js', ...args], { cwd: repoRoot, encoding: 'utf8' });
const NAMES = ['background', 'road', 'car', 'tree', 'sign'];
const COLORS: [number, number, number][] = [[10, 10, 10], [250, 50, 83], [51, 221, 255], [36, 179, 83], [184, 61, 245]];
const SIZE = 64;

/** An image with a square of class 1 + (i % 4) drawn in a colour of its own, and the label map. */
function example(i: number): { image: RgbImage; labels: Uint8Array } {
  const data = new Uint8Array(SIZE * SIZE * 3).fill(90);
  const labels = new Uint8Array(SIZE * SIZE);
  const cls = 1 + (i % 4);
  const x0 = 8 + ((i * 7) % 20);
  const y0 = 8 + ((i * 11) % 20);
  for (let y = y0; y < y0 + 28; y++) {
    for (let x = x0; x < x0 + 28; x++) {
      labels[y * SIZE + x] = cls;
      data.set([cls * 60, 255 - cls * 50, 40], (y * SIZE + x) * 3);
    }
  }
  return { image: { width: SIZE, height: SIZE, data }, labels };
}

function colourMask(labels: Uint8Array): Uint8Array {
  const rgb = new Uint8Array(labels.length * 3);
  labels.forEach((v, i) => rgb.set(COLORS[v]!, i * 3));
  return encodePng({ width: SIZE, height: SIZE, data: rgb, channels: 3, depth: 8 });
}

function indexMask(labels: Uint8Array, offset = 0): Uint8Array {
  return encodePng({ width: SIZE, height: SIZE, data: labels.map((v) => v + offset), channels: 1, depth: 8 });
}

const TRAIN = ['--epochs', '1', '--batch-size', '2', '--crop', '64x64', '--scratch', '--threads', '2', '--variant', 'fcn8s', '--grid', '0', '--lr', '0.001'];

function ok(r: ReturnType<typeof cli>, what: string): string {
  assert.equal(r.status, 0, `${what}: ${r.stderr}`);
  return r.stdout;
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fcn-own-'));
  // CVAT export
  const cvat = path.join(tmp, 'cvat', 'export');
  for (const d of ['JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation']) fs.mkdirSync(path.join(cvat, d), { recursive: true });
  fs.writeFileSync(path.join(cvat, 'labelmap.txt'), '# label:color_rgb:parts:actions\n' + NAMES.map((n, i) => `${n}:${COLORS[i]!.join(',')}::`).join('\n') + '\n');
  const ids = Array.from({ length: 6 }, (_, i) => `frame_${i}`);
  fs.writeFileSync(path.join(cvat, 'ImageSets/Segmentation/default.txt'), ids.join('\n') + '\n');
  // mmseg and ADE20K
  const mm = path.join(tmp, 'mmseg');
  const ade = path.join(tmp, 'ade', 'ADEChallengeData2016');
  for (const [i, id] of ids.entries()) {
    const ex = example(i);
    fs.writeFileSync(path.join(cvat, 'JPEGImages', `${id}.png`), await encodeImage(ex.image, 'png'));
    fs.writeFileSync(path.join(cvat, 'SegmentationClass', `${id}.png`), colourMask(ex.labels));
    const mmSplit = i < 4 ? 'train' : 'val';
    const adeSplit = i < 4 ? 'training' : 'validation';
    for (const [root, img, ann, split, offset] of [[mm, 'img_dir', 'ann_dir', mmSplit, 0], [ade, 'images', 'annotations', adeSplit, 1]] as const) {
      fs.mkdirSync(path.join(root, img, split), { recursive: true });
      fs.mkdirSync(path.join(root, ann, split), { recursive: true });
      fs.writeFileSync(path.join(root, img, split, `${id}.jpg`), await encodeImage(ex.image, 'jpeg'));
      fs.writeFileSync(path.join(root, ann, split, `${id}.png`), indexMask(ex.labels, offset));
    }
  }
  fs.writeFileSync(path.join(mm, 'classes.json'), JSON.stringify(NAMES.map((name, i) => ({ name, color: COLORS[i] }))));
});

after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('CVAT export: 5 classes in the checkpoint, eval --json keyed by them, predict palettes hold their colours', async () => {
  const data = path.join(tmp, 'cvat'); // the folder holding the export
  const out = path.join(tmp, 'run-cvat');
  const missing = cli(['train', '--data', data, '--out', out, ...TRAIN]);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /default/);
  assert.match(missing.stderr, /--val-fraction/);
  const stdout = ok(cli(['train', '--data', data, '--out', out, '--val-fraction', '0.34', '--scale', '0.5,2.0', '--flip', ...TRAIN]), 'train');
  assert.match(stdout, /read 4 examples/);
  const ckpt = await loadCheckpoint(path.join(out, 'last.safetensors'));
  assert.equal(ckpt.arch.numClasses, 5);
  assert.deepEqual(ckpt.classes, NAMES);
  assert.deepEqual(ckpt.colors, COLORS);
  const json = path.join(tmp, 'cvat.json');
  ok(cli(['eval', '--model', path.join(out, 'last.safetensors'), '--data', data, '--val-fraction', '0.34', '--json', json]), 'eval');
  const report = JSON.parse(fs.readFileSync(json, 'utf8')) as { perClassIoU: Record<string, number | null> };
  assert.deepEqual(Object.keys(report.perClassIoU), NAMES);
  const pred = path.join(tmp, 'pred');
  ok(cli(['predict', '--model', path.join(out, 'last.safetensors'), '--out', pred, path.join(data, 'export', 'JPEGImages', 'frame_0.png')]), 'predict');
  const png = decodePng(fs.readFileSync(path.join(pred, 'frame_0.png')));
  assert.ok(png.palette, 'a palette PNG');
  for (let i = 0; i < 5; i++) assert.deepEqual(png.palette![i]!.slice(0, 3), COLORS[i], `palette entry ${i}`);
  // fcn score against the export's colour masks: its labelmap.txt names the classes
  const list = path.join(tmp, 'one.txt');
  fs.writeFileSync(list, 'frame_0\n');
  const scoreJson = path.join(tmp, 'score.json');
  ok(cli(['score', '--pred', pred, '--gt', path.join(data, 'export', 'SegmentationClass'), '--list', list, '--json', scoreJson]), 'score');
  assert.deepEqual(Object.keys((JSON.parse(fs.readFileSync(scoreJson, 'utf8')) as { perClassIoU: object }).perClassIoU), NAMES);
  // --init from this 5-class checkpoint into 6 classes (the mmseg folder's index masks, renamed):
  // the body is kept, the class layers are re-initialised, and the run says so
  const six = ['bg', 'a', 'b', 'c', 'd', 'e'];
  const initOut = path.join(tmp, 'run-init');
  const init = ok(cli(['train', '--data', path.join(tmp, 'mmseg'), '--out', initOut, '--classes', six.join(','),
    ...TRAIN.filter((a) => a !== '--scratch'), '--init', path.join(out, 'last.safetensors')]), 'train --init');
  assert.match(init, /re-initialis/);
  const adapted = await loadCheckpoint(path.join(initOut, 'last.safetensors'));
  assert.equal(adapted.arch.numClasses, 6);
  assert.deepEqual(adapted.classes, six);
});

test('mmsegmentation and ADE20K folders train and evaluate with their own classes', async () => {
  for (const [name, data, classes] of [['mmseg', path.join(tmp, 'mmseg'), NAMES], ['ade', path.join(tmp, 'ade'), null]] as const) {
    const out = path.join(tmp, `run-${name}`);
    const stdout = ok(cli(['train', '--data', data, '--out', out, ...TRAIN]), `train ${name}`);
    assert.match(stdout, /read 4 examples/);
    const ckpt = await loadCheckpoint(path.join(out, 'last.safetensors'));
    if (classes) assert.deepEqual(ckpt.classes, classes);
    else {
      assert.equal(ckpt.arch.numClasses, 150);
      assert.equal(ckpt.classes[0], 'wall');
    }
    const json = path.join(tmp, `${name}.json`);
    ok(cli(['eval', '--model', path.join(out, 'last.safetensors'), '--data', data, '--json', json]), `eval ${name}`);
    const report = JSON.parse(fs.readFileSync(json, 'utf8')) as { perClassIoU: Record<string, number | null> };
    assert.deepEqual(Object.keys(report.perClassIoU), [...ckpt.classes]);
  }
});
