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
  const filt = new Float64Array(k * k);
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < k; j++) {
      filt[i * k + j] = (1 - Math.abs(i - center) / factor) * (1 - Math.abs(j - center) / factor);
    }
  }
  const weight = new Float32Array(inChannels * outChannels * k * k);
  for (let c = 0; c < Math.min(inChannels, outChannels); c++) {
    weight.set(filt, (c * outChannels + c) * k * k);
  }
  return weight;
}
