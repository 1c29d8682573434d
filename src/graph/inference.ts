// The inference graph: the declaration compiled to ONNX with batch-norm in eval mode (running
// statistics), weights as initializers (so ORT folds Conv+BN and picks its fast NCHWc kernels),
// and symbolic batch, height and width. Outputs the logits and, optionally, their per-pixel argmax.
import { inferenceLayers, type FcnArchitecture } from '../model/fcn.js';
import { layerInputs, type Layer } from '../model/layers.js';
import { fcnParameters, numel, type TensorMap } from '../model/params.js';
import { GraphBuilder } from './onnx.js';
import { kindOf, type EvalContext } from './ops/index.js';
import type { BlockValue } from './ops/kind.js';
import { argmaxBlocks, placeBlocks } from './ops/convtranspose.js';
import { symbolicSizes } from './sizes.js';
import { foldBatchNorms, type FoldedTensor } from './fold.js';
import { defaultPointwiseForm, pointwiseApplies } from './pointwise.js';
import { winogradApplies, WINOGRAD_MIN_IN_CHANNELS } from './winograd.js';
import type { ConvLayer } from '../model/layers.js';

export interface InferenceGraphOptions {
  /** Also output `mask` = argmax over classes (int64, N x H x W). Default true. */
  argmax?: boolean;
  /**
   * Output the logits (default true). Without them (argmax only) a block-form upsampler's logits are
   * never moved out of the GEMM's layout: the argmax is taken there and only the indices are moved.
   */
  logits?: boolean;
  /** Fixed batch size instead of a symbolic 'N'. */
  batch?: number;
  /** Fixed height and width instead of symbolic 'H', 'W'. */
  height?: number;
  width?: number;
  /** Strings stored in the model's metadata_props (classes, colours, normalisation for other runtimes). */
  metadata?: Record<string, string>;
  /**
   * Transposed convolutions whose kernel is a multiple of the stride (the book's 64/32 upsampler, the
   * FCN-16s/8s x2 ones): ORT's ConvTranspose, or 'blocks' (the default): one GEMM over s x s output
   * blocks, as the training step does (about twice as fast on 2 cores; see the README), or 'phases':
   * a batched GEMM over blocks aligned to the cropped output where the output is exactly s times the
   * input (phaseupsample.ts: no crop, no border blocks; block GEMMs elsewhere); 'phaserows': the same
   * with the columns kept whole (zero weights, longer runs for the placing Transpose). Both measured
   * no faster than 'blocks' for the book's FCN (README).
   */
  upsample?: 'convtranspose' | 'blocks' | 'phases' | 'phaserows';
  /**
   * Bilinear resizes as ONNX's Resize, or 'separable' (the default): a MatMul and a one-axis Resize,
   * faster on ORT's CPU kernels (ops/resize.ts). Graphs for other runtimes take 'onnx'.
   */
  resize?: 'onnx' | 'separable';
  /**
   * Accept any height and width: pad the input with zeros (the mean colour, once normalised) at the
   * bottom and right to a multiple of the network's stride inside the graph, and crop the logits back,
   * as `fcn predict` does. Off for our own sessions (they pad in JavaScript, and tile); on for export.
   * Nothing to do for networks of stride 1 (torchvision's run at the image's own size).
   */
  padToStride?: boolean;
  /**
   * Declare the inner values' symbolic shapes (default true; see sizes.ts): lets ONNX Runtime fuse the
   * residual sums of dilated stages into their convolutions. Off only to measure what it buys.
   */
  sizeHints?: boolean;
  /**
   * 1x1 stride-1 convolutions as ORT's Conv or as MatMuls (pointwise.ts; batch-norm folded into them
   * first). Default: the form measured faster for the network (defaultPointwiseForm).
   */
  pointwise?: 'conv' | 'matmul';
  /**
   * The stride-1 3x3 convolutions winogradApplies() picks (undilated, ≥ WINOGRAD_MIN_IN_CHANNELS
   * input channels: where the gain was measured to pay for its memory; a number sets that threshold)
   * as Winograd F(4x4,3x3) in ONNX ops (graph/winograd.ts), batch norm folded in: for our own CPU
   * sessions. Off by default and never for export: other runtimes (the browser, GPUs) run a plain
   * Conv better, and int8 graphs quantise plain Convs.
   */
  winograd?: boolean | number;
}

/** Compiles the network for inference with `weights` baked in; only the layers the main output needs (no auxiliary head). */
export function compileInference(arch: FcnArchitecture, weights: TensorMap, opts: InferenceGraphOptions = {}): Uint8Array {
  const g = new GraphBuilder(arch.name);
  const batch = opts.batch ?? 'N';
  g.input(arch.input, 'float32', [batch, 3, opts.height ?? 'H', opts.width ?? 'W']);
  const specs = new Map(fcnParameters(arch).map((s) => [s.name, s]));
  let folded = new Map<string, FoldedTensor>();
  const weight = (name: string): Float32Array => {
    const f = folded.get(name);
    if (f) return f.data;
    const data = weights.get(name);
    const spec = specs.get(name);
    if (!spec) throw new Error(`compileInference: no parameter '${name}'`);
    if (!data) throw new Error(`compileInference: no weights for '${name}'`);
    if (data.length !== numel(spec.shape)) throw new Error(`compileInference: '${name}' has ${data.length} values, expected [${spec.shape.join(', ')}]`);
    return data;
  };
  // initializers are added as the layers ask for them (a kind may bake in its own rearranged copy instead)
  const added = new Set<string>();
  const ctx: EvalContext = {
    g,
    param(name) {
      const data = weight(name);
      if (!added.has(name)) g.initializer(name, 'float32', folded.get(name)?.shape ?? specs.get(name)!.shape, data);
      added.add(name);
      return name;
    },
    weight,
    shape: () => undefined,
    upsample: opts.upsample ?? 'blocks',
    resize: opts.resize ?? 'separable',
    blockOutputs: new Map<string, BlockValue>(),
  };
  // values left in a block layout are placed in NCHW on first read (ORT runs every node, read or not)
  const place = (name: string): void => {
    const v = ctx.blockOutputs!.get(name);
    if (!v) return;
    placeBlocks(g, v, name);
    ctx.blockOutputs!.delete(name);
  };
  for (const name of specs.keys()) weight(name); // every tensor is checked, used or not
  const pad = (opts.padToStride ?? false) && arch.stride > 1;
  // with padToStride the declaration's input and output become inner values between Pad and Slice
  const inner = (name: string) => (pad && (name === arch.input || name === arch.output) ? `${name}_padded` : name);
  const hw = pad ? emitPadToStride(g, arch.input, arch.stride, inner(arch.input)) : '';
  let layers = inferenceLayers(arch).map((layer) => {
    const l = { ...layer } as Layer;
    if ('input' in l) l.input = inner(l.input);
    if ('like' in l) l.like = inner(l.like);
    if ('inputs' in l) l.inputs = l.inputs.map(inner) as typeof l.inputs;
    l.output = inner(l.output);
    return l;
  });
  const matmul = (opts.pointwise ?? defaultPointwiseForm(arch)) === 'matmul';
  const wino = opts.winograd === true ? WINOGRAD_MIN_IN_CHANNELS : opts.winograd === false ? undefined : opts.winograd;
  // both forms end in ops ORT cannot fuse a following batch norm into: it is folded in here
  if (matmul || wino !== undefined) {
    const which = (l: ConvLayer) => (matmul && pointwiseApplies(l)) || (wino !== undefined && winogradApplies(l, wino));
    ({ layers, tensors: folded } = foldBatchNorms(layers, weight, which, new Set([inner(arch.output)])));
    if (matmul) ctx.pointwise = pointwiseApplies;
    ctx.winograd = wino;
  }
  for (const l of layers) {
    for (const v of layerInputs(l)) place(v);
    kindOf(l).emitEval(ctx, l);
  }
  if (opts.sizeHints ?? true) declareSizes(g, layers, inner(arch.input), batch, pad ? ['H_padded', 'W_padded'] : [opts.height ?? 'H', opts.width ?? 'W'],
    new Set([...ctx.blockOutputs!.keys(), arch.output, inner(arch.output)]));
  const wantLogits = opts.logits ?? true;
  const wantMask = opts.argmax ?? true;
  if (!wantLogits && !wantMask) throw new Error('compileInference: neither logits nor mask asked for');
  const blocks = ctx.blockOutputs!.get(inner(arch.output));
  if (wantLogits || (wantMask && !blocks)) {
    place(inner(arch.output));
    if (pad) emitCropBack(g, inner(arch.output), hw, arch.output);
  }
  if (wantLogits) g.output(arch.output, 'float32', [batch, arch.numClasses, opts.height ?? 'H', opts.width ?? 'W']);
  if (wantMask) {
    if (blocks) {
      const mask = pad ? 'mask_padded' : 'mask';
      argmaxBlocks(g, blocks, mask);
      if (pad) g.node('Slice', [mask, g.constant([0, 0], 'int64'), hw, g.constant([1, 2], 'int64')], {}, 'mask');
    } else {
      g.node('ArgMax', [arch.output], { axis: 1, keepdims: 0 }, 'mask');
    }
    g.output('mask', 'int64', [batch, opts.height ?? 'H', opts.width ?? 'W']);
  }
  return g.encode(`${arch.name}, ${arch.numClasses} classes, eval mode`, opts.metadata);
}

/**
 * Declares the shape of every layer output whose spatial size is known symbolically (sizes.ts: so
 * ORT's NCHWc pass can fuse the residual sums of dilated stages), except `skip` (graph outputs,
 * values left in a block layout). Channels come from the kinds' shape rules at a probe size.
 */
function declareSizes(g: GraphBuilder, layers: Layer[], input: string, batch: number | string, hw: [number | string, number | string], skip: Set<string>): void {
  const sizes = symbolicSizes(layers, input, hw[0], hw[1]);
  const probe = new Map<string, number[]>([[input, [1, 3, 256, 256]]]);
  for (const l of layers) {
    let shape: number[] | undefined;
    try {
      const ins = layerInputs(l).map((v) => probe.get(v));
      if (ins.every((s) => s)) shape = kindOf(l).outputShape(l, ins as [number, number, number, number][]);
    } catch {
      shape = undefined; // a network the probe size does not fit: no channel count, no declaration
    }
    if (shape) probe.set(l.output, shape);
    const size = sizes.get(l.output);
    if (shape && size && !skip.has(l.output)) g.valueInfo(l.output, 'float32', [batch, shape[1]!, size[0], size[1]]);
  }
}

/**
 * Pads `input` with zeros at the bottom and right to a multiple of `stride` into `output`; returns the
 * value holding the input's [H, W] (for emitCropBack).
 */
export function emitPadToStride(g: GraphBuilder, input: string, stride: number, output: string): string {
  const shape = g.node('Shape', [input]);
  const hw = g.node('Slice', [shape, g.constant([2], 'int64'), g.constant([4], 'int64')]);
  const s = g.constant([stride, stride], 'int64');
  const amount = g.node('Mod', [g.node('Sub', [s, g.node('Mod', [hw, s])]), s]);
  const pads = g.node('Concat', [g.constant([0, 0, 0, 0, 0, 0], 'int64'), amount], { axis: 0 });
  g.node('Pad', [input, pads, g.constant(0)], { mode: 'constant' }, output);
  return hw;
}

/** Crops NCHW `input` back to the [H, W] held by `hw` (emitPadToStride's result) into `output`. */
export function emitCropBack(g: GraphBuilder, input: string, hw: string, output: string): void {
  g.node('Slice', [input, g.constant([0, 0], 'int64'), hw, g.constant([2, 3], 'int64')], {}, output);
}

/** What other runtimes need to use an exported graph, stored in its metadata_props as JSON strings. */
export interface ExportMeta {
  classes: string[];
  colors: readonly (readonly number[])[];
  normalization: unknown;
}

/**
 * The graph `fcn export` writes and the web page runs: any height and width (padded inside to the
 * stride, logits cropped back), logits and mask outputs, classes/colours/normalisation as metadata;
 * bilinear resizes as the plain ONNX Resize and 1x1 convolutions as Conv, which every runtime
 * (onnxruntime-web on WebGPU too) reads alike (the MatMul form is measured for ORT's CPU kernels only).
 */
export function compileExport(arch: FcnArchitecture, weights: TensorMap, meta: ExportMeta): Uint8Array {
  return compileInference(arch, weights, { padToStride: true, resize: 'onnx', pointwise: 'conv', metadata: exportMetadata(arch, meta) });
}

/**
 * The metadata_props of an exported graph (float32 or int8): the architecture's name and, for
 * torchvision's networks, the options its declaration was built with (widths), so a reader can rebuild
 * the declaration; classes, colours and normalisation as JSON; the stride the graph pads to.
 */
export function exportMetadata(arch: FcnArchitecture, meta: ExportMeta): Record<string, string> {
  const options = (arch as { options?: unknown }).options;
  return {
    architecture: arch.name,
    ...(options !== undefined ? { architectureOptions: JSON.stringify(options) } : {}),
    classes: JSON.stringify(meta.classes),
    colors: JSON.stringify(meta.colors),
    normalization: JSON.stringify(meta.normalization),
    stride: String(arch.stride),
  };
}
