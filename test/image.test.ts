// The VOC label set and pixel I/O: the palette against the literal devkit table, masks read as
// class indices whatever the PNG kind, the exact inverse palette for RGB masks, palette PNG writing,
// and images turned upright by their EXIF orientation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { encode as encodePng } from 'fast-png';
import { VOC_CLASSES, VOC_COLORMAP, VOC_PALETTE, paletteBytes } from '../src/data/voc.js';
import { decodeImage, decodeMask, encodeMask } from '../src/data/image.js';
import { FcnError } from '../src/util/errors.js';

test('VOC palette equals the devkit table (literal values) and the book\'s VOC_COLORMAP', () => {
  assert.equal(VOC_CLASSES.length, 21);
  assert.equal(VOC_CLASSES[15], 'person');
  assert.deepEqual([...VOC_PALETTE[0]!], [0, 0, 0]);
  assert.deepEqual([...VOC_PALETTE[1]!], [128, 0, 0]);
  assert.deepEqual([...VOC_PALETTE[15]!], [192, 128, 128]);
  assert.deepEqual([...VOC_PALETTE[20]!], [0, 64, 128]);
  assert.deepEqual([...VOC_PALETTE[255]!], [224, 224, 192]);
  // the book's table, literally
  const book = [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128], [128, 0, 128], [0, 128, 128], [128, 128, 128],
    [64, 0, 0], [192, 0, 0], [64, 128, 0], [192, 128, 0], [64, 0, 128], [192, 0, 128], [64, 128, 128], [192, 128, 128],
    [0, 64, 0], [128, 64, 0], [0, 192, 0], [128, 192, 0], [0, 64, 128]];
  assert.deepEqual(VOC_COLORMAP.map((c) => [...c]), book);
  const bytes = paletteBytes();
  assert.equal(bytes.length, 768);
  assert.deepEqual([...bytes.subarray(765)], [224, 224, 192]);
  assert.equal(new Set(VOC_PALETTE.map((c) => c.join(','))).size, 256, 'all 256 colours distinct');
});

const ids = Uint8Array.from([0, 1, 20, 255, 15, 9]);

test('palette PNG round trip keeps the raw index; the file is 8-bit colour type 3 with the VOC palette', () => {
  const png = encodeMask({ width: 3, height: 2, data: ids });
  assert.equal(png[24], 8, 'bit depth 8');
  assert.equal(png[25], 3, 'colour type 3 (palette)');
  const back = decodeMask(png, 'x.png');
  assert.deepEqual([back.width, back.height], [3, 2]);
  assert.deepEqual([...back.data], [...ids]);
});

test('mask PNGs read the same in another decoder (libvips/libspng): each pixel the palette colour of its id', async () => {
  // a larger mask with long runs and every id, in a custom palette (the model card's colours)
  const width = 301, height = 77;
  const data = Uint8Array.from({ length: width * height }, (_, i) => ((i % width) >> 3) ^ Math.floor(i / width / 9) * 37);
  const palette = Array.from({ length: 256 }, (_, i) => [i, (i * 7) & 255, 255 - i] as const);
  const png = encodeMask({ width, height, data }, palette);
  const { data: rgb, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual([info.width, info.height, info.channels], [width, height, 3]);
  for (let i = 0; i < data.length; i++) {
    const want = palette[data[i]!]!;
    if (rgb[3 * i] !== want[0] || rgb[3 * i + 1] !== want[1] || rgb[3 * i + 2] !== want[2]) assert.fail(`pixel ${i}: id ${data[i]}`);
  }
  assert.deepEqual([...decodeMask(png, 'm.png').data], [...data]);
});

test('grayscale index PNGs and RGB colour masks decode to the same class ids', () => {
  const gray = encodePng({ width: 3, height: 2, data: ids, depth: 8, channels: 1 });
  assert.deepEqual([...decodeMask(gray, 'g.png').data], [...ids]);
  const rgb = new Uint8Array(ids.length * 3);
  ids.forEach((v, i) => rgb.set(VOC_PALETTE[v]!, i * 3));
  const colour = encodePng({ width: 3, height: 2, data: rgb, depth: 8, channels: 3 });
  assert.deepEqual([...decodeMask(colour, 'c.png').data], [...ids]);
});

test('an RGB mask with a colour outside the palette is an error naming the file, the colour and the pixel', () => {
  const rgb = new Uint8Array(2 * 1 * 3);
  rgb.set([1, 2, 3], 3);
  const png = encodePng({ width: 2, height: 1, data: rgb, depth: 8, channels: 3 });
  assert.throws(() => decodeMask(png, 'masks/bad.png'), (err: unknown) =>
    err instanceof FcnError && /masks\/bad\.png/.test(err.message) && /\(1,2,3\)/.test(err.message) && /x=1 y=0/.test(err.message));
  assert.throws(() => decodeMask(new Uint8Array([1, 2, 3]), 'junk.png'), /junk\.png: not a readable PNG mask/);
});

test('decodeImage applies the EXIF orientation (a phone photo comes out upright)', async () => {
  const raw = Buffer.alloc(4 * 2 * 3, 0);
  raw.set([255, 0, 0], 0); // the stored top-left pixel is red
  const rotated = await sharp(raw, { raw: { width: 4, height: 2, channels: 3 } }).withMetadata({ orientation: 6 }).png().toBuffer();
  const img = await decodeImage(rotated, 'phone.png');
  assert.deepEqual([img.width, img.height], [2, 4]);
  // orientation 6 = rotate 90° clockwise to display: the stored top-left lands at the top-right
  assert.deepEqual([...img.data.subarray(3, 6)], [255, 0, 0]);
  await assert.rejects(decodeImage(new TextEncoder().encode('not an image'), 'notes.txt'), /notes\.txt: not a readable image/);
});
