// Whole-image prediction through overlapping tiles, and the class shares of a mask: the one
// implementation that `predict`, the server and the page (in the browser, under onnxruntime-web)
// all run. Browser-safe on purpose: no Node built-ins, no packages, only relative imports of other
// browser-safe modules, so the server can hand the compiled file to the page as it is.
import type { RgbImage } from '../data/image.js';
import type { Normalization } from '../model/card.js';
import { normalizeWindow, tileRanges } from './preprocess.js';

/** What the tile loop needs to know about the network. */
export interface TileSettings {
  normalization: Normalization;
  /** Inputs are padded at the bottom and right to a multiple of this. */
  stride: number;
  /** Images with a side longer than this go through overlapping windows of this size. */
  tileSize: number;
  /** Context kept around each window's core, in pixels. */
  tileMargin: number;
}

/** A normalised 1x3xHxW window (H, W multiples of the stride). */
export interface NetworkInput {
  data: Float32Array;
  height: number;
  width: number;
}

/**
 * Runs the network on one window and returns its `mask` output: one class id per pixel of the
 * padded window, row-major (ONNX Runtime gives int64, i.e. a BigInt64Array; plain numbers work too).
 */
export type RunWindow = (input: NetworkInput) => Promise<ArrayLike<number | bigint>>;

const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/** Called before each window with its 0-based index and the number of windows. */
export type OnTile = (index: number, count: number) => void;

/**
 * Class ids for every pixel of `image`: each window is normalised and padded to the stride, run,
 * and only its core (which every pixel belongs to exactly once) is copied into the mask, so the
 * padding and the windows' borders never reach the result.
 */
export async function predictInTiles(image: RgbImage, settings: TileSettings, run: RunWindow, onTile?: OnTile): Promise<Uint8Array> {
  const { width, height } = image;
  const mask = new Uint8Array(width * height);
  const rows = tileRanges(height, settings.tileSize, settings.tileMargin);
  const cols = tileRanges(width, settings.tileSize, settings.tileMargin);
  const count = rows.length * cols.length;
  let index = 0;
  for (const r of rows) {
    for (const c of cols) {
      onTile?.(index++, count);
      const x = normalizeWindow(image, settings.normalization, r.start, c.start, r.length, c.length, settings.stride);
      const out = await run(x);
      // int64 class ids are small and non-negative: on a little-endian machine each one is the low
      // 32-bit word of its 8 bytes, read without making a BigInt per pixel (3 ms per 320x480 image)
      const words = out instanceof BigInt64Array && LITTLE_ENDIAN ? new Int32Array(out.buffer, out.byteOffset, out.length * 2) : undefined;
      for (let y = r.coreStart; y < r.coreEnd; y++) {
        const src = (y - r.start) * x.width - c.start;
        const dst = y * width;
        if (words) for (let xx = c.coreStart; xx < c.coreEnd; xx++) mask[dst + xx] = words[2 * (src + xx)]!;
        else for (let xx = c.coreStart; xx < c.coreEnd; xx++) mask[dst + xx] = Number(out[src + xx]);
      }
    }
  }
  return mask;
}

export interface ClassShare {
  id: number;
  name: string;
  color: readonly [number, number, number];
  pixels: number;
  fraction: number;
}

/**
 * The classes present in `mask` (ids below `classes.length`) with their pixel counts and shares of
 * the whole mask, most pixels first; `colors[id]` is the class's colour.
 */
export function classShares(mask: ArrayLike<number>, classes: readonly string[], colors: readonly (readonly [number, number, number])[]): ClassShare[] {
  const counts = new Float64Array(256);
  for (let i = 0; i < mask.length; i++) counts[mask[i]!]!++;
  const total = mask.length || 1;
  const out: ClassShare[] = [];
  for (let id = 0; id < classes.length; id++) {
    const pixels = counts[id]!;
    if (pixels > 0) out.push({ id, name: classes[id]!, color: colors[id]!, pixels, fraction: pixels / total });
  }
  return out.sort((a, b) => b.pixels - a.pixels);
}
