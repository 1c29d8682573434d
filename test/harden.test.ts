// Hardening against hostile input (issue 11), one test per failure the bad-input sweep found:
// decoders check declared sizes before allocating, the zip reader never inflates past what it
// needs, --threads is held to the machine, non-finite weights are refused at load, a batch
// survives its bad files, names from files are printed escaped, and wrong files are named for
// what they are. The end-to-end sweep over the CLI is test/sweep.slow.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { availableParallelism } from 'node:os';
import { encode as encodePng } from 'fast-png';
import sharp from 'sharp';
import { decodeImage, decodeMask, readMask, pngHeader, DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV } from '../src/data/image.js';
import { readIdList } from '../src/data/dataset.js';
import { readZip } from '../src/weights/zip.js';
import { readPth } from '../src/weights/pth.js';
import { encodeCheckpoint, loadCheckpoint, loadBackbone, decodeWeightFile, decodeCheckpoint } from '../src/weights/checkpoint.js';
import { encodeSafetensors } from '../src/weights/safetensors.js';
import { fcnResNet18 } from '../src/model/fcn.js';
import { initParameters, seededRandom, fcnParameters } from '../src/model/params.js';
import { defaultClasses, defaultColors, defaultNormalization } from '../src/model/card.js';
import { clampThreads } from '../src/engine/session.js';
import { parseThreads, parseIntFlag } from '../src/cli/options.js';
import { checkUpsample, upsampleImage } from '../src/infer/upsample.js';
import { predictFiles } from '../src/infer/predict.js';
import { loadModel } from '../src/infer/model.js';
import { printable, binaryOffset } from '../src/util/text.js';
import { mkdirFailure } from '../src/util/fs.js';
import { FcnError, UsageError } from '../src/util/errors.js';
import { zeroGrayPng, inflatingPth, onePth, deflatedZeros } from './helpers/badfiles.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fcn-harden-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

function oneLine(err: unknown, ...mustName: (string | RegExp)[]): true {
  assert.ok(err instanceof FcnError, `expected FcnError, got ${String(err)}`);
  assert.ok(!/[\n\r]/.test(err.message), `one line: ${err.message}`);
  for (const s of mustName) {
    if (typeof s === 'string') assert.ok(err.message.includes(s), `names '${s}': ${err.message}`);
    else assert.match(err.message, s);
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// 1. memory: declared sizes are checked before anything is allocated

test('a 40000x40000 mask (1.6 MB on disk) is refused from its header, without decoding', () => {
  const png = zeroGrayPng(40000, 40000);
  assert.ok(png.length < 2_000_000, `small on disk: ${png.length}`);
  assert.deepEqual(pngHeader(png), { width: 40000, height: 40000 });
  const before = process.memoryUsage().rss;
  const t0 = Date.now();
  assert.throws(() => decodeMask(png, 'huge.png'), (e) => oneLine(e, 'huge.png', '40000x40000', 'megapixels', MAX_PIXELS_ENV));
  assert.ok(Date.now() - t0 < 1000, 'refused at once');
  assert.ok(process.memoryUsage().rss - before < 200e6, 'nothing the size of the image was allocated');
});

test('a 100x100 mask whose pixel data inflates to 300 MB is refused once zlib passes what 100x100 holds', () => {
  const png = zeroGrayPng(100, 100, undefined, 300_000_000);
  assert.ok(png.length < 400_000, `small on disk: ${png.length}`);
  const before = process.memoryUsage().rss;
  const t0 = Date.now();
  assert.throws(() => decodeMask(png, 'bomb.png'), (e) => oneLine(e, 'bomb.png', 'inflates past', '100x100'));
  assert.ok(Date.now() - t0 < 1000, `refused at once (${Date.now() - t0} ms)`);
  assert.ok(process.memoryUsage().rss - before < 100e6, 'the data was never inflated whole');
  // an honest mask of the same size still decodes
  assert.equal(decodeMask(zeroGrayPng(100, 100), 'ok.png').data.length, 10000);
});

test('the pixel limit: a caller option and FCN_MAX_PIXELS lower or raise it', async () => {
  const small = Buffer.from(encodePng({ width: 30, height: 20, data: new Uint8Array(600), depth: 8, channels: 1 }));
  assert.equal(decodeMask(small, 's.png').width, 30);
  assert.throws(() => decodeMask(small, 's.png', { maxPixels: 599 }), (e) => oneLine(e, 's.png', '30x20'));
  assert.equal(decodeMask(small, 's.png', { maxPixels: 600 }).height, 20);
  const rgb = await sharp({ create: { width: 30, height: 20, channels: 3, background: '#808080' } }).jpeg().toBuffer();
  await assert.rejects(decodeImage(rgb, 'photo.jpg', { maxPixels: 100 }), (e) => oneLine(e, 'photo.jpg', '30x20', 'megapixels', '--max-pixels'));
  process.env[MAX_PIXELS_ENV] = '100';
  try {
    await assert.rejects(decodeImage(rgb, 'photo.jpg'), (e) => oneLine(e, 'photo.jpg', '30x20'));
    assert.throws(() => decodeMask(small, 's.png'), /s\.png: 30x20/);
    process.env[MAX_PIXELS_ENV] = 'lots';
    assert.throws(() => decodeMask(small, 's.png'), (e) => oneLine(e, MAX_PIXELS_ENV, 'lots'));
  } finally {
    delete process.env[MAX_PIXELS_ENV];
  }
  assert.equal((await decodeImage(rgb, 'photo.jpg')).width, 30);
  assert.equal(DEFAULT_MAX_PIXELS, 100_000_000);
});

/** A real small JPEG whose frame header (SOF0) is patched to declare width x height. */
async function jpegDeclaring(width: number, height: number): Promise<Buffer> {
  const jpg = Buffer.from(await sharp({ create: { width: 16, height: 16, channels: 3, background: '#000' } }).jpeg().toBuffer());
  for (let i = 2; i + 9 < jpg.length; i++) {
    if (jpg[i] === 0xff && jpg[i + 1] === 0xc0) {
      jpg.writeUInt16BE(height, i + 5);
      jpg.writeUInt16BE(width, i + 7);
      return jpg;
    }
  }
  throw new Error('no SOF0 marker');
}

test('a JPEG declaring more pixels than the limit is refused before decoding', async () => {
  const big = await jpegDeclaring(60000, 60000);
  const t0 = Date.now();
  await assert.rejects(decodeImage(big, 'big.jpg'), (e) => oneLine(e, 'big.jpg', '60000x60000', 'megapixels'));
  assert.ok(Date.now() - t0 < 1000);
});

test('readMask names the file when it cannot be read', async () => {
  await assert.rejects(readMask(path.join(tmp, 'nope.png')), (e) => oneLine(e, 'nope.png', 'no such file'));
  await assert.rejects(readMask(tmp), (e) => oneLine(e, tmp, 'is a directory'));
});

test('upsample: the scale is bounded and the output size checked before anything is allocated', async () => {
  assert.throws(() => checkUpsample(200, 200, 100), (e) => oneLine(e, '1..32', '100') && (e as FcnError).exitCode === 2);
  assert.throws(() => checkUpsample(200, 200, 0), /1\.\.32/);
  assert.throws(() => checkUpsample(2000, 2000, 4, { name: 'in.png' }), (e) => oneLine(e, 'in.png', '8000x8000', 'megapixels'));
  assert.deepEqual(checkUpsample(200, 200, 2), { width: 400, height: 400 });
  const img = { width: 200, height: 200, data: new Uint8Array(200 * 200 * 3) };
  const t0 = Date.now();
  await assert.rejects(upsampleImage(img, 100), /1\.\.32/);
  assert.ok(Date.now() - t0 < 1000);
});

test('zip: an entry that inflates past its declared size stops at that size (a 1.5 GB bomb in a 1.5 MB .pth)', () => {
  const pth = inflatingPth();
  assert.ok(pth.length < 2_000_000, `small on disk: ${pth.length}`);
  const before = process.memoryUsage().rss;
  const t0 = Date.now();
  assert.throws(() => readPth(pth, 'bomb.pth'), (e) => oneLine(e, 'bomb.pth', "'archive/data/0'", 'inflates to more than the 37888 bytes'));
  assert.ok(Date.now() - t0 < 2000, `refused quickly (${Date.now() - t0} ms)`);
  assert.ok(process.memoryUsage().rss - before < 300e6, 'never inflated the whole entry');
});

test('zip: an entry whose header honestly declares more than the pickle needs is refused before inflating', () => {
  const pth = inflatingPth(1_500_000_000, 1_500_000_000);
  assert.throws(() => readPth(pth, 'big.pth'), (e) => oneLine(e, 'big.pth', 'declares 1500000000 bytes', 'more than the 37888'));
  // the zip reader alone: a caller's bound is checked against the header
  const zip = readZip(onePth('w', 4), 'w.pth');
  assert.throws(() => zip.read('archive/data/0', 8), /declares 16 bytes, more than the 8 expected/);
  assert.equal(zip.read('archive/data/0', 16).length, 16);
  // and a well-formed .pth still reads
  const t = readPth(onePth('w', 4), 'w.pth').get('w')!;
  assert.deepEqual(t.shape, [4]);
  assert.equal(deflatedZeros(5).length > 0, true);
});

// ---------------------------------------------------------------------------------------------
// 2. threads

test('--threads above the core count is a usage error naming the cores; the engine clamps', () => {
  const cores = availableParallelism();
  assert.throws(() => parseThreads('1000'), (e) => e instanceof UsageError && e.exitCode === 2 && oneLine(e, '--threads 1000', `${cores} core`));
  assert.throws(() => parseThreads('0'), UsageError);
  assert.throws(() => parseThreads('two'), UsageError);
  assert.equal(parseThreads(String(cores)), cores);
  // every command builds its --threads parser through parseIntFlag: it is the same check
  assert.throws(() => parseIntFlag('--threads', 1)(String(cores + 1)), UsageError);
  assert.equal(clampThreads(1000), cores);
  assert.equal(clampThreads(0), 1);
  assert.equal(clampThreads(undefined), cores);
});

// ---------------------------------------------------------------------------------------------
// 4. non-finite weights

const arch2 = fcnResNet18({ numClasses: 2 });
const weights2 = initParameters(arch2, seededRandom(1));
let cleanCheckpoint: Uint8Array | undefined;

/** A 2-class checkpoint with one value of `tensor` set to `value` (patched into the encoded bytes). */
function checkpointWith(tensor: string, index: number, value: number): Uint8Array {
  cleanCheckpoint ??= encodeCheckpoint({
    arch: arch2, weights: weights2, extra: new Map(), metadata: {},
    classes: defaultClasses(2), colors: defaultColors(2), normalization: defaultNormalization(),
  });
  const bytes = Uint8Array.from(cleanCheckpoint);
  const dv = new DataView(bytes.buffer);
  const n = Number(dv.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, { data_offsets: [number, number] }>;
  dv.setFloat32(8 + n + header[tensor]!.data_offsets[0] + 4 * index, value, true);
  return bytes;
}

test('NaN or ±Inf in any parameter is refused at load, naming the file and the first such tensor', async () => {
  const cases: [string, string, number, number][] = [
    ['nan-bias.safetensors', 'final_conv.bias', 1, NaN],
    ['inf.safetensors', 'layer2.0.conv1.weight', 7, Infinity],
  ];
  for (const [name, tensor, index, value] of cases) {
    const file = path.join(tmp, name);
    fs.writeFileSync(file, checkpointWith(tensor, index, value));
    await assert.rejects(loadCheckpoint(file), (e) => oneLine(e, file, `'${tensor}'`, `index ${index}`, 'finite'));
  }
  // the backbone loader too (train --backbone, --init go through the same readers)
  const nanBody = path.join(tmp, 'nan-body.safetensors');
  fs.writeFileSync(nanBody, checkpointWith('bn1.running_var', 0, -Infinity));
  await assert.rejects(loadBackbone(nanBody, arch2), (e) => oneLine(e, nanBody, "'bn1.running_var'", '-Infinity'));
  // a clean file loads
  const ok = path.join(tmp, 'ok.safetensors');
  fs.writeFileSync(ok, cleanCheckpoint!);
  assert.equal((await loadCheckpoint(ok)).arch.numClasses, 2);
});

test('a book-layout .pth with one NaN names the tensor as the file does', () => {
  const bad = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  for (const s of fcnParameters(arch2)) {
    const v = Float32Array.from(weights2.get(s.name)!);
    if (s.name === 'final_conv.bias') v[0] = NaN;
    bad.set(s.name, { shape: s.shape, data: v });
  }
  const wf = decodeWeightFile(encodeSafetensors(bad), 'plain.safetensors');
  assert.throws(() => decodeCheckpoint(wf, 'plain.safetensors'), (e) => oneLine(e, 'plain.safetensors', "'final_conv.bias'", 'NaN'));
});

// ---------------------------------------------------------------------------------------------
// 8. a ResNet-50 where ResNet-18 weights belong

function resnet50Keys(): Map<string, { shape: number[]; data: Float32Array }> {
  const m = new Map<string, { shape: number[]; data: Float32Array }>();
  // the names tell the network; the shapes are kept tiny (the kind is known before shapes are checked)
  const t = (_shape: number[]) => ({ shape: [1], data: new Float32Array(1) });
  m.set('conv1.weight', t([64, 3, 7, 7]));
  for (const k of ['weight', 'bias', 'running_mean', 'running_var']) m.set(`bn1.${k}`, t([64]));
  [3, 4, 6, 3].forEach((n, stage) => {
    const width = 64 * 2 ** stage;
    for (let b = 0; b < n; b++) {
      for (const c of [1, 2, 3]) {
        m.set(`layer${stage + 1}.${b}.conv${c}.weight`, t([c === 3 ? width * 4 : width, c === 1 ? (b === 0 ? (stage === 0 ? 64 : width * 2) : width * 4) : width, c === 2 ? 3 : 1, c === 2 ? 3 : 1]));
        m.set(`layer${stage + 1}.${b}.bn${c}.weight`, t([c === 3 ? width * 4 : width]));
      }
    }
  });
  m.set('fc.weight', t([1000, 2048]));
  m.set('fc.bias', t([1000]));
  return m;
}

test("torchvision's ResNet-50 given for a ResNet-18 says what it is (not a shape error)", async () => {
  const file = path.join(tmp, 'resnet50.safetensors');
  fs.writeFileSync(file, encodeSafetensors(resnet50Keys(), { format: 'pt' }));
  await assert.rejects(loadBackbone(file, arch2), (e) => oneLine(e, file, 'ResNet-50', 'bottleneck', 'ResNet-18'));
  await assert.rejects(loadCheckpoint(file), (e) => oneLine(e, file, 'ResNet-50', 'not an FCN'));
});

test('a read-only file system is reported as such, not as a missing folder', () => {
  // Node's recursive mkdir turns EROFS into ENOENT; making the first missing folder alone tells the truth
  const enoent = Object.assign(new Error('ENOENT: no such file or directory'), { code: 'ENOENT' });
  const erofs = Object.assign(new Error('EROFS: read-only file system'), { code: 'EROFS' });
  const made: string[] = [];
  const real = mkdirFailure(path.join(tmp, 'a', 'b', 'c'), enoent, (p) => { made.push(p); throw erofs; });
  assert.equal(real, erofs);
  assert.deepEqual(made, [path.join(tmp, 'a')], 'the first missing folder under an existing one');
  const eacces = Object.assign(new Error('EACCES'), { code: 'EACCES' });
  assert.equal(mkdirFailure('/x', eacces), eacces, 'other errors pass through');
});

// ---------------------------------------------------------------------------------------------
// 6. names from files

test('printable escapes terminal control sequences; binary data is recognised', () => {
  assert.equal(printable('a\x1b[2Jb\x1b]0;pwned\x07c'), 'a\\x1b[2Jb\\x1b]0;pwned\\x07c');
  assert.equal(printable('x\ny\u009b\u202e'), 'x\\ny\\x9b\\u202e');
  assert.equal(printable('2007_000032 été'), '2007_000032 été');
  assert.equal(binaryOffset(Buffer.from('2007_000032\n2007_000033\r\n')), -1);
  assert.equal(binaryOffset(Buffer.from([0x32, 0x30, 0x00, 0x31])), 2);
  assert.equal(binaryOffset(Buffer.from([0x61, 0xff, 0xfe])), 1);
});

test('an id list line with terminal escapes is refused with the line shown escaped; a binary list is refused as such', async () => {
  const list = path.join(tmp, 'evil.txt');
  fs.writeFileSync(list, '2007_000032\n\x1b[2J\x1b]0;pwned\x07\n');
  await assert.rejects(readIdList(list), (e) => oneLine(e, list, 'line 2', '\\x1b[2J') && !/\x1b|\x07/.test((e as Error).message));
  const bin = path.join(tmp, 'list.png');
  fs.writeFileSync(bin, zeroGrayPng(8, 8));
  await assert.rejects(readIdList(bin), (e) => oneLine(e, bin, 'binary data'));
  const utf16 = path.join(tmp, 'utf16.txt');
  fs.writeFileSync(utf16, Buffer.from('\ufeffa\nb\n', 'utf16le'));
  await assert.rejects(readIdList(utf16), (e) => oneLine(e, utf16, 'binary'));
});

// ---------------------------------------------------------------------------------------------
// 5. a batch with bad files

test('predictFiles segments every readable image, reports each unreadable one, and failFast stops at the first', async () => {
  const dir = path.join(tmp, 'batch');
  fs.mkdirSync(dir);
  const good = path.join(dir, 'good.png');
  await sharp({ create: { width: 40, height: 30, channels: 3, background: '#336699' } }).png().toFile(good);
  const good2 = path.join(dir, 'good2.jpg');
  await sharp({ create: { width: 33, height: 21, channels: 3, background: '#993366' } }).jpeg().toFile(good2);
  const truncated = path.join(dir, 'truncated.png');
  fs.writeFileSync(truncated, fs.readFileSync(good).subarray(0, 60));
  const missing = path.join(dir, 'missing.png');
  const huge = path.join(dir, 'huge.png');
  fs.writeFileSync(huge, zeroGrayPng(40000, 40000, 2000));
  const model = await loadModel({ numClasses: 2 }, { threads: 1 });
  try {
    const out = path.join(tmp, 'batch-out');
    const reported: string[] = [];
    const res = await predictFiles(model, [good, truncated, missing, huge, good2], { outDir: out, onError: (f) => reported.push(f) });
    assert.deepEqual(res.failed.map((f) => f.file), [truncated, missing, huge]);
    assert.deepEqual(reported, [truncated, missing, huge]);
    for (const f of res.failed) assert.ok(oneLine(f.error, f.file));
    assert.deepEqual(fs.readdirSync(out).sort(), ['good.png', 'good2.png']);
    const fast = path.join(tmp, 'batch-fast');
    await assert.rejects(predictFiles(model, [good, truncated, good2], { outDir: fast, failFast: true }), (e) => oneLine(e, truncated));
    assert.deepEqual(fs.readdirSync(fast), ['good.png']);
  } finally {
    await model.dispose();
  }
});
