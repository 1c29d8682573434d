// The inference graph: the declaration compiled to ONNX with batch-norm in eval mode (running
// statistics), weights as initializers (so ORT folds Conv+BN and picks its fast NCHWc kernels),
// and symbolic batch, height and width. Outputs the logits and, optionally, their per-pixel argmax.
import type { FcnArchitecture } from '../model/fcn.js';
import type { ConvTransposeLayer, Layer } from '../model/layers.js';
import { fcnParameters, numel, type TensorMap } from '../model/params.js';
import { GraphBuilder, f } from './onnx.js';
import { blockFormApplies } from './backward.js';

export interface InferenceGraphOptions {
  /** Also output `mask` = argmax over classes (int64, N x H x W). Default true. */
  argmax?: boolean;
  /** Fixed batch size instead of a symbolic 'N'. */
  batch?: number;
  /** Strings stored in the model's metadata_props (classes, colours, normalisation for other runtimes). */
  metadata?: Record<string, string>;
  /**
   * Transposed convolutions whose kernel is a multiple of the stride (the book's 64/32 upsampler, the
   * FCN-16s/8s x2 ones): ORT's ConvTranspose, or 'blocks' (the default): one GEMM over s x s output
   * blocks, as the training step does (about twice as fast on 2 cores; see the README).
   */
  upsample?: 'convtranspose' | 'blocks';
  /**
   * Accept any height and width: pad the input with zeros (the mean colour, once normalised) at the
   * bottom and right to a multiple of the network's stride inside the graph, and crop the logits back,
   * as `fcn predict` does. Off for our own sessions (they pad in JavaScript, and tile); on for export.
   */
  padToStride?: boolean;
}

/** Emits one layer in eval mode; `param(name)` gives the value holding a parameter. */
export function emitEvalLayer(g: GraphBuilder, layer: Layer, param: (name: string) => string): void {
  switch (layer.op) {
    case 'conv':
    case 'convtranspose': {
      // the same attributes for both; ConvTranspose's weight is [in, out, k, k] as PyTorch stores it
      const inputs = [layer.input, param(`${layer.name}.weight`)];
      if (layer.bias) inputs.push(param(`${layer.name}.bias`));
      g.node(layer.op === 'conv' ? 'Conv' : 'ConvTranspose', inputs, {
        kernel_shape: [layer.kernel, layer.kernel], strides: [layer.stride, layer.stride],
        pads: [layer.pad, layer.pad, layer.pad, layer.pad],
      }, layer.output);
      return;
    }
    case 'batchnorm':
      g.node('BatchNormalization', [layer.input, param(`${layer.name}.weight`), param(`${layer.name}.bias`),
        param(`${layer.name}.running_mean`), param(`${layer.name}.running_var`)], { epsilon: f(layer.eps) }, layer.output);
      return;
    case 'relu':
      g.node('Relu', [layer.input], {}, layer.output);
      return;
    case 'maxpool':
      g.node('MaxPool', [layer.input], {
        kernel_shape: [layer.kernel, layer.kernel], strides: [layer.stride, layer.stride],
        pads: [layer.pad, layer.pad, layer.pad, layer.pad],
      }, layer.output);
      return;
    case 'add':
      g.node('Add', [...layer.inputs], {}, layer.output);
      return;
  }
}

/**
 * y = ConvTranspose(x, W, b) with k = m·s as one MatMul over output blocks, for any N, H, W (shapes
 * computed in the graph). Output block (A, B) of s x s pixels of the uncropped output is fed by the
 * input pixels (A − di, B − dj), di, dj < m: with X4 = the m² shifted copies of x on the channel axis
 * and Wb = W rearranged to [(di, dj, ci), (co, u, v)] (plus the bias as a row for a column of ones),
 * the blocks are X4ᵀ·Wb, moved into place by one Transpose and cropped by the padding.
 */
function emitConvTransposeBlocks(g: GraphBuilder, layer: ConvTransposeLayer, weights: TensorMap): void {
  const { kernel: k, stride: s, pad: p, inChannels: Cin, outChannels: Cout } = layer;
  const m = k / s;
  const W = weights.get(`${layer.name}.weight`)!;
  const bias = layer.bias ? weights.get(`${layer.name}.bias`) : undefined;
  const rows = m * m * Cin + (bias ? 1 : 0);
  const cols = Cout * s * s;
  const wb = new Float32Array(rows * cols);
  for (let di = 0; di < m; di++) {
    for (let dj = 0; dj < m; dj++) {
      for (let ci = 0; ci < Cin; ci++) {
        const row = ((di * m + dj) * Cin + ci) * cols;
        for (let co = 0; co < Cout; co++) {
          for (let u = 0; u < s; u++) {
            const src = ((ci * Cout + co) * k + di * s + u) * k + dj * s;
            wb.set(W.subarray(src, src + s), row + (co * s + u) * s);
          }
        }
      }
    }
  }
  if (bias) for (let co = 0; co < Cout; co++) wb.fill(bias[co]!, (rows - 1) * cols + co * s * s, (rows - 1) * cols + (co + 1) * s * s);
  const wbName = g.initializer(`${layer.name}.blocks`, 'float32', [rows, cols], wb);
  const i64 = (values: number[]) => g.constant(values, 'int64');
  const x = layer.input;
  const xp = m > 1 ? g.node('Pad', [x, i64([0, 0, m - 1, m - 1, 0, 0, m - 1, m - 1])]) : x;
  const taps: string[] = [];
  for (let di = 0; di < m; di++) {
    for (let dj = 0; dj < m; dj++) {
      // rows m−1−di .. len−di of the padded input: x shifted down by di (and right by dj)
      taps.push(m > 1 ? g.node('Slice', [xp, i64([m - 1 - di, m - 1 - dj]), i64([di > 0 ? -di : 2 ** 30, dj > 0 ? -dj : 2 ** 30]), i64([2, 3])]) : xp);
    }
  }
  const x4 = g.node('Reshape', [taps.length > 1 ? g.node('Concat', taps, { axis: 1 }) : taps[0]!, i64([0, m * m * Cin, -1])]);
  let lhs = g.node('Transpose', [x4], { perm: [0, 2, 1] }); // [N, P, m²·Cin]
  if (bias) {
    const ones = g.node('Expand', [g.constant([1], 'float32', [1, 1, 1]), g.node('Concat', [g.node('Slice', [g.node('Shape', [lhs]), i64([0]), i64([2])]), i64([1])], { axis: 0 })]);
    lhs = g.node('Concat', [lhs, ones], { axis: 2 });
  }
  const d = g.node('MatMul', [lhs, wbName]); // [N, P, Cout·s²]
  const shape = g.node('Shape', [x]);
  const n = g.node('Slice', [shape, i64([0]), i64([1])]);
  const hwf = g.node('Add', [g.node('Slice', [shape, i64([2]), i64([4])]), i64([m - 1])]);
  const d6 = g.node('Reshape', [d, g.node('Concat', [n, hwf, i64([Cout, s, s])], { axis: 0 })]);
  const y6 = g.node('Transpose', [d6], { perm: [0, 3, 1, 4, 2, 5] }); // [N, Cout, Hf, s, Wf, s]
  const full = g.node('Reshape', [y6, g.node('Concat', [n, i64([Cout]), g.node('Mul', [hwf, i64([s])])], { axis: 0 })]);
  if (p > 0) g.node('Slice', [full, i64([p, p]), i64([-p, -p]), i64([2, 3])], {}, layer.output);
  else g.node('Identity', [full], {}, layer.output);
}

/** Compiles the network for inference with `weights` baked in. */
export function compileInference(arch: FcnArchitecture, weights: TensorMap, opts: InferenceGraphOptions = {}): Uint8Array {
  const g = new GraphBuilder(arch.name);
  const batch = opts.batch ?? 'N';
  g.input(arch.input, 'float32', [batch, 3, 'H', 'W']);
  const blocks = (opts.upsample ?? 'blocks') === 'blocks';
  const asBlocks = (l: Layer): l is ConvTransposeLayer => l.op === 'convtranspose' && blocks && blockFormApplies(l);
  // the block form carries its own rearranged copy of these
  const rearranged = new Set(arch.layers.filter(asBlocks).flatMap((l) => [`${l.name}.weight`, `${l.name}.bias`]));
  for (const spec of fcnParameters(arch)) {
    const data = weights.get(spec.name);
    if (!data) throw new Error(`compileInference: no weights for '${spec.name}'`);
    if (data.length !== numel(spec.shape)) throw new Error(`compileInference: '${spec.name}' has ${data.length} values, expected [${spec.shape.join(', ')}]`);
    if (!rearranged.has(spec.name)) g.initializer(spec.name, 'float32', spec.shape, data);
  }
  const pad = opts.padToStride ?? false;
  // with padToStride the declaration's input and output become inner values between Pad and Slice
  const inner = (name: string) => (pad && (name === arch.input || name === arch.output) ? `${name}_padded` : name);
  let hw = '';
  if (pad) {
    const shape = g.node('Shape', [arch.input]);
    hw = g.node('Slice', [shape, g.constant([2], 'int64'), g.constant([4], 'int64')]);
    const stride = g.constant([arch.stride, arch.stride], 'int64');
    const amount = g.node('Mod', [g.node('Sub', [stride, g.node('Mod', [hw, stride])]), stride]);
    const pads = g.node('Concat', [g.constant([0, 0, 0, 0, 0, 0], 'int64'), amount], { axis: 0 });
    g.node('Pad', [arch.input, pads, g.constant(0)], { mode: 'constant' }, inner(arch.input));
  }
  for (const layer of arch.layers) {
    const l = { ...layer } as Layer;
    if ('input' in l) l.input = inner(l.input);
    if ('inputs' in l) l.inputs = [inner(l.inputs[0]), inner(l.inputs[1])];
    l.output = inner(l.output);
    if (asBlocks(l)) emitConvTransposeBlocks(g, l, weights);
    else emitEvalLayer(g, l, (name) => name);
  }
  if (pad) g.node('Slice', [inner(arch.output), g.constant([0, 0], 'int64'), hw, g.constant([2, 3], 'int64')], {}, arch.output);
  g.output(arch.output, 'float32', [batch, arch.numClasses, 'H', 'W']);
  if (opts.argmax ?? true) {
    g.node('ArgMax', [arch.output], { axis: 1, keepdims: 0 }, 'mask');
    g.output('mask', 'int64', [batch, 'H', 'W']);
  }
  return g.encode(`${arch.name}, ${arch.numClasses} classes, eval mode`, opts.metadata);
}

/** What other runtimes need to use an exported graph, stored in its metadata_props as JSON strings. */
export interface ExportMeta {
  classes: string[];
  colors: readonly (readonly number[])[];
  normalization: unknown;
}

/**
 * The graph `fcn export` writes and the web page runs: any height and width (padded inside to the
 * stride, logits cropped back), logits and mask outputs, classes/colours/normalisation as metadata.
 */
export function compileExport(arch: FcnArchitecture, weights: TensorMap, meta: ExportMeta): Uint8Array {
  return compileInference(arch, weights, {
    padToStride: true,
    metadata: {
      architecture: arch.name,
      classes: JSON.stringify(meta.classes),
      colors: JSON.stringify(meta.colors),
      normalization: JSON.stringify(meta.normalization),
      stride: String(arch.stride),
    },
  });
}
