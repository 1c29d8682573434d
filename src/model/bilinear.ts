// The bilinear-interpolation kernel that initialises the transposed convolution, exactly as the
// d2l book defines `bilinear_kernel(in_channels, out_channels, kernel_size)`.

/**
 * Returns a ConvTranspose weight of shape [inChannels, outChannels, k, k] (flat, row-major) with
 * the bilinear filter on the channel diagonal (c → c) and zeros elsewhere.
 */
export function bilinearKernel(inChannels: number, outChannels: number, kernelSize: number): Float32Array {
  const k = kernelSize;
  const factor = Math.floor((k + 1) / 2);
  const center = k % 2 === 1 ? factor - 1 : factor - 0.5;
  // The book computes this with float32 tensors; rounding each step the same way makes the
  // kernel bit-identical to PyTorch's.
  const f32 = Math.fround;
  const axis = (i: number) => f32(1 - f32(f32(Math.abs(f32(i - center))) / factor));
  const filt = new Float32Array(k * k);
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < k; j++) filt[i * k + j] = f32(axis(i) * axis(j));
  }
  const weight = new Float32Array(inChannels * outChannels * k * k);
  for (let c = 0; c < Math.min(inChannels, outChannels); c++) {
    weight.set(filt, (c * outChannels + c) * k * k);
  }
  return weight;
}
