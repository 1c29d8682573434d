// Training augmentation as torchvision's segmentation reference does it (references/segmentation:
// RandomResize, RandomCrop padded with the ignore label, RandomHorizontalFlip): each example is
// rescaled by a random factor s in [lo, hi] (the image bilinearly, the mask by nearest neighbour,
// so labels stay labels), padded at the bottom/right to the crop size where it came out smaller
// (image with the ImageNet mean colour, which normalises to ~0; mask with 255), cropped at a
// uniformly random place, and mirrored with probability 1/2. Only the crop window of the rescaled
// image is ever computed. All draws come from the Rng passed in, in a fixed order (scale, top,
// left, flip), so a seeded run, and a resumed one, sees the same examples.
import { IGNORE_INDEX } from './voc.js';
import { IMAGENET_MEAN_RGB, type ImageMask } from './transforms.js';
import type { LabelMap, RgbImage } from './image.js';
import type { Rng } from './rng.js';

export interface AugmentOptions {
  /** [height, width] of the output. */
  crop: [number, number];
  /** Random rescale range [lo, hi] (torchvision's reference: 0.5..2.0); undefined: no rescale. */
  scale?: [number, number];
  /** Mirror left-right with probability 1/2. */
  flip?: boolean;
  /** The image's padding colour (default the ImageNet mean, which normalises to ~0). */
  padColor?: readonly number[];
}

/** The rescaled size of an h x w image by factor s: each side rounded, at least 1. */
export function scaledSize(height: number, width: number, s: number): [number, number] {
  return [Math.max(1, Math.round(height * s)), Math.max(1, Math.round(width * s))];
}

/**
 * Source coordinate and weights of bilinear resampling from `inSize` to `outSize` samples with
 * half-pixel centres (PyTorch's interpolate(mode='bilinear', align_corners=False), no antialias):
 * x_src = (x + 0.5)·in/out − 0.5, clamped at 0; neighbours i0 = floor, i1 = min(i0 + 1, in − 1).
 */
export function bilinearTaps(inSize: number, outSize: number, start: number, count: number): { i0: Int32Array; i1: Int32Array; w1: Float64Array } {
  const scale = inSize / outSize;
  const i0 = new Int32Array(count);
  const i1 = new Int32Array(count);
  const w1 = new Float64Array(count);
  for (let k = 0; k < count; k++) {
    const src = Math.max(0, (start + k + 0.5) * scale - 0.5);
    const lo = Math.min(Math.floor(src), inSize - 1);
    i0[k] = lo;
    i1[k] = Math.min(lo + 1, inSize - 1);
    w1[k] = src - lo;
  }
  return { i0, i1, w1 };
}

/** PyTorch's 'nearest' source index: floor(x·in/out), clamped. */
function nearestIndex(inSize: number, outSize: number, x: number): number {
  return Math.min(Math.floor((x * inSize) / outSize), inSize - 1);
}

/**
 * The window [top, top+ch) x [left, left+cw) of the image rescaled to outH x outW, where rows and
 * columns beyond the rescaled image are padding. Image: bilinear, rounded to 8 bits; mask: nearest.
 */
export function resizedWindow(
  image: RgbImage, mask: LabelMap, outH: number, outW: number, top: number, left: number, ch: number, cw: number,
  padColor: readonly number[] = IMAGENET_MEAN_RGB,
): ImageMask {
  const { width: W, height: H } = image;
  const img = new Uint8Array(ch * cw * 3);
  const msk = new Uint8Array(ch * cw).fill(IGNORE_INDEX);
  const [pr, pg, pb] = padColor as [number, number, number];
  for (let i = 0; i < ch * cw; i++) {
    img[i * 3] = pr;
    img[i * 3 + 1] = pg;
    img[i * 3 + 2] = pb;
  }
  const rows = Math.max(0, Math.min(ch, outH - top));
  const cols = Math.max(0, Math.min(cw, outW - left));
  if (rows === 0 || cols === 0) return { image: { width: cw, height: ch, data: img }, mask: { width: cw, height: ch, data: msk } };
  const ys = bilinearTaps(H, outH, top, rows);
  const xs = bilinearTaps(W, outW, left, cols);
  const src = image.data;
  for (let y = 0; y < rows; y++) {
    const r0 = ys.i0[y]! * W;
    const r1 = ys.i1[y]! * W;
    const wy = ys.w1[y]!;
    const my = nearestIndex(H, outH, top + y) * W;
    for (let x = 0; x < cols; x++) {
      const c0 = xs.i0[x]!;
      const c1 = xs.i1[x]!;
      const wx = xs.w1[x]!;
      const d = (y * cw + x) * 3;
      for (let c = 0; c < 3; c++) {
        const a = src[(r0 + c0) * 3 + c]!;
        const b = src[(r0 + c1) * 3 + c]!;
        const e = src[(r1 + c0) * 3 + c]!;
        const f = src[(r1 + c1) * 3 + c]!;
        const topRow = a + (b - a) * wx;
        const bottomRow = e + (f - e) * wx;
        img[d + c] = Math.round(topRow + (bottomRow - topRow) * wy);
      }
      msk[y * cw + x] = mask.data[my + nearestIndex(W, outW, left + x)]!;
    }
  }
  return { image: { width: cw, height: ch, data: img }, mask: { width: cw, height: ch, data: msk } };
}

function mirror(pair: ImageMask): ImageMask {
  const { image, mask } = pair;
  const { width, height } = image;
  const img = new Uint8Array(image.data.length);
  const msk = new Uint8Array(mask.data.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const s = y * width + x;
      const d = y * width + width - 1 - x;
      msk[d] = mask.data[s]!;
      img[d * 3] = image.data[s * 3]!;
      img[d * 3 + 1] = image.data[s * 3 + 1]!;
      img[d * 3 + 2] = image.data[s * 3 + 2]!;
    }
  }
  return { image: { width, height, data: img }, mask: { width, height, data: msk } };
}

/** Checks a --scale range: 0 < lo <= hi, finite. */
export function checkScaleRange(scale: [number, number]): string | undefined {
  const [lo, hi] = scale;
  if (!Number.isFinite(lo) || !Number.isFinite(hi) || lo <= 0 || hi < lo || hi > 16) return `expected LO,HI with 0 < LO <= HI <= 16, got ${lo},${hi}`;
  return undefined;
}

/**
 * One augmented training example of exactly crop[0] x crop[1]: rescale (when `scale` is set),
 * pad-and-crop, flip (when `flip`). Draws, in order: the scale, the top row, the left column, the flip.
 */
export function augment(image: RgbImage, mask: LabelMap, opts: AugmentOptions, rng: Rng): ImageMask {
  if (image.width !== mask.width || image.height !== mask.height) {
    throw new RangeError(`image is ${image.height}x${image.width} but its mask is ${mask.height}x${mask.width}`);
  }
  const [ch, cw] = opts.crop;
  const s = opts.scale ? rng.uniform(opts.scale[0], opts.scale[1]) : 1;
  const [outH, outW] = scaledSize(image.height, image.width, s);
  const top = rng.int(Math.max(outH, ch) - ch + 1);
  const left = rng.int(Math.max(outW, cw) - cw + 1);
  let out = resizedWindow(image, mask, outH, outW, top, left, ch, cw, opts.padColor);
  if (opts.flip && rng.next() < 0.5) out = mirror(out);
  return out;
}
