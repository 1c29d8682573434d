// The VOC data layer: layout discovery and the real VOC samples, joint transforms (crop alignment
// as a property over many seeds, padding, flip), ImageNet normalisation against PyTorch's values,
// the seeded Rng against the xoshiro128** reference, and epoch batches (coverage, shapes,
// determinism, the small-image filter). Errors: one line naming the file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDirs } from './helpers/tmp.js';
import { openVoc, readVocExample, type VocDataset } from '../src/data/dataset.js';
import { randomCrop, padTo, hflip, normalizeToNCHW, cropAt, IMAGENET_MEAN, IMAGENET_STD } from '../src/data/transforms.js';
import { Rng } from '../src/data/rng.js';
import { prepareSplit, epochBatches, batchesPerEpoch, type Batch } from '../src/data/batches.js';
import { encodeImage, encodeMask, type LabelMap, type RgbImage } from '../src/data/image.js';
import { FcnError } from '../src/util/errors.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const samples = path.resolve(repoRoot, '../shared/voc-samples');
const { root: tmpRoot, tempDir } = tempDirs('fcn-data-');

/** Makes the VOC folders under `root` and writes the given split lists. */
function vocLayout(root: string, lists: Record<string, string[]>): void {
  for (const d of ['JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation']) fs.mkdirSync(path.join(root, d), { recursive: true });
  for (const [split, ids] of Object.entries(lists)) {
    fs.writeFileSync(path.join(root, 'ImageSets/Segmentation', `${split}.txt`), ids.map((id) => `${id}\n`).join(''));
  }
}

/** An image whose pixel at (x, y) is (x, y, tag) and a mask whose label is (x + y) % 7 (so alignment is checkable). */
function coordImage(width: number, height: number, tag = 0): { image: RgbImage; mask: LabelMap } {
  assert.ok(width <= 256 && height <= 256);
  const data = new Uint8Array(width * height * 3);
  const m = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = y * width + x;
      data[p * 3] = x;
      data[p * 3 + 1] = y;
      data[p * 3 + 2] = tag;
      m[p] = (x + y) % 7;
    }
  }
  return { image: { width, height, data }, mask: { width, height, data: m } };
}

function classSet(mask: LabelMap): number[] {
  return [...new Set(mask.data)].sort((a, b) => a - b);
}

function assertOneLineFcnError(err: unknown, ...mustName: string[]): true {
  assert.ok(err instanceof FcnError, `expected FcnError, got ${String(err)}`);
  assert.ok(!err.message.includes('\n'), `message is one line: ${err.message}`);
  for (const s of mustName) assert.ok(err.message.includes(s), `message names ${s}: ${err.message}`);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Real VOC samples and layout discovery

const haveSamples = fs.existsSync(path.join(samples, '2007_000063.png'));

test('real VOC samples: palette and grayscale masks give the class ids, 255 kept', { skip: !haveSamples && 'no ../shared/voc-samples' }, async () => {
  const parent = tempDir('vocdevkit');
  const root = path.join(parent, 'VOCdevkit', 'VOC2012');
  const ids = ['2007_000063', '2007_000129'];
  vocLayout(root, { train: ids });
  for (const id of ids) {
    fs.copyFileSync(path.join(samples, `${id}.jpg`), path.join(root, 'JPEGImages', `${id}.jpg`));
    fs.copyFileSync(path.join(samples, `${id}.png`), path.join(root, 'SegmentationClass', `${id}.png`));
  }
  const ds = await openVoc(parent, 'train'); // the parent of VOCdevkit/VOC2012, as the archive unpacks
  assert.equal(ds.root, root);
  assert.deepEqual(ds.ids, ids);
  assert.equal(ds.imagePath('x'), path.join(root, 'JPEGImages', 'x.jpg'));
  assert.equal(ds.maskPath('x'), path.join(root, 'SegmentationClass', 'x.png'));
  const a = await readVocExample(ds, ids[0]!);
  assert.deepEqual([a.image.width, a.image.height, a.mask.width, a.mask.height], [500, 375, 500, 375]);
  assert.deepEqual(classSet(a.mask), [0, 9, 12, 255]); // palette PNG: chair, dog, void
  const b = await readVocExample(ds, ids[1]!);
  assert.deepEqual([b.image.width, b.image.height], [334, 500]);
  assert.deepEqual(classSet(b.mask), [0, 2, 15, 255]); // grayscale PNG: bicycle, person, void
  // the root itself opens too
  assert.equal((await openVoc(root, 'train')).root, root);
  // and prepareSplit sees the real sizes: 375 rows < 480 drops the first at 480x320 (HxW)
  const kept = await prepareSplit(ds, [480, 320], 'filter');
  assert.deepEqual(kept, { ids: ['2007_000129'], dropped: 1 });
});

test('openVoc finds the root as DIR, DIR/VOCdevkit/VOC2012 or DIR/VOC2012; lists tolerate CRLF and blank lines', async () => {
  const a = tempDir('layout');
  vocLayout(path.join(a, 'VOC2012'), {});
  fs.writeFileSync(path.join(a, 'VOC2012/ImageSets/Segmentation/val.txt'), 'b_1\r\n\r\n  c_2 \r\n');
  const ds = await openVoc(a, 'val');
  assert.equal(ds.root, path.join(a, 'VOC2012'));
  assert.equal(ds.split, 'val');
  assert.deepEqual(ds.ids, ['b_1', 'c_2']);
});

test('openVoc errors name the missing directory or list, in one line', async () => {
  const missing = path.join(tmpRoot, 'nope');
  await assert.rejects(openVoc(missing, 'train'), (e) => assertOneLineFcnError(e, missing));
  const notVoc = tempDir('notvoc');
  await assert.rejects(openVoc(notVoc, 'train'), (e) => assertOneLineFcnError(e, notVoc, 'ImageSets'));
  const root = tempDir('nolist');
  vocLayout(root, { train: ['a'] });
  const list = path.join(root, 'ImageSets', 'Segmentation', 'val.txt');
  await assert.rejects(openVoc(root, 'val'), (e) => assertOneLineFcnError(e, list, 'no such file'));
  fs.writeFileSync(list, '\n\n');
  await assert.rejects(openVoc(root, 'val'), (e) => assertOneLineFcnError(e, list, 'empty'));
  await assert.rejects(openVoc(root, '../x'), (e) => assertOneLineFcnError(e, '../x'));
});

test('readVocExample: a missing image and an image/mask size mismatch are one-line errors naming the files', async () => {
  const root = tempDir('bad');
  vocLayout(root, { train: ['ok', 'noimg', 'mismatch'] });
  const ds = await openVoc(root, 'train');
  const { image, mask } = coordImage(12, 8);
  fs.writeFileSync(ds.imagePath('ok'), await encodeImage(image, 'jpeg'));
  fs.writeFileSync(ds.maskPath('ok'), encodeMask(mask));
  fs.writeFileSync(ds.maskPath('noimg'), encodeMask(mask));
  fs.writeFileSync(ds.imagePath('mismatch'), await encodeImage(image, 'jpeg'));
  fs.writeFileSync(ds.maskPath('mismatch'), encodeMask(coordImage(12, 9).mask));
  const ok = await readVocExample(ds, 'ok');
  assert.deepEqual(ok.mask.data, mask.data);
  await assert.rejects(readVocExample(ds, 'noimg'), (e) => assertOneLineFcnError(e, ds.imagePath('noimg')));
  await assert.rejects(readVocExample(ds, 'mismatch'), (e) =>
    assertOneLineFcnError(e, ds.imagePath('mismatch'), ds.maskPath('mismatch'), '9x12', '8x12'),
  );
  // prepareSplit reads sizes without decoding: the missing image is named there too
  await assert.rejects(prepareSplit(ds, [4, 4], 'filter'), (e) => assertOneLineFcnError(e, ds.imagePath('noimg')));
});

// ---------------------------------------------------------------------------------------------
// Transforms

test('randomCrop keeps image and mask aligned and places the window uniformly (property over many seeds)', () => {
  const sizes: [number, number, number, number][] = [
    [37, 23, 37, 23], // crop = whole image: only offset (0, 0)
    [40, 30, 8, 5],
    [200, 150, 64, 96],
    [5, 5, 3, 3],
  ];
  for (const [w, h, cw, ch] of sizes) {
    const { image, mask } = coordImage(w, h);
    const seenTop = new Map<number, number>();
    const seenLeft = new Map<number, number>();
    const trials = w === 5 ? 900 : 60;
    for (let seed = 0; seed < trials; seed++) {
      const rng = new Rng(seed * 7919 + w);
      const out = randomCrop(image, mask, ch, cw, rng);
      assert.equal(out.image.width, cw);
      assert.equal(out.image.height, ch);
      assert.equal(out.mask.width, cw);
      assert.equal(out.mask.height, ch);
      const left = out.image.data[0]!;
      const top = out.image.data[1]!;
      assert.ok(left + cw <= w && top + ch <= h, `window ${top},${left} inside ${h}x${w}`);
      for (let y = 0; y < ch; y++) {
        for (let x = 0; x < cw; x++) {
          const p = y * cw + x;
          assert.equal(out.image.data[p * 3], left + x);
          assert.equal(out.image.data[p * 3 + 1], top + y);
          assert.equal(out.mask.data[p], (left + x + top + y) % 7);
        }
      }
      seenTop.set(top, (seenTop.get(top) ?? 0) + 1);
      seenLeft.set(left, (seenLeft.get(left) ?? 0) + 1);
    }
    if (w === 5) {
      // 3 possible offsets per axis, 900 draws: each near 300 (binomial sd ~14)
      assert.deepEqual([...seenTop.keys()].sort(), [0, 1, 2]);
      assert.deepEqual([...seenLeft.keys()].sort(), [0, 1, 2]);
      for (const c of [...seenTop.values(), ...seenLeft.values()]) assert.ok(c > 240 && c < 360, `offset count ${c}`);
    }
    if (w === 37) assert.deepEqual([...seenTop.keys()], [0]);
  }
  // the draw order is top then left: the offsets follow from the rng's first two ints
  const { image, mask } = coordImage(50, 40);
  const ref = new Rng(3);
  const top = ref.int(40 - 10 + 1);
  const left = ref.int(50 - 20 + 1);
  const out = randomCrop(image, mask, 10, 20, new Rng(3));
  assert.deepEqual([out.image.data[1], out.image.data[0]], [top, left]);
  assert.throws(() => randomCrop(image, mask, 41, 20, new Rng(0)), (e) => assertOneLineFcnError(e, '40x50', '41x20'));
  assert.throws(() => randomCrop(image, coordImage(50, 41).mask, 10, 10, new Rng(0)), FcnError);
});

test('cropAt cuts the named window', () => {
  const { image, mask } = coordImage(6, 4);
  const c = cropAt(image, mask, 1, 2, 2, 3);
  assert.deepEqual([...c.mask.data], [(3 + 0) % 7, 4, 5, 4, 5, 6]); // rows y=1,2, columns x=2..4: (x+y)%7
  assert.throws(() => cropAt(image, mask, 3, 0, 2, 2), RangeError);
});

test('padTo pads bottom/right with the ImageNet mean colour (normalises to ~0) and label 255', () => {
  const { image, mask } = coordImage(3, 2, 9);
  const p = padTo(image, mask, 4, 5);
  assert.deepEqual([p.image.width, p.image.height, p.mask.width, p.mask.height], [5, 4, 5, 4]);
  for (let y = 0; y < 4; y++) {
    for (let x = 0; x < 5; x++) {
      const q = y * 5 + x;
      const px = [...p.image.data.subarray(q * 3, q * 3 + 3)];
      if (x < 3 && y < 2) {
        assert.deepEqual(px, [x, y, 9]);
        assert.equal(p.mask.data[q], (x + y) % 7);
      } else {
        assert.deepEqual(px, [124, 116, 104]); // round(255 * (0.485, 0.456, 0.406))
        assert.equal(p.mask.data[q], 255);
      }
    }
  }
  const norm = normalizeToNCHW([p.image]);
  const plane = 20;
  for (let c = 0; c < 3; c++) assert.ok(Math.abs(norm[c * plane + 19]!) < 0.01, `padding normalises near 0: ${norm[c * plane + 19]}`);
  // a side already large enough is kept; nothing to pad returns the input
  const q = padTo(image, mask, 1, 4);
  assert.deepEqual([q.image.width, q.image.height], [4, 2]);
  assert.equal(padTo(image, mask, 2, 3).image, image);
});

test('hflip mirrors image and mask together; twice is the identity', () => {
  const image: RgbImage = { width: 3, height: 2, data: Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]) };
  const mask: LabelMap = { width: 3, height: 2, data: Uint8Array.from([0, 1, 255, 3, 4, 5]) };
  const f = hflip(image, mask);
  assert.deepEqual([...f.image.data], [7, 8, 9, 4, 5, 6, 1, 2, 3, 16, 17, 18, 13, 14, 15, 10, 11, 12]);
  assert.deepEqual([...f.mask.data], [255, 1, 0, 5, 4, 3]);
  const g = hflip(f.image, f.mask);
  assert.deepEqual(g.image.data, image.data);
  assert.deepEqual(g.mask.data, mask.data);
});

test('normalizeToNCHW equals PyTorch (ToTensor + Normalize) bit for bit, in NCHW order', () => {
  assert.deepEqual(IMAGENET_MEAN, [0.485, 0.456, 0.406]);
  assert.deepEqual(IMAGENET_STD, [0.229, 0.224, 0.225]);
  // torch 1.13: (torch.arange(256).float().div(255)[None] - mean[:, None]) / std[:, None], float32
  const values = [0, 1, 57, 128, 200, 255];
  const torchRef = [
    [-2.1179039478302, -2.1007792949676514, -1.1417930126190186, 0.07406462728977203, 1.3070467710494995, 2.248908281326294],
    [-2.0357141494750977, -2.018207311630249, -1.0378150939941406, 0.20518219470977783, 1.465686321258545, 2.4285714626312256],
    [-1.804444432258606, -1.7870151996612549, -0.8109803795814514, 0.4264925718307495, 1.6813944578170776, 2.640000104904175],
  ];
  // image 0: pixel i has value values[i] in all channels; image 1: reversed, channels rotated
  const w = values.length;
  const im0: RgbImage = { width: w, height: 1, data: Uint8Array.from(values.flatMap((v) => [v, v, v])) };
  const im1: RgbImage = { width: w, height: 1, data: Uint8Array.from([...values].reverse().flatMap((v) => [v, 0, 255])) };
  const out = new Float32Array(2 * 3 * w + 5).fill(99);
  const res = normalizeToNCHW([im0, im1], out);
  assert.equal(res, out);
  for (let c = 0; c < 3; c++) for (let i = 0; i < w; i++) assert.equal(out[c * w + i], Math.fround(torchRef[c]![i]!));
  for (let i = 0; i < w; i++) assert.equal(out[3 * w + i], Math.fround(torchRef[0]![w - 1 - i]!));
  for (let i = 0; i < w; i++) assert.equal(out[4 * w + i], Math.fround(torchRef[1]![0]!));
  for (let i = 0; i < w; i++) assert.equal(out[5 * w + i], Math.fround(torchRef[2]![5]!));
  assert.equal(out[6 * w], 99); // nothing written past N*3*H*W
  // hand-computed: (128/255 - 0.485) / 0.229 = 0.0740646...
  assert.ok(Math.abs(out[3]! - (128 / 255 - 0.485) / 0.229) < 1e-6);
  assert.throws(() => normalizeToNCHW([im0, { width: 2, height: 3, data: new Uint8Array(18) }]), RangeError);
  assert.throws(() => normalizeToNCHW([im0], new Float32Array(3)), RangeError);
});

// ---------------------------------------------------------------------------------------------
// Rng

test('Rng is xoshiro128** (reference output for state 1,2,3,4), deterministic, and restores its state exactly', () => {
  // from the reference C implementation (prng.di.unimi.it/xoshiro128starstar.c)
  const r = Rng.fromState([1, 2, 3, 4]);
  assert.deepEqual(Array.from({ length: 8 }, () => r.nextUint32()), [11520, 0, 5927040, 70819200, 2031721883, 1637235492, 1287239034, 3734860849]);
  assert.deepEqual(r.getState(), [857776784, 3957087773, 2428778008, 3837013768]);

  const a = new Rng(42);
  const b = new Rng(42);
  const seqA = Array.from({ length: 100 }, () => a.next());
  assert.deepEqual(Array.from({ length: 100 }, () => b.next()), seqA);
  assert.ok(seqA.every((x) => x >= 0 && x < 1));
  const other = new Rng(43);
  assert.notDeepEqual(Array.from({ length: 100 }, () => other.next()), seqA);
  assert.notEqual(new Rng(0).next(), new Rng(1).next());
  assert.notEqual(new Rng(2 ** 32).next(), new Rng(0).next()); // the high word matters

  // round trip through JSON mid-stream
  const c = new Rng(7);
  for (let i = 0; i < 13; i++) c.next();
  const saved = JSON.parse(JSON.stringify(c.getState())) as number[];
  const tail = Array.from({ length: 20 }, () => c.int(1000));
  const d = Rng.fromState(saved);
  assert.deepEqual(Array.from({ length: 20 }, () => d.int(1000)), tail);
  assert.throws(() => Rng.fromState([0, 0, 0, 0]), RangeError);
  assert.throws(() => Rng.fromState([1, 2, 3]), RangeError);
  assert.throws(() => Rng.fromState([1, 2, 3, 2 ** 32]), RangeError);

  // int covers [0, n) and nothing else; shuffle is a deterministic permutation
  const e = new Rng(1);
  const counts = new Array<number>(6).fill(0);
  for (let i = 0; i < 6000; i++) counts[e.int(6)]!++;
  assert.ok(counts.every((k) => k > 850 && k < 1150), `int(6) counts ${counts}`);
  assert.throws(() => e.int(0), RangeError);
  const arr = Array.from({ length: 50 }, (_, i) => i);
  const s1 = new Rng(9).shuffle([...arr]);
  assert.deepEqual(new Rng(9).shuffle([...arr]), s1);
  assert.notDeepEqual(s1, arr);
  assert.deepEqual([...s1].sort((x, y) => x - y), arr);
});

// ---------------------------------------------------------------------------------------------
// Batches

/** A VOC folder of `sizes` coordinate images (lossless PNG bytes in the .jpg files, so pixels survive). */
async function coordDataset(sizes: [number, number][]): Promise<VocDataset> {
  const root = tempDir('coordvoc');
  const ids = sizes.map((_, i) => `img_${i}`);
  vocLayout(root, { train: ids });
  const ds = await openVoc(root, 'train');
  for (const [i, [h, w]] of sizes.entries()) {
    const { image, mask } = coordImage(w, h, i);
    fs.writeFileSync(ds.imagePath(ids[i]!), await encodeImage(image, 'png'));
    fs.writeFileSync(ds.maskPath(ids[i]!), encodeMask(mask));
  }
  return ds;
}

/** Undoes the normalisation of one pixel channel (exact up to rounding). */
function denorm(v: number, c: number): number {
  return Math.round((v * IMAGENET_STD[c]! + IMAGENET_MEAN[c]!) * 255) + 0; // + 0 turns -0 into 0
}

/** Checks every pixel of a batch: label matches the coordinates its image pixel carries, or is padding. */
function checkBatchAlignment(batch: Batch, ds: VocDataset): void {
  const plane = batch.height * batch.width;
  for (let n = 0; n < batch.n; n++) {
    const tag = Number(batch.ids[n]!.slice(4));
    for (let p = 0; p < plane; p++) {
      const r = denorm(batch.images[(n * 3) * plane + p]!, 0);
      const g = denorm(batch.images[(n * 3 + 1) * plane + p]!, 1);
      const b = denorm(batch.images[(n * 3 + 2) * plane + p]!, 2);
      const label = batch.labels[n * plane + p]!;
      if (label === 255) {
        assert.deepEqual([r, g, b], [124, 116, 104], `padding pixel of ${ds.imagePath(batch.ids[n]!)}`);
      } else {
        assert.equal(b, tag, 'the pixel comes from its own image');
        assert.equal(label, (r + g) % 7, 'label aligned with the image');
      }
    }
  }
}

test('prepareSplit drops images smaller than the crop (counted), keeps all when padding', async () => {
  const ds = await coordDataset([[30, 40], [20, 40], [30, 25], [31, 41], [29, 60], [60, 25], [30, 26]]);
  const f = await prepareSplit(ds, [30, 26], 'filter');
  assert.deepEqual(f, { ids: ['img_0', 'img_3', 'img_6'], dropped: 4 });
  const p = await prepareSplit(ds, [30, 26], 'pad');
  assert.deepEqual(p, { ids: ds.ids, dropped: 0 });
});

test('epochBatches: each id once per epoch, right shapes, aligned pixels, deterministic for a seed', async () => {
  const sizes: [number, number][] = [[24, 30], [26, 33], [30, 24], [24, 24], [28, 40], [40, 28], [25, 25], [32, 32], [24, 26], [27, 31]];
  const ds = await coordDataset(sizes);
  const crop: [number, number] = [20, 22];
  const collect = async (seed: number, extra: Partial<Parameters<typeof epochBatches>[2]> = {}) => {
    const rng = new Rng(seed);
    const batches: Batch[] = [];
    for await (const b of epochBatches(ds, ds.ids, { batchSize: 4, crop, shuffle: true, rng, flip: true, ...extra })) batches.push(b);
    return { batches, state: rng.getState() };
  };
  const run1 = await collect(11);
  // shuffle => drop_last by default: 10 examples, batch 4 -> 2 full batches
  assert.equal(run1.batches.length, batchesPerEpoch(10, 4, true));
  assert.equal(run1.batches.length, 2);
  const seen = run1.batches.flatMap((b) => b.ids);
  assert.equal(new Set(seen).size, 8);
  for (const b of run1.batches) {
    assert.equal(b.n, 4);
    assert.deepEqual([b.height, b.width], crop);
    assert.equal(b.images.length, 4 * 3 * 20 * 22);
    assert.equal(b.labels.length, 4 * 20 * 22);
    checkBatchAlignment(b, ds);
  }
  // same seed: same order and bytes; other seed: another order
  const run2 = await collect(11);
  assert.deepEqual(run2.batches.map((b) => b.ids), run1.batches.map((b) => b.ids));
  for (let i = 0; i < 2; i++) {
    assert.deepEqual(run2.batches[i]!.images, run1.batches[i]!.images);
    assert.deepEqual(run2.batches[i]!.labels, run1.batches[i]!.labels);
  }
  assert.deepEqual(run2.state, run1.state);
  const run3 = await collect(12);
  assert.notDeepEqual(run3.batches.map((b) => b.ids), run1.batches.map((b) => b.ids));
  // flips happen: some row of some batch reads right-to-left (x decreasing)
  const plane = 20 * 22;
  const flipped = run1.batches.some((b) =>
    Array.from({ length: b.n }, (_, n) => denorm(b.images[n * 3 * plane]!, 0) > denorm(b.images[n * 3 * plane + 1]!, 0)).some(Boolean),
  );
  assert.ok(flipped, 'at least one of 8 examples is mirrored');

  // keeping all: dropLast false covers every id exactly once, the last batch short
  const all = await collect(11, { dropLast: false });
  assert.deepEqual(all.batches.map((b) => b.n), [4, 4, 2]);
  assert.deepEqual(all.batches.flatMap((b) => b.ids).sort(), [...ds.ids].sort());

  // the epoch's randomness is drawn when it starts: stopping after one batch leaves the rng where a full epoch does
  const rng = new Rng(11);
  for await (const b of epochBatches(ds, ds.ids, { batchSize: 4, crop, shuffle: true, rng, flip: true })) {
    assert.deepEqual(b.ids, run1.batches[0]!.ids);
    break;
  }
  assert.deepEqual(rng.getState(), run1.state);

  // no shuffle: list order, last batch kept by default
  const ordered: string[][] = [];
  for await (const b of epochBatches(ds, ds.ids, { batchSize: 3, crop, shuffle: false, rng: new Rng(0) })) ordered.push(b.ids);
  assert.deepEqual(ordered, [ds.ids.slice(0, 3), ds.ids.slice(3, 6), ds.ids.slice(6, 9), ds.ids.slice(9)]);
});

test('epochBatches pads small images with label 255 in pad mode, and names the file in filter mode', async () => {
  const ds = await coordDataset([[10, 12], [30, 30], [16, 40]]);
  const batches: Batch[] = [];
  for await (const b of epochBatches(ds, ds.ids, { batchSize: 3, crop: [20, 20], shuffle: false, rng: new Rng(1), small: 'pad' })) batches.push(b);
  assert.equal(batches.length, 1);
  const b = batches[0]!;
  checkBatchAlignment(b, ds);
  const plane = 400;
  const voidCount = (n: number) => b.labels.subarray(n * plane, (n + 1) * plane).filter((v) => v === 255).length;
  assert.equal(voidCount(0), 400 - 10 * 12); // a 10x12 image padded to 20x20: its own pixels and 280 padded
  assert.equal(voidCount(1), 0);
  assert.equal(voidCount(2), 400 - 16 * 20);
  const gen = epochBatches(ds, ds.ids, { batchSize: 2, crop: [20, 20], shuffle: false, rng: new Rng(1) });
  await assert.rejects(gen.next(), (e) => assertOneLineFcnError(e, ds.imagePath('img_0'), '10x12', '20x20'));
  assert.equal(batchesPerEpoch(0, 4, false), 0);
  assert.equal(batchesPerEpoch(9, 4, false), 3);
  assert.equal(batchesPerEpoch(9, 4, true), 2);
  assert.throws(() => batchesPerEpoch(9, 0, true), RangeError);
});
