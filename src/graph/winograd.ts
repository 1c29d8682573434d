// Winograd minimal filtering F(m x m, 3x3) for stride-1 3x3 convolutions, as a graph of ONNX ops
// that ONNX Runtime's CPU provider runs on its fast kernels (it has no Winograd of its own).
//
// For one channel pair and an α x α input tile d (α = m + 2, tiles at stride m), the m x m output
// tile of the 3x3 correlation with g is
//     Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A,
// and summed over input channels the products become, for each of the α² transform coordinates ξ,
// one matrix product M_ξ[K, tiles] = U_ξ[K, C] · V_ξ[C, tiles]: α² products per tile per channel
// pair instead of 9 m² (F(2,3): 16 instead of 36; F(4,3): 36 instead of 144).
//
// The matrices are Lavin & Gray's ("Fast Algorithms for Convolutional Neural Networks", 2016), built
// by the Toom-Cook construction on the interpolation points {0, 1, -1, ∞} (F(2,3)) and
// {0, 1, -1, 2, -2, ∞} (F(4,3)): G evaluates the filter polynomial at the points, Bᵀ the input's
// (the transposed Lagrange/Vandermonde inverse), Aᵀ maps the point-wise products back to the m
// outputs (row i holds point^i, ∞ contributing only to the last row). Each is checked against a
// direct convolution in test/winograd.test.ts.
import type { ConvLayer } from '../model/layers.js';
import type { GraphBuilder } from './onnx.js';

export interface WinogradMatrices { m: number; alpha: number; BT: number[][]; G: number[][]; AT: number[][] }

const F2: WinogradMatrices = {
  m: 2, alpha: 4,
  BT: [
    [1, 0, -1, 0],
    [0, 1, 1, 0],
    [0, -1, 1, 0],
    [0, 1, 0, -1],
  ],
  G: [
    [1, 0, 0],
    [1 / 2, 1 / 2, 1 / 2],
    [1 / 2, -1 / 2, 1 / 2],
    [0, 0, 1],
  ],
  AT: [
    [1, 1, 1, 0],
    [0, 1, -1, -1],
  ],
};

const F4: WinogradMatrices = {
  m: 4, alpha: 6,
  BT: [
    [4, 0, -5, 0, 1, 0],
    [0, -4, -4, 1, 1, 0],
    [0, 4, -4, -1, 1, 0],
    [0, -2, -1, 2, 1, 0],
    [0, 2, -1, -2, 1, 0],
    [0, 4, 0, -5, 0, 1],
  ],
  G: [
    [1 / 4, 0, 0],
    [-1 / 6, -1 / 6, -1 / 6],
    [-1 / 6, 1 / 6, -1 / 6],
    [1 / 24, 1 / 12, 1 / 6],
    [1 / 24, -1 / 12, 1 / 6],
    [0, 0, 1],
  ],
  AT: [
    [1, 1, 1, 1, 1, 0],
    [0, 1, -1, 2, -2, 0],
    [0, 1, 1, 4, 4, 0],
    [0, 1, -1, 8, -8, 1],
  ],
};

export function winogradMatrices(m: 2 | 4): WinogradMatrices {
  return m === 2 ? F2 : F4;
}

/**
 * The fewest input channels a convolution needs for the inference graph to run it as Winograd. The
 * gain must pay for its memory: U holds 36 values per channel pair instead of 9 (ORT keeps it packed
 * too) and the transformed input is 2.25x the input. Measured with bench/winograd.ts (2 threads,
 * interleaved, under load): fcn_resnet50's FCNHead 2048→512 at 65x65 1.6-1.7x faster alone, the whole
 * 520x520 forward 1.10-1.28x (peak RSS 822 → 1506 MB); the book's 256→256 / 512→512 layers gain
 * alone (up to 1.4-1.7x at batch 4) but its whole forward only 1.00-1.03x for 366 → 760 MB; 64/128
 * channels are slower (0.65-0.9x: the transforms' memory passes outweigh the saved products).
 */
export const WINOGRAD_MIN_IN_CHANNELS = 1024;

/**
 * Whether `layer` may run as Winograd F(4x4,3x3): 3x3, stride 1, padding 1, no dilation (the
 * sub-grid shuffles made dilated ones slower) or groups, at least `minInChannels` in and 256 out,
 * multiples of 8 (so the grouped product Conv stays on MLAS's NCHWc kernels).
 */
export function winogradApplies(layer: ConvLayer, minInChannels = WINOGRAD_MIN_IN_CHANNELS): boolean {
  return layer.kernel === 3 && layer.stride === 1 && layer.pad === 1 && (layer.dilation ?? 1) === 1 && (layer.groups ?? 1) === 1
    && layer.inChannels >= minInChannels && layer.outChannels >= 256 && layer.inChannels % 8 === 0 && layer.outChannels % 8 === 0;
}

export interface WinogradConvShape {
  inChannels: number;
  outChannels: number;
  /** Static input height and width; undefined: symbolic (computed in the graph from x's shape). */
  height?: number;
  width?: number;
}

/**
 * U = G g Gᵀ for every (output, input) channel pair, laid out [α²·K, C, 1, 1] (ξ-major: row ξ·K + k)
 * as the grouped 1x1 Conv reads it. `weight` is the Conv's [K, C, 3, 3].
 */
export function winogradWeights(weight: Float32Array, K: number, C: number, mat: WinogradMatrices): Float32Array {
  const { alpha, G } = mat;
  const u = new Float32Array(alpha * alpha * K * C);
  const tmp = new Float64Array(alpha * 3);
  for (let k = 0; k < K; k++) {
    for (let c = 0; c < C; c++) {
      const g = weight.subarray((k * C + c) * 9, (k * C + c) * 9 + 9);
      // tmp = G g  (α x 3)
      for (let i = 0; i < alpha; i++) {
        for (let j = 0; j < 3; j++) tmp[i * 3 + j] = G[i]![0]! * g[j]! + G[i]![1]! * g[3 + j]! + G[i]![2]! * g[6 + j]!;
      }
      // U = tmp Gᵀ  (α x α)
      for (let i = 0; i < alpha; i++) {
        for (let j = 0; j < alpha; j++) {
          u[((i * alpha + j) * K + k) * C + c] = tmp[i * 3]! * G[j]![0]! + tmp[i * 3 + 1]! * G[j]![1]! + tmp[i * 3 + 2]! * G[j]![2]!;
        }
      }
    }
  }
  return u;
}

/**
 * The input transform's depthwise weights [C·α², 1, α, α]: channel c's output ξ = (i, j) correlates
 * its α x α tile with Bᵀ[i]ᵀ Bᵀ[j], i.e. V = Bᵀ d B.
 */
function inputTransformWeights(C: number, mat: WinogradMatrices): Float32Array {
  const { alpha, BT } = mat;
  const a2 = alpha * alpha;
  const w = new Float32Array(C * a2 * a2);
  for (let c = 0; c < C; c++) {
    for (let t = 0; t < a2; t++) {
      const bi = BT[Math.floor(t / alpha)]!;
      const bj = BT[t % alpha]!;
      for (let p = 0; p < alpha; p++) for (let q = 0; q < alpha; q++) w[(c * a2 + t) * a2 + p * alpha + q] = bi[p]! * bj[q]!;
    }
  }
  return w;
}

/**
 * Emits `output` = Conv(x, weight, bias) (3x3, stride 1, padding 1, no dilation or groups) as
 * Winograd F(m x m, 3x3) in ops ONNX Runtime runs on its fast kernels:
 *   one depthwise Conv (kernel α, stride m, padded to whole tiles, α² outputs per channel:
 *   V = Bᵀ d B, channels (c, ξ)) → Transpose to ξ-major [N, α²·C, th, tw] →
 *   one grouped 1x1 Conv (group α², weights U: the α² products M_ξ = U_ξ V_ξ; MLAS NCHWc when C and
 *   K are multiples of 8) → two MatMuls with the constant Aᵀ over ξ then ν (Y = Aᵀ M A) →
 *   DepthToSpace (DCR) interleaving the m x m tiles → Slice to H x W.
 * The bias rides on ξ = (1, 1), whose column of Aᵀ is all ones, so it reaches every output once.
 */
export function emitWinogradConv(g: GraphBuilder, x: string, weight: Float32Array, bias: Float32Array | undefined,
  s: WinogradConvShape, name: string, m: 2 | 4, output?: string): string {
  const mat = winogradMatrices(m);
  const { alpha, AT } = mat;
  const a2 = alpha * alpha;
  const C = s.inChannels;
  const K = s.outChannels;
  const i64 = (v: number[]) => g.constant(v, 'int64');
  // the depthwise Conv pads 1 on top/left and m on bottom/right: floor((H + 1 + m - α) / m) + 1 =
  // ceil(H / m) tiles, the last reading at most row th·m + 1 ≤ H + m of the padded input
  const bt = g.initializer(`${name}.winograd_bt`, 'float32', [C * a2, 1, alpha, alpha], inputTransformWeights(C, mat));
  const vc = g.node('Conv', [x, bt], { kernel_shape: [alpha, alpha], strides: [m, m], pads: [1, 1, m, m], group: C });
  // [th, tw]: constants when the shape is static, else read off the transform's output
  const tiles = s.height !== undefined && s.width !== undefined
    ? i64([Math.ceil(s.height / m), Math.ceil(s.width / m)])
    : g.dims(vc, 2, 4);
  const vt = g.node('Transpose', [g.node('Reshape', [vc, i64([0, C, a2, -1])])], { perm: [0, 2, 1, 3] });
  const v = g.node('Reshape', [vt, g.node('Concat', [i64([0, a2 * C]), tiles], { axis: 0 })]);
  const inputs = [v, g.initializer(`${name}.winograd_u`, 'float32', [a2 * K, C, 1, 1], winogradWeights(weight, K, C, mat))];
  if (bias) {
    const b = new Float32Array(a2 * K);
    b.set(bias, (alpha + 1) * K);
    inputs.push(g.initializer(`${name}.winograd_b`, 'float32', [a2 * K], b));
  }
  const prod = g.node('Conv', inputs, { kernel_shape: [1, 1], group: a2 });
  // Aᵀ over ξ: [N, α, α·K·P] → [N, m, α·K·P]; then over ν: [N, m, α, K·P] → [N, m, m, K·P]
  const at = g.constant(AT.flat(), 'float32', [m, alpha]);
  const s1 = g.node('MatMul', [at, g.node('Reshape', [prod, i64([0, alpha, -1])])]);
  const s2 = g.node('MatMul', [at, g.node('Reshape', [s1, i64([0, m, alpha, -1])])]);
  const blocks = g.node('Reshape', [s2, g.node('Concat', [i64([0, m * m * K]), tiles], { axis: 0 })]);
  if (s.height !== undefined && s.width !== undefined && s.height % m === 0 && s.width % m === 0) {
    return g.node('DepthToSpace', [blocks], { blocksize: m, mode: 'DCR' }, output);
  }
  const y = g.node('DepthToSpace', [blocks], { blocksize: m, mode: 'DCR' });
  const hw = s.height !== undefined && s.width !== undefined ? i64([s.height, s.width]) : g.dims(x, 2, 4);
  return g.node('Slice', [y, i64([0, 0]), hw, i64([2, 3])], {}, output);
}
