// Pictures of masks: class ids to colours (the book's label2image), overlays on the photo, the
// classes a mask contains, a colour legend, and the book's show_images grid (rows of pictures
// scaled to one height, optional row and column titles, a legend underneath). Images in, images
// out: writing them is the caller's business.
import type Sharp from 'sharp';
import { requireCjs } from '../util/cjs.js';
import type { LabelMap, RgbImage } from '../data/image.js';
import { VOC_PALETTE, IGNORE_INDEX, type Rgb } from '../data/voc.js';
import { drawText, renderText, type TextMask } from './text.js';

const sharp = requireCjs('sharp') as typeof Sharp;

const WHITE: Rgb = [255, 255, 255];
const INK: Rgb = [32, 32, 32];

function colourOf(colormap: readonly Rgb[], v: number): Rgb {
  // A short colormap (e.g. a model's 21 class colours) still draws void and stray ids in the VOC palette.
  return colormap[v] ?? VOC_PALETTE[v]!;
}

/**
 * Colours a class-index mask: pixel v gets colormap[v] (default the 256-entry VOC palette, so void
 * 255 is (224,224,192)); ids past the end of a shorter colormap take their VOC palette colour.
 */
export function labelToImage(mask: LabelMap, colormap: readonly Rgb[] = VOC_PALETTE): RgbImage {
  const n = mask.width * mask.height;
  const data = new Uint8Array(n * 3);
  const lut = new Uint8Array(256 * 3);
  for (let v = 0; v < 256; v++) lut.set(colourOf(colormap, v), v * 3);
  for (let i = 0; i < n; i++) {
    const v = mask.data[i]! * 3;
    data[i * 3] = lut[v]!;
    data[i * 3 + 1] = lut[v + 1]!;
    data[i * 3 + 2] = lut[v + 2]!;
  }
  return { width: mask.width, height: mask.height, data };
}

/**
 * Tints the photo with the mask's class colours: out = round((1 - alpha) · image + alpha · colour).
 * Background (0) and void (255) pixels are left as they are, so objects stand out against the
 * untouched scene instead of the whole picture turning black.
 */
export function overlay(image: RgbImage, mask: LabelMap, alpha = 0.5, colormap: readonly Rgb[] = VOC_PALETTE): RgbImage {
  if (image.width !== mask.width || image.height !== mask.height) {
    throw new RangeError(`overlay: image is ${image.height}x${image.width} but mask is ${mask.height}x${mask.width} (HxW)`);
  }
  if (!(alpha >= 0 && alpha <= 1)) throw new RangeError(`overlay: alpha must be in [0, 1], got ${alpha}`);
  const out = new Uint8Array(image.data);
  const n = mask.width * mask.height;
  for (let i = 0; i < n; i++) {
    const v = mask.data[i]!;
    if (v === 0 || v === IGNORE_INDEX) continue;
    const c = colourOf(colormap, v);
    for (let k = 0; k < 3; k++) out[i * 3 + k] = Math.round((1 - alpha) * image.data[i * 3 + k]! + alpha * c[k]!);
  }
  return { width: image.width, height: image.height, data: out };
}

export interface ClassPresence {
  id: number;
  pixels: number;
  /** pixels / (width · height), void included in the denominator. */
  fraction: number;
}

/** The class ids 0..numClasses-1 that occur in the mask, ascending, with their share of the picture. Void is not listed. */
export function classesPresent(mask: LabelMap, numClasses: number): ClassPresence[] {
  const hist = new Float64Array(256);
  for (let i = 0; i < mask.data.length; i++) hist[mask.data[i]!]! += 1;
  const total = mask.width * mask.height;
  const out: ClassPresence[] = [];
  for (let id = 0; id < Math.min(numClasses, IGNORE_INDEX); id++) {
    if (hist[id]! > 0) out.push({ id, pixels: hist[id]!, fraction: hist[id]! / total });
  }
  return out;
}

function blank(width: number, height: number, colour: Rgb = WHITE): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set(colour, i * 3);
  return { width, height, data };
}

function fillRect(img: RgbImage, x: number, y: number, w: number, h: number, colour: Rgb): void {
  for (let yy = Math.max(0, y); yy < Math.min(img.height, y + h); yy++) {
    for (let xx = Math.max(0, x); xx < Math.min(img.width, x + w); xx++) img.data.set(colour, (yy * img.width + xx) * 3);
  }
}

/** Copies `src` into `dst` with its top-left corner at (x, y), clipped to `dst`. */
function blit(dst: RgbImage, src: RgbImage, x: number, y: number): void {
  const x0 = Math.max(0, x);
  const x1 = Math.min(dst.width, x + src.width);
  if (x1 <= x0) return;
  for (let sy = 0; sy < src.height; sy++) {
    const dy = y + sy;
    if (dy < 0 || dy >= dst.height) continue;
    const from = (sy * src.width + (x0 - x)) * 3;
    dst.data.set(src.data.subarray(from, from + (x1 - x0) * 3), (dy * dst.width + x0) * 3);
  }
}

export interface LegendEntry {
  name: string;
  color: Rgb;
}

/** Text size (px) of legends and titles. */
const TEXT_SIZE = 14;
const LEGEND_PAD = 6;
const SWATCH = 14;
const LEGEND_ROW = 22;

/**
 * A colour key `width` pixels wide: a bordered swatch and the name for each entry, in as many equal
 * columns as fit, filled top to bottom (in order, like a printed key). No entries: a blank strip.
 */
export async function legendImage(entries: readonly LegendEntry[], width: number): Promise<RgbImage> {
  if (!Number.isInteger(width) || width < 1) throw new RangeError(`legendImage: width must be a positive integer, got ${width}`);
  const labels = await Promise.all(entries.map((e) => renderText(e.name, TEXT_SIZE)));
  const itemWidth = SWATCH + 6 + Math.max(0, ...labels.map((t) => t.width)) + 16;
  const cols = Math.max(1, Math.min(entries.length, Math.floor((width - 2 * LEGEND_PAD) / itemWidth)));
  const rows = Math.ceil(entries.length / cols);
  const img = blank(width, 2 * LEGEND_PAD + rows * LEGEND_ROW);
  entries.forEach((e, i) => {
    const x = LEGEND_PAD + Math.floor(i / rows) * itemWidth;
    const y = LEGEND_PAD + (i % rows) * LEGEND_ROW;
    const sy = y + Math.floor((LEGEND_ROW - SWATCH) / 2);
    // a dark border keeps white-ish and background-black swatches visible
    fillRect(img, x, sy, SWATCH, SWATCH, INK);
    fillRect(img, x + 1, sy + 1, SWATCH - 2, SWATCH - 2, e.color);
    const t = labels[i]!;
    drawText(img, t, x + SWATCH + 6, y + Math.floor((LEGEND_ROW - t.height) / 2), INK);
  });
  return img;
}

export interface GridOptions {
  /** Every cell is scaled to this height, keeping its aspect ratio (default 160). */
  cellHeight?: number;
  /** Pixels between cells and around the border (default 4). */
  gap?: number;
  /** A title left of each row, e.g. ['image', 'prediction', 'truth']. */
  rowTitles?: readonly string[];
  /** A title above each column, e.g. the image ids. */
  columnTitles?: readonly string[];
  /** How each row is scaled: 'smooth' for photos (default), 'nearest' for colour masks so class colours stay exact. */
  rowKernels?: readonly ('smooth' | 'nearest')[];
  /** A colour key drawn under the grid. */
  legend?: readonly LegendEntry[];
}

export interface GridLayout {
  width: number;
  height: number;
  /** Where each cell is drawn (scaled size, centred in its column). */
  cells: { x: number; y: number; width: number; height: number }[][];
  /** Left edge and width of each column. */
  columns: { x: number; width: number }[];
  /** Top of each row. */
  rows: number[];
  /** Top of the legend (= grid height when there is none). */
  legendY: number;
}

export interface LayoutOptions {
  cellHeight: number;
  gap: number;
  /** Width of the row-title column (0: none). */
  titleWidth?: number;
  /** Height of the column-title band (0: none). */
  headerHeight?: number;
  /** Height of the legend under the grid (0: none). */
  legendHeight?: number;
  /** Columns are at least this wide (e.g. to fit their titles). */
  minColumnWidths?: readonly number[];
}

/**
 * The grid's arithmetic. A cell w×h is scaled to round(w·H/h)×H (H = cellHeight); a column is as
 * wide as its widest cell; width = gap + (titleWidth + gap if titled) + Σ(column + gap);
 * height = gap + (headerHeight + gap if titled) + rows·(H + gap) + (legendHeight + gap if any).
 */
export function gridLayout(sizes: readonly (readonly { width: number; height: number }[])[], o: LayoutOptions): GridLayout {
  const { cellHeight, gap, titleWidth = 0, headerHeight = 0, legendHeight = 0, minColumnWidths = [] } = o;
  const scaled = sizes.map((row) => row.map((s) => ({ width: Math.max(1, Math.round((s.width * cellHeight) / s.height)), height: cellHeight })));
  const ncols = Math.max(0, ...sizes.map((r) => r.length));
  const colWidths = Array.from({ length: ncols }, (_, j) => Math.max(1, minColumnWidths[j] ?? 0, ...scaled.map((r) => r[j]?.width ?? 0)));
  let x = gap + (titleWidth > 0 ? titleWidth + gap : 0);
  const columns = colWidths.map((w) => {
    const c = { x, width: w };
    x += w + gap;
    return c;
  });
  const top = gap + (headerHeight > 0 ? headerHeight + gap : 0);
  const rows = scaled.map((_, i) => top + i * (cellHeight + gap));
  const legendY = top + scaled.length * (cellHeight + gap);
  const cells = scaled.map((row, i) =>
    row.map((s, j) => ({ x: columns[j]!.x + Math.floor((columns[j]!.width - s.width) / 2), y: rows[i]!, width: s.width, height: s.height })),
  );
  return { width: x, height: legendY + (legendHeight > 0 ? legendHeight + gap : 0), cells, columns, rows, legendY };
}

async function resize(img: RgbImage, width: number, height: number, kernel: 'smooth' | 'nearest'): Promise<RgbImage> {
  if (img.width === width && img.height === height) return img;
  const { data, info } = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .resize(width, height, { fit: 'fill', kernel: kernel === 'nearest' ? 'nearest' : 'lanczos3' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

/**
 * The book's show_images layout: rows of pictures (e.g. photos / predictions / ground truth, one
 * column per example), each scaled to a common height, on white, with optional titles and legend.
 */
export async function imageGrid(rows: readonly (readonly RgbImage[])[], opts: GridOptions = {}): Promise<RgbImage> {
  const cellHeight = opts.cellHeight ?? 160;
  const gap = opts.gap ?? 4;
  if (!Number.isInteger(cellHeight) || cellHeight < 1) throw new RangeError(`imageGrid: cellHeight must be a positive integer, got ${cellHeight}`);
  if (!Number.isInteger(gap) || gap < 0) throw new RangeError(`imageGrid: gap must be an integer >= 0, got ${gap}`);
  if (rows.length === 0 || rows.every((r) => r.length === 0)) throw new RangeError('imageGrid: no pictures to lay out');
  const rowTitles = await Promise.all((opts.rowTitles ?? []).map((t) => renderText(t, TEXT_SIZE)));
  const colTitles = await Promise.all((opts.columnTitles ?? []).map((t) => renderText(t, TEXT_SIZE)));
  const titleWidth = Math.max(0, ...rowTitles.map((t) => t.width));
  const headerHeight = Math.max(0, ...colTitles.map((t) => t.height));
  // The legend's width depends on the grid's, its height on its width: lay out once without it.
  const sizes = rows.map((r) => r.map((img) => ({ width: img.width, height: img.height })));
  const base: LayoutOptions = { cellHeight, gap, titleWidth, headerHeight, minColumnWidths: colTitles.map((t) => t.width) };
  const bare = gridLayout(sizes, base);
  const legend = opts.legend && opts.legend.length > 0 ? await legendImage(opts.legend, Math.max(1, bare.width - 2 * gap)) : undefined;
  const layout = gridLayout(sizes, { ...base, legendHeight: legend?.height ?? 0 });

  const out = blank(layout.width, layout.height);
  for (let i = 0; i < rows.length; i++) {
    const kernel = opts.rowKernels?.[i] ?? 'smooth';
    for (let j = 0; j < rows[i]!.length; j++) {
      const cell = layout.cells[i]![j]!;
      blit(out, await resize(rows[i]![j]!, cell.width, cell.height, kernel), cell.x, cell.y);
    }
    const t: TextMask | undefined = rowTitles[i];
    if (t) drawText(out, t, gap, layout.rows[i]! + Math.floor((cellHeight - t.height) / 2), INK);
  }
  colTitles.forEach((t, j) => {
    const col = layout.columns[j];
    if (col) drawText(out, t, col.x + Math.floor((col.width - t.width) / 2), gap, INK);
  });
  if (legend) blit(out, legend, gap, layout.legendY);
  return out;
}

export interface ShowExample {
  id: string;
  image: RgbImage;
  /** Ground truth. */
  mask: LabelMap;
  /** The model's mask, when there is one. */
  prediction?: LabelMap;
}

export interface ShowOptions {
  classNames: readonly string[];
  colormap?: readonly Rgb[];
  cellHeight?: number;
}

/**
 * The book's picture of a few examples: one column per example (titled by its id), rows
 * image / prediction (when the examples carry one) / truth, and a legend of the classes present
 * in the truths and predictions (plus void when the truth has it).
 */
export async function showExamples(examples: readonly ShowExample[], opts: ShowOptions): Promise<RgbImage> {
  if (examples.length === 0) throw new RangeError('showExamples: no examples');
  const colormap = opts.colormap ?? VOC_PALETTE;
  const withPrediction = examples.some((e) => e.prediction);
  if (withPrediction && !examples.every((e) => e.prediction)) throw new RangeError('showExamples: some examples have a prediction and some do not');
  const rows: RgbImage[][] = [examples.map((e) => e.image)];
  const titles = ['image'];
  if (withPrediction) {
    rows.push(examples.map((e) => labelToImage(e.prediction!, colormap)));
    titles.push('prediction');
  }
  rows.push(examples.map((e) => labelToImage(e.mask, colormap)));
  titles.push('truth');

  const n = opts.classNames.length;
  const present = new Set<number>();
  let hasVoid = false;
  for (const e of examples) {
    for (const m of e.prediction ? [e.mask, e.prediction] : [e.mask]) for (const c of classesPresent(m, n)) present.add(c.id);
    hasVoid ||= e.mask.data.includes(IGNORE_INDEX);
  }
  const legend: LegendEntry[] = [...present].sort((a, b) => a - b).map((id) => ({ name: opts.classNames[id]!, color: colourOf(colormap, id) }));
  if (hasVoid) legend.push({ name: 'void (not scored)', color: colourOf(colormap, IGNORE_INDEX) });
  return imageGrid(rows, {
    cellHeight: opts.cellHeight,
    rowTitles: titles,
    columnTitles: examples.map((e) => e.id),
    rowKernels: rows.map((_, i) => (i === 0 ? 'smooth' : 'nearest')),
    legend,
  });
}
