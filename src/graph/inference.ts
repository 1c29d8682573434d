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
  for (const layer of arch.layers) emitEvalLayer(g, layer, (name) => name);
  g.output(arch.output, 'float32', [batch, arch.numClasses, 'H', 'W']);
  if (opts.argmax ?? true) {
    g.node('ArgMax', [arch.output], { axis: 1, keepdims: 0 }, 'mask');
    g.output('mask', 'int64', [batch, 'H', 'W']);
  }
  return g.encode(`${arch.name}, ${arch.numClasses} classes, eval mode`, opts.metadata);
}
