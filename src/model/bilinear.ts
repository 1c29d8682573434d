// The bilinear-interpolation kernel that initialises the transposed convolution, exactly as the
// d2l book defines `bilinear_kernel(in_channels, out_channels, kernel_size)`.

/**
 * Returns a ConvTranspose weight of shape [inChannels, outChannels, k, k] (flat, row-major) with
 * the bilinear filter on the channel diagonal (c → c) and zeros elsewhere.
 */
export function bilinearKernel(inChannels: number, outChannels: number, kernelSize: number): Float32Array {
  const filt = bilinearFilter(kernelSize);
  const k = kernelSize;
  const weight = new Float32Array(inChannels * outChannels * k * k);
  for (let c = 0; c < Math.min(inChannels, outChannels); c++) {
    weight.set(filt, (c * outChannels + c) * k * k);
  }
  return weight;
}

/**
 * A grouped ConvTranspose weight [inChannels, perGroup, k, k] that maps every channel to itself with
 * the bilinear filter, as bilinearKernel's diagonal does: channel c feeds output c, which is entry
 * c mod perGroup of its group (perGroup 1: every channel's one filter is the bilinear one).
 */
export function groupedBilinearKernel(inChannels: number, perGroup: number, kernelSize: number): Float32Array {
  const filt = bilinearFilter(kernelSize);
  const kk = kernelSize * kernelSize;
  const weight = new Float32Array(inChannels * perGroup * kk);
  for (let c = 0; c < inChannels; c++) weight.set(filt, (c * perGroup + (c % perGroup)) * kk);
  return weight;
}

/** The book's k x k bilinear filter (float32 arithmetic as PyTorch's). */
function bilinearFilter(kernelSize: number): Float32Array {
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
  return filt;
}
