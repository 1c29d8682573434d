// The book's upsampling demo as a graph: a 3→3 transposed convolution with kernel 2s and stride s,
// initialised as bilinear interpolation, so the output is the input enlarged s times.
import { bilinearKernel } from '../model/bilinear.js';
import { GraphBuilder } from './onnx.js';

export interface UpsampleGeometry {
  kernel: number;
  stride: number;
  /** [top, left, bottom, right]: s/2 each side for even s (the book's padding); floor/ceil for odd s so the output is exactly s times the input. */
  pads: [number, number, number, number];
}

export function upsampleGeometry(scale: number): UpsampleGeometry {
  if (!Number.isInteger(scale) || scale < 1) throw new Error(`scale must be a positive integer, got ${scale}`);
  const lo = Math.floor(scale / 2);
  const hi = Math.ceil(scale / 2);
  return { kernel: 2 * scale, stride: scale, pads: [lo, lo, hi, hi] };
}

export function compileUpsample(scale: number, channels = 3): Uint8Array {
  const { kernel, stride, pads } = upsampleGeometry(scale);
  const g = new GraphBuilder(`bilinear_upsample_x${scale}`);
  g.input('image', 'float32', [1, channels, 'H', 'W']);
  g.initializer('weight', 'float32', [channels, channels, kernel, kernel], bilinearKernel(channels, channels, kernel));
  g.node('ConvTranspose', ['image', 'weight'], { kernel_shape: [kernel, kernel], strides: [stride, stride], pads }, 'upsampled');
  g.output('upsampled', 'float32', [1, channels, 'H2', 'W2']);
  return g.encode(`transposed convolution k${kernel} s${stride}, bilinear kernel`);
}
