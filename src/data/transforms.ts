// Joint image+mask transforms for training (random crop as the book's voc_rand_crop, padding with
// the ignore label, horizontal flip) and the ImageNet normalisation into NCHW float32 tensors.
// Image and mask always move together, so a pixel keeps its label through every transform.
import { FcnError } from '../util/errors.js';
import { IGNORE_INDEX } from './voc.js';
import type { LabelMap, RgbImage } from './image.js';
import type { Rng } from './rng.js';

export const IMAGENET_MEAN: readonly number[] = Object.freeze([0.485, 0.456, 0.406]);
export const IMAGENET_STD: readonly number[] = Object.freeze([0.229, 0.224, 0.225]);

/** The ImageNet mean as an 8-bit colour (124, 116, 104): padding with it normalises to ~0 (|x| < 0.01). */
export const IMAGENET_MEAN_RGB: readonly number[] = Object.freeze(IMAGENET_MEAN.map((m) => Math.round(m * 255)));

export interface ImageMask {
  image: RgbImage;
  mask: LabelMap;
}

function checkPair(image: RgbImage, mask: LabelMap): void {
  if (image.width !== mask.width || image.height !== mask.height) {
    throw new FcnError(`image is ${image.height}x${image.width} (HxW) but its mask is ${mask.height}x${mask.width}; they must match`);
  }
  if (image.data.length !== image.width * image.height * 3 || mask.data.length !== mask.width * mask.height) {
    throw new Error(`image/mask buffers do not match their ${image.height}x${image.width} size`);
  }
}

/** Cuts the window with top-left corner (top, left) and size height x width out of both. */
export function cropAt(image: RgbImage, mask: LabelMap, top: number, left: number, height: number, width: number): ImageMask {
  checkPair(image, mask);
  if (top < 0 || left < 0 || top + height > image.height || left + width > image.width || height < 1 || width < 1) {
    throw new RangeError(`crop ${height}x${width} at (${top}, ${left}) is outside the ${image.height}x${image.width} image`);
  }
  const img = new Uint8Array(height * width * 3);
  const msk = new Uint8Array(height * width);
  for (let y = 0; y < height; y++) {
    const srcRow = (top + y) * image.width + left;
    img.set(image.data.subarray(srcRow * 3, (srcRow + width) * 3), y * width * 3);
    msk.set(mask.data.subarray(srcRow, srcRow + width), y * width);
  }
  return { image: { width, height, data: img }, mask: { width, height, data: msk } };
}

/**
 * The book's voc_rand_crop (torchvision RandomCrop.get_params): a uniformly placed height x width
 * window, the same for image and mask. The top row is drawn first, then the left column.
 */
export function randomCrop(image: RgbImage, mask: LabelMap, height: number, width: number, rng: Rng): ImageMask {
  checkPair(image, mask);
  if (image.height < height || image.width < width) {
    throw new FcnError(`image is ${image.height}x${image.width} (HxW), smaller than the ${height}x${width} crop`);
  }
  const top = rng.int(image.height - height + 1);
  const left = rng.int(image.width - width + 1);
  return cropAt(image, mask, top, left, height, width);
}

/**
 * Pads at the bottom and right to at least height x width (sides already as large are kept): the
 * image with `fill` (default the ImageNet mean colour; meanColor(norm) for another normalisation),
 * so padding normalises to ~0, the mask with 255 (ignored).
 */
export function padTo(image: RgbImage, mask: LabelMap, height: number, width: number, fill: readonly number[] = IMAGENET_MEAN_RGB): ImageMask {
  checkPair(image, mask);
  const h = Math.max(image.height, height);
  const w = Math.max(image.width, width);
  if (h === image.height && w === image.width) return { image, mask };
  const img = new Uint8Array(h * w * 3);
  const [r, g, b] = fill as [number, number, number];
  for (let i = 0; i < h * w; i++) {
    img[i * 3] = r;
    img[i * 3 + 1] = g;
    img[i * 3 + 2] = b;
  }
  const msk = new Uint8Array(h * w).fill(IGNORE_INDEX);
  for (let y = 0; y < image.height; y++) {
    img.set(image.data.subarray(y * image.width * 3, (y + 1) * image.width * 3), y * w * 3);
    msk.set(mask.data.subarray(y * image.width, (y + 1) * image.width), y * w);
  }
  return { image: { width: w, height: h, data: img }, mask: { width: w, height: h, data: msk } };
}

/** Mirrors image and mask left-right. */
export function hflip(image: RgbImage, mask: LabelMap): ImageMask {
  checkPair(image, mask);
  const { width, height } = image;
  const img = new Uint8Array(image.data.length);
  const msk = new Uint8Array(mask.data.length);
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) {
      const s = row + x;
      const d = row + width - 1 - x;
      msk[d] = mask.data[s]!;
      img[d * 3] = image.data[s * 3]!;
      img[d * 3 + 1] = image.data[s * 3 + 1]!;
      img[d * 3 + 2] = image.data[s * 3 + 2]!;
    }
  }
  return { image: { width, height, data: img }, mask: { width, height, data: msk } };
}

let normLut: Float32Array | undefined;
/**
 * value -> normalised value per channel, computed in float32 steps as PyTorch does
 * (ToTensor: x/255; Normalize: (x - mean) / std with float32 mean and std).
 */
function normalisationTable(): Float32Array {
  if (!normLut) {
    normLut = new Float32Array(3 * 256);
    for (let c = 0; c < 3; c++) {
      const mean = Math.fround(IMAGENET_MEAN[c]!);
      const std = Math.fround(IMAGENET_STD[c]!);
      for (let v = 0; v < 256; v++) normLut[c * 256 + v] = Math.fround(Math.fround(Math.fround(v / 255) - mean) / std);
    }
  }
  return normLut;
}

/**
 * Writes images (all the same HxW) into NCHW float32 with ImageNet normalisation: (x/255 - mean)/std.
 * The data module's default for epochBatches; a network's own normalisation (its model card) goes
 * through infer/preprocess.ts's normalizeBatch, which computes the same float32 steps (a test keeps
 * the two equal): data may not import infer, and preprocess must stay loadable by the browser alone.
 */
export function normalizeToNCHW(images: RgbImage[], out?: Float32Array): Float32Array {
  if (images.length === 0) return out ?? new Float32Array(0);
  const { width, height } = images[0]!;
  const plane = width * height;
  const size = images.length * 3 * plane;
  if (out && out.length < size) throw new RangeError(`output has ${out.length} values, ${size} needed`);
  const dst = out ?? new Float32Array(size);
  const lut = normalisationTable();
  images.forEach((img, n) => {
    if (img.width !== width || img.height !== height) {
      throw new RangeError(`image ${n} is ${img.height}x${img.width}, expected ${height}x${width} like the first`);
    }
    const src = img.data;
    const base = n * 3 * plane;
    for (let i = 0; i < plane; i++) {
      dst[base + i] = lut[src[i * 3]!]!;
      dst[base + plane + i] = lut[256 + src[i * 3 + 1]!]!;
      dst[base + 2 * plane + i] = lut[512 + src[i * 3 + 2]!]!;
    }
  });
  return dst;
}

/** The 8-bit colour that normalises to ~0 under a mean (|x| < 0.5/(255·std)): what training pads small images with. */
export function meanColor(norm: { readonly mean: readonly number[] }): [number, number, number] {
  return [0, 1, 2].map((c) => Math.min(255, Math.max(0, Math.round(norm.mean[c]! * 255)))) as [number, number, number];
}
