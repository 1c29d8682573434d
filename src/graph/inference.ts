// The inference graph: the declaration compiled to ONNX with batch-norm in eval mode (running
// statistics), weights as initializers (so ORT folds Conv+BN and picks its fast NCHWc kernels),
// and symbolic batch, height and width. Outputs the logits and, optionally, their per-pixel argmax.
import type { FcnArchitecture } from '../model/fcn.js';
import type { Layer } from '../model/layers.js';
import { fcnParameters, numel, type TensorMap } from '../model/params.js';
import { GraphBuilder, f } from './onnx.js';

export interface InferenceGraphOptions {
  /** Also output `mask` = argmax over classes (int64, N x H x W). Default true. */
  argmax?: boolean;
  /** Fixed batch size instead of a symbolic 'N'. */
  batch?: number;
  /** Strings stored in the model's metadata_props (classes, colours, normalisation for other runtimes). */
  metadata?: Record<string, string>;
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

/** Compiles the network for inference with `weights` baked in. */
export function compileInference(arch: FcnArchitecture, weights: TensorMap, opts: InferenceGraphOptions = {}): Uint8Array {
  const g = new GraphBuilder(arch.name);
  const batch = opts.batch ?? 'N';
  g.input(arch.input, 'float32', [batch, 3, 'H', 'W']);
  for (const spec of fcnParameters(arch)) {
    const data = weights.get(spec.name);
    if (!data) throw new Error(`compileInference: no weights for '${spec.name}'`);
    if (data.length !== numel(spec.shape)) throw new Error(`compileInference: '${spec.name}' has ${data.length} values, expected [${spec.shape.join(', ')}]`);
    g.initializer(spec.name, 'float32', spec.shape, data);
  }
  const pad = opts.padToStride ?? false;
  // with padToStride the declaration's input and output become inner values between Pad and Slice
  const inner = (name: string) => (pad && name === arch.input ? `${name}_padded` : pad && name === arch.output ? `${name}_padded` : name);
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
    emitEvalLayer(g, l, (name) => name);
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
