// `fcn score` and `fcn show` end to end (spawning bin/fcn.js), on masks and VOC layouts made in a
// temp dir: exact metrics in the JSON, one-line errors with exit 1 and no output left behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { encode as encodePng, decode as decodePng } from 'fast-png';
import { encodeMask, encodeImage, type LabelMap } from '../src/data/image.js';
import { VOC_CLASSES } from '../src/data/voc.js';
import { scoreFolders } from '../src/infer/score.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fcn-score-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

function fcn(...args: string[]) {
  const r = spawnSync(process.execPath, ['bin/fcn.js', ...args], { cwd: repoRoot, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

let dirCount = 0;
function freshDir(name: string): string {
  const d = path.join(tmp, `${name}-${dirCount++}`);
  fs.mkdirSync(d, { recursive: true });
  return d;
}

const m = (width: number, height: number, values: number[]): LabelMap => ({ width, height, data: Uint8Array.from(values) });
/** Ground truth as VOC palette PNGs. */
const writePalette = (dir: string, stem: string, mask: LabelMap) => fs.writeFileSync(path.join(dir, `${stem}.png`), encodeMask(mask));
/** Predictions as grayscale index PNGs (the other format score must read). */
const writeGray = (dir: string, stem: string, mask: LabelMap) =>
  fs.writeFileSync(path.join(dir, `${stem}.png`), encodePng({ width: mask.width, height: mask.height, data: mask.data, depth: 8, channels: 1 }));

// The hand-computed example of metrics.test.ts, split over two 2x2 images (classes 0, 1, 2 of 21):
// counts t0:[2,1,0] t1:[0,2,1] t2:[1,0,0], one void pixel. pixel acc 4/7, mean acc 4/9, mIoU 1/3,
// fwIoU 3/7; averaging per image would give other numbers (pixel acc (3/4 + 1/3)/2).
function writeImperfect(): { pred: string; gt: string } {
  const pred = freshDir('pred');
  const gt = freshDir('gt');
  writePalette(gt, 'a', m(2, 2, [0, 0, 1, 1]));
  writeGray(pred, 'a', m(2, 2, [0, 1, 1, 1]));
  writePalette(gt, 'b', m(2, 2, [2, 255, 0, 1]));
  writeGray(pred, 'b', m(2, 2, [0, 2, 0, 2]));
  return { pred, gt };
}

function assertOneLineError(r: { code: number | null; stderr: string }, ...mustName: string[]) {
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /^fcn: /);
  for (const s of mustName) assert.ok(lines[0]!.includes(s), `expected '${s}' in: ${lines[0]}`);
}

test('fcn score: a perfect prediction gives pixel accuracy 1 and mIoU 1', () => {
  const pred = freshDir('pred');
  const gt = freshDir('gt');
  const truth = m(3, 2, [0, 12, 12, 255, 9, 0]);
  writePalette(gt, '2007_000001', truth);
  writeGray(pred, '2007_000001', m(3, 2, [0, 12, 12, 0, 9, 0])); // void predicted as anything
  // `fcn predict --overlay` writes a picture beside each mask: not a prediction of its own
  fs.writeFileSync(path.join(pred, '2007_000001.overlay.png'), encodePng({ width: 3, height: 2, data: new Uint8Array(18).fill(200), channels: 3 }));
  const json = path.join(tmp, 'perfect.json');
  const r = fcn('score', '--pred', pred, '--gt', gt, '--json', json);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(fs.readFileSync(json, 'utf8'));
  assert.equal(report.pixelAccuracy, 1);
  assert.equal(report.meanIoU, 1);
  assert.equal(report.meanAccuracy, 1);
  assert.equal(report.frequencyWeightedIoU, 1);
  assert.deepEqual(Object.entries(report.perClassIoU).filter(([, v]) => v !== null), [['background', 1], ['chair', 1], ['dog', 1]]);
  assert.match(r.stdout, /^mean IoU\s+1\.0000$/m);
});

test('fcn score: a known imperfect case gives the exact numbers in the JSON, accumulated over the folder', () => {
  const { pred, gt } = writeImperfect();
  const json = path.join(tmp, 'out', 'imperfect.json'); // parent created
  const r = fcn('score', '--pred', pred, '--gt', gt, '--json', json);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(fs.readFileSync(json, 'utf8'));
  const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} != ${b}`);
  close(report.pixelAccuracy, 4 / 7);
  close(report.meanAccuracy, 4 / 9);
  close(report.meanIoU, 1 / 3);
  close(report.frequencyWeightedIoU, 3 / 7);
  assert.deepEqual(report.classes, VOC_CLASSES);
  const expectedIoU: Record<string, number | null> = Object.fromEntries(VOC_CLASSES.map((c) => [c, null]));
  Object.assign(expectedIoU, { background: 0.5, aeroplane: 0.5, bicycle: 0 });
  assert.deepEqual(report.perClassIoU, expectedIoU);
  assert.equal(report.confusionMatrix.length, 21);
  assert.deepEqual(report.confusionMatrix.slice(0, 3).map((row: number[]) => row.slice(0, 3)), [[2, 1, 0], [0, 2, 1], [1, 0, 0]]);
  assert.equal(report.confusionMatrix.flat().reduce((a: number, b: number) => a + b, 0), 7);
  assert.match(r.stdout, /^pixel accuracy\s+0\.5714$/m);
  assert.match(r.stdout, /^bird\s+-\s+-\s+0$/m);
});

test('fcn score --list: only the listed ids (a VOC split inside a SegmentationClass folder holding both); a listed id without prediction is an error', () => {
  const pred = freshDir('pred');
  const gt = freshDir('gt');
  writePalette(gt, 'train_1', m(2, 1, [1, 1]));
  writePalette(gt, 'val_1', m(2, 1, [0, 12]));
  writePalette(gt, 'val_2', m(2, 1, [12, 255]));
  writeGray(pred, 'val_1', m(2, 1, [0, 12]));
  writeGray(pred, 'val_2', m(2, 1, [0, 0]));
  const list = path.join(tmp, `val-${dirCount}.txt`);
  fs.writeFileSync(list, 'val_1\r\nval_2\n\n');
  const strict = fcn('score', '--pred', pred, '--gt', gt);
  assertOneLineError(strict, path.join(gt, 'train_1.png'), '--list');
  const json = path.join(tmp, 'listed.json');
  const r = fcn('score', '--pred', pred, '--gt', gt, '--list', list, '--json', json);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(fs.readFileSync(json, 'utf8'));
  assert.equal(report.pixelAccuracy, 2 / 3); // val_1: 2 of 2, val_2: 0 of 1 (void not counted); train_1 not scored
  fs.rmSync(path.join(pred, 'val_2.png'));
  const absent = fcn('score', '--pred', pred, '--gt', gt, '--list', list);
  assertOneLineError(absent, path.join(pred, 'val_2.png'), list);
  assertOneLineError(fcn('score', '--pred', pred, '--gt', gt, '--list', path.join(tmp, 'no-list.txt')), path.join(tmp, 'no-list.txt'), 'no such file');
});

test('scoreFolders (library): same counts as the CLI and RGB colour masks read through the palette', async () => {
  const { pred, gt } = writeImperfect();
  // rewrite prediction b as an RGB PNG in VOC colours: (0,0,0) (0,128,0) (0,0,0) (0,128,0)
  const rgb = Uint8Array.from([0, 0, 0, 0, 128, 0, 0, 0, 0, 0, 128, 0]);
  fs.writeFileSync(path.join(pred, 'b.png'), encodePng({ width: 2, height: 2, data: rgb, depth: 8, channels: 3 }));
  const cm = await scoreFolders(pred, gt);
  assert.deepEqual(Array.from(cm.counts.subarray(0, 3)), [2, 1, 0]);
  assert.equal(cm.total, 7);
});

test('fcn score: bad inputs exit 1 with one line naming the file, and leave no JSON', () => {
  const cases: { name: string; setup: (pred: string, gt: string) => void; names: (pred: string, gt: string) => string[] }[] = [
    {
      name: 'ground truth without prediction',
      setup: (pred, gt) => {
        writePalette(gt, 'a', m(2, 1, [0, 1]));
        writePalette(gt, 'b', m(2, 1, [0, 1]));
        writeGray(pred, 'a', m(2, 1, [0, 1]));
      },
      names: (pred, gt) => [path.join(gt, 'b.png'), 'no prediction', pred],
    },
    {
      name: 'prediction without ground truth',
      setup: (pred, gt) => {
        writePalette(gt, 'a', m(2, 1, [0, 1]));
        writeGray(pred, 'a', m(2, 1, [0, 1]));
        writeGray(pred, 'extra', m(2, 1, [0, 1]));
      },
      names: (pred, gt) => [path.join(pred, 'extra.png'), 'no ground truth', gt],
    },
    {
      name: 'size mismatch',
      setup: (pred, gt) => {
        writePalette(gt, 'a', m(3, 2, [0, 1, 1, 0, 0, 0]));
        writeGray(pred, 'a', m(2, 3, [0, 1, 1, 0, 0, 0]));
      },
      names: (pred, gt) => [path.join(pred, 'a.png'), path.join(gt, 'a.png'), '3x2', '2x3'],
    },
    {
      name: 'not a PNG',
      setup: (pred, gt) => {
        writePalette(gt, 'a', m(2, 1, [0, 1]));
        fs.writeFileSync(path.join(pred, 'a.png'), 'this is not a png');
      },
      names: (pred) => [path.join(pred, 'a.png'), 'PNG'],
    },
    {
      name: 'prediction value that is not a class id',
      setup: (pred, gt) => {
        writePalette(gt, 'a', m(2, 1, [0, 1]));
        writeGray(pred, 'a', m(2, 1, [0, 30]));
      },
      names: (pred) => [path.join(pred, 'a.png'), 'value 30'],
    },
    {
      name: 'ground truth all void',
      setup: (pred, gt) => {
        writePalette(gt, 'a', m(2, 1, [255, 255]));
        writeGray(pred, 'a', m(2, 1, [0, 0]));
      },
      names: (_pred, gt) => [gt, 'void'],
    },
  ];
  for (const c of cases) {
    const pred = freshDir('pred');
    const gt = freshDir('gt');
    c.setup(pred, gt);
    const json = path.join(tmp, `bad-${dirCount}.json`);
    const r = fcn('score', '--pred', pred, '--gt', gt, '--json', json);
    assertOneLineError(r, ...c.names(pred, gt));
    assert.equal(fs.existsSync(json), false, `${c.name}: no JSON on error`);
  }
  const r = fcn('score', '--pred', path.join(tmp, 'nope'), '--gt', freshDir('gt'));
  assertOneLineError(r, path.join(tmp, 'nope'), 'no such directory');
  assert.equal(fcn('score', '--gt', freshDir('gt')).code, 2, 'missing --pred is a usage error');
});

/** A tiny VOC layout: ids of the given sizes, images a flat grey, masks one class with a void corner. */
async function tinyVoc(examples: { id: string; width: number; height: number; cls: number }[]): Promise<string> {
  const root = path.join(freshDir('voc'), 'VOCdevkit', 'VOC2012');
  for (const sub of ['JPEGImages', 'SegmentationClass', path.join('ImageSets', 'Segmentation')]) fs.mkdirSync(path.join(root, sub), { recursive: true });
  for (const e of examples) {
    const n = e.width * e.height;
    const image = { width: e.width, height: e.height, data: new Uint8Array(n * 3).fill(120) };
    fs.writeFileSync(path.join(root, 'JPEGImages', `${e.id}.jpg`), await encodeImage(image, 'jpeg'));
    const mask = m(e.width, e.height, Array.from({ length: n }, (_, i) => (i === 0 ? 255 : i < n / 2 ? 0 : e.cls)));
    writePalette(path.join(root, 'SegmentationClass'), e.id, mask);
  }
  fs.writeFileSync(path.join(root, 'ImageSets', 'Segmentation', 'val.txt'), examples.map((e) => e.id).join('\n') + '\n');
  return path.dirname(path.dirname(root));
}

test('fcn show: writes a PNG grid (images over truth, legend) of the first n examples', async () => {
  const data = await tinyVoc([
    { id: '2007_000001', width: 48, height: 32, cls: 12 },
    { id: '2007_000002', width: 32, height: 32, cls: 15 },
    { id: '2007_000003', width: 40, height: 20, cls: 19 },
  ]);
  const out = path.join(tmp, 'show', 'grid.png');
  const r = fcn('show', '--data', data, '--n', '2', '--out', out);
  assert.equal(r.code, 0, r.stderr);
  const png = decodePng(fs.readFileSync(out));
  // two columns scaled to the default 160 px height: 240 and 160 wide; two rows of cells
  const widthOfCells = 240 + 160 + 3 * 4;
  assert.ok(png.width > widthOfCells && png.width < widthOfCells + 120, `width ${png.width}`); // + row titles
  const cellsHeight = 2 * (160 + 4);
  assert.ok(png.height > cellsHeight + 40 && png.height < cellsHeight + 150, `height ${png.height}`); // + column titles + legend
  // the truth colours of both examples (dog (64,0,128), person (192,128,128)) appear; train (class 19, example 3) does not
  const seen = new Set<string>();
  for (let i = 0; i < png.width * png.height; i++) seen.add(Array.from(png.data.subarray(i * png.channels, i * png.channels + 3)).join(','));
  assert.ok(seen.has('64,0,128') && seen.has('192,128,128') && seen.has('224,224,192'));
  assert.ok(!seen.has('128,192,0'), 'third example not drawn');
});

test('fcn show: a missing --model file, bad --out and missing data fail cleanly', async () => {
  const data = await tinyVoc([{ id: 'x', width: 8, height: 8, cls: 1 }]);
  const out = path.join(tmp, 'model.png');
  const r = fcn('show', '--data', data, '--model', path.join(tmp, 'whatever.safetensors'), '--out', out);
  assertOneLineError(r, path.join(tmp, 'whatever.safetensors'));
  assert.equal(fs.existsSync(out), false);
  const bad = fcn('show', '--data', data, '--out', path.join(tmp, 'grid.gif'));
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--out expects a \.png file/);
  const missing = fcn('show', '--data', path.join(tmp, 'no-such-voc'), '--out', out);
  assertOneLineError(missing, path.join(tmp, 'no-such-voc'));
  assert.equal(fs.existsSync(out), false);
});
