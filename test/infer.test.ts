// Inference against PyTorch: the compiled graph's logits for formula weights equal the book's
// PyTorch FCN's (fixtures made by scripts/make_fixtures.py), at a size that needs padding too;
// masks have the input's size for any size; fcn export / predict end to end; the upsampling demo.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fcnResNet18, fcnParameters, bilinearKernel, initParameters, seededRandom } from '../src/model/index.js';
import { compileInference } from '../src/graph/inference.js';
import { Session } from '../src/engine/session.js';
import { SegmentationModel, loadModel } from '../src/infer/model.js';
import { tileRanges } from '../src/infer/preprocess.js';
import { predictInTiles } from '../src/infer/tiled.js';
import { upsampleFloat, upsampleImage } from '../src/infer/upsample.js';
import { readImage, readMask } from '../src/data/image.js';
import { saveCheckpoint } from '../src/weights/checkpoint.js';
import { defaultClasses, defaultColors, defaultNormalization } from '../src/model/card.js';
import { loadFixture, maxAbsDiff, countDifferent, compareRoundedImage, repoRoot } from './helpers/fixtures.js';
import { formulaWeights } from './helpers/formula.js';

const arch = fcnResNet18({ numClasses: 21 });
const weights = formulaWeights(fcnParameters(arch));
const fx = loadFixture('infer');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fcn-infer-'));
const ckptPath = path.join(tmp, 'formula.safetensors');
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function fcn(args: string[]) {
  return spawnSync(process.execPath, [path.join(repoRoot, 'bin/fcn.js'), ...args], { cwd: repoRoot, encoding: 'utf8' });
}

test('bilinearKernel(3, 3, 4) equals the book\'s values', () => {
  const k = bilinearKernel(3, 3, 4);
  const row = [0.0625, 0.1875, 0.1875, 0.0625];
  const col = [0.25, 0.75, 0.75, 0.25];
  for (let c = 0; c < 3; c++) {
    for (let o = 0; o < 3; o++) {
      for (let i = 0; i < 4; i++) {
        for (let j = 0; j < 4; j++) {
          const expected = c === o ? col[i]! * col[j]! : 0;
          assert.equal(k[((c * 3 + o) * 4 + i) * 4 + j], Math.fround(expected));
        }
      }
    }
  }
  assert.equal(row[0], col[0]! * col[0]!);
  // the fixture holds PyTorch's bilinear_kernel(3, 3, 4) and (3, 3, 6)
  const up = loadFixture('upsample');
  assert.deepEqual(Array.from(bilinearKernel(3, 3, 4)), Array.from(up.f32('kernel_x2').data));
  assert.deepEqual(Array.from(bilinearKernel(3, 3, 6)), Array.from(up.f32('kernel_x3').data));
});

test('logits match PyTorch within 1e-4 on a 64x96 input (graph fed the fixture tensor)', async () => {
  const session = await Session.create(compileInference(arch, weights));
  try {
    const x = fx.f32('x_a');
    const out = await session.run({ image: { dtype: 'float32', dims: x.shape, data: x.data } });
    const ref = fx.f32('logits_a');
    assert.deepEqual(out.logits!.dims, ref.shape);
    const diff = maxAbsDiff(out.logits!.data as Float32Array, ref.data);
    assert.ok(diff < 1e-4, `max |logit diff| ${diff}`);
    const mask = Uint8Array.from(out.mask!.data as BigInt64Array, Number);
    const bad = countDifferent(mask, fx.u8('mask_a').data);
    assert.ok(bad <= 0.001 * mask.length, `${bad} of ${mask.length} mask pixels differ`);
  } finally {
    await session.dispose();
  }
});

test('a 97x131 image from a PNG: padded to 128x160, cropped back, equals PyTorch', async () => {
  const model = await SegmentationModel.fromWeights(arch, weights);
  try {
    const image = await readImage(fx.imagePath('image_b'));
    assert.deepEqual([image.height, image.width], [97, 131]);
    const logits = await model.logits(image);
    const diff = maxAbsDiff(logits, fx.f32('logits_b').data);
    assert.ok(diff < 1e-4, `max |logit diff| ${diff}`);
    const mask = await model.predict(image);
    assert.deepEqual([mask.height, mask.width], [97, 131]);
    const bad = countDifferent(mask.data, fx.u8('mask_b').data);
    assert.ok(bad <= 0.001 * mask.data.length, `${bad} of ${mask.data.length} mask pixels differ`);
  } finally {
    await model.dispose();
  }
});

test('masks have exactly the input size for any size, also through overlapping tiles', async () => {
  const model = await SegmentationModel.fromWeights(arch, weights, undefined, { tileSize: 128, tileMargin: 32 });
  try {
    for (const [h, w] of [[97, 131], [375, 500], [1, 1], [33, 7]] as const) {
      const data = new Uint8Array(h * w * 3).map((_, i) => (i * 37) % 251);
      const mask = await model.predict({ width: w, height: h, data });
      assert.equal(mask.width, w);
      assert.equal(mask.height, h);
      assert.equal(mask.data.length, w * h);
      assert.ok(mask.data.every((v) => v < 21));
    }
  } finally {
    await model.dispose();
  }
});

test('FCN-16s and FCN-8s (skip connections from layer3/layer2) predict masks of the input size', async () => {
  for (const variant of ['fcn16s', 'fcn8s'] as const) {
    const a = fcnResNet18({ numClasses: 5, variant });
    const names = fcnParameters(a).map((p) => p.name);
    assert.ok(names.includes('score_layer3.weight'));
    assert.equal(names.includes('score_layer2.weight'), variant === 'fcn8s');
    const model = await loadModel({ numClasses: 5, variant });
    try {
      const mask = await model.predict({ width: 131, height: 97, data: new Uint8Array(97 * 131 * 3).fill(90) });
      assert.deepEqual([mask.height, mask.width], [97, 131]);
      assert.ok(mask.data.every((v) => v < 5));
    } finally {
      await model.dispose();
    }
  }
});

test('the block-GEMM upsamplers equal ORT\'s ConvTranspose (FCN-32s/16s/8s, odd sizes, batch 2)', async () => {
  const [N, H, W] = [2, 97, 131];
  const x = new Float32Array(N * 3 * H * W);
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.013) * 1.7 + Math.cos(i * 0.0071);
  for (const variant of ['fcn32s', 'fcn16s', 'fcn8s'] as const) {
    const a = fcnResNet18({ numClasses: 5, variant });
    const w = initParameters(a, seededRandom(11));
    // bias and skip scorers away from their zero init, so every term is exercised
    for (const [name, t] of w) if (name.endsWith('.bias') || name.startsWith('score_')) t.forEach((_, i) => (t[i] = Math.sin(i + name.length) * 0.1));
    const logits: Float32Array[] = [];
    for (const upsample of ['convtranspose', 'blocks'] as const) {
      const session = await Session.create(compileInference(a, w, { upsample, padToStride: true }), { threads: 2 });
      try {
        const out = await session.run({ image: { dtype: 'float32', dims: [N, 3, H, W], data: x } }, ['logits']);
        assert.deepEqual(out.logits!.dims, [N, 5, H, W]);
        logits.push(out.logits!.data as Float32Array);
      } finally {
        await session.dispose();
      }
    }
    const scale = logits[0]!.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    assert.ok(maxAbsDiff(logits[0]!, logits[1]!) < 1e-5 * Math.max(1, scale), `${variant}: ${maxAbsDiff(logits[0]!, logits[1]!)}`);
  }
});

test('tiles cover every pixel exactly once with context around each core', () => {
  for (const [len, tile, margin] of [[1000, 256, 32], [257, 256, 32], [256, 256, 32], [31, 256, 32], [5000, 1024, 96]] as const) {
    const ranges = tileRanges(len, tile, margin);
    const seen = new Uint8Array(len);
    for (const r of ranges) {
      assert.ok(r.start >= 0 && r.start + r.length <= len, 'window inside the image');
      assert.ok(r.length <= tile);
      assert.ok(r.coreStart >= r.start && r.coreEnd <= r.start + r.length, 'core inside its window');
      if (r.coreStart > 0) assert.ok(r.coreStart - r.start >= margin, 'context before the core');
      if (r.coreEnd < len) assert.ok(r.start + r.length - r.coreEnd >= margin, 'context after the core');
      for (let i = r.coreStart; i < r.coreEnd; i++) seen[i]!++;
    }
    assert.ok(seen.every((v) => v === 1), `every pixel once for length ${len}`);
  }
});

test('predictInTiles reads int64 class ids (ORT\'s mask) as it reads plain numbers, across tiles', async () => {
  const image = { width: 70, height: 45, data: new Uint8Array(70 * 45 * 3) };
  const settings = { normalization: defaultNormalization(), stride: 8, tileSize: 32, tileMargin: 8 };
  // each window's class id per padded pixel: its position mixed with the window's size, all 0..255
  const ids = (x: { height: number; width: number }) => Array.from({ length: x.height * x.width }, (_, i) => (i * 7 + x.width) % 256);
  const asNumbers = await predictInTiles(image, settings, async (x) => ids(x));
  const asInt64 = await predictInTiles(image, settings, async (x) => BigInt64Array.from(ids(x), (v) => BigInt(v)));
  assert.deepEqual(asInt64, asNumbers);
  assert.ok(new Set(asNumbers).size > 100, 'the windows gave many different ids');
});

test('fcn export writes an ONNX file that ORT loads and that gives the same logits, for any input size', async () => {
  await saveCheckpoint(ckptPath, {
    arch, weights, classes: defaultClasses(21), colors: defaultColors(21), normalization: defaultNormalization(), metadata: {}, extra: new Map(),
  });
  const onnxPath = path.join(tmp, 'fcn.onnx');
  const r = fcn(['export', '--model', ckptPath, '--onnx', onnxPath]);
  assert.equal(r.status, 0, r.stderr);
  const session = await Session.create(onnxPath);
  try {
    const x = fx.f32('x_a');
    const out = await session.run({ image: { dtype: 'float32', dims: x.shape, data: x.data } }, ['logits']);
    assert.ok(maxAbsDiff(out.logits!.data as Float32Array, fx.f32('logits_a').data) < 1e-4);
    // any size: 97x131 is padded inside the graph to 128x160 and cropped back, as PyTorch's reference was
    const xb = fx.f32('x_b');
    const outB = await session.run({ image: { dtype: 'float32', dims: xb.shape, data: xb.data } }, ['logits', 'mask']);
    assert.deepEqual(outB.logits!.dims, [1, 21, 97, 131]);
    assert.deepEqual(outB.mask!.dims, [1, 97, 131]);
    const diff = maxAbsDiff(outB.logits!.data as Float32Array, fx.f32('logits_b').data);
    assert.ok(diff < 1e-4, `max |logit diff| ${diff}`);
    const mask = Uint8Array.from(outB.mask!.data as BigInt64Array, (v) => Number(v));
    assert.ok(countDifferent(mask, fx.u8('mask_b').data) <= 0.001 * mask.length);
  } finally {
    await session.dispose();
  }
});

test('fcn predict writes palette PNGs of the input size that match PyTorch\'s argmax', () => {
  const out = path.join(tmp, 'pred');
  const r = fcn(['predict', '--model', ckptPath, '--out', out, '--overlay', fx.imagePath('image_b'), fx.imagePath('image_a')]);
  assert.equal(r.status, 0, r.stderr);
  return (async () => {
    const b = await readMask(path.join(out, 'image_b.png'));
    assert.deepEqual([b.height, b.width], [97, 131]);
    assert.ok(countDifferent(b.data, fx.u8('mask_b').data) <= 0.001 * b.data.length);
    const overlay = await readImage(path.join(out, 'image_b.overlay.png'));
    assert.deepEqual([overlay.height, overlay.width], [97, 131]);
    // the raw PNG is 8-bit palette (colour type 3) in the VOC format
    const png = fs.readFileSync(path.join(out, 'image_a.png'));
    assert.equal(png[25], 3, 'colour type 3 (palette)');
  })();
});

test('fcn predict: a bad image in a batch is named on its own line, the others are segmented, exit 1 with the count', () => {
  const bad = path.join(tmp, 'not-an-image.jpg');
  fs.writeFileSync(bad, 'hello');
  const out = path.join(tmp, 'pred-bad');
  const r = fcn(['predict', '--model', ckptPath, '--out', out, fx.imagePath('image_a'), bad]);
  assert.equal(r.status, 1);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 2, r.stderr);
  assert.match(lines[0]!, /not-an-image\.jpg/);
  assert.match(lines[1]!, /1 of 2 images could not be read/);
  assert.deepEqual(fs.readdirSync(out), ['image_a.png'], 'the good image is segmented, nothing for the bad one');
  // alone, the bad image is the one line
  const alone = fcn(['predict', '--model', ckptPath, '--out', path.join(tmp, 'pred-bad-alone'), bad]);
  assert.equal(alone.status, 1);
  assert.equal(alone.stderr.trim().split('\n').length, 1);
  assert.equal(fs.existsSync(path.join(tmp, 'pred-bad-alone')), false);
  const missing = fcn(['predict', '--model', path.join(tmp, 'nope.safetensors'), fx.imagePath('image_a')]);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /nope\.safetensors/);
  // an --out that is a file, and a folder where a mask would go: one line naming them, no stack
  const file = path.join(tmp, 'a-file');
  fs.writeFileSync(file, 'x');
  const inTheWay = fcn(['predict', '--model', ckptPath, '--out', file, fx.imagePath('image_a')]);
  assert.equal(inTheWay.status, 1);
  assert.equal(inTheWay.stderr.trim(), `fcn: ${file}: cannot create the output folder (a file of that name is in the way of a folder)`);
  const dirOut = path.join(tmp, 'pred-dir-in-way');
  fs.mkdirSync(path.join(dirOut, 'image_a.png'), { recursive: true });
  const dirInTheWay = fcn(['predict', '--model', ckptPath, '--out', dirOut, fx.imagePath('image_a')]);
  assert.equal(dirInTheWay.status, 1);
  assert.equal(dirInTheWay.stderr.trim(), `fcn: ${path.join(dirOut, 'image_a.png')}: cannot write (a folder of that name is in the way)`);
  assert.deepEqual(fs.readdirSync(dirOut), ['image_a.png'], 'no temp file left');
});

test('upsampling demo equals PyTorch\'s ConvTranspose2d (float within 1e-5, bytes within rounding ties)', async () => {
  const up = loadFixture('upsample');
  const image = await readImage(up.imagePath('image'));
  for (const [scale, name] of [[2, 'x2'], [3, 'x3']] as const) {
    if (!up.has(`out_${name}`)) continue;
    const ref = up.f32(`out_${name}`);
    const y = await upsampleFloat(image, scale, 1);
    assert.deepEqual([3, y.height, y.width], ref.shape.slice(-3));
    assert.ok(maxAbsDiff(y.data, ref.data) < 1e-5, `scale ${scale}: ${maxAbsDiff(y.data, ref.data)}`);
    if (up.has(`out_${name}_u8`)) {
      const bytes = await upsampleImage(image, scale, 1);
      const cmp = compareRoundedImage(bytes.data, up.u8(`out_${name}_u8`).data, ref.data);
      assert.equal(cmp.unexplained, 0);
      assert.ok(cmp.maxDiff <= 1);
    }
  }
  const outPng = path.join(tmp, 'up.png');
  const r = fcn(['upsample', up.imagePath('image'), outPng]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /input image shape: \[40, 56, 3\]/);
  assert.match(r.stdout, /output image shape: \[80, 112, 3\]/);
});
