// The pieces of a training step as plain ONNX ops: the train-mode forward of the layers whose
// forward differs from eval mode (batch-norm with batch statistics, max-pool with indices), the
// backward of every layer kind, and softmax cross-entropy with an ignore label. Shapes are static
// (one graph per batch and crop size); helpers take them explicitly so tiny graphs built from the
// same emitters can be checked by finite differences. Formulas: ../shared/prototype/explicit_step.py.
//
// Names of intermediate values contain ':' so they never collide with the architecture's value
// names (which use '.' and '/').
import { f, type GraphBuilder, type Attr } from './onnx.js';
import { nchwcConv } from './nchwc.js';

export type Shape4 = [number, number, number, number];

/** A square sliding window: kernel, stride, symmetric padding and the spacing of its taps (1 when absent). */
export interface Window {
  kernel: number;
  stride: number;
  pad: number;
  dilation?: number;
}

/** How a convolution's input gradient is written: ConvTranspose of dy with W, or (stride 1) Conv of dy with the flipped, transposed W. */
export type GradInputForm = 'convtranspose' | 'conv';

/**
 * How a k x k (k > 1) convolution's weight gradient is written: 'dilated' = one Conv of x (batch as
 * channels) with dy as a kernel dilated by the stride; 'shifts' = per kernel tap a strided slice of
 * the padded x and a batched MatMul with dy; 'im2col' = the same slices concatenated per kernel row,
 * one MatMul per row; 'tapconv' = the im2col columns made by Convs of each input plane with one-hot
 * k x k kernels (per kernel row, one MatMul per row); 'tapconvall' = the same with all k² one-hot
 * kernels in one Conv and one MatMul (ORT's Conv builds each plane's k x k im2col once instead of k
 * times; the columns of all taps are alive at once).
 */
export type GradWeightForm = 'dilated' | 'shifts' | 'im2col' | 'tapconv' | 'tapconvall';

/**
 * Train-mode batch-norm: 'explicit' = normalise by hand, keep x̂; 'affine' = the same with each
 * per-channel a·t + b pass (γ·x̂ + β forward; x̂·a + b in dx) done by ORT's inference
 * BatchNormalization with mean 0, variance 1 and epsilon 0 (so its scale is a and its shift b
 * exactly): one pass where Mul and Add took two; 'centered' = keep x − mean, scale it with ORT's
 * (inference) BatchNormalization. (ORT's BatchNormalization with training_mode=1 is not used: its
 * batch-statistics outputs alias its mean/var inputs, so shared constants get overwritten.)
 */
export type BatchNormForm = 'explicit' | 'affine' | 'centered';

/** a·t + b per channel of NCHW t, a and b given as [C] or [1, C, 1, 1], in one pass (see BatchNormForm 'affine'). */
function channelAffine(g: GraphBuilder, t: string, a: string, b: string, C: number, hint: string, output?: string): string {
  const zeros = g.constant(new Array<number>(C).fill(0), 'float32', [C]);
  const ones = g.constant(new Array<number>(C).fill(1), 'float32', [C]);
  const inputs = [t, flatten1(g, a, `${hint}:a1`), flatten1(g, b, `${hint}:b1`), zeros, ones];
  return output ? g.node('BatchNormalization', inputs, { epsilon: f(0) }, output) : op(g, 'BatchNormalization', inputs, hint, { epsilon: f(0) });
}

export function convOutSize(size: number, w: Window): number {
  return Math.floor((size + 2 * w.pad - (w.dilation ?? 1) * (w.kernel - 1) - 1) / w.stride) + 1;
}

export function convTransposeOutSize(size: number, w: Window): number {
  return (size - 1) * w.stride - 2 * w.pad + w.kernel;
}

const AXES_NHW = [0, 2, 3];

const used = new WeakMap<GraphBuilder, Map<string, number>>();

/** A value name from `hint` not handed out before in `g` (hints contain ':'; repeats get '#n'). */
export function uniqueName(g: GraphBuilder, hint: string): string {
  let seen = used.get(g);
  if (!seen) used.set(g, (seen = new Map()));
  const base = hint.includes(':') ? hint : `${hint}:t`;
  const n = (seen.get(base) ?? 0) + 1;
  seen.set(base, n);
  return n === 1 ? base : `${base}#${n}`;
}

/** One node with a fresh ':'-named output. */
export function op(g: GraphBuilder, type: string, inputs: string[], hint: string, attrs: Record<string, Attr | undefined> = {}): string {
  return g.node(type, inputs, attrs, uniqueName(g, hint));
}

function int64s(g: GraphBuilder, values: number[]): string {
  return g.constant(values, 'int64');
}

/** Sum over batch and space, keeping [1, C, 1, 1]. */
export function reduceNHW(g: GraphBuilder, x: string, hint: string, keepdims = 1): string {
  return op(g, 'ReduceSum', [x, int64s(g, AXES_NHW)], hint, { keepdims });
}

/** [C] -> [1, C, 1, 1] for broadcasting against NCHW. */
export function perChannel(g: GraphBuilder, v: string, hint: string): string {
  return op(g, 'Reshape', [v, int64s(g, [1, -1, 1, 1])], hint);
}

/** [1, C, 1, 1] (or any) -> [C]. */
export function flatten1(g: GraphBuilder, v: string, hint: string): string {
  return op(g, 'Reshape', [v, int64s(g, [-1])], hint);
}

function swap01(g: GraphBuilder, x: string, hint: string): string {
  return op(g, 'Transpose', [x], hint, { perm: [1, 0, 2, 3] });
}

function crop(g: GraphBuilder, x: string, k: number, size: [number, number], hint: string): string {
  if (size[0] === k && size[1] === k) return x;
  return op(g, 'Slice', [x, int64s(g, [0, 0]), int64s(g, [k, k]), int64s(g, [2, 3])], hint);
}

// ------------------------------------------------------------------ convolution

/**
 * dL/dx of y = Conv(x, W) (W [O, C, k, k]) from dy [N, O, h, w]; `inShape` is x's shape (the
 * output padding that recovers it for strided convs follows from it).
 */
export function convGradInput(g: GraphBuilder, dy: string, w: string, win: Window, inShape: Shape4, dyShape: Shape4,
  form: GradInputForm = 'convtranspose', hint = 'conv', nchwcBlock?: number): string {
  const { kernel: k, stride: s, pad: p } = win;
  const d = win.dilation ?? 1;
  const dil = d > 1 ? [d, d] : undefined;
  if (form === 'conv' && s === 1 && d * (k - 1) >= p) {
    // correlation with the spatially flipped kernel, input and output channels swapped; the flip is a
    // MatMul with the k²-tap reversal (ORT's Slice with negative steps copies element by element)
    const [O, C] = [dyShape[1], inShape[1]];
    const reversal = new Array<number>(k ** 4).fill(0);
    for (let t = 0; t < k * k; t++) reversal[t * k * k + (k * k - 1 - t)] = 1;
    const rows = op(g, 'Reshape', [swap01(g, w, `${hint}:wT`), int64s(g, [C * O, k * k])], `${hint}:wTrows`);
    const wt = op(g, 'Reshape', [op(g, 'MatMul', [rows, g.constant(reversal, 'float32', [k * k, k * k])], `${hint}:wflip`),
      int64s(g, [C, O, k, k])], `${hint}:wflipT`);
    const q = d * (k - 1) - p;
    const attrs = { kernel_shape: [k, k], pads: [q, q, q, q], dilations: dil };
    // with a block size (the caller checked both channel counts), on ORT's NCHWc kernels (nchwc.ts)
    if (nchwcBlock) return nchwcConv(g, dy, wt, undefined, [C, O, k, k], attrs, nchwcBlock, uniqueName(g, `${hint}:dx`));
    return op(g, 'Conv', [dy, wt], `${hint}:dx`, attrs);
  }
  const span = d * (k - 1) + 1;
  const outPad = [inShape[2] + 2 * p - span - (dyShape[2] - 1) * s, inShape[3] + 2 * p - span - (dyShape[3] - 1) * s];
  return op(g, 'ConvTranspose', [dy, w], `${hint}:dx`, {
    kernel_shape: [k, k], strides: [s, s], pads: [p, p, p, p], dilations: dil,
    output_padding: outPad[0] || outPad[1] ? outPad : undefined,
  });
}

/**
 * Both gradients of a depthwise convolution (groups = C = O, W [C, 1, k, k]) as one grouped op each:
 * dx = ConvTranspose(dy, W) with C groups; dW[c, 0, i, j] = Σ_n Σ_{p,q} x̄[n, c, p·s + i·d, q·s + j·d]·dy[n, c, p, q]
 * (x̄ the padded input) is a C-group convolution of x laid out [1, C·N, H, W] (channel c·N + n) with
 * dy laid out [C, N, h, w] as the kernel, dilated by the stride, striding by the dilation, cropped to k x k.
 */
export function depthwiseConvGrads(g: GraphBuilder, x: string, dy: string, w: string, win: Window, xShape: Shape4, dyShape: Shape4,
  needInput: boolean, hint = 'dwconv'): { dW: string; dx?: string } {
  const { kernel: k, stride: s, pad: p } = win;
  const d = win.dilation ?? 1;
  const [N, C, H, W] = xShape;
  const [, , h, wd] = dyShape;
  const xg = op(g, 'Reshape', [swap01(g, x, `${hint}:xT`), int64s(g, [1, C * N, H, W])], `${hint}:xg`);
  const r = op(g, 'Conv', [xg, swap01(g, dy, `${hint}:dyT`)], `${hint}:dWr`, {
    kernel_shape: [h, wd], pads: [p, p, p, p], dilations: s > 1 ? [s, s] : undefined, strides: d > 1 ? [d, d] : undefined, group: C,
  });
  const size: [number, number] = [Math.floor((H + 2 * p - s * (h - 1) - 1) / d) + 1, Math.floor((W + 2 * p - s * (wd - 1) - 1) / d) + 1];
  const dW = op(g, 'Reshape', [crop(g, r, k, size, `${hint}:dWk`), int64s(g, [C, 1, k, k])], `${hint}:dW`);
  if (!needInput) return { dW };
  const span = d * (k - 1) + 1;
  const outPad = [H + 2 * p - span - (h - 1) * s, W + 2 * p - span - (wd - 1) * s];
  const dx = op(g, 'ConvTranspose', [dy, w], `${hint}:dx`, {
    kernel_shape: [k, k], strides: [s, s], pads: [p, p, p, p], dilations: d > 1 ? [d, d] : undefined, group: C,
    output_padding: outPad[0] || outPad[1] ? outPad : undefined,
  });
  return { dW, dx };
}

/**
 * Σ_n dy[n]·cols[n]ᵀ for dy [N, O, P] and cols [N, K, P]: the weight gradient's GEMM over the batch's
 * pixels, -> [O, K]. Either N products [N, O, K] summed over N, or (when that product is larger than
 * the columns: more output channels than pixels, as in a ResNet's last stage) one GEMM with the batch
 * folded into the reduction, dy as [O, N·P] and cols as [K, N·P] (Transposes of the inputs instead).
 * `dyRows` gives dy as [O, N·P], made once per layer and shared by its calls.
 */
function gemmOverBatch(g: GraphBuilder, dy: string, dyRows: () => string, cols: string, [N, O, K, P]: [number, number, number, number], hint: string,
  foldBatch: boolean): string {
  if (foldBatch && N > 1 && O > P) {
    const colRows = op(g, 'Reshape', [op(g, 'Transpose', [cols], `${hint}:colsNT`, { perm: [1, 0, 2] }), int64s(g, [K, N * P])], `${hint}:colrows`);
    return op(g, 'MatMul', [dyRows(), op(g, 'Transpose', [colRows], `${hint}:colrowsT`, { perm: [1, 0] })], `${hint}:dwsum`);
  }
  // ORT fuses the Transpose into the MatMul
  const prod = op(g, 'MatMul', [dy, op(g, 'Transpose', [cols], `${hint}:colsT`, { perm: [0, 2, 1] })], `${hint}:dwn`);
  return op(g, 'ReduceSum', [prod, int64s(g, [0])], `${hint}:dwsum`, { keepdims: 0 });
}

/** dy [N, O, P] as [O, N·P], made on first use. */
function lazyRows(g: GraphBuilder, dy: string, [N, O, P]: [number, number, number], hint: string): () => string {
  let rows: string | undefined;
  return () => (rows ??= op(g, 'Reshape', [op(g, 'Transpose', [dy], `${hint}:dyNT`, { perm: [1, 0, 2] }), int64s(g, [O, N * P])], `${hint}:dyrows`));
}

/**
 * dL/dW of y = Conv(x, W) for W [O, C, k, k]. 1x1 kernels: a batched MatMul over pixels; others as
 * `form` says (see GradWeightForm), their GEMMs over the batch as gemmOverBatch chooses (`foldBatch`
 * false: always one product per image); 'dilated': a convolution of x (batch as channels) with dy as a
 * kernel dilated by the stride, cropped to k x k.
 */
export function convGradWeight(g: GraphBuilder, x: string, dy: string, win: Window, xShape: Shape4, dyShape: Shape4,
  hint = 'conv', form: GradWeightForm = 'dilated', foldBatch = true): string {
  const { kernel: k, stride: s, pad: p } = win;
  const [N, C] = xShape;
  const [, O, h, w] = dyShape;
  if (k > 1 && (form === 'tapconv' || form === 'tapconvall')) return convGradWeightTapConv(g, x, dy, win, xShape, dyShape, hint, foldBatch, form === 'tapconvall');
  if (k > 1 && form !== 'dilated') return convGradWeightSlices(g, x, dy, win, xShape, dyShape, hint, form === 'im2col', foldBatch);
  if (k === 1 && p === 0) {
    const xs = s > 1
      ? op(g, 'Slice', [x, int64s(g, [0, 0]), int64s(g, [xShape[2], xShape[3]]), int64s(g, [2, 3]), int64s(g, [s, s])], `${hint}:xs`)
      : x;
    const dy2 = op(g, 'Reshape', [dy, int64s(g, [N, O, h * w])], `${hint}:dy2`);
    const x2 = op(g, 'Reshape', [xs, int64s(g, [N, C, h * w])], `${hint}:x2`);
    const sum = gemmOverBatch(g, dy2, lazyRows(g, dy2, [N, O, h * w], hint), x2, [N, O, C, h * w], hint, foldBatch);
    return op(g, 'Reshape', [sum, int64s(g, [O, C, 1, 1])], `${hint}:dW`);
  }
  const xt = swap01(g, x, `${hint}:xT`);
  const dyt = swap01(g, dy, `${hint}:dyT`);
  const r = op(g, 'Conv', [xt, dyt], `${hint}:dWT`, {
    kernel_shape: [h, w], pads: [p, p, p, p], dilations: [s, s],
  });
  // r[u] = Σ_i x[s·i + u − p]·dy[i]: the taps of a dilated kernel are every d-th u
  const d = win.dilation ?? 1;
  if (d > 1) {
    const taps = op(g, 'Slice', [r, int64s(g, [0, 0]), int64s(g, [d * (k - 1) + 1, d * (k - 1) + 1]), int64s(g, [2, 3]), int64s(g, [d, d])], `${hint}:dWTk`);
    return swap01(g, taps, `${hint}:dW`);
  }
  const size: [number, number] = [xShape[2] + 2 * p - s * (h - 1), xShape[3] + 2 * p - s * (w - 1)];
  return swap01(g, crop(g, r, k, size, `${hint}:dWTk`), `${hint}:dW`);
}

/**
 * dW = Σ_n dy[n] · cols[n]ᵀ with the im2col columns made by Convs: every input plane (N·C of them, as
 * a batch of 1-channel images) against one-hot k x k kernels, with the layer's stride and padding.
 * One kernel row at a time (cols [N, C·k, h·w]), so only k of the k² taps' copies are alive at once;
 * or with `allRows` every tap in one Conv (cols [N, C·k², h·w], columns in dW's (c, u, v) order).
 * Either way each dW element is the same per-image dot product over the pixels.
 */
function convGradWeightTapConv(g: GraphBuilder, x: string, dy: string, win: Window, xShape: Shape4, dyShape: Shape4, hint: string,
  foldBatch: boolean, allRows = false): string {
  const { kernel: k, stride: s, pad: p } = win;
  const [N, C, H, W] = xShape;
  const [, O, h, w] = dyShape;
  const d = win.dilation ?? 1;
  const planes = op(g, 'Reshape', [x, int64s(g, [N * C, 1, H, W])], `${hint}:planes`);
  const dy2 = op(g, 'Reshape', [dy, int64s(g, [N, O, h * w])], `${hint}:dy2`);
  const dyRows = lazyRows(g, dy2, [N, O, h * w], hint);
  if (allRows) {
    // kernel t picks tap t = u·k + v
    const onehot = new Array<number>(k ** 4).fill(0);
    for (let t = 0; t < k * k; t++) onehot[t * k * k + t] = 1;
    const taps = op(g, 'Conv', [planes, g.constant(onehot, 'float32', [k * k, 1, k, k])], `${hint}:taps`, {
      kernel_shape: [k, k], strides: [s, s], pads: [p, p, p, p], dilations: d > 1 ? [d, d] : undefined,
    });
    const cols = op(g, 'Reshape', [taps, int64s(g, [N, C * k * k, h * w])], `${hint}:cols`);
    const sum = gemmOverBatch(g, dy2, dyRows, cols, [N, O, C * k * k, h * w], hint, foldBatch);
    return op(g, 'Reshape', [sum, int64s(g, [O, C, k, k])], `${hint}:dW`);
  }
  const rows: string[] = [];
  for (let u = 0; u < k; u++) {
    // kernel v picks tap (u, v)
    const onehot = new Array<number>(k * k * k).fill(0);
    for (let v = 0; v < k; v++) onehot[v * k * k + u * k + v] = 1;
    const taps = op(g, 'Conv', [planes, g.constant(onehot, 'float32', [k, 1, k, k])], `${hint}:taps`, {
      kernel_shape: [k, k], strides: [s, s], pads: [p, p, p, p], dilations: d > 1 ? [d, d] : undefined,
    });
    const cols = op(g, 'Reshape', [taps, int64s(g, [N, C * k, h * w])], `${hint}:cols`);
    const sum = gemmOverBatch(g, dy2, dyRows, cols, [N, O, C * k, h * w], hint, foldBatch);
    rows.push(op(g, 'Reshape', [sum, int64s(g, [O, C, 1, k])], `${hint}:dwrow`));
  }
  return op(g, 'Concat', rows, `${hint}:dW`, { axis: 2 });
}

/** dW by explicit kernel-tap slices of the padded input and MatMuls over pixels (batched over N, summed). */
function convGradWeightSlices(g: GraphBuilder, x: string, dy: string, win: Window, xShape: Shape4, dyShape: Shape4,
  hint: string, concat: boolean, foldBatch: boolean): string {
  const { kernel: k, stride: s, pad: p } = win;
  const [N, C] = xShape;
  const [, O, h, w] = dyShape;
  const xp = p > 0 ? op(g, 'Pad', [x, int64s(g, [0, 0, p, p, 0, 0, p, p])], `${hint}:xpad`) : x;
  const dy2 = op(g, 'Reshape', [dy, int64s(g, [N, O, h * w])], `${hint}:dy2`);
  const d = win.dilation ?? 1;
  const tap = (u: number, v: number, shape: number[]): string => {
    const [a, b] = [d * u, d * v];
    const sl = op(g, 'Slice', [xp, int64s(g, [a, b]), int64s(g, [a + s * (h - 1) + 1, b + s * (w - 1) + 1]), int64s(g, [2, 3]), int64s(g, [s, s])], `${hint}:tap`);
    return op(g, 'Reshape', [sl, int64s(g, shape)], `${hint}:tap2`);
  };
  // dW[o, c·taps] = Σ_n dy[n, o, :] · cols[n, c·taps, :]ᵀ
  const dyRows = lazyRows(g, dy2, [N, O, h * w], hint);
  const gemm = (cols: string, K: number): string => gemmOverBatch(g, dy2, dyRows, cols, [N, O, K, h * w], hint, foldBatch);
  const rows: string[] = [];
  for (let u = 0; u < k; u++) {
    if (concat) {
      // one kernel row at a time: the columns of k taps, not k², are alive at once
      const taps = Array.from({ length: k }, (_, v) => tap(u, v, [N, C, 1, h * w]));
      const cols = op(g, 'Reshape', [op(g, 'Concat', taps, `${hint}:cols4`, { axis: 2 }), int64s(g, [N, C * k, h * w])], `${hint}:cols`);
      rows.push(op(g, 'Reshape', [gemm(cols, C * k), int64s(g, [O, C, 1, k])], `${hint}:dwrow`));
    } else {
      const perTap = Array.from({ length: k }, (_, v) => op(g, 'Reshape', [gemm(tap(u, v, [N, C, h * w]), C), int64s(g, [O, C, 1, 1])], `${hint}:dwtap`));
      rows.push(op(g, 'Concat', perTap, `${hint}:dwrow`, { axis: 3 }));
    }
  }
  return op(g, 'Concat', rows, `${hint}:dW`, { axis: 2 });
}

/**
 * dL/dx of y = ConvTranspose(x, W) (W [Cin, Cout/groups, k, k]): a plain Conv of dy with the same W
 * (read as Conv's [out, in/groups, k, k], with the same groups: each group's adjoint is its own).
 */
export function convTransposeGradInput(g: GraphBuilder, dy: string, w: string, win: Window, hint = 'convT', groups = 1): string {
  const { kernel: k, stride: s, pad: p } = win;
  return op(g, 'Conv', [dy, w], `${hint}:dx`, { kernel_shape: [k, k], strides: [s, s], pads: [p, p, p, p], group: groups > 1 ? groups : undefined });
}

/**
 * dL/dW of a per-channel (depthwise) y = ConvTranspose(x, W, groups = C), W [C, 1, k, k]:
 * dW[c, 0, a, b] = Σ_{n,i,j} x[n, c, i, j]·dy[n, c, s·i − p + a, s·j − p + b], i.e. for each channel the
 * full form's diagonal only: dy as one image of C·N channels convolved, C groups of N, with x as a
 * [C, N, h, w] kernel dilated by the stride -> [1, C, k', k'], cropped to k x k.
 */
export function convTransposeGradWeightDepthwise(g: GraphBuilder, x: string, dy: string, win: Window, xShape: Shape4, dyShape: Shape4,
  hint = 'convT'): string {
  const { kernel: k, stride: s, pad: p } = win;
  const [N, C, h, w] = xShape;
  const dyg = op(g, 'Reshape', [swap01(g, dy, `${hint}:dyT`), int64s(g, [1, C * N, dyShape[2], dyShape[3]])], `${hint}:dyg`);
  const r = op(g, 'Conv', [dyg, swap01(g, x, `${hint}:xT`)], `${hint}:dWg`, { kernel_shape: [h, w], pads: [p, p, p, p], dilations: [s, s], group: C });
  const size: [number, number] = [dyShape[2] + 2 * p - s * (h - 1), dyShape[3] + 2 * p - s * (w - 1)];
  return op(g, 'Reshape', [crop(g, r, k, size, `${hint}:dWgk`), int64s(g, [C, 1, k, k])], `${hint}:dW`);
}

/** dL/dW of y = ConvTranspose(x, W): dy (batch as channels) convolved with x dilated by the stride, -> [Cin, Cout, k, k]. */
export function convTransposeGradWeight(g: GraphBuilder, x: string, dy: string, win: Window, xShape: Shape4, dyShape: Shape4,
  hint = 'convT'): string {
  const { kernel: k, stride: s, pad: p } = win;
  const [, , h, w] = xShape;
  const dyt = swap01(g, dy, `${hint}:dyT`);
  const xt = swap01(g, x, `${hint}:xT`);
  const r = op(g, 'Conv', [dyt, xt], `${hint}:dWT`, { kernel_shape: [h, w], pads: [p, p, p, p], dilations: [s, s] });
  const size: [number, number] = [dyShape[2] + 2 * p - s * (h - 1), dyShape[3] + 2 * p - s * (w - 1)];
  return swap01(g, crop(g, r, k, size, `${hint}:dWTk`), `${hint}:dW`);
}

// ---- transposed convolution with kernel = m·stride, as GEMMs over stride x stride output blocks
//
// Every output block (A, B) of s x s pixels of the uncropped output gets contributions from exactly
// the m x m input pixels (A − di, B − dj). So with X4 = the m² shifted copies of x stacked on the
// channel axis ([N, m²·Cin, P], P = (h+m−1)(w+m−1): tiny) and Wb = W rearranged to [m²·Cin, Cout·s²],
// the blocks of all pixels are one MatMul, Dᵀ = X4ᵀ·Wb ([N, P, Cout·s²]), put in place by a Transpose
// that keeps rows of s values together, and cropped by the padding. dx = shifted sums of dDᵀ·Wbᵀ and
// dW = Σ_n X4·dDᵀ are MatMuls too, with dDᵀ the same Transpose of the padded dy.

/** What the block form's backward reuses from its forward. */
export interface BlockConvTransposeSaved {
  /** [N, m²·Cin, P] */
  x4: string;
  /** W as [m²·Cin, Cout·s²], rows (di, dj, ci), columns (co, u, v), or (u, v, co) when `classLast`. */
  wb: string;
  /** The output (and so dy) is in the class-last block layout [N, Hf, Wf, s, s, Cout]. */
  classLast?: boolean;
}

/** True when the block form applies: the kernel is a multiple of the stride. */
export function blockFormApplies(win: Window): boolean {
  return win.kernel % win.stride === 0 && win.pad >= 0;
}

/**
 * y = ConvTranspose(x, W, b) (W [Cin, Cout, k, k], k = m·s) by block GEMMs; writes `output`. With
 * `crop` false, `output` is the uncropped result, `pad` wider on every side (for a loss that ignores
 * the border: saves cropping here and padding the gradient back). With `blockLayout` (and no crop),
 * `output` stays in the GEMM's layout [N, Hf, Wf, Cout, s, s]: no Transpose here, none for the gradient.
 */
export function convTransposeBlocks(g: GraphBuilder, x: string, w: string, bias: string | undefined, win: Window, xShape: Shape4,
  Cout: number, output: string, hint = 'convT', crop = true, blockLayout = false, classLast = false): BlockConvTransposeSaved {
  const { kernel: k, stride: s } = win;
  const m = k / s;
  const Cin = xShape[1];
  if (classLast && !blockLayout) throw new Error('convTransposeBlocks: classLast needs blockLayout');
  // W [ci, co, di·s+u, dj·s+v] -> [ci, co, di, u, dj, v] -> [(di, dj, ci), (co, u, v)], or (u, v, co) class last
  const w6 = op(g, 'Reshape', [w, int64s(g, [Cin, Cout, m, s, m, s])], `${hint}:w6`);
  const wb = op(g, 'Reshape', [op(g, 'Transpose', [w6], `${hint}:wbt`, { perm: classLast ? [2, 4, 0, 3, 5, 1] : [2, 4, 0, 1, 3, 5] }),
    int64s(g, [m * m * Cin, Cout * s * s])], `${hint}:wb`);
  let weights = wb;
  if (bias) {
    // the bias as one more input column of ones: Dᵀ = [X4ᵀ | 1] · [Wb; b]
    const bExp = classLast
      ? op(g, 'Expand', [op(g, 'Reshape', [bias, int64s(g, [1, Cout])], `${hint}:b2`), int64s(g, [s * s, Cout])], `${hint}:bexp`)
      : op(g, 'Expand', [op(g, 'Reshape', [bias, int64s(g, [Cout, 1])], `${hint}:b2`), int64s(g, [Cout, s * s])], `${hint}:bexp`);
    const bRow = op(g, 'Reshape', [bExp, int64s(g, [1, Cout * s * s])], `${hint}:brow`);
    weights = op(g, 'Concat', [wb, bRow], `${hint}:wbb`, { axis: 0 });
  }
  const { x4 } = blockUpsample(g, x, weights, win, Cin, Cout, xShape, output, hint, { ones: bias !== undefined, crop, blockLayout, classLast });
  return { x4, wb, classLast };
}

/** A size known at compile time, or a 1-element int64 value computed in the graph. */
type Dim = number | string;

/** The int64 vector of `dims`, constant when every part is. */
function dimsValue(g: GraphBuilder, dims: Dim[], hint: string): string {
  if (dims.every((d) => typeof d === 'number')) return int64s(g, dims as number[]);
  const parts: string[] = [];
  let run: number[] = [];
  for (const d of dims) {
    if (typeof d === 'number') run.push(d);
    else {
      if (run.length) parts.push(int64s(g, run));
      run = [];
      parts.push(d);
    }
  }
  if (run.length) parts.push(int64s(g, run));
  return op(g, 'Concat', parts, hint, { axis: 0 });
}

/**
 * The block-GEMM transposed convolution (k = m·s) both graphs use: x [N, Cin, h, w], with static
 * `xShape` (training) or symbolic N, h, w (undefined: sizes computed in the graph, inference), and
 * `weights` = W as [m²·Cin, Cout·s²] (rows (di, dj, ci), columns (co, u, v)), plus a last row with
 * the bias when `ones` (then the input gets a column of ones). Output block (A, B) of s x s pixels of
 * the uncropped output is fed by the input pixels (A − di, B − dj), di, dj < m: with X4 = the m²
 * shifted copies of x on the channel axis, the blocks are X4ᵀ·weights, moved into place by one
 * Transpose and cropped by the padding. `crop` false leaves the uncropped output; `blockLayout` (and
 * no crop) leaves it in the GEMM's layout [N, Hf, Wf, Cout, s, s], or with `classLast` (columns of
 * `weights` in (u, v, co) order) [N, Hf, Wf, s, s, Cout]. Returns X4 ([N, m²·Cin, P]) for dW.
 */
export function blockUpsample(g: GraphBuilder, x: string, weights: string, win: Window, Cin: number, Cout: number, xShape: Shape4 | undefined,
  output: string, hint: string, opts: { ones: boolean; crop: boolean; blockLayout: boolean; classLast?: boolean }): { x4: string } {
  const { kernel: k, stride: s, pad: p } = win;
  const m = k / s;
  let N: Dim;
  let Hf: Dim;
  let Wf: Dim;
  if (xShape) {
    [N, Hf, Wf] = [xShape[0], xShape[2] + m - 1, xShape[3] + m - 1];
  } else {
    const shape = op(g, 'Shape', [x], `${hint}:xshape`);
    const part = (a: number, b: number) => op(g, 'Slice', [shape, int64s(g, [a]), int64s(g, [b])], `${hint}:dim`);
    N = part(0, 1);
    Hf = op(g, 'Add', [part(2, 3), int64s(g, [m - 1])], `${hint}:hf`);
    Wf = op(g, 'Add', [part(3, 4), int64s(g, [m - 1])], `${hint}:wf`);
  }
  // X4: shifted copies of x, zero outside: xs_(di,dj)[A, B] = x[A − di, B − dj]
  const xp = m > 1 ? op(g, 'Pad', [x, int64s(g, [0, 0, m - 1, m - 1, 0, 0, m - 1, m - 1])], `${hint}:xpad`) : x;
  const taps: string[] = [];
  for (let di = 0; di < m; di++) {
    for (let dj = 0; dj < m; dj++) {
      // rows m−1−di .. len−di of the padded input: x shifted down by di (and right by dj)
      taps.push(m > 1
        ? op(g, 'Slice', [xp, int64s(g, [m - 1 - di, m - 1 - dj]), int64s(g, [di > 0 ? -di : 2 ** 30, dj > 0 ? -dj : 2 ** 30]), int64s(g, [2, 3])], `${hint}:xtap`)
        : xp);
    }
  }
  const x4 = op(g, 'Reshape', [taps.length > 1 ? op(g, 'Concat', taps, `${hint}:x4c`, { axis: 1 }) : taps[0]!, int64s(g, [0, m * m * Cin, -1])], `${hint}:x4`);
  let rows = op(g, 'Transpose', [x4], `${hint}:x4T`, { perm: [0, 2, 1] }); // [N, P, m²·Cin]
  if (opts.ones) {
    const ones = xShape
      ? g.constant(new Array<number>(xShape[0] * (Hf as number) * (Wf as number)).fill(1), 'float32', [xShape[0], (Hf as number) * (Wf as number), 1])
      : op(g, 'Expand', [g.constant([1], 'float32', [1, 1, 1]), op(g, 'Concat', [op(g, 'Slice', [op(g, 'Shape', [rows], `${hint}:rshape`), int64s(g, [0]), int64s(g, [2])], `${hint}:np`), int64s(g, [1])], `${hint}:onesshape`, { axis: 0 })], `${hint}:ones`);
    rows = op(g, 'Concat', [rows, ones], `${hint}:x4Tb`, { axis: 2 });
  }
  const blockDims: Dim[] = opts.classLast ? [N, Hf, Wf, s, s, Cout] : [N, Hf, Wf, Cout, s, s];
  const DT = op(g, 'Reshape', [op(g, 'MatMul', [rows, weights], `${hint}:DT`), dimsValue(g, blockDims, `${hint}:dt6shape`)], `${hint}:DT6`);
  if (opts.blockLayout) {
    g.node('Identity', [DT], {}, output);
    return { x4 };
  }
  const times = (d: Dim): Dim => (typeof d === 'number' ? d * s : op(g, 'Mul', [d, int64s(g, [s])], `${hint}:full`));
  const placed = op(g, 'Reshape', [op(g, 'Transpose', [DT], `${hint}:Y6`, { perm: [0, 3, 1, 4, 2, 5] }),
    dimsValue(g, [N, Cout, times(Hf), times(Wf)], `${hint}:yshape`)], `${hint}:yfull`);
  if (p === 0 || !opts.crop) g.node('Identity', [placed], {}, output);
  else g.node('Slice', [placed, int64s(g, [p, p]), int64s(g, [-p, -p]), int64s(g, [2, 3])], {}, output);
  return { x4 };
}

/**
 * dDᵀ: the padded dy as [N, P, Cout·s²] (blocks of s x s per pixel): shared by the block form's dx and
 * dW. `padded`: dy is already the gradient of the uncropped output; `blockLayout`: and in block layout.
 */
export function convTransposeBlocksGradOutput(g: GraphBuilder, dy: string, win: Window, xShape: Shape4, Cout: number, hint = 'convT',
  padded = false, blockLayout = false): string {
  const { kernel: k, stride: s, pad: p } = win;
  const m = k / s;
  const [N, , h, wd] = xShape;
  const Hf = h + m - 1;
  const Wf = wd + m - 1;
  if (blockLayout) return op(g, 'Reshape', [dy, int64s(g, [N, Hf * Wf, Cout * s * s])], `${hint}:dDT`);
  const dyp = p > 0 && !padded ? op(g, 'Pad', [dy, int64s(g, [0, 0, p, p, 0, 0, p, p])], `${hint}:dypad`) : dy;
  const six = op(g, 'Reshape', [dyp, int64s(g, [N, Cout, Hf, s, Wf, s])], `${hint}:dy6`);
  return op(g, 'Reshape', [op(g, 'Transpose', [six], `${hint}:dDT6`, { perm: [0, 2, 4, 1, 3, 5] }), int64s(g, [N, Hf * Wf, Cout * s * s])], `${hint}:dDT`);
}

/** dx = Σ over taps of the shifted blocks of dDᵀ·Wbᵀ. */
export function convTransposeBlocksGradInput(g: GraphBuilder, dDT: string, saved: BlockConvTransposeSaved, win: Window, xShape: Shape4,
  hint = 'convT'): string {
  const m = win.kernel / win.stride;
  const [N, Cin, h, wd] = xShape;
  const Hf = h + m - 1;
  const Wf = wd + m - 1;
  const PT = op(g, 'MatMul', [dDT, op(g, 'Transpose', [saved.wb], `${hint}:wbT`, { perm: [1, 0] })], `${hint}:PT`);
  const P = op(g, 'Reshape', [op(g, 'Transpose', [PT], `${hint}:Pm`, { perm: [0, 2, 1] }), int64s(g, [N, m * m, Cin, Hf, Wf])], `${hint}:P5`);
  let dx: string | undefined;
  for (let di = 0; di < m; di++) {
    for (let dj = 0; dj < m; dj++) {
      const t = di * m + dj;
      const part = op(g, 'Slice', [P, int64s(g, [t, di, dj]), int64s(g, [t + 1, di + h, dj + wd]), int64s(g, [1, 3, 4])], `${hint}:dxtap`);
      dx = dx ? op(g, 'Add', [dx, part], `${hint}:dxsum`) : part;
    }
  }
  return op(g, 'Reshape', [dx!, int64s(g, [N, Cin, h, wd])], `${hint}:dx`);
}

/** dW = Σ_n X4[n]·dDᵀ[n], rearranged to [Cin, Cout, k, k]. */
export function convTransposeBlocksGradWeight(g: GraphBuilder, dDT: string, saved: BlockConvTransposeSaved, win: Window, Cin: number, Cout: number,
  hint = 'convT'): string {
  const { kernel: k, stride: s } = win;
  const m = k / s;
  // one GEMM over all N·P block positions: X4 as [m²·Cin, N·P] (a Transpose of a tensor the input's
  // size) times dDᵀ as [N·P, Cout·s²] (a free Reshape); a batched product [N, m²·Cin, Cout·s²] summed
  // over N would be N times the size of dW
  const x4T = op(g, 'Reshape', [op(g, 'Transpose', [saved.x4], `${hint}:x4t`, { perm: [1, 0, 2] }), int64s(g, [m * m * Cin, -1])], `${hint}:x4rows`);
  const sum = op(g, 'MatMul', [x4T, op(g, 'Reshape', [dDT, int64s(g, [-1, Cout * s * s])], `${hint}:dD2`)], `${hint}:dWb`);
  // rows (di, dj, ci), columns (co, u, v) or (u, v, co) -> [ci, co, di, u, dj, v]
  const six = op(g, 'Reshape', [sum, int64s(g, saved.classLast ? [m, m, Cin, s, s, Cout] : [m, m, Cin, Cout, s, s])], `${hint}:dW6`);
  const perm = saved.classLast ? [2, 5, 0, 3, 1, 4] : [2, 3, 0, 4, 1, 5];
  return op(g, 'Reshape', [op(g, 'Transpose', [six], `${hint}:dW6t`, { perm }), int64s(g, [Cin, Cout, k, k])], `${hint}:dW`);
}

/** dL/db of a bias added per output channel. */
export function biasGrad(g: GraphBuilder, dy: string, hint = 'bias', axes: number[] = AXES_NHW): string {
  return op(g, 'ReduceSum', [dy, int64s(g, axes)], `${hint}:db`, { keepdims: 0 });
}

// ------------------------------------------------------------------ batch-norm (training mode)

export interface BatchNormSaved {
  /** x̂ ('explicit') or x − mean ('centered'): what the backward multiplies with. */
  form: BatchNormForm;
  saved: string;
  /** 1/sqrt(var + eps), [1, C, 1, 1]. */
  invstd: string;
  /** Elements per channel: N*H*W. */
  count: number;
  channels: number;
  /** The batch mean, [1, C, 1, 1] (to recompute x̂ from x in the backward). */
  mean: string;
}

export interface BatchNormTrainOut {
  saved: BatchNormSaved;
  /** Batch mean and biased variance, [1, C, 1, 1]. */
  mean: string;
  variance: string;
}

/** y = γ·(x − mean)/sqrt(var + eps) + β with the batch's statistics (biased variance); writes `output`. */
export function batchNormTrain(g: GraphBuilder, x: string, gamma: string, beta: string, eps: number, xShape: Shape4,
  output: string, hint = 'bn', form: BatchNormForm = 'explicit'): BatchNormTrainOut {
  const count = xShape[0] * xShape[2] * xShape[3];
  const mean = op(g, 'ReduceMean', [x], `${hint}:mean`, { axes: AXES_NHW, keepdims: 1 });
  const xc = op(g, 'Sub', [x, mean], `${hint}:xc`);
  const variance = form === 'centered'
    ? op(g, 'Mul', [op(g, 'ReduceSumSquare', [xc], `${hint}:ss`, { axes: AXES_NHW, keepdims: 1 }), g.constant(1 / count)], `${hint}:var`)
    : op(g, 'ReduceMean', [op(g, 'Mul', [xc, xc], `${hint}:xc2`)], `${hint}:var`, { axes: AXES_NHW, keepdims: 1 });
  const std = op(g, 'Sqrt', [op(g, 'Add', [variance, g.constant(eps)], `${hint}:vareps`)], `${hint}:std`);
  const invstd = op(g, 'Reciprocal', [std], `${hint}:invstd`);
  if (form === 'centered') {
    // one fused pass: ORT's (inference) BatchNormalization of x − mean with mean 0 and the batch variance
    const C = xShape[1];
    g.node('BatchNormalization', [xc, gamma, beta, g.constant(new Array<number>(C).fill(0), 'float32', [C]), flatten1(g, variance, `${hint}:var1`)],
      { epsilon: f(eps) }, output);
    return { saved: { form, saved: xc, invstd, count, channels: xShape[1], mean }, mean, variance };
  }
  const xhat = op(g, 'Mul', [xc, invstd], `${hint}:xhat`);
  if (form === 'affine') channelAffine(g, xhat, gamma, beta, xShape[1], `${hint}:affine`, output);
  else {
    const scaled = op(g, 'Mul', [xhat, perChannel(g, gamma, `${hint}:gamma4`)], `${hint}:scaled`);
    g.node('Add', [scaled, perChannel(g, beta, `${hint}:beta4`)], {}, output);
  }
  return { saved: { form, saved: xhat, invstd, count, channels: xShape[1], mean }, mean, variance };
}

/**
 * The batch-norm's saved tensor (x̂, or x − mean for 'centered') and its output γ·x̂ + β recomputed from
 * the convolution that feeds it: y = Conv(x, W) + b again, then (y − mean)·invstd with the forward's
 * batch statistics, so the values are the forward's exactly (same kernels, same inputs). For a
 * convolution whose input is kept anyway (the image), this trades one convolution and a few passes in
 * the backward for not holding x̂ (and what is derived from the output) through the whole step.
 * The Conv states its dilations explicitly where the forward's leaves them out: ONNX Runtime's
 * common-subexpression elimination would otherwise merge it with the forward's.
 */
export function recomputeConvBatchNorm(g: GraphBuilder, x: string, w: string, bias: string | undefined, win: Window,
  bn: BatchNormSaved, gamma: string, beta: string, hint: string): { saved: BatchNormSaved; output: string } {
  const { kernel: k, stride: s, pad: p } = win;
  const d = win.dilation ?? 1;
  const y = op(g, 'Conv', bias ? [x, w, bias] : [x, w], `${hint}:yre`, { kernel_shape: [k, k], strides: [s, s], pads: [p, p, p, p], dilations: [d, d] });
  const xc = op(g, 'Sub', [y, bn.mean], `${hint}:xcre`);
  const xhat = op(g, 'Mul', [xc, bn.invstd], `${hint}:xhatre`);
  const output = op(g, 'Add', [op(g, 'Mul', [xhat, perChannel(g, gamma, `${hint}:gamma4re`)], `${hint}:scaledre`),
    perChannel(g, beta, `${hint}:beta4re`)], `${hint}:outre`);
  return { saved: { ...bn, saved: bn.form === 'centered' ? xc : xhat }, output };
}

/** PyTorch's running-statistics update: momentum m, unbiased variance. Returns [newMean, newVar] ([C]). */
export function batchNormRunningUpdate(g: GraphBuilder, out: BatchNormTrainOut, runningMean: string, runningVar: string,
  momentum: number, outputs: [string, string], hint = 'bn'): [string, string] {
  const M = out.saved.count;
  const keep = g.constant(1 - momentum);
  const mean = flatten1(g, out.mean, `${hint}:mean1`);
  const variance = flatten1(g, out.variance, `${hint}:var1`);
  const newMean = g.node('Add', [op(g, 'Mul', [runningMean, keep], `${hint}:rm`), op(g, 'Mul', [mean, g.constant(momentum)], `${hint}:mm`)], {}, outputs[0]);
  const unbiased = g.constant(M > 1 ? (momentum * M) / (M - 1) : momentum);
  const newVar = g.node('Add', [op(g, 'Mul', [runningVar, keep], `${hint}:rv`), op(g, 'Mul', [variance, unbiased], `${hint}:mv`)], {}, outputs[1]);
  return [newMean, newVar];
}

/**
 * Batch-norm's backward from its two per-channel sums, Σ dy and Σ dy·saved ([1, C, 1, 1]): dγ, dβ and,
 * with `needInput`, the per-channel factors of dx = k·dy − a·saved − b: k = γ·invstd, a = k·dγ/M (x̂
 * saved) or k·invstd·dγ/M (x − mean saved), b = k·dβ/M; `sign` −1 gives −a and −b instead.
 */
function batchNormGradFactors(g: GraphBuilder, db4: string, dsaved: string, saved: BatchNormSaved, gamma: string, hint: string,
  needInput: boolean, sign: 1 | -1 = 1): { dgamma: string; dbeta: string; factors?: { k: string; a: string; b: string } } {
  // Σ dy·x̂ directly, or invstd·Σ dy·(x − mean)
  const dg4 = saved.form !== 'centered' ? dsaved : op(g, 'Mul', [dsaved, saved.invstd], `${hint}:dg4`);
  const dbeta = flatten1(g, db4, `${hint}:dbeta`);
  const dgamma = flatten1(g, dg4, `${hint}:dgamma`);
  if (!needInput) return { dgamma, dbeta };
  const invM = g.constant(sign / saved.count);
  const k = op(g, 'Mul', [perChannel(g, gamma, `${hint}:gamma4`), saved.invstd], `${hint}:k`);
  let a = op(g, 'Mul', [op(g, 'Mul', [k, dg4], `${hint}:kdg`), invM], `${hint}:a`);
  if (saved.form === 'centered') a = op(g, 'Mul', [a, saved.invstd], `${hint}:a2`);
  const b = op(g, 'Mul', [op(g, 'Mul', [k, db4], `${hint}:kdb`), invM], `${hint}:b`);
  return { dgamma, dbeta, factors: { k, a, b } };
}

/** Backward of train-mode batch-norm: dx = γ·invstd·(dy − mean(dy) − x̂·mean(dy·x̂)); dγ = Σ dy·x̂; dβ = Σ dy. */
export function batchNormGrad(g: GraphBuilder, dy: string, saved: BatchNormSaved, gamma: string, hint = 'bn',
  needInput = true): { dx?: string; dgamma: string; dbeta: string } {
  const db4 = reduceNHW(g, dy, `${hint}:db4`);
  const dsaved = reduceNHW(g, op(g, 'Mul', [dy, saved.saved], `${hint}:dysaved`), `${hint}:dsaved`);
  const { dgamma, dbeta, factors } = batchNormGradFactors(g, db4, dsaved, saved, gamma, hint, needInput);
  if (!factors) return { dgamma, dbeta };
  // per-channel terms first (tiny), then the full-size passes: dy·k − saved·a − b
  const { k, a, b } = factors;
  const t1 = op(g, 'Mul', [dy, k], `${hint}:dyk`);
  if (saved.form === 'affine') {
    // dy·k − (x̂·a + b): the per-channel affine of x̂ in one pass
    const C = saved.channels;
    return { dx: op(g, 'Sub', [t1, channelAffine(g, saved.saved, a, b, C, `${hint}:xab`)], `${hint}:dx`), dgamma, dbeta };
  }
  const t2 = op(g, 'Mul', [saved.saved, a], `${hint}:xa`);
  const dx = op(g, 'Sub', [op(g, 'Sub', [t1, t2], `${hint}:dx1`), b], `${hint}:dx`);
  return { dx, dgamma, dbeta };
}

// ------------------------------------------------------------------ relu, max-pool

/** Where relu let its input through: y > 0 (bool, a quarter of y's bytes when kept for the backward instead of y). */
export function reluMask(g: GraphBuilder, y: string, hint = 'relu'): string {
  return op(g, 'Greater', [y, g.constant(0)], `${hint}:mask`);
}

/**
 * How ReLU's pass-through is applied: 'where' = Where(mask, t, 0); 'mul' = t times the mask as 0/1
 * floats (Sign(y) of the output y ≥ 0, or the bool mask cast). Same values (up to the sign of a
 * zero); ONNX Runtime's CPU Where writes two full-size selections (t where true, 0 where false) and
 * merges them, three passes and two transient tensors of t's size, where Sign or Cast and Mul take two
 * passes and one.
 */
export type ReluForm = 'where' | 'mul';

/** t where `mask` holds, else 0 (see ReluForm). */
export function applyReluMask(g: GraphBuilder, mask: string, t: string, hint: string, form: ReluForm = 'where', output?: string): string {
  if (form === 'where') {
    const inputs = [mask, t, g.constant(0)];
    return output ? g.node('Where', inputs, {}, output) : op(g, 'Where', inputs, hint);
  }
  const inputs = [t, op(g, 'Cast', [mask], `${hint}:maskf`, { to: 1 /* FLOAT */ })];
  return output ? g.node('Mul', inputs, {}, output) : op(g, 'Mul', inputs, hint);
}

/** dL/dx of y = relu(x), from y or its mask: dy where y > 0, else 0. */
export function reluGrad(g: GraphBuilder, y: string, dy: string, hint = 'relu', mask?: string, form: ReluForm = 'where'): string {
  if (form === 'mul' && !mask) {
    // y ≥ 0, so Sign(y) is 1 where y > 0 and 0 elsewhere
    return op(g, 'Mul', [dy, op(g, 'Sign', [y], `${hint}:sign`)], `${hint}:dx`);
  }
  return applyReluMask(g, mask ?? reluMask(g, y, hint), dy, `${hint}:dx`, form);
}

/** MaxPool with its argmax indices (ONNX: flat over N·C·H·W). */
export function maxPoolWithIndices(g: GraphBuilder, x: string, win: Window, output: string, hint = 'pool'): string {
  const indices = uniqueName(g, `${hint}:indices`);
  g.nodeN('MaxPool', [x], {
    kernel_shape: [win.kernel, win.kernel], strides: [win.stride, win.stride], pads: [win.pad, win.pad, win.pad, win.pad],
  }, [output, indices]);
  return indices;
}

/**
 * Routes dy back to each window's argmax: ScatterElements with reduction 'add' (overlapping windows)
 * into zeros. With `zero` (a scalar computed at run time) the zeros are Expand(zero), which ONNX
 * Runtime cannot fold into a constant: ConstantOfShape of a constant shape becomes an initializer of
 * x's size held for the session's life, which the scatter must then copy; a run-time tensor is
 * allocated only here and scattered into in place.
 */
export function maxPoolGrad(g: GraphBuilder, dy: string, indices: string, xShape: Shape4, hint = 'pool', zero?: string): string {
  const total = xShape.reduce((a, b) => a * b, 1);
  const zeros = zero
    ? op(g, 'Expand', [zero, int64s(g, [total])], `${hint}:zeros`)
    : op(g, 'ConstantOfShape', [int64s(g, [total])], `${hint}:zeros`);
  const flatIdx = op(g, 'Reshape', [indices, int64s(g, [-1])], `${hint}:idx1`);
  const flatDy = op(g, 'Reshape', [dy, int64s(g, [-1])], `${hint}:dy1`);
  const scattered = op(g, 'ScatterElements', [zeros, flatIdx, flatDy], `${hint}:dx1`, { axis: 0, reduction: 'add' });
  return op(g, 'Reshape', [scattered, int64s(g, [...xShape])], `${hint}:dx`);
}

/**
 * Backward of a train-mode batch-norm whose only reader is a max-pool (the ResNet stem, its ReLU moved
 * after the pool), from the pool's output gradient and argmax. The batch-norm's output gradient is u,
 * dy_pool scattered to each window's argmax, so with k = γ·invstd, a = k·dγ/M, b = k·dβ/M (per channel)
 *   dβ = Σ u = Σ dy_pool,    dγ = Σ u·x̂ = Σ dy_pool·x̂[argmax],
 *   dx = k·u − a·x̂ − b = scatter-add of k·dy_pool into the per-channel affine −a·x̂ − b:
 * the sums run over the pooled values (a quarter of them at a 3x3 stride-2 pool), and of the full-size
 * tensors only the affine base and the scatter's copy of it are written, where maxPoolGrad then
 * batchNormGrad write zeros, the scatter, x̂·dy and three more (and hold more of them at once: the
 * batch-32 step's peak sits there). Same values up to the order of the additions.
 */
export function batchNormGradThroughMaxPool(g: GraphBuilder, dyPool: string, indices: string, saved: BatchNormSaved, gamma: string,
  xShape: Shape4, hint = 'bn', needInput = true): { dx?: string; dgamma: string; dbeta: string } {
  const db4 = reduceNHW(g, dyPool, `${hint}:db4`);
  const flatIdx = op(g, 'Reshape', [indices, int64s(g, [-1])], `${hint}:idx1`);
  // x̂ (or x − mean) where each pooled value came from
  const savedAt = op(g, 'Reshape', [
    op(g, 'GatherElements', [op(g, 'Reshape', [saved.saved, int64s(g, [-1])], `${hint}:saved1`), flatIdx], `${hint}:savedat1`, { axis: 0 }),
    op(g, 'Shape', [dyPool], `${hint}:poolshape`)], `${hint}:savedat`);
  const dsaved = reduceNHW(g, op(g, 'Mul', [dyPool, savedAt], `${hint}:dysaved`), `${hint}:dsaved`);
  const { dgamma, dbeta, factors } = batchNormGradFactors(g, db4, dsaved, saved, gamma, hint, needInput, -1);
  if (!factors) return { dgamma, dbeta };
  const { k, a: minusA, b: minusB } = factors;
  const base = channelAffine(g, saved.saved, minusA, minusB, saved.channels, `${hint}:base`);
  const updates = op(g, 'Mul', [dyPool, k], `${hint}:dyk`);
  const scattered = op(g, 'ScatterElements', [
    op(g, 'Reshape', [base, int64s(g, [-1])], `${hint}:base1`), flatIdx, op(g, 'Reshape', [updates, int64s(g, [-1])], `${hint}:dyk1`),
  ], `${hint}:dx1`, { axis: 0, reduction: 'add' });
  return { dx: op(g, 'Reshape', [scattered, int64s(g, [...xShape])], `${hint}:dx`), dgamma, dbeta };
}

// ------------------------------------------------------------------ loss

export interface CrossEntropyOut {
  /** Σ over images of the mean loss over the image's valid pixels (scalar float32). */
  loss: string;
  /** dL/dlogits. */
  dlogits: string;
  /** Valid pixels whose argmax equals the label (scalar int64), when asked for. */
  correct?: string;
  /** Pixels whose label is not `ignore` (scalar int64), when asked for. */
  valid?: string;
}

/**
 * Logits in a block-form transposed conv's layout [N, rows, cols, C, size, size] (rows·size x
 * cols·size pixels), or with `classLast` [N, rows, cols, size, size, C].
 */
export interface BlockLayout {
  rows: number;
  cols: number;
  size: number;
  classLast?: boolean;
}

/** How the per-pixel losses are reduced (the defaults are the book's loss). */
export interface CrossEntropyReduction {
  /** The mean over the batch's valid pixels (torchvision's F.cross_entropy, ignore_index) instead of per image, summed. */
  perBatch?: boolean;
  /** A factor on the loss and its gradient (torchvision's 0.5 for the auxiliary output). */
  weight?: number;
  /** Prefix of intermediate names (a second loss in the same graph needs another). */
  hint?: string;
  /**
   * Receives the nodes writing the scalar outputs (loss, counts) instead of emitting them here, for the
   * caller to emit after everything else. ONNX Runtime orders nodes by a depth-first walk back from the
   * graph's last leaf node: with these leaves last, the loss and the counts are computed first, so the
   * logit-sized values only they read (the shifted logits for ArgMax and the target's logit) are freed
   * before the backward starts, not held through it.
   */
  defer?: (emit: () => void) => void;
}

/**
 * Per-pixel softmax cross-entropy with an ignore label; per image the mean over its valid pixels
 * (an image with none contributes 0), summed over the batch; or with `reduction.perBatch` the mean
 * over all valid pixels of the batch (0 when there are none, where PyTorch gives NaN). `labels` is uint8 [N, H, W]; with
 * `labelPad` > 0 the logits are that much larger on every side and the border is ignored. With
 * `blocks` the logits are in block layout (see BlockLayout) and so is dlogits.
 */
export function softmaxCrossEntropy(g: GraphBuilder, logits: string, labels: string, ignore: number,
  outputs: { loss: string; correct?: string; valid?: string }, labelPad = 0, blocks?: BlockLayout, reduction: CrossEntropyReduction = {}): CrossEntropyOut {
  const { perBatch = false, weight = 1 } = reduction;
  const hint = reduction.hint ?? 'ce';
  // the class axis, and the axes of one image's pixels
  const classLast = blocks?.classLast === true;
  const axis = blocks ? (classLast ? 5 : 3) : 1;
  // (per-pixel values: [N, 1, H, W], [N, Hf, Wf, 1, s, s], or [N, Hf, Wf, s, s] with classes last)
  const rank = blocks ? (classLast ? 5 : 6) : 4;
  const pixelAxes = Array.from({ length: rank }, (_, i) => i).slice(perBatch ? 0 : 1);
  let lab = op(g, 'Cast', [labels], `${hint}:lab64`, { to: 7 /* INT64 */ });
  const q = labelPad;
  if (blocks) {
    // [N, H, W] -> padded [N, Hf·s, Wf·s] -> [N, Hf, s, Wf, s] -> [N, Hf, Wf, s, s] (+ the class axis at 3 unless classes are last)
    const { rows: Hf, cols: Wf, size: s } = blocks;
    if (q > 0) lab = op(g, 'Pad', [lab, int64s(g, [0, q, q, 0, q, q]), g.constant(ignore, 'int64')], `${hint}:labpad`);
    lab = op(g, 'Reshape', [lab, int64s(g, [0, Hf, s, Wf, s])], `${hint}:lab5`);
    lab = op(g, 'Transpose', [lab], `${hint}:labblocks`, { perm: [0, 1, 3, 2, 4] });
    if (!classLast) lab = op(g, 'Unsqueeze', [lab, int64s(g, [3])], `${hint}:lab`);
  } else {
    lab = op(g, 'Unsqueeze', [lab, int64s(g, [1])], `${hint}:lab`);
    if (q > 0) lab = op(g, 'Pad', [lab, int64s(g, [0, 0, q, q, 0, 0, q, q]), g.constant(ignore, 'int64')], `${hint}:labpad`);
  }
  // With classes last the per-pixel values stay [N, Hf, Wf, s, s] (no trailing 1: ORT's element-wise
  // kernels would then run one element at a time) and get the class axis only where an op needs it.
  const valid = op(g, 'Not', [op(g, 'Equal', [lab, g.constant(ignore, 'int64')], `${hint}:ign`)], `${hint}:valid`);
  const target = op(g, 'Where', [valid, lab, g.constant(0, 'int64')], `${hint}:target`);
  const vf = op(g, 'Cast', [valid], `${hint}:vf`, { to: 1 /* FLOAT */ });
  const withClassAxis = (v: string, h: string): string => (classLast ? op(g, 'Unsqueeze', [v, int64s(g, [axis])], h) : v);
  const late = reduction.defer ?? ((emit: () => void) => emit());
  // pixel accuracy counts: a hit is a valid pixel whose target's score is the largest, from the argmax
  // of `scores` (any per-pixel increasing map of the logits), or with `targetMax` from a bool per pixel
  // saying the target's score equals the maximum (an exact tie then counts as a hit, where ArgMax
  // would pick the first class)
  const counts = (scores: string, targetMax?: string): void => {
    if (outputs.correct) {
      const correct = outputs.correct;
      const hit0 = targetMax ?? op(g, 'Equal', [op(g, 'ArgMax', [scores], `${hint}:argmax`, { axis, keepdims: classLast ? 0 : 1 }), target], `${hint}:hit0`);
      const hit = op(g, 'And', [hit0, valid], `${hint}:hit`);
      const hit64 = op(g, 'Cast', [hit], `${hint}:hit64`, { to: 7 });
      late(() => g.node('ReduceSum', [hit64], { keepdims: 0 }, correct));
    }
    if (outputs.valid) {
      const validOut = outputs.valid;
      const valid64 = op(g, 'Cast', [valid], `${hint}:valid64`, { to: 7 });
      late(() => g.node('ReduceSum', [valid64], { keepdims: 0 }, validOut));
    }
  };
  // per pixel: nll = log Σ exp(z) − z_target with z = logits − max (stable); p = softmax. dlogits =
  // (p − onehot)·scale with scale = weight·valid/count: p·scale, then −scale added at each pixel's
  // target class (a scatter of N·H·W values instead of building a one-hot tensor of the logits' size).
  let nll: string;
  let pScale: (scale: string) => string;
  if (classLast) {
    // classes innermost: ORT's fused LogSoftmax over contiguous rows; argmax of log p = argmax of the
    // logits. log p at the target by a flat Gather at row·C + target (GatherElements with a trailing
    // axis of 1 goes one element at a time).
    const logp = op(g, 'LogSoftmax', [logits], `${hint}:logp`, { axis });
    counts(logp);
    const C = op(g, 'Gather', [op(g, 'Shape', [logits], `${hint}:lshape`), g.constant(axis, 'int64')], `${hint}:C`, { axis: 0 });
    const flatTarget = op(g, 'Reshape', [target, int64s(g, [-1])], `${hint}:tflat`);
    const rows = op(g, 'Range', [g.constant(0, 'int64'), op(g, 'Size', [logits], `${hint}:size`), C], `${hint}:rowstart`);
    const flatIdx = op(g, 'Add', [rows, flatTarget], `${hint}:flatidx`);
    const lpt = op(g, 'Reshape', [op(g, 'Gather', [op(g, 'Reshape', [logp, int64s(g, [-1])], `${hint}:logpflat`), flatIdx], `${hint}:lptflat`, { axis: 0 }),
      op(g, 'Shape', [target], `${hint}:tshape`)], `${hint}:lpt`);
    nll = op(g, 'Neg', [lpt], `${hint}:nll`);
    const p = op(g, 'Exp', [logp], `${hint}:p`);
    pScale = (scale) => op(g, 'Mul', [p, withClassAxis(scale, `${hint}:scale1`)], `${hint}:q`);
  } else {
    // Few logit-sized tensors alive at once: logits are dead after z, z after Exp, which can then
    // write over it (ORT runs element-wise ops in place on an input read by nothing later). ORT's
    // depth-first order takes a node's later-emitted input first, so zt, emitted after log s, is
    // computed before Exp reads z.
    const mx = op(g, 'ReduceMax', [logits], `${hint}:max`, { axes: [axis], keepdims: 1 });
    const z = op(g, 'Sub', [logits, mx], `${hint}:z`);
    const zt = op(g, 'GatherElements', [z, target], `${hint}:zt`, { axis });
    // z = 0 exactly where the logit is the maximum (x − y = 0 ⟺ x = y): no ArgMax over the strided class axis
    counts(z, op(g, 'Equal', [zt, g.constant(0)], `${hint}:hit0`));
    const e = op(g, 'Exp', [z], `${hint}:e`);
    const s = op(g, 'ReduceSum', [e, int64s(g, [axis])], `${hint}:s`, { keepdims: 1 });
    const logs = op(g, 'Log', [s], `${hint}:logs`);
    nll = op(g, 'Sub', [logs, zt], `${hint}:nll`);
    pScale = (scale) => op(g, 'Mul', [e, op(g, 'Div', [scale, s], `${hint}:scale_s`)], `${hint}:q`);
  }
  const count = op(g, 'Max', [op(g, 'ReduceSum', [vf, int64s(g, pixelAxes)], `${hint}:cnt`, { keepdims: 1 }), g.constant(1)], `${hint}:cnt1`);
  const perImage = op(g, 'Div', [op(g, 'ReduceSum', [op(g, 'Mul', [nll, vf], `${hint}:nllv`), int64s(g, pixelAxes)], `${hint}:sum`, { keepdims: 1 }), count], `${hint}:mean`);
  if (weight === 1) late(() => g.node('ReduceSum', [perImage], { keepdims: 0 }, outputs.loss));
  else {
    const loss1 = op(g, 'ReduceSum', [perImage], `${hint}:loss1`, { keepdims: 0 });
    late(() => g.node('Mul', [loss1, g.constant(weight)], {}, outputs.loss));
  }
  const scale = op(g, 'Div', [weight === 1 ? vf : op(g, 'Mul', [vf, g.constant(weight)], `${hint}:vfw`), count], `${hint}:scale`);
  const dl = op(g, 'ScatterElements', [pScale(scale), withClassAxis(target, `${hint}:target1`), withClassAxis(op(g, 'Neg', [scale], `${hint}:negscale`), `${hint}:negscale1`)],
    `${hint}:dlogits`, { axis, reduction: 'add' });
  return { loss: outputs.loss, dlogits: dl, correct: outputs.correct, valid: outputs.valid };
}
