// Enlarging an image with a bilinear-initialised transposed convolution run by ORT (the book's demo).
// The output's size is checked before anything is allocated: ORT's transposed convolution holds a
// column buffer of channels x kernel² floats per input pixel (3·(2s)²·4 = 48 bytes per output
// pixel, about 80 in all as measured), so a 200x200 image at scale 100 would need 20-30 GB.
import type { RgbImage } from '../data/image.js';
import { compileUpsample } from '../graph/upsample.js';
import { Session } from '../engine/session.js';
import { FcnError } from '../util/errors.js';

/** The largest factor: 32, the FCN's own upsampling (kernel 64, stride 32). */
export const MAX_UPSAMPLE_SCALE = 32;

/** The largest output by default: 16 megapixels (4096 x 4096; 1.3 GB peak memory, measured). */
export const DEFAULT_MAX_UPSAMPLE_PIXELS = 4096 * 4096;

export interface UpsampleOptions {
  threads?: number;
  /** Refuse outputs with more pixels than this (default DEFAULT_MAX_UPSAMPLE_PIXELS). */
  maxOutputPixels?: number;
  /** Names the input in errors. */
  name?: string;
}

/** Checks the factor and the output size; one-line errors (exit 2 for a bad factor). */
export function checkUpsample(width: number, height: number, scale: number, opts: UpsampleOptions = {}): { width: number; height: number } {
  if (!Number.isInteger(scale) || scale < 1 || scale > MAX_UPSAMPLE_SCALE) {
    throw new FcnError(`upsampling scale must be an integer in 1..${MAX_UPSAMPLE_SCALE}, got ${scale}`, 2);
  }
  const out = { width: width * scale, height: height * scale };
  const max = opts.maxOutputPixels ?? DEFAULT_MAX_UPSAMPLE_PIXELS;
  if (out.width * out.height > max) {
    throw new FcnError(`${opts.name ?? 'image'}: ${width}x${height} at scale ${scale} would be ${out.width}x${out.height} = ` +
      `${(out.width * out.height / 1e6).toFixed(1)} megapixels, more than the limit of ${(max / 1e6).toFixed(1)}`);
  }
  return out;
}

/** The transposed conv's float output (3 x sH x sW, pixel values in [0, 1] scale before clamping). */
export async function upsampleFloat(img: RgbImage, scale: number, threadsOrOpts?: number | UpsampleOptions): Promise<{ data: Float32Array; height: number; width: number }> {
  const opts: UpsampleOptions = typeof threadsOrOpts === 'number' ? { threads: threadsOrOpts } : threadsOrOpts ?? {};
  const { width: W, height: H } = img;
  checkUpsample(W, H, scale, opts);
  const x = new Float32Array(3 * H * W);
  for (let i = 0; i < H * W; i++) for (let c = 0; c < 3; c++) x[c * H * W + i] = img.data[i * 3 + c]! / 255;
  const session = await Session.create(compileUpsample(scale), { threads: opts.threads });
  try {
    const out = await session.run({ image: { dtype: 'float32', dims: [1, 3, H, W], data: x } });
    const y = out.upsampled!;
    return { data: y.data as Float32Array, height: y.dims[2]!, width: y.dims[3]! };
  } finally {
    await session.dispose();
  }
}

/** Upsamples and converts back to 8-bit RGB: clamped to [0, 1], times 255, rounded. */
export async function upsampleImage(img: RgbImage, scale: number, threadsOrOpts?: number | UpsampleOptions): Promise<RgbImage> {
  const y = await upsampleFloat(img, scale, threadsOrOpts);
  const n = y.height * y.width;
  const data = new Uint8Array(n * 3);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < n; i++) data[i * 3 + c] = Math.round(Math.min(1, Math.max(0, y.data[c * n + i]!)) * 255);
  }
  return { width: y.width, height: y.height, data };
}
