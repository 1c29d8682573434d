// Turning an RGB image into the network's input: normalise with the model's mean/std and pad at
// the bottom and right with zeros (the mean colour) to a multiple of the network's stride.
import type { RgbImage } from '../data/image.js';

import type { Normalization } from '../model/card.js';

export function roundUp(n: number, multiple: number): number {
  return Math.ceil(n / multiple) * multiple;
}

/**
 * Normalises the window [y0, y0+h) x [x0, x0+w) of `img` into a 1x3xHpxWp float32 tensor, where
 * Hp, Wp are h, w rounded up to `multiple`; the padding stays 0 (= the mean colour once normalised).
 */
export function normalizeWindow(img: RgbImage, norm: Normalization, y0: number, x0: number, h: number, w: number, multiple: number):
  { data: Float32Array; height: number; width: number } {
  const H = roundUp(h, multiple);
  const W = roundUp(w, multiple);
  const out = new Float32Array(3 * H * W);
  const scale = norm.std.map((s) => 1 / (255 * s));
  const shift = norm.mean.map((m, c) => m / norm.std[c]!);
  for (let c = 0; c < 3; c++) {
    const plane = c * H * W;
    const sc = scale[c]!;
    const sh = shift[c]!;
    for (let y = 0; y < h; y++) {
      const src = ((y0 + y) * img.width + x0) * 3 + c;
      const dst = plane + y * W;
      for (let x = 0; x < w; x++) out[dst + x] = img.data[src + 3 * x]! * sc - sh;
    }
  }
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
