// ONNX Runtime's NCHWc convolutions called by name, for graphs whose weights arrive at run time.
//
// ORT's fastest CPU convolutions (MLAS's NCHWc kernels) read activations with the channels in blocks
// of b (8 with AVX2, 16 with AVX-512): a [N, C, H, W] tensor is stored as [N, C/b, H, W, b], and the
// filter as [O/b, I/b, kh, kw, b_in, b_out] ("OIHWBiBo"). ORT's graph optimiser switches a Conv to them
// only at its 'all' level and only when the weights are constant initializers, because it reorders the
// filter once when the session is made. A training step's weights are graph inputs, so its
// convolutions stayed on the slower im2col + GEMM path. The kernels themselves take any filter tensor
// (contrib domain com.microsoft.nchwc: ReorderInput, Conv, ReorderOutput), so here the step reorders its
// own filters in the graph (nchwcFilter: two ReorderInputs of the small weight tensor) and each
// convolution becomes ReorderInput → NCHWc Conv → ReorderOutput, the same values up to float rounding.
import type { GraphBuilder } from './onnx.js';

export const NCHWC_DOMAIN = 'com.microsoft.nchwc';

/** Whether a convolution with these channels can run on NCHWc kernels of block `block` (both multiples of it, no groups). */
export function nchwcApplies(inChannels: number, outChannels: number, groups: number, block: number | undefined, minChannels: number): block is number {
  return block !== undefined && block > 1 && groups === 1 && inChannels % block === 0 && outChannels % block === 0
    && Math.min(inChannels, outChannels) >= minChannels;
}

/**
 * An OIHW filter value [O, I, kh, kw] rearranged to MLAS's OIHWBiBo order [O/b, I/b, kh, kw, b_in, b_out],
 * keeping its 4-D shape, by two of MLAS's own (multi-threaded) reorders: the filter read as an
 * NCHW tensor of O images with I channels gives [O, I/b, kh, kw, b_in]; that read as O/b images of b
 * channels of R = I·kh·kw rows, one column, gives [O/b, 1, R, 1, b_out]. ONNX Runtime's Transpose
 * doing the same moves ran 2.5x slower on two threads than on one (512x512x3x3: 29 vs 11 ms).
 */
export function nchwcFilter(g: GraphBuilder, w: string, shape: [number, number, number, number], block: number): string {
  const [O, I, kh, kw] = shape;
  const [inner] = g.nodeN('ReorderInput', [w], {}, 1, NCHWC_DOMAIN);
  const rows = g.node('Reshape', [inner!, g.constant([O / block, block, I * kh * kw, 1], 'int64')]);
  const [outer] = g.nodeN('ReorderInput', [rows], {}, 1, NCHWC_DOMAIN);
  return g.node('Reshape', [outer!, g.constant(shape, 'int64')]);
}

export interface NchwcConvAttrs {
  kernel_shape: number[];
  strides?: number[];
  pads?: number[];
  dilations?: number[];
}

/**
 * y = Conv(x, w, bias) on NCHWc kernels: x (NCHW) reordered into blocks, convolved with the
 * rearranged filter, the result reordered back to NCHW as `output`. `shape` is w's.
 */
export function nchwcConv(g: GraphBuilder, x: string, w: string, bias: string | undefined, shape: [number, number, number, number],
  attrs: NchwcConvAttrs, block: number, output: string): string {
  const [blocked] = g.nodeN('ReorderInput', [x], {}, 1, NCHWC_DOMAIN);
  const filter = nchwcFilter(g, w, shape, block);
  const [y] = g.nodeN('Conv', bias ? [blocked!, filter, bias] : [blocked!, filter], { ...attrs }, 1, NCHWC_DOMAIN);
  return g.nodeN('ReorderOutput', [y!], { channels: shape[0] }, [output], NCHWC_DOMAIN)[0]!;
}

/**
 * A one-node graph that tells the NCHWc block size of the ONNX Runtime it runs on: ReorderInput of a
 * [1, 16, 1, 2] tensor holding each element's channel index. Stored as [1, 16/b, 1, 2, b], its output
 * reads 0, 1, …, b−1 before the first repeat of 0 (width position 1 of block 0), so the position of
 * that repeat is b; b = 1 (no blocking, or no such kernels) means none to use.
 */
export function nchwcProbe(g: GraphBuilder): { input: string; output: string; data: Float32Array; dims: number[] } {
  const dims = [1, 16, 1, 2];
  g.input('x', 'float32', dims);
  g.nodeN('ReorderInput', ['x'], {}, ['y'], NCHWC_DOMAIN);
  g.output('y', 'float32', dims);
  const data = new Float32Array(32);
  for (let c = 0; c < 16; c++) data[c * 2] = data[c * 2 + 1] = c;
  return { input: 'x', output: 'y', data, dims };
}

/** The block size read off nchwcProbe's output; undefined when it shows no blocking. */
export function nchwcBlockFrom(y: Float32Array): number | undefined {
  const b = y.findIndex((v, i) => i > 0 && v === 0);
  return b > 1 && y.length % b === 0 && 16 % b === 0 ? b : undefined;
}
