// Builds one layer's graphs through its kind module (src/graph/ops/): the training forward and
// backward with static shapes (everything differentiable is a graph input, dy the upstream
// gradient), and the inference emission with symbolic batch, height and width.
import { GraphBuilder } from '../../src/graph/onnx.js';
import { kindOf, type BackwardContext, type TrainContext } from '../../src/graph/ops/index.js';
import { DEFAULT_TUNING, type TrainGraphTuning } from '../../src/graph/tuning.js';
import { op, type Shape4 } from '../../src/graph/backward.js';
import { layerInputs, type Layer } from '../../src/model/layers.js';
import { layerParams } from '../../src/model/params.js';

export interface LayerGraphs {
  /** Names of the graph's inputs: the layer's inputs (values) and its parameters. */
  params: { name: string; shape: number[] }[];
  outShape: Shape4;
}

/** The layer's parameter names and shapes, and its output shape for the given input shapes. */
export function layerShapes(layer: Layer, inputShapes: Shape4[]): LayerGraphs {
  const kind = kindOf(layer);
  const params = layerParams(layer).map((p) => ({ name: `${(layer as { name: string }).name}.${p.suffix}`, shape: p.shape }));
  return { params, outShape: kind.outputShape(layer, inputShapes) };
}

/**
 * Emits the training forward and backward of `layer` into `g` (inputs already declared, `dy` too);
 * returns the output and the gradient of each input value and trained parameter by name.
 */
export function emitTrainLayer(g: GraphBuilder, layer: Layer, shapes: Map<string, Shape4>, tuning: TrainGraphTuning = {}): { y: string; grads: Record<string, string> } {
  const kind = kindOf(layer);
  shapes.set(layer.output, kind.outputShape(layer, layerInputs(layer).map((v) => shapes.get(v)!)));
  const grads: Record<string, string> = {};
  const ctx: TrainContext = {
    g,
    shape: (v) => shapes.get(v)!,
    param: (name) => name,
    needsGrad: () => true,
    kept: () => false,
    tuning: { ...DEFAULT_TUNING, ...tuning },
    updated: (name) => `${name}:new`,
    stepInput(decl) {
      g.input(decl.name, decl.dtype, decl.shape);
      return decl.name;
    },
  };
  const saved = kind.forward(ctx, layer);
  const back: BackwardContext = {
    ...ctx,
    accumulate(value, grad) {
      grads[value] = grads[value] ? op(g, 'Add', [grads[value]!, grad], `${value}:dsum`) : grad;
    },
    paramGrad(name, grad) {
      grads[name] = grad;
    },
  };
  kind.backward(back, layer, saved, 'dy');
  return { y: layer.output, grads };
}

/** The layer's inference graph: inputs with symbolic N, H, W (channels fixed), parameters as graph inputs. */
export function evalLayerGraph(layer: Layer, inputs: { name: string; channels: number }[], params: { name: string; shape: number[] }[]): Uint8Array {
  const g = new GraphBuilder('eval-layer');
  for (const v of inputs) g.input(v.name, 'float32', ['N', v.channels, `H_${v.name}`, `W_${v.name}`]);
  for (const p of params) g.input(p.name, 'float32', p.shape);
  kindOf(layer).emitEval({ g, param: (n) => n, weight: () => undefined, shape: () => undefined, upsample: 'blocks' }, layer);
  g.output(layer.output, 'float32', ['N', 'C', 'Ho', 'Wo']);
  return g.encode();
}
