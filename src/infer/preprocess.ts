// Turning an RGB image into the network's input, the same way for every caller: training batches
// (train/ passes normalizeBatch to data/batches.ts), `fcn predict`, eval, the server, and the page
// in the browser, which loads this very module. Normalise with the model card's mean/std in
// PyTorch's float32 steps (normalizeInto, the one implementation), and for inference pad at the
// bottom and right with zeros (the mean colour) to a multiple of the network's stride.
//
// Padding to the stride happens here, in JavaScript, and nowhere else on our paths: the inference
// graph can pad too (graph/inference.ts, padToStride), but only the exported ONNX file turns that
// on, for programs outside this project that feed it raw sizes. Padding here rather than in the
// graph is what tiling needs (each tile is padded on its own, at the image's edge only) and keeps a
// session's input shape a multiple of the stride, so ORT sees few distinct shapes. Training needs no
// stride padding: its crops are multiples of the stride (train/options.ts checks that). The page runs
// the exported graph on input already padded here, so the graph's Pad is then a no-op.
//
// Browser-safe: no Node built-ins, no packages, no runtime imports at all (the server hands the
// compiled file to the page as it is, and only it and tiled.js).
import type { RgbImage } from '../data/image.js';
import type { Normalization } from '../model/card.js';

/** Per-channel input normalisation of RGB/255: (x - mean) / std (a model card's `normalization`). */
export type ChannelNormalization = { readonly [K in keyof Normalization]: readonly number[] };

export function roundUp(n: number, multiple: number): number {
  return Math.ceil(n / multiple) * multiple;
}

const tables = new Map<string, Float32Array>();
/**
 * value -> normalised value per channel, in float32 steps as torchvision does (ToTensor: x/255;
 * Normalize: (x - mean) / std with float32 mean and std). One table per normalisation, kept.
 */
function normalizationTable(norm: ChannelNormalization): Float32Array {
  const key = `${norm.mean.join(',')}/${norm.std.join(',')}`;
  let lut = tables.get(key);
  if (!lut) {
    if (norm.mean.length !== 3 || norm.std.length !== 3 || norm.std.some((s) => !(s > 0)) || norm.mean.some((m) => !Number.isFinite(m))) {
      throw new RangeError(`normalisation needs 3 finite means and 3 positive standard deviations, got mean [${norm.mean.join(', ')}], std [${norm.std.join(', ')}]`);
    }
    lut = new Float32Array(3 * 256);
    for (let c = 0; c < 3; c++) {
      const mean = Math.fround(norm.mean[c]!);
      const std = Math.fround(norm.std[c]!);
      for (let v = 0; v < 256; v++) lut[c * 256 + v] = Math.fround(Math.fround(Math.fround(v / 255) - mean) / std);
    }
    tables.set(key, lut);
  }
  return lut;
}

/** A window of an image: rows [top, top + height), columns [left, left + width). */
export interface Window {
  top: number;
  left: number;
  height: number;
  width: number;
}

/**
 * The one normalisation: writes `window` of `img`, normalised, into the 3 planes of a
 * planeHeight x planeWidth CHW tensor at `offset` of `dst`, top-left aligned. Values outside the
 * window are left as they are (0 in a fresh array: the mean colour once normalised).
 */
export function normalizeInto(img: RgbImage, norm: ChannelNormalization, window: Window, dst: Float32Array, offset: number,
  planeHeight: number, planeWidth: number): void {
  const { top, left, height, width } = window;
  if (top < 0 || left < 0 || top + height > img.height || left + width > img.width || height > planeHeight || width > planeWidth) {
    throw new RangeError(`window ${height}x${width} at (${top}, ${left}) does not fit the ${img.height}x${img.width} image or the ${planeHeight}x${planeWidth} plane`);
  }
  if (offset + 3 * planeHeight * planeWidth > dst.length) throw new RangeError(`output has ${dst.length} values, ${offset + 3 * planeHeight * planeWidth} needed`);
  const lut = normalizationTable(norm);
  const plane = planeHeight * planeWidth;
  const src = img.data;
  for (let y = 0; y < height; y++) {
    const s0 = ((top + y) * img.width + left) * 3;
    const d0 = offset + y * planeWidth;
    for (let x = 0; x < width; x++) {
      const s = s0 + 3 * x;
      dst[d0 + x] = lut[src[s]!]!;
      dst[d0 + plane + x] = lut[256 + src[s + 1]!]!;
      dst[d0 + 2 * plane + x] = lut[512 + src[s + 2]!]!;
    }
  }
}

/** Images of one size as an NCHW float32 batch, normalised with `norm` (training batches). */
export function normalizeBatch(images: readonly RgbImage[], norm: ChannelNormalization): Float32Array {
  if (images.length === 0) return new Float32Array(0);
  const { width, height } = images[0]!;
  const dst = new Float32Array(images.length * 3 * width * height);
  images.forEach((img, n) => {
    if (img.width !== width || img.height !== height) throw new RangeError(`image ${n} is ${img.height}x${img.width}, expected ${height}x${width} like the first`);
    normalizeInto(img, norm, { top: 0, left: 0, height, width }, dst, n * 3 * width * height, height, width);
  });
  return dst;
}

/**
 * Normalises the window [y0, y0+h) x [x0, x0+w) of `img` into a 1x3xHpxWp float32 tensor, where
 * Hp, Wp are h, w rounded up to `multiple`; the padding stays 0 (= the mean colour once normalised).
 */
export function normalizeWindow(img: RgbImage, norm: ChannelNormalization, y0: number, x0: number, h: number, w: number, multiple: number):
  { data: Float32Array; height: number; width: number } {
  const H = roundUp(h, multiple);
  const W = roundUp(w, multiple);
  const out = new Float32Array(3 * H * W);
  normalizeInto(img, norm, { top: y0, left: x0, height: h, width: w }, out, 0, H, W);
  return { data: out, height: H, width: W };
}

export interface TileRange {
  /** The window fed to the network. */
  start: number;
  length: number;
  /** The part of the window whose predictions are kept (absolute coordinates). */
  coreStart: number;
  coreEnd: number;
}

/**
 * Splits one image axis into overlapping windows of at most `tile` pixels whose cores cover the
 * axis exactly once; each core keeps at least `margin` pixels of context from its window's edges
 * (except at the image border), so every pixel is predicted with context on all sides.
 */
export function tileRanges(length: number, tile: number, margin: number): TileRange[] {
  if (length <= tile) return [{ start: 0, length, coreStart: 0, coreEnd: length }];
  if (tile <= 2 * margin) throw new Error(`tile ${tile} too small for margin ${margin}`);
  const out: TileRange[] = [];
  let coreStart = 0;
  for (;;) {
    if (length - coreStart <= tile - margin) {
      // the last window ends at the image's edge; its core still has `margin` pixels before it
      out.push({ start: length - tile, length: tile, coreStart, coreEnd: length });
      return out;
    }
    const start = Math.max(coreStart - margin, 0);
    const coreEnd = start + tile - margin;
    out.push({ start, length: tile, coreStart, coreEnd });
    coreStart = coreEnd;
  }
}
