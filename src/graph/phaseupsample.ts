// A transposed convolution whose output is exactly s times its input (k − s − 2p = 0: the book's 64/32
// pad 16) as one batched GEMM over output blocks aligned to the cropped output, for inference.
//
// Output row Y (cropped) is row Y + p of the uncropped transposed conv, which sums x[i]·W[t] over
// the kernel rows t = Y + p − s·i in [0, k). With g = gcd(s, p) (g = s when p = 0), q = s/g, r = p/g,
// write Y = s·A + g·a + b (block A, phase a in [0, q), offset b in [0, g)). Then t = g·(q·z + a + r) + b
// with z = A − i, and t in [0, k) holds for exactly m = k/s consecutive z: z = zlo(a) … zlo(a) + m − 1,
// zlo(a) = ⌈−(a + r)/q⌉. So for each phase pair (a, c) (rows, columns) the g x g sub-blocks of all
// blocks are one GEMM: rows = input pixels (A, B), inner = the m² shifted copies of x (x[A − zy,
// B − zx], zero outside) times Cin, columns = Cout·g²; the q² phase pairs are one batched MatMul. Its
// [q, q, N, h, w, Cout, g, g] result is placed in NCHW by one Transpose, with nothing to crop (unlike
// the block GEMM of backward.ts, whose s x s blocks straddle the crop and are cut by a Slice), and it
// computes no border blocks: h·w·m² taps against (h + m − 1)(w + m − 1)·m² there. An axis may instead
// be kept whole (one phase of s offsets reading the union of the phases' taps, zero weights where a
// tap misses an offset): a larger GEMM, and runs of s floats instead of g for the Transpose (ORT's is
// several times slower on runs of 16 than of 32). Neither form measured faster than the block GEMM
// for the book's FCN (README), so 'blocks' stays the default.
import type { ConvTransposeLayer } from '../model/layers.js';
import type { GraphBuilder } from './onnx.js';
import { op } from './backward.js';

/** Sub-blocks narrower than this would make the placing Transpose move runs of too few floats. */
export const MIN_PHASE_BLOCK = 8;

/** One axis of the phase form: `phases` x `size` = s, and for each phase the z = A − i of its taps. */
export interface PhaseAxis {
  phases: number;
  size: number;
  /** taps[a]: the z of phase a's taps (the same count for every phase). */
  taps: number[][];
}

export interface PhaseGeometry {
  rows: PhaseAxis;
  cols: PhaseAxis;
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/**
 * One axis split into q = s/g phases of g (`phased`): m taps each, no zero weights; or kept whole (one
 * phase of s): the union of the phases' taps (m + q − 1 at most), zero weights where a tap misses an
 * offset, in exchange for runs of s floats instead of g in the placing Transpose.
 */
function phaseAxis(k: number, s: number, p: number, phased: boolean): PhaseAxis {
  const g = gcd(s, p);
  const q = s / g;
  const r = p / g;
  const m = k / s;
  // + 0: no -0
  const zlo = Array.from({ length: q }, (_, a) => Math.ceil(-(a + r) / q) + 0);
  if (phased) return { phases: q, size: g, taps: zlo.map((z) => Array.from({ length: m }, (_, j) => z + j)) };
  const lo = Math.min(...zlo);
  const hi = Math.max(...zlo) + m - 1;
  return { phases: 1, size: s, taps: [Array.from({ length: hi - lo + 1 }, (_, j) => lo + j)] };
}

/**
 * The phase form's geometry, or undefined where it does not apply (grouped, output not s times the
 * input, sub-blocks under MIN_PHASE_BLOCK). `wholeCols`: the columns kept whole (see phaseAxis).
 */
export function phaseGeometry(layer: ConvTransposeLayer, wholeCols = false): PhaseGeometry | undefined {
  const { kernel: k, stride: s, pad: p } = layer;
  if ((layer.groups ?? 1) !== 1 || k % s !== 0 || p < 0 || k - s - 2 * p !== 0) return undefined;
  if (gcd(s, p) < MIN_PHASE_BLOCK) return undefined;
  return { rows: phaseAxis(k, s, p, true), cols: phaseAxis(k, s, p, !wholeCols) };
}

const tapCount = (geo: PhaseGeometry) => geo.rows.taps[0]!.length * geo.cols.taps[0]!.length;

/**
 * W [Cin, Cout, k, k] (+ bias) rearranged to the batched GEMM's [Pr·Pc, Tr·Tc·Cin (+1), Cout·gr·gc]:
 * for output offset u = a·g + o in its block and tap z the kernel index is s·z + u + p (zero outside k).
 */
export function phaseWeights(layer: ConvTransposeLayer, geo: PhaseGeometry, W: Float32Array, bias: Float32Array | undefined): { data: Float32Array; rows: number; cols: number } {
  const { kernel: k, stride: s, pad: p, inChannels: Cin, outChannels: Cout } = layer;
  const { rows: R, cols: C } = geo;
  const taps = tapCount(geo);
  const rows = taps * Cin + (bias ? 1 : 0);
  const cols = Cout * R.size * C.size;
  const out = new Float32Array(R.phases * C.phases * rows * cols);
  for (let a = 0; a < R.phases; a++) {
    for (let c = 0; c < C.phases; c++) {
      const base = (a * C.phases + c) * rows * cols;
      R.taps[a]!.forEach((zy, jy) => {
        C.taps[c]!.forEach((zx, jx) => {
          for (let ci = 0; ci < Cin; ci++) {
            const row = base + ((jy * C.taps[c]!.length + jx) * Cin + ci) * cols;
            for (let co = 0; co < Cout; co++) {
              for (let oy = 0; oy < R.size; oy++) {
                const ty = s * zy + a * R.size + oy + p;
                if (ty < 0 || ty >= k) continue;
                for (let ox = 0; ox < C.size; ox++) {
                  const tx = s * zx + c * C.size + ox + p;
                  if (tx >= 0 && tx < k) out[row + (co * R.size + oy) * C.size + ox] = W[((ci * Cout + co) * k + ty) * k + tx]!;
                }
              }
            }
          }
        });
      });
      if (bias) for (let co = 0; co < Cout; co++) out.fill(bias[co]!, base + (rows - 1) * cols + co * R.size * C.size, base + (rows - 1) * cols + (co + 1) * R.size * C.size);
    }
  }
  return { data: out, rows, cols };
}

/**
 * Writes `output` = the phase GEMM's result [Pr, Pc, N, h, w, Cout, gr, gc] of x [N, Cin, h, w] (any
 * N, h, w) against `weights` (phaseWeights' initializer, `ones`: with the bias row).
 */
export function emitPhaseGemm(g: GraphBuilder, x: string, weights: string, layer: ConvTransposeLayer, geo: PhaseGeometry, ones: boolean, output: string): void {
  const { inChannels: Cin, outChannels: Cout, name } = layer;
  const { rows: R, cols: C } = geo;
  const K = tapCount(geo) * Cin;
  const all = [...R.taps.flat(), ...C.taps.flat()];
  const zmin = Math.min(...all);
  const zmax = Math.max(...all);
  // x[A − z] for z in zmin … zmax: x padded by zmax before and −zmin after, sliced from zmax − z
  const padBefore = Math.max(zmax, 0);
  const padAfter = Math.max(-zmin, 0);
  const xp = padBefore + padAfter > 0
    ? op(g, 'Pad', [x, g.constant([0, 0, padBefore, padBefore, 0, 0, padAfter, padAfter], 'int64')], `${name}:xpad`)
    : x;
  const shifted = new Map<string, string>();
  const tap = (zy: number, zx: number): string => {
    const key = `${zy},${zx}`;
    let v = shifted.get(key);
    if (!v) {
      // rows padBefore − zy … (length h), i.e. ending −(padAfter + zy) from the end (none when 0)
      const end = (z: number) => (padAfter + z > 0 ? -(padAfter + z) : 2 ** 30);
      v = op(g, 'Slice', [xp, g.constant([padBefore - zy, padBefore - zx], 'int64'), g.constant([end(zy), end(zx)], 'int64'), g.constant([2, 3], 'int64')], `${name}:xtap`);
      shifted.set(key, v);
    }
    return v;
  };
  const parts: string[] = [];
  for (let a = 0; a < R.phases; a++) {
    for (let c = 0; c < C.phases; c++) {
      for (const zy of R.taps[a]!) for (const zx of C.taps[c]!) parts.push(tap(zy, zx));
    }
  }
  // [N, P·K, h, w] -> [N, P, K, h·w] -> [P, N, h·w, K] -> [P, N·h·w, K]   (P = Pr·Pc)
  const P = R.phases * C.phases;
  const cat = parts.length > 1 ? op(g, 'Concat', parts, `${name}:x4c`, { axis: 1 }) : parts[0]!;
  const four = op(g, 'Reshape', [cat, g.constant([0, P, K, -1], 'int64')], `${name}:x4`);
  let lhs = op(g, 'Reshape', [op(g, 'Transpose', [four], `${name}:x4T`, { perm: [1, 0, 3, 2] }), g.constant([P, -1, K], 'int64')], `${name}:lhs`);
  if (ones) {
    const shape = op(g, 'Concat', [g.dims(lhs, 0, 2), g.constant([1], 'int64')], `${name}:onesshape`, { axis: 0 });
    lhs = op(g, 'Concat', [lhs, op(g, 'Expand', [g.constant([1], 'float32', [1, 1, 1]), shape], `${name}:ones`)], `${name}:lhsb`, { axis: 2 });
  }
  const prod = op(g, 'MatMul', [lhs, weights], `${name}:gemm`);
  const dims = op(g, 'Concat', [g.constant([R.phases, C.phases], 'int64'), g.dims(x, 0, 1), g.dims(x, 2, 4), g.constant([Cout, R.size, C.size], 'int64')], `${name}:phdims`, { axis: 0 });
  g.node('Reshape', [prod, dims], {}, output);
}

/** Writes `output` = the phase GEMM's result `phased` in NCHW [N, Cout, h·s, w·s]. */
export function placePhases(g: GraphBuilder, phased: string, stride: number, output: string): void {
  const t = op(g, 'Transpose', [phased], `${output}:placed8`, { perm: [2, 5, 3, 0, 6, 4, 1, 7] }); // [N, C, h, q, g, w, q, g]
  const shape = op(g, 'Shape', [phased], `${output}:pshape`);
  const dim = (i: number) => op(g, 'Slice', [shape, g.constant([i], 'int64'), g.constant([i + 1], 'int64')], `${output}:dim`);
  const times = (i: number) => op(g, 'Mul', [dim(i), g.constant([stride], 'int64')], `${output}:full`);
  g.node('Reshape', [t, op(g, 'Concat', [dim(2), dim(5), times(3), times(4)], `${output}:fulldims`, { axis: 0 })], {}, output);
}

/**
 * Writes `output` = the per-pixel argmax over channels of the phase GEMM's result, [N, h·s, w·s]
 * int64: taken in the GEMM's layout (the same channel order as NCHW, so the same index wins ties),
 * then only the indices moved into place.
 */
export function argmaxPhases(g: GraphBuilder, phased: string, stride: number, output: string): void {
  const idx = op(g, 'ArgMax', [phased], `${output}:pargmax`, { axis: 5, keepdims: 0 }); // [q, q, N, h, w, g, g]
  const t = op(g, 'Transpose', [idx], `${output}:placed7`, { perm: [2, 3, 0, 5, 4, 1, 6] }); // [N, h, q, g, w, q, g]
  const shape = op(g, 'Shape', [idx], `${output}:ishape`);
  const dim = (i: number) => op(g, 'Slice', [shape, g.constant([i], 'int64'), g.constant([i + 1], 'int64')], `${output}:dim`);
  const times = (i: number) => op(g, 'Mul', [dim(i), g.constant([stride], 'int64')], `${output}:full`);
  g.node('Reshape', [t, op(g, 'Concat', [dim(2), times(3), times(4)], `${output}:fulldims`, { axis: 0 })], {}, output);
}
