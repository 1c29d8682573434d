// The data and training commands as an acceptance run uses them (DESIGN.md's CLI contract), on
// datasets laid out as the tools write them: CVAT exports of images uploaded in folders (ids
// `set1/frame 001`), eval's perClassIoU keyed by the dataset's class names, score finding the
// classes of an mmsegmentation or ADE20K annotation folder, synth's lists when a split is empty,
// and duplicated --classes names as a usage error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { encode as encodePng } from 'fast-png';
import { tempDirs } from './helpers/tmp.js';
import { runCli } from './helpers/cli.js';
import { findDataset, openDataset, maskFolderLabels } from '../src/data/layouts.js';
import { checkVocFiles, readExample, readIdList, isImageId } from '../src/data/dataset.js';
import { encodeImage, type RgbImage } from '../src/data/image.js';
import { fcnResNet18 } from '../src/model/fcn.js';
import { initParameters, seededRandom } from '../src/model/params.js';
import { defaultCard } from '../src/model/card.js';
import { saveCheckpoint } from '../src/weights/checkpoint.js';
import { FcnError } from '../src/util/errors.js';

const { tempDir } = tempDirs('fcn-audit-');
const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../test/fixtures');

const NAMES = ['backdrop', 'road', 'car'];
const COLORS: [number, number, number][] = [[0, 0, 0], [250, 50, 83], [51, 221, 255]];

async function jpeg(width: number, height: number): Promise<Buffer> {
  const data = new Uint8Array(width * height * 3).map((_, i) => (i * 37) % 251);
  return encodeImage({ width, height, data } as RgbImage, 'jpeg');
}

/** Labels (x + y) % 3, with void (255) on the first row. */
function labels(width: number, height: number): Uint8Array {
  const data = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data[y * width + x] = y === 0 ? 255 : (x + y) % 3;
  return data;
}

function colourPng(width: number, height: number): Uint8Array {
  const l = labels(width, height);
  const data = new Uint8Array(l.length * 3);
  l.forEach((v, i) => data.set(v === 255 ? [224, 224, 192] : COLORS[v]!, i * 3));
  return encodePng({ width, height, data, channels: 3, depth: 8 });
}

function grayPng(width: number, height: number, data = labels(width, height)): Uint8Array {
  return encodePng({ width, height, data, channels: 1, depth: 8 });
}

function write(file: string, bytes: Uint8Array | string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, bytes);
}

/** CVAT's "Segmentation mask 1.1" export of a task whose images were uploaded in folders (item ids keep them). */
async function nestedCvatExport(root: string, ids: string[]): Promise<void> {
  write(path.join(root, 'labelmap.txt'), '# label:color_rgb:parts:actions\n' + NAMES.map((n, i) => `${n}:${COLORS[i]!.join(',')}::`).join('\n') + '\n');
  write(path.join(root, 'ImageSets/Segmentation/default.txt'), ids.join('\n') + '\n');
  for (const id of ids) {
    write(path.join(root, 'JPEGImages', `${id}.jpg`), await jpeg(40, 36));
    write(path.join(root, 'SegmentationClass', `${id}.png`), colourPng(40, 36));
    write(path.join(root, 'SegmentationObject', `${id}.png`), colourPng(40, 36));
  }
}

test('ids may name sub-folders and hold spaces (CVAT keeps them); .., backslashes and classification lists are refused', async () => {
  for (const id of ['2007_000032', 'set1/frame_001', 'set 2/IMG 0001', 'a/b/c']) assert.ok(isImageId(id), id);
  for (const id of ['../x', 'a/../b', 'a//b', '/abs', 'a/', 'a\\b', 'a\tb', 'a/ b', '.', 'x\u001b[31m']) assert.ok(!isImageId(id), id);
  const dir = tempDir('lists');
  const good = path.join(dir, 'good.txt');
  fs.writeFileSync(good, 'set1/frame_001\r\nset 2/IMG 0001\n\n');
  assert.deepEqual(await readIdList(good), ['set1/frame_001', 'set 2/IMG 0001']);
  const main = path.join(dir, 'cat_train.txt');
  fs.writeFileSync(main, '2008_000002 -1\n2008_000003  1\n');
  await assert.rejects(readIdList(main), (e) => e instanceof FcnError && e.message.includes(main) && e.message.includes('classification list') && !e.message.includes('\n'));
  const up = path.join(dir, 'up.txt');
  fs.writeFileSync(up, 'ok\n../../etc/passwd\n');
  await assert.rejects(readIdList(up), (e) => e instanceof FcnError && e.message.includes('line 2') && e.message.includes('not an image id'));
});

test('a CVAT export with images in folders: every id pairs with its image and colour mask below the folders', async () => {
  const root = tempDir('cvat-nested');
  const ids = ['set1/frame_001', 'set1/frame_002', 'set 2/IMG 0001', 'top'];
  await nestedCvatExport(root, ids);
  const ds = await openDataset(root, 'default');
  assert.equal(ds.layout, 'cvat');
  assert.deepEqual(ds.ids, ids);
  assert.deepEqual(ds.labels.classes, NAMES);
  for (const id of ids) {
    const ex = await readExample(ds, id);
    assert.deepEqual([ex.mask.width, ex.mask.height], [40, 36]);
    assert.deepEqual(Array.from(ex.mask.data.slice(40, 46)), [1, 2, 0, 1, 2, 0]);
  }
  const held = await openDataset(root, 'val', { valFraction: 0.5 });
  assert.equal(held.ids.length, 2);
  // with a held-out fraction, the list named as itself (--split default) is the rest: no val image is trained on
  for (const split of ['default', 'train']) {
    const rest = await openDataset(root, split, { valFraction: 0.5 });
    assert.deepEqual([...rest.ids, ...held.ids].sort(), [...ids].sort(), split);
  }
  // an export made without "Save images" has no JPEGImages/: said so
  const bare = tempDir('cvat-no-images');
  await nestedCvatExport(bare, ['a']);
  fs.rmSync(path.join(bare, 'JPEGImages'), { recursive: true });
  await assert.rejects(openDataset(bare, 'default'), (e) => e instanceof FcnError && e.message.includes('JPEGImages') && e.message.includes('Save images'));
  // a listed id whose sub-folder is missing is named, with the folders it was looked for in
  fs.appendFileSync(path.join(root, 'ImageSets/Segmentation/default.txt'), 'set3/gone\n');
  await assert.rejects(openDataset(root, 'default'), (e) => e instanceof FcnError && e.message.includes("'set3/gone'") && e.message.includes('JPEGImages'));
});

test('score: the classes of an mmsegmentation ann_dir/<split> (classes.json two up) and of ADE20K annotations/<split>', async () => {
  const mm = tempDir('mmseg');
  write(path.join(mm, 'classes.json'), JSON.stringify({ classes: NAMES, palette: COLORS }));
  write(path.join(mm, 'img_dir/val/a.jpg'), await jpeg(20, 10));
  write(path.join(mm, 'ann_dir/val/a.png'), grayPng(20, 10));
  assert.deepEqual((await maskFolderLabels(path.join(mm, 'ann_dir/val')))?.classes, NAMES);
  const ade = path.join(tempDir('ade'), 'ADEChallengeData2016');
  write(path.join(ade, 'images/validation/ADE_val_00000001.jpg'), await jpeg(20, 10));
  write(path.join(ade, 'annotations/validation/ADE_val_00000001.png'), grayPng(20, 10));
  const adeLabels = await maskFolderLabels(path.join(ade, 'annotations/validation'));
  assert.equal(adeLabels?.classes.length, 150);
  assert.equal(adeLabels?.reduceZeroLabel, true);
  assert.equal(await maskFolderLabels(tempDir('plain')), undefined);
  // ADE20K has its validation folder: a held-out fraction was silently ignored, it is refused
  await assert.rejects(openDataset(path.dirname(ade), 'train', { valFraction: 0.2 }), (e) => e instanceof FcnError && e.exitCode === 2 && e.message.includes('validation'));

  // the predictions: the truth itself (mmseg) and truth-1 (ADE20K's class ids), so every score is 1
  const pred = tempDir('pred');
  write(path.join(pred, 'a.png'), grayPng(20, 10));
  const json = path.join(tempDir('out'), 'mm.json');
  const r = await runCli(['score', '--pred', pred, '--gt', path.join(mm, 'ann_dir/val'), '--json', json]);
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(fs.readFileSync(json, 'utf8')) as { classes: string[]; perClassIoU: Record<string, number | null>; pixelAccuracy: number };
  assert.deepEqual(report.classes, NAMES);
  assert.deepEqual(Object.keys(report.perClassIoU), NAMES);
  assert.equal(report.pixelAccuracy, 1);

  const adePred = tempDir('ade-pred');
  const truth = labels(20, 10);
  // ADE's annotation value v is class v-1, 0 ignored: the annotation above (0 = ignored, 255 = void)
  write(path.join(adePred, 'ADE_val_00000001.png'), grayPng(20, 10, truth.map((v) => (v === 255 || v === 0 ? 7 : v - 1))));
  const adeJson = path.join(tempDir('out'), 'ade.json');
  const a = await runCli(['score', '--pred', adePred, '--gt', path.join(ade, 'annotations/validation'), '--json', adeJson]);
  assert.equal(a.status, 0, a.stderr);
  const adeReport = JSON.parse(fs.readFileSync(adeJson, 'utf8')) as { classes: string[]; pixelAccuracy: number };
  assert.equal(adeReport.classes[0], 'wall');
  assert.equal(adeReport.pixelAccuracy, 1);
});

test('eval --json keys perClassIoU by the dataset\'s class names (labelmap.txt, --classes), not the checkpoint\'s', async () => {
  const root = tempDir('eval-names');
  await nestedCvatExport(root, ['set1/a', 'b']);
  const arch = fcnResNet18({ numClasses: 3 });
  const model = path.join(tempDir('model'), 'm.safetensors');
  const card = defaultCard(3); // the checkpoint's own names: class_0, class_1, class_2
  await saveCheckpoint(model, { arch, weights: initParameters(arch, seededRandom(1)), ...card, metadata: {}, extra: new Map() });
  const json = path.join(root, 'out', 'm.json');
  const r = await runCli(['eval', '--model', model, '--data', root, '--split', 'default', '--threads', '1', '--json', json]);
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(fs.readFileSync(json, 'utf8')) as { classes: string[]; perClassIoU: Record<string, number | null>; confusionMatrix: number[][] };
  assert.deepEqual(report.classes, NAMES);
  assert.deepEqual(Object.keys(report.perClassIoU), NAMES);
  // full images: every non-void pixel of both 40x36 masks is counted
  assert.equal(report.confusionMatrix.flat().reduce((s, v) => s + v, 0), 2 * 40 * 35);
  assert.ok(r.stdout.includes('backdrop'), r.stdout);
  // --classes names the classes of a VOC root with index masks and no class file
  const voc = tempDir('eval-voc');
  for (const id of ['a', 'b']) {
    write(path.join(voc, 'JPEGImages', `${id}.jpg`), await jpeg(40, 36));
    write(path.join(voc, 'SegmentationClass', `${id}.png`), grayPng(40, 36));
  }
  write(path.join(voc, 'ImageSets/Segmentation/val.txt'), 'a\nb\n');
  const renamed = path.join(voc, 'renamed.json');
  const c = await runCli(['eval', '--model', model, '--data', voc, '--threads', '1', '--classes', 'x,y,z', '--json', renamed]);
  assert.equal(c.status, 0, c.stderr);
  assert.deepEqual(Object.keys((JSON.parse(fs.readFileSync(renamed, 'utf8')) as { perClassIoU: object }).perClassIoU), ['x', 'y', 'z']);
});

test('synth writes no list for a split of no images, so train names the missing split; duplicated --classes are a usage error', async () => {
  const root = path.join(tempDir('synth'), 'ds');
  const s = await runCli(['synth', '--out', root, '--train', '2', '--val', '0', '--size', '80x80']);
  assert.equal(s.status, 0, s.stderr);
  assert.deepEqual(fs.readdirSync(path.join(root, 'ImageSets/Segmentation')).sort(), ['train.txt', 'trainval.txt']);
  assert.ok(s.stdout.includes('{train,trainval}.txt'), s.stdout);
  const out = path.join(tempDir('run'), 'out');
  const t = await runCli(['train', '--data', root, '--out', out, '--crop', '32x32', '--batch-size', '1', '--epochs', '1', '--threads', '1']);
  assert.equal(t.status, 1);
  assert.ok(t.stderr.includes("no 'val' split") && t.stderr.includes('--val-fraction'), t.stderr);
  assert.equal(t.stderr.trim().split('\n').length, 1, t.stderr);
  assert.ok(!fs.existsSync(out));
  for (const args of [
    ['train', '--data', root, '--out', out, '--classes', 'a,b,a'],
    ['eval', '--model', 'x.safetensors', '--data', root, '--classes', 'a, b,b'],
    ['score', '--pred', root, '--gt', root, '--classes', 'a,a'],
    ['show', '--data', root, '--out', path.join(out, 'x.png'), '--classes', 'a,b,a'],
  ]) {
    const r = await runCli(args);
    assert.equal(r.status, 2, `${args[0]}: ${r.stderr}`);
    assert.ok(r.stderr.includes('twice') && r.stderr.trim().split('\n').length === 1, r.stderr);
  }
  assert.ok(!fs.existsSync(out));
});

test('an output path that cannot be written fails before the work: train --out, eval and score --json, show --out, synth --out', async () => {
  const dir = tempDir('in-the-way');
  const data = path.join(dir, 'ds');
  assert.equal((await runCli(['synth', '--out', data, '--train', '2', '--val', '1', '--size', '80x80'])).status, 0);
  const file = path.join(dir, 'a-file');
  fs.writeFileSync(file, 'mine');
  const runs = [
    ['train', '--data', data, '--out', path.join(file, 'run'), '--crop', '32x32', '--batch-size', '1', '--epochs', '1', '--threads', '1'],
    ['eval', '--model', path.join(dir, 'missing.safetensors'), '--data', data, '--json', dir],
    ['eval', '--model', path.join(dir, 'missing.safetensors'), '--data', data, '--json', path.join(file, 'm.json')],
    ['score', '--pred', path.join(data, 'SegmentationClass'), '--gt', path.join(data, 'SegmentationClass'), '--json', path.join(file, 'm.json')],
    ['show', '--data', data, '--out', path.join(file, 'x', 'grid.png')],
    ['synth', '--out', path.join(file, 'ds'), '--train', '1', '--val', '1', '--size', '80x80'],
  ];
  for (const args of runs) {
    const r = await runCli(args);
    assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
    // named before anything was read: not the missing model, no epoch, no table
    assert.match(r.stderr, /^fcn: .*(cannot create the output folder \(a file of that name is in the way|cannot write \(a folder of that name is in the way)/, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.equal(r.stdout, '', r.stdout);
  }
  assert.equal(fs.readFileSync(file, 'utf8'), 'mine');
});

test('eval\'s header check before scoring takes train_aug\'s SBD masks (MAT-files) and still names a broken PNG mask', async () => {
  const parent = tempDir('aug');
  const voc = path.join(parent, 'VOCdevkit', 'VOC2012');
  const sbd = path.join(parent, 'benchmark_RELEASE', 'dataset');
  const manifest = JSON.parse(fs.readFileSync(path.join(fixtures, 'sbd', 'manifest.json'), 'utf8')) as Record<string, { height: number; width: number }>;
  const [a, b] = Object.keys(manifest) as [string, string];
  write(path.join(voc, 'ImageSets/Segmentation/train.txt'), `${a}\n`);
  write(path.join(voc, 'ImageSets/Segmentation/val.txt'), 'v\n');
  write(path.join(sbd, 'train.txt'), `${b}\n`);
  write(path.join(sbd, 'val.txt'), `${b}\n`);
  write(path.join(voc, 'JPEGImages', `${a}.jpg`), await jpeg(manifest[a]!.width, manifest[a]!.height));
  write(path.join(voc, 'SegmentationClass', `${a}.png`), grayPng(manifest[a]!.width, manifest[a]!.height, new Uint8Array(manifest[a]!.width * manifest[a]!.height)));
  write(path.join(sbd, 'img', `${b}.jpg`), await jpeg(manifest[b]!.width, manifest[b]!.height));
  write(path.join(sbd, 'cls', `${b}.mat`), fs.readFileSync(path.join(fixtures, 'sbd', `${b}.mat`)));
  const ds = await openDataset(parent, 'train_aug');
  assert.equal(ds.maskPath(b), path.join(sbd, 'cls', `${b}.mat`));
  await checkVocFiles(ds);
  // a fraction held out of VOC's train would be trained on too (train_aug holds all of it)
  await assert.rejects(openDataset(parent, 'train_aug', { valFraction: 0.5 }), (e) => e instanceof FcnError && e.exitCode === 2 && e.message.includes('train_aug'));
  fs.writeFileSync(ds.maskPath(a), fs.readFileSync(ds.maskPath(a)).subarray(0, 10));
  await assert.rejects(checkVocFiles(ds), (e) => e instanceof FcnError && e.message.startsWith(ds.maskPath(a)));
});

test('train checks every listed file\'s header before the first step: a broken val or train mask fails at once, not an epoch in', async () => {
  const data = path.join(tempDir('headers'), 'ds');
  assert.equal((await runCli(['synth', '--out', data, '--train', '3', '--val', '2', '--size', '80x80'])).status, 0);
  for (const id of ['val_000001', 'train_000002']) {
    const mask = path.join(data, 'SegmentationClass', `${id}.png`);
    const good = fs.readFileSync(mask);
    fs.writeFileSync(mask, '');
    const out = path.join(tempDir('run'), 'out');
    const r = await runCli(['train', '--data', data, '--out', out, '--crop', '32x32', '--batch-size', '1', '--epochs', '1', '--threads', '1']);
    assert.equal(r.status, 1, r.stderr);
    assert.ok(r.stderr.startsWith(`fcn: ${mask}: not a readable PNG mask`) && r.stderr.trim().split('\n').length === 1, r.stderr);
    assert.equal(r.stdout, '', 'nothing started: no weights, no epoch');
    assert.ok(!fs.existsSync(out));
    fs.writeFileSync(mask, good);
  }
});

test('--merge refuses pixel counts past 2^53, where sums stop being exact', async () => {
  const { mergeMetrics } = await import('../src/queue/merge.js');
  const doc = (v: number) => JSON.stringify({ classes: ['a', 'b'], confusionMatrix: [[v, 1], [2, 3]] });
  assert.equal(mergeMetrics([{ file: 'x.json', text: doc(5) }, { file: 'y.json', text: doc(7) }]).matrix.counts[0], 12);
  assert.throws(() => mergeMetrics([{ file: 'big.json', text: doc(1e300) }]), (e) => e instanceof FcnError && e.message.startsWith('big.json:'));
  const half = { file: 'half.json', text: doc(2 ** 52) };
  assert.throws(() => mergeMetrics([half, half, half]), (e) => e instanceof FcnError && e.message.includes('2^53'));
});

test('class names holding control characters (a terminal escape in labelmap.txt or --classes) are refused, shown escaped', async () => {
  const { parseLabelmap, parseClassesJson } = await import('../src/data/labels.js');
  assert.throws(() => parseLabelmap('bg:0,0,0::\n\u001b[2Jroad:1,2,3::\n', 'lm.txt'), (e) => e instanceof FcnError && e.message.includes('lm.txt: class 1') && e.message.includes('\\x1b[2J'));
  assert.throws(() => parseClassesJson('["bg", "car\\u009b"]', 'c.json'), (e) => e instanceof FcnError && e.message.includes('c.json: class 1'));
  // too many classes is said as such (it was 'entry 256 has no colour')
  assert.throws(() => parseClassesJson(JSON.stringify(Array.from({ length: 300 }, (_, i) => `c${i}`)), 'c.json'), (e) => e instanceof FcnError && e.message.includes('300 classes, at most 255'));
  const data = path.join(tempDir('escapes'), 'ds');
  assert.equal((await runCli(['synth', '--out', data, '--train', '1', '--val', '1', '--size', '80x80'])).status, 0);
  fs.writeFileSync(path.join(data, 'labelmap.txt'), fs.readFileSync(path.join(data, 'labelmap.txt'), 'utf8').replace('circle', '\u001b[31mcircle\u001b[0m'));
  for (const args of [
    ['train', '--data', data, '--out', path.join(data, 'run'), '--crop', '32x32', '--batch-size', '1'],
    ['score', '--pred', path.join(data, 'SegmentationClass'), '--gt', path.join(data, 'SegmentationClass')],
  ]) {
    const r = await runCli(args);
    assert.equal(r.status, 1, r.stderr);
    assert.ok(r.stderr.includes('labelmap.txt: class 1') && !r.stderr.includes('\u001b') && !r.stdout.includes('\u001b'), r.stderr);
  }
  const c = await runCli(['score', '--pred', data, '--gt', data, '--classes', 'a\u001b[2J,b']);
  assert.equal(c.status, 2, c.stderr);
  assert.ok(!c.stderr.includes('\u001b'), c.stderr);
});

test('--data naming a file says so (not "no such directory")', async () => {
  const file = path.join(tempDir('data-file'), 'labelmap.txt');
  fs.writeFileSync(file, 'bg:0,0,0::\n');
  await assert.rejects(findDataset(file), (e) => e instanceof FcnError && e.message.startsWith(`${file}: a file, not a directory`));
  await assert.rejects(findDataset(path.join(file, 'x')), (e) => e instanceof FcnError && e.message.includes('no such directory'));
});

test('--upsampler with one of torchvision\'s networks (which has no transposed convs) is a usage error, not ignored', async () => {
  const data = path.join(tempDir('upsampler'), 'ds');
  assert.equal((await runCli(['synth', '--out', data, '--train', '1', '--val', '1', '--size', '80x80'])).status, 0);
  const out = path.join(data, 'run');
  const r = await runCli(['train', '--data', data, '--out', out, '--crop', '32x32', '--batch-size', '1', '--arch', 'lraspp_mobilenet_v3_large', '--upsampler', 'grouped']);
  assert.equal(r.status, 2, r.stderr);
  assert.ok(r.stderr.includes('--upsampler grouped is for the book') && r.stderr.trim().split('\n').length === 1, r.stderr);
  assert.ok(!fs.existsSync(out));
});

test('train refuses a training split that holds the ids --val-fraction held out (e.g. trainval)', async () => {
  const data = path.join(tempDir('overlap'), 'ds');
  assert.equal((await runCli(['synth', '--out', data, '--train', '4', '--val', '1', '--size', '80x80'])).status, 0);
  const out = path.join(data, 'run');
  const r = await runCli(['train', '--data', data, '--out', out, '--crop', '32x32', '--batch-size', '1', '--split', 'trainval', '--val-fraction', '0.5']);
  assert.equal(r.status, 2, r.stderr);
  assert.ok(r.stderr.includes("held-out validation ids") && r.stderr.includes("'trainval'") && r.stderr.trim().split('\n').length === 1, r.stderr);
  assert.ok(!fs.existsSync(out));
});

test('mmsegmentation splits are read below their sub-folders too (mmseg lists img_dir/ann_dir recursively)', async () => {
  const mm = tempDir('mmseg-nested');
  for (const [split, id] of [['train', 'city_a/0001'], ['train', 'city_b/0001'], ['train', 'top'], ['val', 'city_c/deep/0002']] as const) {
    write(path.join(mm, 'img_dir', split, `${id}.jpg`), await jpeg(20, 10));
    write(path.join(mm, 'ann_dir', split, `${id}.png`), grayPng(20, 10));
  }
  const train = await openDataset(mm, 'train');
  assert.equal(train.layout, 'mmseg');
  assert.deepEqual(train.ids, ['city_a/0001', 'city_b/0001', 'top']);
  for (const id of train.ids) assert.deepEqual([(await readExample(train, id)).mask.width], [20]);
  assert.deepEqual((await openDataset(mm, 'val')).ids, ['city_c/deep/0002']);
  // a nested mask without its image is named
  write(path.join(mm, 'ann_dir', 'train', 'city_a', 'lost.png'), grayPng(20, 10));
  await assert.rejects(openDataset(mm, 'train'), (e) => e instanceof FcnError && e.message.includes(path.join('city_a', 'lost.png')) && e.message.includes('mask without an image'));
});
