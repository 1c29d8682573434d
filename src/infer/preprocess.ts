// Turning an RGB image into the network's input, the same way for every caller (`fcn predict`,
// eval, the server, and the page in the browser, which loads this very module): normalise with the
// model card's mean/std by data/transforms.ts's normalizeInto (the function training batches use),
// and pad at the bottom and right with zeros (the mean colour) to a multiple of the network's
// stride, logits cropped back by the caller.
//
// Padding to the stride happens here, in JavaScript, and nowhere else on our paths: the inference
// graph can pad too (graph/inference.ts, padToStride), but only the exported ONNX file turns that
// on, for programs outside this project that feed it raw sizes. Padding here rather than in the
// graph is what tiling needs (each tile is padded on its own, at the image's edge only) and keeps a
// session's input shape a multiple of the stride, so ORT sees few distinct shapes. Training needs no
// stride padding: its crops are multiples of the stride (options.ts checks that). The page runs the
// exported graph on input already padded here, so the graph's Pad is then a no-op.
//
// The browser loads this module and its relative imports from /lib/: they must not import Node
// APIs or packages (test/preprocess.test.ts walks the imports to check).
import type { RgbImage } from '../data/image.js';
import { normalizeInto } from '../data/transforms.js';
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
