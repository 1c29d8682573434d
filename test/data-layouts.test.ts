// Own data: label spaces (labelmap.txt, classes.json, names, VOC and ADE20K built in), the layouts
// (VOC, CVAT export, mmsegmentation, ADE20K) found under the folder given, their pairing and label
// errors (one line naming the file, the pixel and the value), the held-out validation fraction,
// the MAT-file reader on scipy-written SBD masks (compressed and not, with the Boundaries cell
// array), train_aug, and the augmentation against PyTorch's interpolate.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDirs } from './helpers/tmp.js';
import { deflateSync } from 'node:zlib';
import { encode as encodePng } from 'fast-png';
import { openDataset, findDataset, holdOut, SplitNotFoundError } from '../src/data/layouts.js';
import { readExample } from '../src/data/dataset.js';
import {
  parseLabelmap, parseClassesJson, labelsFromNames, ade20kLabels, vocLabels, decodeLabelMask, formatLabelmap, readLabelFile,
} from '../src/data/labels.js';
import { readMatVariable, decodeSbdMask } from '../src/data/mat.js';
import { trainAugIds } from '../src/data/sbd.js';
import { augment, resizedWindow, scaledSize } from '../src/data/augment.js';
import { encodeImage, encodeMask, type LabelMap, type RgbImage } from '../src/data/image.js';
import { Rng } from '../src/data/rng.js';
import { prepareSplit, epochBatches } from '../src/data/batches.js';
import { FcnError } from '../src/util/errors.js';

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../test/fixtures');
const { root: tmpRoot, tempDir } = tempDirs('fcn-layouts-');

function oneLine(err: unknown, ...mustName: string[]): true {
  assert.ok(err instanceof FcnError, `expected FcnError, got ${String(err)}`);
  assert.ok(!err.message.includes('\n'), `message is one line: ${err.message}`);
  for (const s of mustName) assert.ok(err.message.includes(s), `message names ${s}: ${err.message}`);
  return true;
}

const COLORS: [number, number, number][] = [[0, 0, 0], [250, 50, 83], [51, 221, 255], [36, 179, 83], [184, 61, 245]];
const NAMES = ['background', 'road', 'car', 'tree', 'sign'];

/** A label map whose label at (x, y) is (x + 2y) % k. */
function labelsOf(width: number, height: number, k: number): LabelMap {
  const data = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data[y * width + x] = (x + 2 * y) % k;
  return { width, height, data };
}

function colourPng(mask: LabelMap, colors: readonly (readonly number[])[]): Uint8Array {
  const data = new Uint8Array(mask.data.length * 3);
  mask.data.forEach((v, i) => data.set(colors[v]!, i * 3));
  return encodePng({ width: mask.width, height: mask.height, data, channels: 3, depth: 8 });
}

function grayPng(mask: LabelMap): Uint8Array {
  return encodePng({ width: mask.width, height: mask.height, data: mask.data, channels: 1, depth: 8 });
}

async function image(width: number, height: number, format: 'png' | 'jpeg' = 'png'): Promise<Buffer> {
  const data = new Uint8Array(width * height * 3).map((_, i) => (i * 7) % 256);
  return encodeImage({ width, height, data } as RgbImage, format);
}

/** A CVAT "Segmentation mask 1.1" export: labelmap.txt, colour masks, default.txt, .png and .jpg images. */
async function cvatExport(root: string, ids: string[]): Promise<void> {
  for (const d of ['JPEGImages', 'SegmentationClass', 'SegmentationObject', 'ImageSets/Segmentation']) fs.mkdirSync(path.join(root, d), { recursive: true });
  fs.writeFileSync(path.join(root, 'labelmap.txt'), '# label:color_rgb:parts:actions\n' + NAMES.map((n, i) => `${n}:${COLORS[i]!.join(',')}::`).join('\n') + '\n');
  fs.writeFileSync(path.join(root, 'ImageSets/Segmentation/default.txt'), ids.join('\n') + '\n');
  for (const [i, id] of ids.entries()) {
    const ext = i % 2 === 0 ? 'jpg' : 'png';
    fs.writeFileSync(path.join(root, 'JPEGImages', `${id}.${ext}`), await image(12, 8, ext === 'jpg' ? 'jpeg' : 'png'));
    fs.writeFileSync(path.join(root, 'SegmentationClass', `${id}.png`), colourPng(labelsOf(12, 8, 5), COLORS));
  }
}

// ---------------------------------------------------------------------------------------------
// Label spaces

test('labelmap.txt (CVAT): names and colours in order, background first; a name may hold ":"', () => {
  const text = '# label:color_rgb:parts:actions\r\nbackground:0,0,0::\r\nroad:128,64,128::\r\nlane:marking:255,255,0:part1:\r\n';
  const l = parseLabelmap(text, 'x/labelmap.txt');
  assert.deepEqual(l.classes, ['background', 'road', 'lane:marking']);
  assert.deepEqual(l.colors, [[0, 0, 0], [128, 64, 128], [255, 255, 0]]);
  assert.equal(l.reduceZeroLabel, false);
  assert.deepEqual(parseLabelmap(formatLabelmap(l), 'y').classes, l.classes);
  assert.throws(() => parseLabelmap('road:1,2,3\n', 'lm.txt'), (e) => oneLine(e, 'lm.txt:1', 'name:r,g,b'));
  assert.throws(() => parseLabelmap('road:1,2,300::\n', 'lm.txt'), (e) => oneLine(e, 'lm.txt:1', '1,2,300'));
  assert.throws(() => parseLabelmap('a:1,2,3::\nb:1,2,3::\n', 'lm.txt'), (e) => oneLine(e, 'lm.txt', "'a'", "'b'", '(1,2,3)'));
  assert.throws(() => parseLabelmap('a:1,2,3::\na:4,5,6::\n', 'lm.txt'), (e) => oneLine(e, 'lm.txt', "'a'", 'twice'));
  assert.throws(() => parseLabelmap('# only a header\n', 'lm.txt'), (e) => oneLine(e, 'lm.txt', 'no labels'));
});

test('classes.json: [{name, color}], colours defaulting to the VOC palette, and mmseg {classes, palette}', () => {
  const l = parseClassesJson('[{"name": "road", "color": [128, 64, 128]}, {"name": "car"}]', 'c.json');
  assert.deepEqual(l.classes, ['road', 'car']);
  assert.deepEqual(l.colors, [[128, 64, 128], [128, 0, 0]]);
  const m = parseClassesJson('{"classes": ["a", "b"], "palette": [[1, 2, 3], [4, 5, 6]]}', 'c.json');
  assert.deepEqual(m.colors, [[1, 2, 3], [4, 5, 6]]);
  assert.throws(() => parseClassesJson('{', 'c.json'), (e) => oneLine(e, 'c.json', 'JSON'));
  assert.throws(() => parseClassesJson('[{"name": "a", "color": [1, 2]}]', 'c.json'), (e) => oneLine(e, 'c.json', "'a'"));
  assert.throws(() => parseClassesJson('{"classes": ["a"], "palette": []}', 'c.json'), (e) => oneLine(e, 'c.json', 'pair'));
});

test('names (--classes) take VOC palette colours; VOC and ADE20K are built in as mmsegmentation has them', () => {
  const l = labelsFromNames(['background', ' road ', 'car']);
  assert.deepEqual(l.classes, ['background', 'road', 'car']);
  assert.deepEqual(l.colors, [[0, 0, 0], [128, 0, 0], [0, 128, 0]]);
  assert.throws(() => labelsFromNames(['a', '', 'b']), (e) => oneLine(e, 'class 1'));
  assert.throws(() => labelsFromNames(Array.from({ length: 256 }, (_, i) => `c${i}`)), (e) => oneLine(e, '256 classes', '255'));
  const ade = ade20kLabels();
  assert.equal(ade.classes.length, 150);
  assert.equal(ade.classes[0], 'wall');
  assert.equal(ade.classes[149], 'flag');
  assert.deepEqual(ade.colors[0], [120, 120, 120]);
  assert.deepEqual(ade.colors[149], [92, 0, 255]);
  assert.equal(ade.reduceZeroLabel, true);
  assert.equal(vocLabels().classes.length, 21);
});

test('masks through a label space: colour masks by the class colours, index masks as they are, ADE20K reduce_zero_label', () => {
  const labels = { classes: NAMES, colors: COLORS, source: 'labelmap.txt', reduceZeroLabel: false };
  const m = labelsOf(6, 4, 5);
  assert.deepEqual(decodeLabelMask(colourPng(m, COLORS), 'm.png', labels).data, m.data);
  assert.deepEqual(decodeLabelMask(grayPng(m), 'm.png', labels).data, m.data);
  assert.deepEqual(decodeLabelMask(encodeMask(m), 'm.png', labels).data, m.data);
  // VOC's void colour is void in colour masks
  const withVoid = colourPng({ ...m, data: m.data.map((v, i) => (i === 3 ? 5 : v)) }, [...COLORS, [224, 224, 192]]);
  assert.equal(decodeLabelMask(withVoid, 'm.png', labels).data[3], 255);
  // unknown colour and out-of-range index: the file, the pixel, the value
  const bad = colourPng(m, COLORS);
  const badColours = [...COLORS];
  badColours[3] = [9, 9, 9];
  assert.throws(() => decodeLabelMask(colourPng(m, badColours), 'ann/7.png', labels), (e) => oneLine(e, 'ann/7.png', '(9,9,9)', 'x=3 y=0', 'labelmap.txt'));
  assert.ok(bad.length > 0);
  const big = { ...m, data: m.data.map((v, i) => (i === 6 ? 7 : v)) };
  assert.throws(() => decodeLabelMask(grayPng(big), 'ann/8.png', labels), (e) => oneLine(e, 'ann/8.png', 'label 7', 'x=0 y=1', '0..4'));
  // ADE20K: 0 -> 255, v -> v-1, 255 stays void; 151 is out of range
  const ade = ade20kLabels();
  const raw = new Uint8Array([0, 1, 150, 255]);
  assert.deepEqual([...decodeLabelMask(grayPng({ width: 4, height: 1, data: raw }), 'a.png', ade).data], [255, 0, 149, 255]);
  assert.throws(() => decodeLabelMask(grayPng({ width: 2, height: 1, data: new Uint8Array([3, 151]) }), 'a.png', ade), (e) => oneLine(e, 'a.png', 'label 151', 'x=1 y=0'));
});

// ---------------------------------------------------------------------------------------------
// Layouts

test('CVAT export: found under its parent, labelmap classes, colour masks, any image extension, default.txt held out', async () => {
  const parent = tempDir('cvat');
  const root = path.join(parent, 'export');
  const ids = ['frame_000', 'frame_001', 'frame_002', 'frame_003', 'frame_004'];
  await cvatExport(root, ids);
  assert.deepEqual(await findDataset(parent), { root, layout: 'cvat' });
  await assert.rejects(openDataset(parent, 'train'), (e) => e instanceof SplitNotFoundError && oneLine(e, "'train'", "'default'"));
  const train = await openDataset(parent, 'train', { valFraction: 0.4 });
  const val = await openDataset(parent, 'val', { valFraction: 0.4 });
  assert.equal(train.layout, 'cvat');
  assert.equal(val.ids.length, 2);
  assert.deepEqual([...train.ids, ...val.ids].sort(), ids);
  // deterministic, independent of the list's order
  fs.writeFileSync(path.join(root, 'ImageSets/Segmentation/default.txt'), [...ids].reverse().join('\n'));
  assert.deepEqual((await openDataset(parent, 'val', { valFraction: 0.4 })).ids.sort(), [...val.ids].sort());
  assert.deepEqual(train.labels.classes, NAMES);
  assert.equal(train.imagePath('frame_001'), path.join(root, 'JPEGImages', 'frame_001.png'));
  const ex = await readExample(train, train.ids[0]!);
  assert.deepEqual(ex.mask.data, labelsOf(12, 8, 5).data);
  const all = await openDataset(root, 'default');
  assert.equal(all.ids.length, 5);
  // --classes replaces the labelmap; a colour then unknown is named
  const other = await openDataset(root, 'default', { labels: labelsFromNames(['background', 'a', 'b', 'c', 'd']) });
  await assert.rejects(readExample(other, 'frame_000'), (e) => oneLine(e, path.join(root, 'SegmentationClass', 'frame_000.png'), '(250,50,83)', 'x=1 y=0'));
});

test('CVAT export errors: missing labelmap entry, mask without an image, image without a mask, neither', async () => {
  const root = tempDir('cvat-bad');
  await cvatExport(root, ['a', 'b', 'c']);
  fs.writeFileSync(path.join(root, 'labelmap.txt'), '# label:color_rgb:parts:actions\n' + NAMES.slice(0, 4).map((n, i) => `${n}:${COLORS[i]!.join(',')}::`).join('\n'));
  const ds = await openDataset(root, 'default');
  await assert.rejects(readExample(ds, 'a'), (e) => oneLine(e, 'a.png', '(184,61,245)', 'labelmap.txt'));
  fs.rmSync(path.join(root, 'JPEGImages', 'b.png'));
  await assert.rejects(openDataset(root, 'default'), (e) => oneLine(e, path.join(root, 'SegmentationClass', 'b.png'), 'mask without an image'));
  fs.writeFileSync(path.join(root, 'JPEGImages', 'b.png'), await image(12, 8));
  fs.rmSync(path.join(root, 'SegmentationClass', 'c.png'));
  await assert.rejects(openDataset(root, 'default'), (e) => oneLine(e, path.join(root, 'JPEGImages', 'c.jpg'), 'image without a mask'));
  fs.rmSync(path.join(root, 'JPEGImages', 'c.jpg'));
  await assert.rejects(openDataset(root, 'default'), (e) => oneLine(e, "'c'", 'neither'));
  // forced cvat without a labelmap
  const voc = tempDir('voc-as-cvat');
  fs.mkdirSync(path.join(voc, 'ImageSets/Segmentation'), { recursive: true });
  await assert.rejects(openDataset(voc, 'train', { layout: 'cvat' }), (e) => oneLine(e, 'labelmap.txt'));
});

test('mmsegmentation layout: img_dir/ann_dir splits, masks by stem, classes.json; pairing errors both ways', async () => {
  const parent = tempDir('mmseg');
  const root = path.join(parent, 'my_data');
  for (const split of ['train', 'val']) {
    fs.mkdirSync(path.join(root, 'img_dir', split), { recursive: true });
    fs.mkdirSync(path.join(root, 'ann_dir', split), { recursive: true });
    for (const id of [`${split}1`, `${split}2`]) {
      fs.writeFileSync(path.join(root, 'img_dir', split, `${id}.jpg`), await image(10, 6, 'jpeg'));
      fs.writeFileSync(path.join(root, 'ann_dir', split, `${id}.png`), grayPng(labelsOf(10, 6, 3)));
    }
  }
  fs.writeFileSync(path.join(root, 'classes.json'), JSON.stringify([{ name: 'bg', color: [0, 0, 0] }, { name: 'cell', color: [255, 0, 0] }, { name: 'nucleus', color: [0, 0, 255] }]));
  const val = await openDataset(parent, 'val');
  assert.equal(val.layout, 'mmseg');
  assert.deepEqual(val.ids, ['val1', 'val2']);
  assert.deepEqual(val.labels.classes, ['bg', 'cell', 'nucleus']);
  assert.deepEqual((await readExample(val, 'val2')).mask.data, labelsOf(10, 6, 3).data);
  await assert.rejects(openDataset(root, 'test'), (e) => oneLine(e, "'test'", "'train'", "'val'"));
  fs.writeFileSync(path.join(root, 'ann_dir', 'val', 'orphan.png'), grayPng(labelsOf(10, 6, 3)));
  await assert.rejects(openDataset(root, 'val'), (e) => oneLine(e, path.join(root, 'ann_dir', 'val', 'orphan.png'), 'mask without an image'));
  fs.rmSync(path.join(root, 'ann_dir', 'val', 'orphan.png'));
  fs.writeFileSync(path.join(root, 'img_dir', 'val', 'lonely.png'), await image(10, 6));
  await assert.rejects(openDataset(root, 'val'), (e) => oneLine(e, path.join(root, 'img_dir', 'val', 'lonely.png'), 'image without a mask'));
  // a label outside the 3 classes
  fs.rmSync(path.join(root, 'img_dir', 'val', 'lonely.png'));
  fs.writeFileSync(path.join(root, 'ann_dir', 'train', 'train1.png'), grayPng(labelsOf(10, 6, 4)));
  const train = await openDataset(root, 'train');
  await assert.rejects(readExample(train, 'train1'), (e) => oneLine(e, 'train1.png', 'label 3', '0..2'));
});

test('ADE20K layout: ADEChallengeData2016 under the folder given, training/validation, 150 classes, 0 ignored', async () => {
  const parent = tempDir('ade');
  const root = path.join(parent, 'ADEChallengeData2016');
  for (const split of ['training', 'validation']) {
    fs.mkdirSync(path.join(root, 'images', split), { recursive: true });
    fs.mkdirSync(path.join(root, 'annotations', split), { recursive: true });
    const id = `ADE_${split === 'training' ? 'train' : 'val'}_00000001`;
    fs.writeFileSync(path.join(root, 'images', split, `${id}.jpg`), await image(8, 5, 'jpeg'));
    fs.writeFileSync(path.join(root, 'annotations', split, `${id}.png`), grayPng({ width: 8, height: 5, data: new Uint8Array(40).map((_, i) => i % 151) }));
  }
  const val = await openDataset(parent, 'val');
  assert.equal(val.layout, 'ade20k');
  assert.deepEqual(val.ids, ['ADE_val_00000001']);
  assert.equal(val.labels.classes.length, 150);
  const ex = await readExample(val, val.ids[0]!);
  assert.deepEqual([...ex.mask.data.subarray(0, 3)], [255, 0, 1]);
  assert.deepEqual((await openDataset(root, 'training', { layout: 'ade20k' })).ids, ['ADE_train_00000001']);
  await assert.rejects(openDataset(parent, 'val', { layout: 'mmseg' }), (e) => oneLine(e, parent, 'mmseg'));
});

test('VOC through openDataset: index masks checked against the 21 classes; holdOut is a fixed function of the ids', async () => {
  const root = tempDir('voc');
  for (const d of ['JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation']) fs.mkdirSync(path.join(root, d), { recursive: true });
  fs.writeFileSync(path.join(root, 'ImageSets/Segmentation/train.txt'), 'x\n');
  fs.writeFileSync(path.join(root, 'JPEGImages/x.jpg'), await image(6, 4, 'jpeg'));
  fs.writeFileSync(path.join(root, 'SegmentationClass/x.png'), encodeMask({ width: 6, height: 4, data: new Uint8Array(24).fill(22) }));
  const ds = await openDataset(root, 'train');
  assert.equal(ds.layout, 'voc');
  assert.equal(ds.labels.classes.length, 21);
  await assert.rejects(readExample(ds, 'x'), (e) => oneLine(e, 'x.png', 'label 22', 'x=0 y=0', '0..20'));
  const ids = Array.from({ length: 100 }, (_, i) => `id${i}`);
  const a = holdOut(ids, 0.2, 'list');
  assert.equal(a.val.length, 20);
  assert.deepEqual(holdOut([...ids].reverse(), 0.2, 'list').val.sort(), [...a.val].sort());
  assert.throws(() => holdOut(['one'], 0.5, 'list'), (e) => oneLine(e, 'list'));
});

// ---------------------------------------------------------------------------------------------
// SBD

const sbdFixtures = path.join(fixtures, 'sbd');
const manifest = JSON.parse(fs.readFileSync(path.join(sbdFixtures, 'manifest.json'), 'utf8')) as Record<string, { height: number; width: number; hex: string }>;

test('MAT-file reader: SBD GTcls.Segmentation from scipy-written files (compressed and not), Boundaries skipped', () => {
  for (const [id, m] of Object.entries(manifest)) {
    const mask = decodeSbdMask(fs.readFileSync(path.join(sbdFixtures, `${id}.mat`)), `${id}.mat`);
    assert.equal(mask.height, m.height);
    assert.equal(mask.width, m.width);
    assert.equal(Buffer.from(mask.data).toString('hex'), m.hex, id);
  }
  const [id, m] = Object.entries(manifest)[0]!;
  const plain = decodeSbdMask(fs.readFileSync(path.join(sbdFixtures, `plain_${id}.mat`)), 'plain.mat');
  assert.equal(Buffer.from(plain.data).toString('hex'), m.hex);
  const gt = readMatVariable(fs.readFileSync(path.join(sbdFixtures, `plain_${id}.mat`)), 'p.mat', 'GTcls', ['Boundaries', 'Segmentation']);
  assert.deepEqual([...gt.fields!.keys()], ['Boundaries', 'Segmentation']);
  assert.deepEqual(gt.fields!.get('Boundaries')!.dims, [20, 1]);
});

test('MAT-file reader: damaged and hostile files are one-line errors naming the file', () => {
  const [id] = Object.keys(manifest);
  const good = fs.readFileSync(path.join(sbdFixtures, `plain_${id}.mat`));
  const cases: [string, Uint8Array, string][] = [
    ['short.mat', good.subarray(0, 100), '128-byte header'],
    ['truncated.mat', good.subarray(0, good.length - 200), 'not a readable MAT-file'],
    ['hdf5.mat', Buffer.concat([Buffer.from('\x89HDF\r\n'), Buffer.alloc(200)]), 'MAT-file'],
  ];
  // an element claiming more bytes than the file has
  const lying = Buffer.from(good);
  lying.writeUInt32LE(0x7fffffff, 132);
  cases.push(['lying.mat', lying, 'claims']);
  // a compressed element that inflates past the bound (zip bomb)
  const header = Buffer.from(good.subarray(0, 128));
  const bomb = deflateSync(Buffer.alloc(80 * 1024 * 1024));
  const tag = Buffer.alloc(8);
  tag.writeUInt32LE(15, 0);
  tag.writeUInt32LE(bomb.length, 4);
  cases.push(['bomb.mat', Buffer.concat([header, tag, bomb]), 'inflate']);
  // no GTcls
  cases.push(['empty.mat', header, "no variable 'GTcls'"]);
  for (const [name, bytes, says] of cases) assert.throws(() => decodeSbdMask(bytes, name), (e) => oneLine(e, name, says), name);
});

test('train_aug: VOC train + SBD train + SBD val - VOC val, de-duplicated; VOC masks win, SBD-only images from img/', async () => {
  assert.deepEqual(trainAugIds(['a', 'b'], ['c'], ['b', 'c', 'd'], ['e', 'a']), ['a', 'b', 'd', 'e']);
  const parent = tempDir('aug');
  const voc = path.join(parent, 'VOCdevkit', 'VOC2012');
  const sbd = path.join(parent, 'benchmark_RELEASE', 'dataset');
  for (const d of ['JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation']) fs.mkdirSync(path.join(voc, d), { recursive: true });
  for (const d of ['img', 'cls', 'inst']) fs.mkdirSync(path.join(sbd, d), { recursive: true });
  const ids = Object.keys(manifest); // 2008_000002, 2008_000003, 2011_000001
  const [a, b, c] = ids as [string, string, string];
  fs.writeFileSync(path.join(voc, 'ImageSets/Segmentation/train.txt'), `${a}\n`);
  fs.writeFileSync(path.join(voc, 'ImageSets/Segmentation/val.txt'), `2007_000001\n`);
  fs.writeFileSync(path.join(sbd, 'train.txt'), `${a}\n${b}\n2007_000001\n`);
  fs.writeFileSync(path.join(sbd, 'val.txt'), `${c}\n`);
  // a: VOC mask (all class 7) and image; b: SBD only; c: VOC image, SBD mask
  fs.writeFileSync(path.join(voc, 'JPEGImages', `${a}.jpg`), await image(manifest[a]!.width, manifest[a]!.height, 'jpeg'));
  fs.writeFileSync(path.join(voc, 'SegmentationClass', `${a}.png`), encodeMask({ width: manifest[a]!.width, height: manifest[a]!.height, data: new Uint8Array(manifest[a]!.width * manifest[a]!.height).fill(7) }));
  fs.writeFileSync(path.join(sbd, 'img', `${b}.jpg`), await image(manifest[b]!.width, manifest[b]!.height, 'jpeg'));
  fs.writeFileSync(path.join(voc, 'JPEGImages', `${c}.jpg`), await image(manifest[c]!.width, manifest[c]!.height, 'jpeg'));
  for (const id of ids) fs.copyFileSync(path.join(sbdFixtures, `${id}.mat`), path.join(sbd, 'cls', `${id}.mat`));
  const ds = await openDataset(parent, 'train_aug');
  assert.equal(ds.layout, 'voc+sbd');
  assert.deepEqual(ds.ids, [a, b, c]);
  assert.equal(ds.maskPath(a), path.join(voc, 'SegmentationClass', `${a}.png`));
  assert.equal(ds.imagePath(b), path.join(sbd, 'img', `${b}.jpg`));
  assert.equal(ds.maskPath(c), path.join(sbd, 'cls', `${c}.mat`));
  assert.ok((await readExample(ds, a)).mask.data.every((v) => v === 7));
  assert.equal(Buffer.from((await readExample(ds, b)).mask.data).toString('hex'), manifest[b]!.hex);
  assert.equal((await prepareSplit(ds, [1, 1], 'filter')).ids.length, 3);
  // a 5-class label space: SBD's class ids above 4 are named with the .mat file
  const small = await openDataset(parent, 'train_aug', { labels: labelsFromNames(['a', 'b', 'c', 'd', 'e']) });
  await assert.rejects(readExample(small, b), (e) => oneLine(e, `${b}.mat`, 'outside the label space'));
  // an id with no mask anywhere
  fs.rmSync(path.join(sbd, 'cls', `${b}.mat`));
  await assert.rejects(openDataset(parent, 'train_aug'), (e) => oneLine(e, `${b}.mat`, 'no such file'));
  const lone = tempDir('aug-nosbd');
  fs.mkdirSync(path.join(lone, 'ImageSets/Segmentation'), { recursive: true });
  await assert.rejects(openDataset(lone, 'train_aug'), (e) => oneLine(e, 'benchmark_RELEASE'));
});

// ---------------------------------------------------------------------------------------------
// Augmentation

test('rescale equals PyTorch interpolate (bilinear, align_corners=False; nearest for the mask)', () => {
  const ref = JSON.parse(fs.readFileSync(path.join(fixtures, 'augment', 'resize.json'), 'utf8')) as {
    height: number; width: number; cases: { height: number; width: number; image: number[]; mask: number[] }[];
  };
  const { height: H, width: W } = ref;
  const img = new Uint8Array(H * W * 3);
  const msk = new Uint8Array(H * W);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      for (let c = 0; c < 3; c++) img[(y * W + x) * 3 + c] = (37 * y + 11 * x + 80 * c) % 256;
      msk[y * W + x] = (3 * y + x) % 5;
    }
  }
  for (const cs of ref.cases) {
    const out = resizedWindow({ width: W, height: H, data: img }, { width: W, height: H, data: msk }, cs.height, cs.width, 0, 0, cs.height, cs.width);
    out.image.data.forEach((v, i) => assert.ok(Math.abs(v - cs.image[i]!) <= 0.5 + 1e-3, `${cs.height}x${cs.width} value ${i}: ${v} vs ${cs.image[i]}`));
    assert.deepEqual([...out.mask.data], cs.mask, `${cs.height}x${cs.width} mask`);
  }
});

test('augment: exact crop size, padding with 255 beyond the rescaled image, image and mask aligned, seeded', () => {
  const W = 40;
  const H = 30;
  // image channel 0 encodes the label, so alignment survives rescaling and flipping
  const mask: LabelMap = { width: W, height: H, data: new Uint8Array(W * H).map((_, i) => (Math.floor((i % W) / 8) + Math.floor(i / W / 6)) % 4) };
  const data = new Uint8Array(W * H * 3);
  mask.data.forEach((v, i) => data.set([v * 60, 0, 0], i * 3));
  const img = { width: W, height: H, data };
  let padded = 0;
  let agree = 0;
  let labelled = 0;
  for (let seed = 0; seed < 60; seed++) {
    const a = augment(img, mask, { crop: [32, 32], scale: [0.5, 2.0], flip: true }, new Rng(seed));
    const b = augment(img, mask, { crop: [32, 32], scale: [0.5, 2.0], flip: true }, new Rng(seed));
    assert.deepEqual(a, b);
    assert.equal(a.image.width, 32);
    assert.equal(a.mask.data.length, 32 * 32);
    a.mask.data.forEach((v, i) => {
      if (v === 255) {
        padded++;
        assert.deepEqual([...a.image.data.subarray(i * 3, i * 3 + 3)], [124, 116, 104]);
      } else {
        // nearest label vs bilinear colour: they agree except on label edges
        labelled++;
        if (Math.abs(a.image.data[i * 3]! - 60 * v) <= 1) agree++;
      }
    });
  }
  assert.ok(agree / labelled > 0.5, `image and mask aligned: ${agree} of ${labelled} pixels agree`);
  assert.ok(padded > 0, 'scales below 1 pad');
  // no scale, no flip: a plain random crop of the original
  const c = augment(img, mask, { crop: [10, 12] }, new Rng(3));
  const rng = new Rng(3);
  const top = rng.int(H - 10 + 1);
  const left = rng.int(W - 12 + 1);
  for (let y = 0; y < 10; y++) for (let x = 0; x < 12; x++) assert.equal(c.mask.data[y * 12 + x], mask.data[(top + y) * W + left + x]);
  assert.deepEqual(scaledSize(30, 40, 0.5), [15, 20]);
  assert.deepEqual(scaledSize(1, 1, 0.1), [1, 1]);
});

test('epochBatches with --scale: every example exactly the crop, and the same rng state gives the same batches (what resume relies on)', async () => {
  const root = tempDir('scale');
  for (const split of ['train']) {
    fs.mkdirSync(path.join(root, 'img_dir', split), { recursive: true });
    fs.mkdirSync(path.join(root, 'ann_dir', split), { recursive: true });
    for (let i = 0; i < 5; i++) {
      fs.writeFileSync(path.join(root, 'img_dir', split, `im${i}.png`), await image(20 + 3 * i, 14 + i));
      fs.writeFileSync(path.join(root, 'ann_dir', split, `im${i}.png`), grayPng(labelsOf(20 + 3 * i, 14 + i, 3)));
    }
  }
  const ds = await openDataset(root, 'train', { labels: labelsFromNames(['a', 'b', 'c']) });
  const run = async (rng: Rng) => {
    const out = [];
    for await (const b of epochBatches(ds, ds.ids, { batchSize: 2, crop: [16, 16], shuffle: true, rng, flip: true, scale: [0.5, 2.0] })) out.push(b);
    return out;
  };
  const rng = new Rng(7);
  await run(rng); // epoch 1
  const saved = rng.getState();
  const epoch2 = await run(rng);
  const resumed = await run(Rng.fromState(saved));
  assert.equal(epoch2.length, 2);
  assert.deepEqual(resumed, epoch2);
  for (const b of epoch2) {
    assert.equal(b.labels.length, 2 * 16 * 16);
    assert.ok(b.labels.every((v) => v < 3 || v === 255));
  }
});
