// torchvision's evaluation resize (`references/segmentation/presets.py`, SegmentationPresetEval:
// `F.resize(image, size)` on PIL images): the shorter side to `size`, the longer in proportion
// (truncated), the image with PIL's bilinear filter and the mask with PIL's nearest neighbour, both
// reproduced bit for bit so `fcn eval --resize 520` scores what torchvision's evaluation scores.
import type { LabelMap, RgbImage } from './image.js';

/** torchvision's `_compute_resized_output_size` for an int size: [height, width]. */
export function shorterSideSize(height: number, width: number, size: number): [number, number] {
  if (height <= width) return [size, Math.trunc((size * width) / height)];
  return [Math.trunc((size * height) / width), size];
}

// Pillow's Resample.c: 8-bit passes keep 22 fractional bits in their fixed-point coefficients
const PRECISION_BITS = 32 - 8 - 2;

interface Coefficients {
  /** Per output position: first input index and the fixed-point weights. */
  start: Int32Array;
  weights: Int32Array[];
}

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc for the bilinear (triangle) filter. */
function bilinearCoefficients(inSize: number, outSize: number): Coefficients {
  const scale = inSize / outSize;
  // downscaling widens the filter by the scale (antialiasing); upscaling keeps support 1
  const filterScale = Math.max(scale, 1);
  const support = filterScale;
  const ss = 1 / filterScale;
  const start = new Int32Array(outSize);
  const weights: Int32Array[] = [];
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    const k = new Float64Array(Math.max(xmax, 0));
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const d = Math.abs((x + xmin - center + 0.5) * ss);
      const w = d < 1 ? 1 - d : 0;
      k[x] = w;
      ww += w;
    }
    const fixed = new Int32Array(k.length);
    for (let x = 0; x < k.length; x++) {
      const v = ww !== 0 ? k[x]! / ww : k[x]!;
      fixed[x] = v < 0 ? Math.trunc(-0.5 + v * (1 << PRECISION_BITS)) : Math.trunc(0.5 + v * (1 << PRECISION_BITS));
    }
    start[xx] = xmin;
    weights.push(fixed);
  }
  return { start, weights };
}

function clip8(v: number): number {
  if (v >= 2 ** (PRECISION_BITS + 8)) return 255;
  if (v <= 0) return 0;
  return Math.floor(v / 2 ** PRECISION_BITS);
}

/** PIL's `Image.resize((width, height), BILINEAR)` of an RGB image: horizontal pass, then vertical, each rounded to 8 bits. */
export function resizeBilinearPil(img: RgbImage, height: number, width: number): RgbImage {
  const half = 2 ** (PRECISION_BITS - 1);
  let src = img;
  if (width !== img.width) {
    const c = bilinearCoefficients(img.width, width);
    const out = new Uint8Array(img.height * width * 3);
    for (let y = 0; y < img.height; y++) {
      for (let x = 0; x < width; x++) {
        const k = c.weights[x]!;
        const x0 = c.start[x]!;
        for (let ch = 0; ch < 3; ch++) {
          let ss = half;
          for (let i = 0; i < k.length; i++) ss += src.data[(y * src.width + x0 + i) * 3 + ch]! * k[i]!;
          out[(y * width + x) * 3 + ch] = clip8(ss);
        }
      }
    }
    src = { width, height: img.height, data: out };
  }
  if (height !== img.height) {
    const c = bilinearCoefficients(img.height, height);
    const out = new Uint8Array(height * width * 3);
    for (let y = 0; y < height; y++) {
      const k = c.weights[y]!;
      const y0 = c.start[y]!;
      for (let x = 0; x < width; x++) {
        for (let ch = 0; ch < 3; ch++) {
          let ss = half;
          for (let i = 0; i < k.length; i++) ss += src.data[((y0 + i) * width + x) * 3 + ch]! * k[i]!;
          out[(y * width + x) * 3 + ch] = clip8(ss);
        }
      }
    }
    src = { width, height, data: out };
  }
  return src === img ? { width: img.width, height: img.height, data: new Uint8Array(img.data) } : src;
}

/** Pillow's ImagingScaleAffine source indices: position x reads floor(x0), x0 = in/out · 0.5 then += in/out per step (accumulated, as Pillow does). */
function nearestIndices(inSize: number, outSize: number): Int32Array {
  const scale = inSize / outSize;
  const out = new Int32Array(outSize);
  let xo = scale * 0.5;
  for (let x = 0; x < outSize; x++) {
    out[x] = Math.min(Math.trunc(xo), inSize - 1);
    xo += scale;
  }
  return out;
}

/** PIL's `Image.resize((width, height), NEAREST)` of a mask (torchvision resizes targets so). */
export function resizeNearestPil(mask: LabelMap, height: number, width: number): LabelMap {
  const xs = nearestIndices(mask.width, width);
  const ys = nearestIndices(mask.height, height);
  const out = new Uint8Array(height * width);
  for (let y = 0; y < height; y++) {
    const row = ys[y]! * mask.width;
    for (let x = 0; x < width; x++) out[y * width + x] = mask.data[row + xs[x]!]!;
  }
  return { width, height, data: out };
}
