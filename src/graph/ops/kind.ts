// What a layer kind is to the compilers: one module per kind (this folder) owns its shape rule, its
// inference emission, its training forward (and what it saves) and its backward; its parameters and
// their initialisers are the declaration's side (model/params.ts, PARAMS). The compilers
// (../inference.ts, ../train.ts) only walk the declaration and ask the kind.
import type { ConvLayer, Layer } from '../../model/layers.js';
import type { TensorMap } from '../../model/params.js';
import type { GraphBuilder } from '../onnx.js';
import type { Shape4 } from '../backward.js';
import type { TrainGraphTuning } from '../tuning.js';

/** Emitting a layer in eval mode (the inference graph; frozen layers of a training step). */
export interface EvalContext {
  g: GraphBuilder;
  /** The value holding parameter `name` (an initializer or a graph input). */
  param(name: string): string;
  /** The parameter's values when they are baked in (inference), so a kind may rearrange them; undefined otherwise. */
  weight(name: string): Float32Array | undefined;
  /** Static shape of a value when the graph has static shapes (training), else undefined (symbolic N, H, W). */
  shape(value: string): Shape4 | undefined;
  /**
   * Transposed convolutions as block GEMMs (default), ORT's ConvTranspose, or (inference only) the
   * phase GEMM of ../phaseupsample.ts where it applies (block GEMMs elsewhere; 'phaserows': its
   * columns kept whole).
   */
  upsample: 'convtranspose' | 'blocks' | 'phases' | 'phaserows';
  /** Inference only: whether a convolution is emitted as a MatMul (pointwise.ts) instead of ORT's Conv. */
  pointwise?: (layer: ConvLayer) => boolean;
  /** Inference only: the 3x3 convolutions with at least this many input channels that winogradApplies() accepts run as Winograd F(4x4,3x3) (../winograd.ts); undefined: none. */
  winograd?: number;
  /**
   * Bilinear resizes at symbolic sizes: ONNX's Resize as it is (default; what every runtime reads
   * alike), or 'separable': a MatMul and a one-axis Resize that ORT's CPU kernels run faster (resize.ts).
   */
  resize?: 'onnx' | 'separable';
  /**
   * Inference only: a block-form upsampler may leave its output in the GEMM's block layout, recorded
   * here under the output's name; the compiler places it in NCHW only where something reads it
   * (placeBlocks), and takes the mask's argmax in the block layout (argmaxBlocks).
   */
  blockOutputs?: Map<string, BlockValue>;
}

/**
 * A value left in a block GEMM's layout [N, Hf, Wf, C, s, s] (uncropped by `pad` on each side), or with
 * `phased`, in the phase GEMM's [q, q, N, h, w, C, g, g] (../phaseupsample.ts; nothing to crop).
 */
export interface BlockValue {
  blocks: string;
  stride: number;
  pad: number;
  phased?: boolean;
}

/** The logits' layout handed to the loss by the layer that computes them (see convtranspose.ts). */
export interface LossForm {
  /** The logits are this much larger on every side; the loss ignores the border. */
  pad: number;
  /** ... and in block layout [N, rows, cols, C, size, size] ([N, rows, cols, size, size, C] with classLast). */
  blocks?: { rows: number; cols: number; size: number; classLast?: boolean };
}

/** Emitting a layer's training forward (static shapes). */
export interface TrainContext {
  g: GraphBuilder;
  shape(value: string): Shape4;
  param(name: string): string;
  /** Whether a gradient flows into `value` (it depends on a trained parameter). */
  needsGrad(value: string): boolean;
  /** Whether a trained convolution reads `value` (so it is alive for the backward anyway). */
  kept(value: string): boolean;
  tuning: Required<TrainGraphTuning>;
  /** ORT's NCHWc block size when convolutions may run on its NCHWc kernels (../nchwc.ts); undefined: never. */
  nchwcBlock?: number;
  /** The name under which an updated buffer (running statistics) is output. */
  updated(name: string): string;
  /** Declares a per-step graph input the step feeds (dropout's keep-mask); returns its name. */
  stepInput(input: StepInputDecl): string;
  /** Set for the layer computing the main output when its kind's lossForm() agreed. */
  lossForm?: LossForm;
}

/** A per-step input besides image, labels and learning rate. */
export interface StepInputDecl {
  name: string;
  dtype: 'bool';
  shape: number[];
  /** A Bernoulli keep-mask with probability 1 − p, drawn by the step from its seed. */
  keepMask: { p: number };
}

export interface BackwardContext extends TrainContext {
  /** Adds `grad` to the gradient of `value` (values read twice get the sum). */
  accumulate(value: string, grad: string): void;
  /** Records the gradient of parameter `name` (`${layer.name}.${suffix}`). */
  paramGrad(name: string, grad: string): void;
  /**
   * A float32 scalar 0 computed at run time: a tensor built from it is not constant-folded by ONNX
   * Runtime into an initializer that lives as long as the session (see maxPoolGrad).
   */
  runtimeZero?(): string;
}

export interface LayerKind<L extends Layer = Layer, S = unknown> {
  readonly op: L['op'];
  /** The output's shape from the inputs' (in layerInputs order); throws an Error saying what does not fit. */
  outputShape(layer: L, inputs: Shape4[]): Shape4;
  emitEval(ctx: EvalContext, layer: L): void;
  /** Train-mode forward; writes layer.output and returns what the backward needs. */
  forward(ctx: TrainContext, layer: L): S;
  /** Given dL/d(output), accumulates the inputs' gradients (where needed) and records the parameters'. */
  backward(ctx: BackwardContext, layer: L, saved: S, dy: string): void;
  /** For the layer computing the logits: a cheaper layout the loss can read them in, if any. */
  lossForm?(ctx: TrainContext, layer: L): LossForm | undefined;
}

export type { TensorMap };
