// The bad-input sweep (issue 11), kept: the built CLI (`node bin/fcn.js ...`) run over bad inputs
// across every command: truncated, binary and huge-declared images and masks, malicious and odd
// weight files, bad flags, missing files, unwritable outputs. For each: exit code 1 (bad input)
// or 2 (usage), exactly the expected stderr lines (one, unless a batch names several files), each
// naming the file or flag, no stack trace, no partial or temp output file, bounded time; for the
// three that once took gigabytes, under 5 s and 1 GB peak memory.
// FCN_SWEEP_BIN=/path/to/bin/fcn.js runs the sweep against another build (e.g. main before a fix).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { encode as encodePng } from 'fast-png';
import { encodeCheckpoint } from '../src/weights/checkpoint.js';
import { encodeSafetensors } from '../src/weights/safetensors.js';
import { fcnResNet18 } from '../src/model/fcn.js';
import { initParameters, seededRandom } from '../src/model/params.js';
import { defaultClasses, defaultColors, defaultNormalization } from '../src/model/card.js';
import { encodeMask } from '../src/data/image.js';
import { zeroGrayPng, inflatingPth } from './helpers/badfiles.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = process.env['FCN_SWEEP_BIN'] ?? path.join(repoRoot, 'bin', 'fcn.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fcn-sweep-'));
const p = (...parts: string[]) => path.join(tmp, ...parts);

// peak memory of the child: it writes its own maxRSS when it exits (no /usr/bin/time needed)
const rssHook = p('rss-hook.mjs');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  lines: string[];
  seconds: number;
  /** Peak resident memory in MB. */
  peakMb: number;
}

function fcn(args: string[], env: Record<string, string> = {}): Run {
  const rssFile = p(`rss-${process.hrtime.bigint()}.txt`);
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, ['--import', pathToFileURL(rssHook).href, bin, ...args], {
    cwd: tmp, encoding: 'utf8', timeout: 60_000,
    env: { ...process.env, NODE_NO_WARNINGS: '1', FCN_RSS_FILE: rssFile, ...env },
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const peakMb = fs.existsSync(rssFile) ? Number(fs.readFileSync(rssFile, 'utf8')) / 1024 : NaN;
  const lines = r.stderr.split('\n').filter((l) => l.length > 0);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, lines, seconds, peakMb };
}

interface Expect {
  /** Exit code: 1 bad input, 2 usage. */
  code: 1 | 2;
  /** What stderr must name (file or flag); one entry per expected line, in order. */
  names: (string | RegExp)[];
  /** Also a final summary line matching this (batches). */
  summary?: RegExp;
  /** Paths that must not exist afterwards (no partial output). */
  absent?: string[];
  /** Paths that must exist afterwards (a batch's good results). */
  present?: string[];
  /** Folders that must hold no temp files afterwards. */
  clean?: string[];
  maxSeconds?: number;
  maxPeakMb?: number;
  env?: Record<string, string>;
}

function check(args: string[], e: Expect): void {
  const r = fcn(args, e.env);
  const shown = `fcn ${args.join(' ')}\n  exit ${r.code}, ${r.seconds.toFixed(1)} s, ${r.peakMb.toFixed(0)} MB\n  stderr: ${r.stderr}`;
  assert.equal(r.code, e.code, `exit code\n${shown}`);
  assert.ok(!/\n\s+at .+[:(]/.test(r.stderr) && !r.stderr.includes('internal error'), `no stack trace\n${shown}`);
  assert.ok(!/[\x00-\x08\x0b-\x1f\x7f]/.test(r.stderr), `no raw control characters on stderr\n${shown}`);
  const expected = e.names.length + (e.summary ? 1 : 0);
  assert.equal(r.lines.length, expected, `${expected} stderr line(s)\n${shown}`);
  e.names.forEach((name, i) => {
    const line = r.lines[i]!;
    if (typeof name === 'string') assert.ok(line.includes(name), `line ${i + 1} names ${name}\n${shown}`);
    else assert.match(line, name, shown);
  });
  if (e.summary) assert.match(r.lines[r.lines.length - 1]!, e.summary, shown);
  for (const f of e.absent ?? []) assert.ok(!fs.existsSync(f), `no partial output ${f}\n${shown}`);
  for (const f of e.present ?? []) assert.ok(fs.existsSync(f), `wrote ${f}\n${shown}`);
  for (const dir of e.clean ?? []) {
    const temps = fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => n.endsWith('.tmp')) : [];
    assert.deepEqual(temps, [], `no temp files left in ${dir}\n${shown}`);
  }
  assert.ok(r.seconds < (e.maxSeconds ?? 30), `under ${e.maxSeconds ?? 30} s\n${shown}`);
  if (e.maxPeakMb !== undefined) assert.ok(r.peakMb < e.maxPeakMb, `peak memory under ${e.maxPeakMb} MB\n${shown}`);
}

// ---------------------------------------------------------------------------------------------
// the inputs, all made here, all small on disk

const arch = fcnResNet18({ numClasses: 2 });
let clean: Uint8Array;

/** The 2-class checkpoint with one float of `tensor` overwritten by `value`. */
function poisoned(tensor: string, value: number): Uint8Array {
  const bytes = Uint8Array.from(clean);
  const dv = new DataView(bytes.buffer);
  const n = Number(dv.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, { data_offsets: [number, number] }>;
  dv.setFloat32(8 + n + header[tensor]!.data_offsets[0], value, true);
  return bytes;
}

async function rgbPng(file: string, width: number, height: number, colour = '#446688'): Promise<void> {
  await sharp({ create: { width, height, channels: 3, background: colour } }).png().toFile(file);
}

async function jpegDeclaring(width: number, height: number): Promise<Buffer> {
  const jpg = Buffer.from(await sharp({ create: { width: 16, height: 16, channels: 3, background: '#000' } }).jpeg().toBuffer());
  const sof = jpg.indexOf(Buffer.from([0xff, 0xc0]), 2);
  jpg.writeUInt16BE(height, sof + 5);
  jpg.writeUInt16BE(width, sof + 7);
  return jpg;
}

function mask(width: number, height: number, fill: number): Uint8Array {
  return encodeMask({ width, height, data: new Uint8Array(width * height).fill(fill) });
}

/** A VOC layout: one good example 'a' (40x30), plus the named extra id lists. */
async function voc(root: string, lists: Record<string, string | Uint8Array>, extra: (root: string) => Promise<void> = async () => {}): Promise<void> {
  for (const d of ['JPEGImages', 'SegmentationClass', path.join('ImageSets', 'Segmentation')]) fs.mkdirSync(path.join(root, d), { recursive: true });
  await sharp({ create: { width: 40, height: 30, channels: 3, background: '#808080' } }).jpeg().toFile(path.join(root, 'JPEGImages', 'a.jpg'));
  fs.writeFileSync(path.join(root, 'SegmentationClass', 'a.png'), mask(40, 30, 1));
  for (const [name, text] of Object.entries(lists)) fs.writeFileSync(path.join(root, 'ImageSets', 'Segmentation', `${name}.txt`), text);
  await extra(root);
}

const ESCAPES = '\x1b[2J\x1b]0;pwned\x07';

before(async () => {
  fs.writeFileSync(rssHook, "import { writeFileSync } from 'node:fs';\n" +
    "process.on('exit', () => { if (process.env.FCN_RSS_FILE) writeFileSync(process.env.FCN_RSS_FILE, String(process.resourceUsage().maxRSS)); });\n");
  clean = encodeCheckpoint({
    arch, weights: initParameters(arch, seededRandom(3)), extra: new Map(), metadata: {},
    classes: defaultClasses(2), colors: defaultColors(2), normalization: defaultNormalization(),
  });
  fs.writeFileSync(p('model.safetensors'), clean);
  fs.writeFileSync(p('nan.safetensors'), poisoned('final_conv.bias', NaN));
  fs.writeFileSync(p('inf.safetensors'), poisoned('layer3.1.conv2.weight', Infinity));
  fs.writeFileSync(p('half.safetensors'), clean.subarray(0, clean.length >> 1));
  fs.writeFileSync(p('empty.safetensors'), '');
  fs.writeFileSync(p('notes.txt'), 'these are notes, not weights\n');
  fs.writeFileSync(p('bomb.pth'), inflatingPth());
  fs.writeFileSync(p('declared.pth'), inflatingPth(1_500_000_000, 1_500_000_000));
  fs.copyFileSync(path.join(repoRoot, 'test', 'fixtures', 'pth', 'malicious_os_system.pth'), p('malicious.pth'));
  // torchvision's ResNet-50 names (values do not matter: the names say what it is)
  const r50 = new Map<string, { shape: number[]; data: Float32Array }>();
  const one = { shape: [1], data: new Float32Array(1) };
  r50.set('conv1.weight', one);
  [3, 4, 6, 3].forEach((n, s) => { for (let b = 0; b < n; b++) for (const c of [1, 2, 3]) r50.set(`layer${s + 1}.${b}.conv${c}.weight`, one); });
  r50.set('fc.weight', one);
  fs.writeFileSync(p('resnet50.safetensors'), encodeSafetensors(r50));

  await rgbPng(p('good.png'), 40, 30);
  await sharp({ create: { width: 33, height: 21, channels: 3, background: '#993366' } }).jpeg().toFile(p('good2.jpg'));
  fs.writeFileSync(p('truncated.png'), fs.readFileSync(p('good.png')).subarray(0, 60));
  fs.writeFileSync(p('empty.png'), '');
  fs.writeFileSync(p('huge.png'), zeroGrayPng(40000, 40000, 4000));
  fs.writeFileSync(p('huge.jpg'), await jpegDeclaring(60000, 60000));
  await rgbPng(p('small200.png'), 200, 200);
  fs.mkdirSync(p('dir.png'));
  fs.writeFileSync(p('a-file'), 'in the way of a folder\n');

  // masks for score: a good pair, and one bad gt per folder
  const scoreCase = (name: string, pred: Uint8Array, gt: Uint8Array) => {
    fs.mkdirSync(p(name, 'pred'), { recursive: true });
    fs.mkdirSync(p(name, 'gt'), { recursive: true });
    fs.writeFileSync(p(name, 'pred', 'x.png'), pred);
    fs.writeFileSync(p(name, 'gt', 'x.png'), gt);
  };
  scoreCase('s-huge', mask(4, 4, 0), zeroGrayPng(40000, 40000));
  scoreCase('s-inflate', mask(4, 4, 0), zeroGrayPng(4, 4, undefined, 1_500_000_000));
  scoreCase('s-trunc', mask(4, 4, 0), mask(4, 4, 0).subarray(0, 40));
  scoreCase('s-jpeg', mask(4, 4, 0), await sharp({ create: { width: 4, height: 4, channels: 3, background: '#000' } }).jpeg().toBuffer());
  scoreCase('s-16bit', mask(4, 4, 0), encodePng({ width: 4, height: 4, data: new Uint16Array(16), depth: 16, channels: 1 }));
  scoreCase('s-size', mask(4, 4, 0), mask(5, 4, 0));
  scoreCase('s-value', mask(4, 4, 0), mask(4, 4, 100));
  scoreCase('s-void', mask(4, 4, 0), mask(4, 4, 255));
  scoreCase('s-good', mask(4, 4, 1), mask(4, 4, 1));
  fs.mkdirSync(p('s-empty'));
  fs.writeFileSync(p('evil.txt'), `x\n${ESCAPES}\n`);
  fs.writeFileSync(p('binary.txt'), fs.readFileSync(p('good.png')));

  // datasets for eval and show
  await voc(p('voc'), { val: 'a\n', evil: `a\n${ESCAPES}\n`, binary: fs.readFileSync(p('good.png')), trunc: 't\n', huge: 'h\n', big: 'b\n' }, async (root) => {
    fs.writeFileSync(path.join(root, 'JPEGImages', 't.jpg'), fs.readFileSync(path.join(root, 'JPEGImages', 'a.jpg')).subarray(0, 100));
    fs.writeFileSync(path.join(root, 'SegmentationClass', 't.png'), mask(40, 30, 1));
    // 'h': an honest 40x30 image whose mask declares 40000x40000; 'b': a 20000x20000 mask, as the eval
    fs.copyFileSync(path.join(root, 'JPEGImages', 'a.jpg'), path.join(root, 'JPEGImages', 'h.jpg'));
    fs.writeFileSync(path.join(root, 'SegmentationClass', 'h.png'), zeroGrayPng(40000, 40000));
    fs.copyFileSync(path.join(root, 'JPEGImages', 'a.jpg'), path.join(root, 'JPEGImages', 'b.jpg'));
    fs.writeFileSync(path.join(root, 'SegmentationClass', 'b.png'), zeroGrayPng(20000, 20000));
  });
});

after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const M = () => ['--model', p('model.safetensors')];
const OUT = () => p('out');

// ---------------------------------------------------------------------------------------------
// predict: bad images

test('predict: a truncated PNG', () => check(['predict', ...M(), '--out', OUT(), p('truncated.png')], { code: 1, names: ['truncated.png'], absent: [p('out', 'truncated.png')], clean: [OUT()] }));
test('predict: a missing image', () => check(['predict', ...M(), '--out', OUT(), p('missing.png')], { code: 1, names: [/missing\.png.*no such file/] }));
test('predict: a text file given as an image', () => check(['predict', ...M(), '--out', OUT(), p('notes.txt')], { code: 1, names: ['notes.txt'], absent: [p('out', 'notes.png')] }));
test('predict: an empty file', () => check(['predict', ...M(), '--out', OUT(), p('empty.png')], { code: 1, names: ['empty.png'] }));
test('predict: a folder given as an image', () => check(['predict', ...M(), '--out', OUT(), p('dir.png')], { code: 1, names: ['dir.png'] }));
test('predict: a PNG declaring 40000x40000', () => check(['predict', ...M(), '--out', OUT(), p('huge.png')], { code: 1, names: [/huge\.png.*40000x40000/], maxPeakMb: 1024 }));
test('predict: a JPEG declaring 60000x60000', () => check(['predict', ...M(), '--out', OUT(), p('huge.jpg')], { code: 1, names: [/huge\.jpg.*60000x60000/], maxPeakMb: 1024 }));
test('predict: --max-pixels below the image', () => check(['predict', ...M(), '--max-pixels', '100', '--out', OUT(), p('good.png')], { code: 1, names: [/good\.png.*40x30/], absent: [p('out', 'good.png')] }));

// predict: bad weight files
test('predict: a missing model', () => check(['predict', '--model', p('nope.safetensors'), p('good.png')], { code: 1, names: ['nope.safetensors'] }));
test('predict: an empty model file', () => check(['predict', '--model', p('empty.safetensors'), p('good.png')], { code: 1, names: ['empty.safetensors'] }));
test('predict: a text file as the model', () => check(['predict', '--model', p('notes.txt'), p('good.png')], { code: 1, names: ['notes.txt'] }));
test('predict: a truncated checkpoint', () => check(['predict', '--model', p('half.safetensors'), p('good.png')], { code: 1, names: ['half.safetensors'] }));
test('predict: a folder as the model', () => check(['predict', '--model', p('dir.png'), p('good.png')], { code: 1, names: ['dir.png'] }));
test('predict: NaN in final_conv.bias', () => check(['predict', ...M().slice(0, 1), p('nan.safetensors'), '--out', OUT(), p('good.png')], { code: 1, names: [/nan\.safetensors.*'final_conv\.bias'.*NaN/], absent: [p('out', 'good.png')] }));
test('predict: +Inf in a conv weight', () => check(['predict', '--model', p('inf.safetensors'), p('good.png')], { code: 1, names: [/inf\.safetensors.*'layer3\.1\.conv2\.weight'/] }));
test('predict: a .pth whose 37 KB storage inflates to 1.5 GB', () => check(['predict', '--model', p('bomb.pth'), p('good.png')], { code: 1, names: [/bomb\.pth.*inflates to more than/], maxSeconds: 5, maxPeakMb: 1024 }));
test('predict: a .pth whose storage entry declares 1.5 GB', () => check(['predict', '--model', p('declared.pth'), p('good.png')], { code: 1, names: [/declared\.pth.*declares 1500000000 bytes/], maxSeconds: 5, maxPeakMb: 1024 }));
test('predict: a malicious pickle', () => check(['predict', '--model', p('malicious.pth'), p('good.png')], { code: 1, names: ['malicious.pth'] }));
test("predict: torchvision's ResNet-50 as the model", () => check(['predict', '--model', p('resnet50.safetensors'), p('good.png')], { code: 1, names: [/resnet50\.safetensors.*ResNet-50/] }));

// predict: bad flags
test('predict: --threads 1000', () => check(['predict', ...M(), '--threads', '1000', p('good.png')], { code: 2, names: [/--threads 1000.*core/] }));
test('predict: --threads 0', () => check(['predict', ...M(), '--threads', '0', p('good.png')], { code: 2, names: ['--threads'] }));
test('predict: --tile 10', () => check(['predict', ...M(), '--tile', '10', p('good.png')], { code: 2, names: ['--tile'] }));
test('predict: --max-pixels 0', () => check(['predict', ...M(), '--max-pixels', '0', p('good.png')], { code: 2, names: ['--max-pixels'] }));
test('predict: two inputs with one stem', () => check(['predict', ...M(), '--out', OUT(), p('good.png'), p('sub', 'good.jpg')], { code: 2, names: ['good'] }));
test('predict: no images', () => check(['predict', ...M()], { code: 2, names: [/images/] }));
test('predict: an unknown flag', () => check(['predict', ...M(), '--colour', p('good.png')], { code: 2, names: ['--colour'] }));
test('predict: no --model', () => check(['predict', p('good.png')], { code: 2, names: ['--model'] }));

// predict: batches and outputs
test('predict: a batch segments every readable image, names each bad one, exits 1 with the count', () => {
  const out = p('batch');
  check(['predict', ...M(), '--threads', '1', '--out', out, p('good.png'), p('truncated.png'), p('huge.png'), p('good2.jpg')], {
    code: 1, names: ['truncated.png', 'huge.png'], summary: /2 of 4 images could not be read/,
    present: [path.join(out, 'good.png'), path.join(out, 'good2.png')], absent: [path.join(out, 'truncated.png'), path.join(out, 'huge.png')], clean: [out],
  });
});
test('predict: --fail-fast stops at the first bad image (found from the headers, before anything is written)', () => {
  const out = p('batch-ff');
  check(['predict', ...M(), '--threads', '1', '--fail-fast', '--out', out, p('good.png'), p('truncated.png'), p('good2.jpg')], {
    code: 1, names: ['truncated.png'], absent: [path.join(out, 'good.png'), path.join(out, 'good2.png')], clean: [out],
  });
});
test('predict: an output folder that a file is in the way of', () => check(['predict', ...M(), '--threads', '1', '--out', p('a-file', 'masks'), p('good.png')], { code: 1, names: [/a-file/] }));

// ---------------------------------------------------------------------------------------------
// score

test('score: a 40000x40000 all-zero grayscale mask (1.6 MB)', () => check(['score', '--pred', p('s-huge', 'pred'), '--gt', p('s-huge', 'gt')], { code: 1, names: [/x\.png.*40000x40000.*megapixels/], maxSeconds: 5, maxPeakMb: 1024 }));
test('score: a 4x4 mask whose data inflates to 1.5 GB', () => check(['score', '--pred', p('s-inflate', 'pred'), '--gt', p('s-inflate', 'gt')], { code: 1, names: [/x\.png.*inflates past/], maxSeconds: 5, maxPeakMb: 1024 }));
test('score: a truncated mask', () => check(['score', '--pred', p('s-trunc', 'pred'), '--gt', p('s-trunc', 'gt')], { code: 1, names: [p('s-trunc', 'gt', 'x.png')] }));
test('score: a JPEG named .png', () => check(['score', '--pred', p('s-jpeg', 'pred'), '--gt', p('s-jpeg', 'gt')], { code: 1, names: [p('s-jpeg', 'gt', 'x.png')] }));
test('score: a 16-bit mask', () => check(['score', '--pred', p('s-16bit', 'pred'), '--gt', p('s-16bit', 'gt')], { code: 1, names: [/x\.png.*bit depth 16/] }));
test('score: masks of different sizes', () => check(['score', '--pred', p('s-size', 'pred'), '--gt', p('s-size', 'gt')], { code: 1, names: ['x.png'] }));
test('score: a value that is no class', () => check(['score', '--pred', p('s-value', 'pred'), '--gt', p('s-value', 'gt')], { code: 1, names: ['x.png'] }));
test('score: ground truth void everywhere', () => check(['score', '--pred', p('s-void', 'pred'), '--gt', p('s-void', 'gt')], { code: 1, names: [/void/] }));
test('score: a missing folder', () => check(['score', '--pred', p('nowhere'), '--gt', p('s-good', 'gt')], { code: 1, names: ['nowhere'] }));
test('score: an empty folder', () => check(['score', '--pred', p('s-good', 'pred'), '--gt', p('s-empty')], { code: 1, names: ['s-empty'] }));
test('score: an id list with terminal escapes', () => check(['score', '--pred', p('s-good', 'pred'), '--gt', p('s-good', 'gt'), '--list', p('evil.txt')], { code: 1, names: [/evil\.txt.*\\x1b\[2J/] }));
test('score: a binary id list', () => check(['score', '--pred', p('s-good', 'pred'), '--gt', p('s-good', 'gt'), '--list', p('binary.txt')], { code: 1, names: [/binary\.txt.*binary data/] }));
test('score: a missing id list', () => check(['score', '--pred', p('s-good', 'pred'), '--gt', p('s-good', 'gt'), '--list', p('nolist.txt')], { code: 1, names: [/nolist\.txt.*no such file/] }));
test('score: --json where a file is in the way', () => check(['score', '--pred', p('s-good', 'pred'), '--gt', p('s-good', 'gt'), '--json', p('a-file', 'm.json')], { code: 1, names: ['a-file'], absent: [p('a-file', 'm.json')] }));
test('score: --max-pixels abc', () => check(['score', '--pred', p('s-good', 'pred'), '--gt', p('s-good', 'gt'), '--max-pixels', 'abc'], { code: 2, names: ['--max-pixels'] }));
test('score: FCN_MAX_PIXELS lowered below a mask', () => check(['score', '--pred', p('s-good', 'pred'), '--gt', p('s-good', 'gt')], { code: 1, names: [/x\.png.*4x4/], env: { FCN_MAX_PIXELS: '10' } }));

// ---------------------------------------------------------------------------------------------
// eval and show

const V = () => ['--data', p('voc')];
test('eval: a 40000x40000 mask in the split', () => check(['eval', ...M(), ...V(), '--split', 'huge', '--threads', '1'], { code: 1, names: [/h\.png.*40000x40000/], maxSeconds: 10, maxPeakMb: 1024 }));
test('eval: a 20000x20000 mask in the split', () => check(['eval', ...M(), ...V(), '--split', 'big', '--threads', '1'], { code: 1, names: [/b\.png.*20000x20000/], maxSeconds: 10, maxPeakMb: 1024 }));
test('eval: a truncated JPEG in the split', () => check(['eval', ...M(), ...V(), '--split', 'trunc', '--threads', '1'], { code: 1, names: ['t.jpg'] }));
test('eval: an id list with terminal escapes', () => check(['eval', ...M(), ...V(), '--split', 'evil'], { code: 1, names: [/evil\.txt.*line 2.*\\x1b\[2J\\x1b\]0;pwned\\x07/] }));
test('eval: a binary id list', () => check(['eval', ...M(), ...V(), '--split', 'binary'], { code: 1, names: [/binary\.txt.*binary data/] }));
test('eval: a split that is not a list name', () => check(['eval', ...M(), ...V(), '--split', '../../etc/passwd'], { code: 1, names: ['../../etc/passwd'] }));
test('eval: a missing split', () => check(['eval', ...M(), ...V(), '--split', 'test'], { code: 1, names: [/test\.txt.*no such file/] }));
test('eval: a missing dataset', () => check(['eval', ...M(), '--data', p('novoc')], { code: 1, names: ['novoc'] }));
test('eval: NaN weights', () => check(['eval', '--model', p('nan.safetensors'), ...V()], { code: 1, names: [/nan\.safetensors.*final_conv\.bias/] }));
test('eval: --threads 1000', () => check(['eval', ...M(), ...V(), '--threads', '1000'], { code: 2, names: [/--threads.*core/] }));
test('eval: --limit 0', () => check(['eval', ...M(), ...V(), '--limit', '0'], { code: 2, names: ['--limit'] }));
test('eval: --json where a file is in the way', () => check(['eval', ...M(), ...V(), '--split', 'val', '--threads', '1', '--json', p('a-file', 'e.json')], { code: 1, names: ['a-file'], absent: [p('a-file', 'e.json')] }));
test('show: --out that is not a .png', () => check(['show', ...V(), '--out', p('grid.jpg')], { code: 2, names: ['--out'], absent: [p('grid.jpg')] }));
test('show: --n 0', () => check(['show', ...V(), '--n', '0', '--out', p('grid.png')], { code: 2, names: ['--n'] }));
test('show: a huge mask in the split', () => check(['show', ...V(), '--split', 'huge', '--out', p('grid.png')], { code: 1, names: [/h\.png.*40000x40000/], absent: [p('grid.png')], maxPeakMb: 1024 }));
test('show: a missing dataset', () => check(['show', '--data', p('novoc'), '--out', p('grid.png')], { code: 1, names: ['novoc'], absent: [p('grid.png')] }));

// ---------------------------------------------------------------------------------------------
// upsample

test('upsample: --scale 100 on a 200x200 image', () => check(['upsample', '--scale', '100', p('small200.png'), p('up.png')], { code: 2, names: [/--scale.*1\.\.32.*100/], absent: [p('up.png')], maxSeconds: 5, maxPeakMb: 1024 }));
test('upsample: --scale 32 on 200x200 passes the output limit', () => check(['upsample', '--scale', '32', p('small200.png'), p('up.png')], { code: 1, names: [/small200\.png.*6400x6400.*megapixels/], absent: [p('up.png')], maxSeconds: 5, maxPeakMb: 1024 }));
test('upsample: --scale 0', () => check(['upsample', '--scale', '0', p('good.png'), p('up.png')], { code: 2, names: ['--scale'] }));
test('upsample: --scale 1.5', () => check(['upsample', '--scale', '1.5', p('good.png'), p('up.png')], { code: 2, names: ['--scale'] }));
test('upsample: a truncated input', () => check(['upsample', p('truncated.png'), p('up.png')], { code: 1, names: ['truncated.png'], absent: [p('up.png')] }));
test('upsample: a missing input', () => check(['upsample', p('missing.png'), p('up.png')], { code: 1, names: ['missing.png'] }));
test('upsample: a huge-declared input', () => check(['upsample', p('huge.jpg'), p('up.png')], { code: 1, names: ['huge.jpg'], maxPeakMb: 1024 }));
test('upsample: an output where a file is in the way', () => check(['upsample', p('good.png'), p('a-file', 'up.png')], { code: 1, names: ['a-file'] }));

// ---------------------------------------------------------------------------------------------
// import and export

test('import: NaN weights', () => check(['import', p('nan.safetensors'), '--out', p('imported.safetensors')], { code: 1, names: [/nan\.safetensors.*final_conv\.bias/], absent: [p('imported.safetensors')], clean: [tmp] }));
test('import: the inflating .pth', () => check(['import', p('bomb.pth'), '--out', p('imported.safetensors')], { code: 1, names: ['bomb.pth'], absent: [p('imported.safetensors')], maxSeconds: 5, maxPeakMb: 1024 }));
test('import: a malicious pickle', () => check(['import', p('malicious.pth'), '--out', p('imported.safetensors')], { code: 1, names: ['malicious.pth'], absent: [p('imported.safetensors')] }));
test("import: torchvision's ResNet-50", () => check(['import', p('resnet50.safetensors'), '--out', p('imported.safetensors')], { code: 1, names: [/ResNet-50/], absent: [p('imported.safetensors')] }));
test('import: an output where a file is in the way', () => check(['import', p('model.safetensors'), '--out', p('a-file', 'x.safetensors')], { code: 1, names: ['a-file'] }));
test('import: no --out', () => check(['import', p('model.safetensors')], { code: 2, names: ['--out'] }));
test('export: NaN weights', () => check(['export', '--model', p('nan.safetensors'), '--onnx', p('x.onnx')], { code: 1, names: ['nan.safetensors'], absent: [p('x.onnx')] }));
test('export: a missing model', () => check(['export', '--model', p('nope.pth'), '--onnx', p('x.onnx')], { code: 1, names: ['nope.pth'], absent: [p('x.onnx')] }));

// ---------------------------------------------------------------------------------------------
// the other commands' flags

test('train: --threads 1000', () => check(['train', ...V(), '--out', p('run'), '--threads', '1000'], { code: 2, names: [/--threads.*core/], absent: [p('run')] }));
test('train: a missing dataset', () => check(['train', '--data', p('novoc'), '--out', p('run')], { code: 1, names: ['novoc'] }));
test('serve: --threads 1000', () => check(['serve', ...M(), '--threads', '1000'], { code: 2, names: [/--threads.*core/] }));
test('demo: --threads 1000', () => check(['demo', '--out', p('demo'), '--threads', '1000'], { code: 2, names: [/--threads.*core/], absent: [p('demo')] }));
test('download: an unknown name', () => check(['download', 'imagenet', '--dir', p('dl')], { code: 2, names: ['imagenet'] }));
test('an unknown command', () => check(['segment', p('good.png')], { code: 2, names: ['segment'] }));
