// Pictures: palette colours against literal VOC values, overlay arithmetic, classes present, the
// grid's size arithmetic and cell placement, the legend, and text in both renderers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { LabelMap, RgbImage } from '../src/data/image.js';
import type { Rgb } from '../src/data/voc.js';
import {
  labelToImage, overlay, classesPresent, legendImage, imageGrid, gridLayout, showExamples,
} from '../src/render/pictures.js';
import { renderText, renderWithGlyphs } from '../src/render/text.js';

function solid(width: number, height: number, c: Rgb): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set(c, i * 3);
  return { width, height, data };
}
const px = (img: RgbImage, x: number, y: number) => Array.from(img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3));
const mask = (width: number, height: number, values: number[]): LabelMap => ({ width, height, data: Uint8Array.from(values) });

test('labelToImage: VOC colours (literal table values), void 255 = (224,224,192), custom colormaps', () => {
  const img = labelToImage(mask(4, 2, [0, 1, 2, 9, 12, 15, 20, 255]));
  assert.deepEqual(Array.from(img.data), [
    0, 0, 0, 128, 0, 0, 0, 128, 0, 192, 0, 0, // background aeroplane bicycle chair
    64, 0, 128, 192, 128, 128, 0, 64, 128, 224, 224, 192, // dog person tv/monitor void
  ]);
  assert.equal(img.width, 4);
  assert.equal(img.height, 2);
  // a 2-colour map: ids it lacks (here 2 and 255) keep their VOC palette colour
  const custom = labelToImage(mask(4, 1, [0, 1, 2, 255]), [[10, 20, 30], [40, 50, 60]]);
  assert.deepEqual(Array.from(custom.data), [10, 20, 30, 40, 50, 60, 0, 128, 0, 224, 224, 192]);
});

test('overlay: round((1-a)·image + a·colour) on object pixels; background and void untouched', () => {
  const image = solid(4, 1, [100, 150, 200]);
  const m = mask(4, 1, [0, 1, 255, 15]);
  const half = overlay(image, m);
  assert.deepEqual(Array.from(half.data), [
    100, 150, 200, // background: unblended
    114, 75, 100, // aeroplane (128,0,0): (100+128)/2, 150/2, 200/2
    100, 150, 200, // void: unblended
    146, 139, 164, // person (192,128,128): (100+192)/2, (150+128)/2, (200+128)/2
  ]);
  const quarter = overlay(image, m, 0.25);
  assert.deepEqual(px(quarter, 1, 0), [107, 113, 150]); // 75+32, 112.5 rounds up, 150
  assert.deepEqual(Array.from(image.data.subarray(0, 3)), [100, 150, 200], 'input not modified');
  assert.deepEqual(px(overlay(image, m, 1), 3, 0), [192, 128, 128]);
  assert.throws(() => overlay(image, mask(2, 1, [0, 1])), /image is 1x4 but mask is 1x2/);
  assert.throws(() => overlay(image, m, 1.5), /alpha/);
});

test('classesPresent: ids below numClasses, ascending, fraction of all pixels (void counted in the total only)', () => {
  const m = mask(5, 2, [0, 0, 0, 12, 12, 255, 255, 9, 0, 30]);
  assert.deepEqual(classesPresent(m, 21), [
    { id: 0, pixels: 4, fraction: 0.4 },
    { id: 9, pixels: 1, fraction: 0.1 },
    { id: 12, pixels: 2, fraction: 0.2 },
  ]);
  assert.deepEqual(classesPresent(m, 10).map((c) => c.id), [0, 9]);
});

test('gridLayout: cells scaled to a common height, columns as wide as their widest cell', () => {
  // 100x50 -> 80x40, 30x60 -> 20x40, 50x50 -> 40x40 (cellHeight 40)
  const sizes = [
    [{ width: 100, height: 50 }, { width: 30, height: 60 }],
    [{ width: 50, height: 50 }, { width: 30, height: 60 }],
  ];
  const l = gridLayout(sizes, { cellHeight: 40, gap: 4 });
  assert.equal(l.width, 4 + 80 + 4 + 20 + 4);
  assert.equal(l.height, 4 + 2 * (40 + 4));
  assert.deepEqual(l.columns, [{ x: 4, width: 80 }, { x: 88, width: 20 }]);
  assert.deepEqual(l.rows, [4, 48]);
  assert.deepEqual(l.cells[1]![0], { x: 4 + 20, y: 48, width: 40, height: 40 }); // centred in the 80-wide column
  const titled = gridLayout(sizes, { cellHeight: 40, gap: 4, titleWidth: 50, headerHeight: 17, legendHeight: 34, minColumnWidths: [0, 30] });
  assert.equal(titled.width, 4 + 50 + 4 + 80 + 4 + 30 + 4);
  assert.equal(titled.height, 4 + 17 + 4 + 2 * 44 + 34 + 4);
  assert.equal(titled.legendY, 4 + 17 + 4 + 2 * 44);
  assert.deepEqual(titled.cells[0]![1], { x: 4 + 50 + 4 + 80 + 4 + 5, y: 25, width: 20, height: 40 });
});

test('imageGrid: output size, cells placed and scaled, gaps white, masks scaled without new colours', async () => {
  const red = solid(100, 50, [255, 0, 0]);
  const blue = solid(30, 60, [0, 0, 255]);
  // a two-colour mask picture: 'nearest' scaling must keep exactly these two colours
  const stripes = labelToImage(mask(6, 3, [1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2]));
  const grid = await imageGrid([[red, blue], [stripes]], { cellHeight: 40, gap: 4, rowKernels: ['smooth', 'nearest'] });
  assert.equal(grid.width, 4 + 80 + 4 + 20 + 4);
  assert.equal(grid.height, 4 + 2 * 44);
  assert.deepEqual(px(grid, 2, 2), [255, 255, 255]);
  assert.deepEqual(px(grid, 40, 20), [255, 0, 0]);
  assert.deepEqual(px(grid, 97, 20), [0, 0, 255]);
  assert.deepEqual(px(grid, 97, 70), [255, 255, 255], 'no cell under column 2 in row 2');
  const colours = new Set<string>();
  for (let y = 48; y < 88; y++) for (let x = 4; x < 84; x++) colours.add(px(grid, x, y).join(','));
  assert.deepEqual([...colours].sort(), ['0,128,0', '128,0,0']);
  assert.deepEqual(px(grid, 4 + 20 + 5, 60), [128, 0, 0]); // 6x3 -> 80x40 scaled, left half aeroplane
  await assert.rejects(imageGrid([]), /no pictures/);
});

test('legendImage: size from the entry count, swatches with a dark border, names drawn in ink', async () => {
  const entries = [
    { name: 'background', color: [0, 0, 0] as Rgb },
    { name: 'dog', color: [64, 0, 128] as Rgb },
    { name: 'person', color: [192, 128, 128] as Rgb },
  ];
  const narrow = await legendImage(entries, 60); // one column
  assert.equal(narrow.width, 60);
  assert.equal(narrow.height, 2 * 6 + 3 * 22);
  // entry 1 (dog): swatch at x=6, y=6+22+4, interior inset by 1
  assert.deepEqual(px(narrow, 6, 32), [32, 32, 32]);
  assert.deepEqual(px(narrow, 10, 38), [64, 0, 128]);
  const wide = await legendImage(entries, 1000); // all in one row
  assert.equal(wide.height, 2 * 6 + 22);
  // some dark text pixels right of the first swatch
  let ink = 0;
  for (let y = 6; y < 28; y++) for (let x = 26; x < 100; x++) if (px(wide, x, y)[0]! < 128) ink++;
  assert.ok(ink > 20, `expected the name drawn, found ${ink} dark pixels`);
});

test('text: system fonts or bitmap glyphs give readable, distinct strings at the line height', async () => {
  const g = renderWithGlyphs('Ab', 16);
  assert.deepEqual([g.width, g.height, g.baseline], [20, 19, 15]);
  assert.ok(g.alpha.some((v) => v > 200));
  assert.notDeepEqual(renderWithGlyphs('ab', 16).alpha, g.alpha);
  const small = renderWithGlyphs('x?é', 8); // non-ASCII drawn as '?'
  assert.deepEqual([small.width, small.height], [15, 10]);
  const auto = await renderText('person', 14);
  assert.equal(auto.height, 17);
  assert.ok(auto.width > 20 && auto.width < 80, `width ${auto.width}`);
  assert.ok(auto.alpha.some((v) => v > 200));
});

test('showExamples: image row over truth row (plus a prediction row between when given)', async () => {
  const ex = (id: string, w: number, h: number, fill: number) => ({
    id,
    image: solid(w, h, [200, 200, 200]),
    mask: mask(w, h, Array.from({ length: w * h }, (_, i) => (i === 0 ? 255 : fill))),
  });
  const examples = [ex('a', 32, 16, 8), ex('b', 16, 16, 0)];
  const two = await showExamples(examples, { classNames: Array.from({ length: 21 }, (_, i) => `c${i}`), cellHeight: 32 });
  const three = await showExamples(
    examples.map((e) => ({ ...e, prediction: mask(e.mask.width, e.mask.height, Array(e.mask.data.length).fill(15)) })),
    { classNames: Array.from({ length: 21 }, (_, i) => `c${i}`), cellHeight: 32 },
  );
  // the title column widens from the wider of 'image'/'truth' to 'prediction'
  const [image, prediction, truth] = await Promise.all(['image', 'prediction', 'truth'].map((t) => renderText(t, 14)));
  assert.equal(three.width - two.width, Math.max(prediction!.width, image!.width, truth!.width) - Math.max(image!.width, truth!.width));
  // one more row of cells (32 + gap 4); the legend gains 'c15' (possibly a legend row)
  assert.ok(three.height - two.height >= 36 && three.height - two.height <= 36 + 22, `${two.height} -> ${three.height}`);
  // find the truth cell of example a: cat (class 8, (64,0,0)) somewhere in the picture
  let found = false;
  for (let i = 0; i < two.width * two.height && !found; i++) found = two.data[i * 3] === 64 && two.data[i * 3 + 1] === 0 && two.data[i * 3 + 2] === 0;
  assert.ok(found, 'class 8 colour drawn');
});
