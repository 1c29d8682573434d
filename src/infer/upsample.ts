// Enlarging an image with a bilinear-initialised transposed convolution run by ORT (the book's demo).
import type { RgbImage } from '../data/image.js';
import { compileUpsample } from '../graph/upsample.js';
import { Session } from '../engine/session.js';

/** The transposed conv's float output (3 x sH x sW, pixel values in [0, 1] scale before clamping). */
export async function upsampleFloat(img: RgbImage, scale: number, threads?: number): Promise<{ data: Float32Array; height: number; width: number }> {
  const { width: W, height: H } = img;
  const x = new Float32Array(3 * H * W);
  for (let i = 0; i < H * W; i++) for (let c = 0; c < 3; c++) x[c * H * W + i] = img.data[i * 3 + c]! / 255;
  const session = await Session.create(compileUpsample(scale), { threads });
  try {
    const out = await session.run({ image: { dtype: 'float32', dims: [1, 3, H, W], data: x } });
    const y = out.upsampled!;
    return { data: y.data as Float32Array, height: y.dims[2]!, width: y.dims[3]! };
  } finally {
    await session.dispose();
  }
}

/** Upsamples and converts back to 8-bit RGB: clamped to [0, 1], times 255, rounded. */
export async function upsampleImage(img: RgbImage, scale: number, threads?: number): Promise<RgbImage> {
  const y = await upsampleFloat(img, scale, threads);
  const n = y.height * y.width;
  const data = new Uint8Array(n * 3);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < n; i++) data[i * 3 + c] = Math.round(Math.min(1, Math.max(0, y.data[c * n + i]!)) * 255);
  }
  return { width: y.width, height: y.height, data };
}
