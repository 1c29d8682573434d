// The training-step graph: one plain ONNX graph per (mode, batch, crop size) that takes the weights,
// optimizer state, a batch of images and labels and the learning rate, and returns the loss, the
// pixel counts, the updated weights, running statistics and momentum buffers. onnxruntime-node has
// no training API; this lets its inference API train. Compiled from the architecture declaration:
// train-mode forward, softmax cross-entropy with ignore, the backward of each layer in reverse
// (gradients of values used twice are summed), and the SGD update (PyTorch's rule).
import type { FcnArchitecture } from '../model/fcn.js';
import { layerInputs, type ConvLayer, type ConvTransposeLayer, type Layer } from '../model/layers.js';
import { fcnParameters, numel, type ParamSpec, type TensorMap } from '../model/params.js';
import { GraphBuilder } from './onnx.js';
import { emitEvalLayer } from './inference.js';
import {
  batchNormGrad, batchNormRunningUpdate, batchNormTrain, biasGrad, blockFormApplies, convGradInput, convGradWeight, convOutSize,
  convTransposeBlocks, convTransposeBlocksGradInput, convTransposeBlocksGradOutput, convTransposeBlocksGradWeight,
  convTransposeGradInput, convTransposeGradWeight, convTransposeOutSize, maxPoolGrad, maxPoolWithIndices, op, reluGrad, reluMask,
  softmaxCrossEntropy, type BatchNormForm, type BlockLayout, type BatchNormSaved, type BlockConvTransposeSaved, type GradInputForm,
  type GradWeightForm, type Shape4,
} from './backward.js';

export const IGNORE_LABEL = 255;

/** Formulation switches, for benchmarking alternatives; defaults are the measured best. */
export interface TrainGraphTuning {
  /** Input gradient of stride-1 convolutions (strided ones always use ConvTranspose). */
  convGradInput?: GradInputForm;
  /**
   * Weight gradient of k x k convolutions (1x1 ones are always one batched MatMul). 'auto' / 'autotap':
   * im2col / tapconv, except the dilated form for inputs with < 8 channels (the 7x7 stem on RGB: 49
   * tiny slices cost more). tapconv's one-hot kernels are constants: run the graph at ORT's 'extended'
   * optimisation level, or 'all' converts them to NCHWc and pays for the reorders.
   */
  convGradWeight?: GradWeightForm | 'auto' | 'autotap';
  batchNorm?: BatchNormForm;
  /** Trained transposed convolutions whose kernel is a multiple of the stride: ORT's ConvTranspose, or block GEMMs. */
  convTranspose?: 'convtranspose' | 'blocks';
  /**
   * When the logits come from a block-form transposed conv: the loss reads them in NCHW (a Transpose
   * each way) or in the GEMM's block layout with the labels rearranged to match ('blocks').
   */
  lossLayout?: 'nchw' | 'blocks';
}

export interface TrainGraphOptions {
  /** 'full': every parameter trained, batch-norm in training mode; 'head': backbone frozen (eval-mode BN, no gradient into it). */
  mode: 'full' | 'head';
  batch: number;
  height: number;
  width: number;
  weightDecay: number;
  /** SGD momentum (PyTorch's form, dampening 0); 0 = plain SGD and no buffers. */
  momentum: number;
  /** Also output each trained parameter's gradient as `gradientName(name)` (for tests). */
  gradients?: boolean;
  tuning?: TrainGraphTuning;
}

/** A tensor the step feeds and reads back: its canonical name and shape. */
export interface StepTensor {
  name: string;
  shape: number[];
}

export interface TrainGraph {
  bytes: Uint8Array;
  options: TrainGraphOptions;
  numClasses: number;
  /** Trained parameters: fed under their canonical name, updated value read from `updatedName(name)`. */
  trained: StepTensor[];
  /** Running statistics updated by train-mode batch-norm: fed and read back like `trained`. */
  state: StepTensor[];
  /** Parameters with a momentum buffer: fed as `momentumName(name)`, read back from `updatedName(momentumName(name))`. */
  momentum: StepTensor[];
  /** Parameters and statistics baked into the graph as initializers (head mode). */
  frozen: string[];
}

/** Graph input and output names besides the per-tensor ones. */
export const TRAIN_IO = {
  /** float32 [N, 3, H, W], normalised. */
  image: 'image',
  /** uint8 [N, H, W], 255 = ignore. */
  labels: 'labels',
  /** float32 scalar. */
  lr: 'lr',
  /** float32 scalar: Σ over images of the mean loss over the image's valid pixels. */
  loss: 'loss',
  /** int64 scalars. */
  correct: 'correct',
  valid: 'valid',
} as const;

export const updatedName = (name: string): string => `${name}:new`;
export const momentumName = (name: string): string => `${name}:momentum`;
export const gradientName = (name: string): string => `${name}:grad`;

/** Static shapes of every value of the declaration for an N x 3 x H x W input. */
export function inferShapes(arch: FcnArchitecture, batch: number, height: number, width: number): Map<string, Shape4> {
  const shapes = new Map<string, Shape4>([[arch.input, [batch, 3, height, width]]]);
  const get = (name: string): Shape4 => {
    const s = shapes.get(name);
    if (!s) throw new Error(`${arch.name}: value '${name}' is used before it is computed`);
    return s;
  };
  for (const layer of arch.layers) {
    switch (layer.op) {
      case 'conv': case 'maxpool': {
        const [n, c, h, w] = get(layer.input);
        if (layer.op === 'conv' && c !== layer.inChannels) throw new Error(`${arch.name}: ${layer.name} expects ${layer.inChannels} channels, gets ${c}`);
        shapes.set(layer.output, [n, layer.op === 'conv' ? layer.outChannels : c, convOutSize(h, layer), convOutSize(w, layer)]);
        break;
      }
      case 'convtranspose': {
        const [n, , h, w] = get(layer.input);
        shapes.set(layer.output, [n, layer.outChannels, convTransposeOutSize(h, layer), convTransposeOutSize(w, layer)]);
        break;
      }
      case 'add': {
        const a = get(layer.inputs[0]);
        const b = get(layer.inputs[1]);
        if (a.join() !== b.join()) {
          throw new Error(`${arch.name}: add '${layer.output}' of [${a.join(', ')}] and [${b.join(', ')}] (at ${height}x${width}; sides must be multiples of ${arch.stride})`);
        }
        shapes.set(layer.output, a);
        break;
      }
      case 'batchnorm':
      case 'relu':
        shapes.set(layer.output, get(layer.input));
        break;
      default:
        throw new Error(`${arch.name}: the training step has no '${layer.op}' layer yet`);
    }
  }
  return shapes;
}

/** Compiles one SGD step. In head mode `frozen` must hold the backbone's parameters and statistics (baked in as initializers). */
export function compileTrainStep(arch: FcnArchitecture, opts: TrainGraphOptions, frozen?: TensorMap): TrainGraph {
  const { mode, batch, height, width, weightDecay, momentum } = opts;
  for (const [k, v] of Object.entries({ batch, height, width })) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`compileTrainStep: ${k} must be a positive integer, got ${v}`);
  }
  if (height % arch.stride || width % arch.stride) {
    throw new Error(`compileTrainStep: crop ${height}x${width} must have sides that are multiples of ${arch.stride}`);
  }
  if (!(weightDecay >= 0) || !(momentum >= 0 && momentum < 1)) {
    throw new Error(`compileTrainStep: expected weightDecay >= 0 and 0 <= momentum < 1, got ${weightDecay} and ${momentum}`);
  }
  const tuning: Required<TrainGraphTuning> = { convGradInput: 'conv', convGradWeight: 'autotap', batchNorm: 'explicit', convTranspose: 'blocks', lossLayout: 'blocks', ...opts.tuning };
  const shapes = inferShapes(arch, batch, height, width);
  const shape = (v: string): Shape4 => shapes.get(v)!;
  const specs = fcnParameters(arch);
  const specByName = new Map(specs.map((s) => [s.name, s]));
  const frozenLayer = (i: number): boolean => mode === 'head' && i <= arch.backboneEnd;
  const isFrozen = (spec: ParamSpec): boolean => mode === 'head' && spec.backbone;

  const g = new GraphBuilder(`${arch.name}-train-${mode}`);
  g.input(TRAIN_IO.image, 'float32', [batch, 3, height, width]);
  g.input(TRAIN_IO.labels, 'uint8', [batch, height, width]);
  g.input(TRAIN_IO.lr, 'float32', []);

  const trained: StepTensor[] = [];
  const state: StepTensor[] = [];
  const frozenNames: string[] = [];
  for (const spec of specs) {
    if (isFrozen(spec)) {
      const data = frozen?.get(spec.name);
      if (!data) throw new Error(`compileTrainStep: head mode needs the frozen backbone tensor '${spec.name}'`);
      if (data.length !== numel(spec.shape)) throw new Error(`compileTrainStep: '${spec.name}' has ${data.length} values, expected [${spec.shape.join(', ')}]`);
      g.initializer(spec.name, 'float32', spec.shape, data);
      frozenNames.push(spec.name);
    } else {
      g.input(spec.name, 'float32', spec.shape);
      (spec.trainable ? trained : state).push({ name: spec.name, shape: spec.shape });
    }
  }
  const param = (name: string): string => {
    if (!specByName.has(name)) throw new Error(`compileTrainStep: no parameter '${name}'`);
    return name;
  };

  // Which values carry a gradient: outputs of layers with trained parameters, and anything computed from them.
  const needsGrad = new Set<string>();
  arch.layers.forEach((layer, i) => {
    const owns = (layer.op === 'conv' || layer.op === 'batchnorm' || layer.op === 'convtranspose') && !frozenLayer(i);
    if (owns || layerInputs(layer).some((v) => needsGrad.has(v))) needsGrad.add(layer.output);
  });

  // ---- forward (train mode where trained, eval mode where frozen)
  const bnSaved = new Map<number, BatchNormSaved>();
  const poolIndices = new Map<number, string>();
  const blockSaved = new Map<number, BlockConvTransposeSaved>();
  const reluMasks = new Map<number, string>();
  // values a trained conv reads: kept for its weight gradient anyway
  const isConv = (l: Layer): l is ConvLayer | ConvTransposeLayer => l.op === 'conv' || l.op === 'convtranspose';
  const convInputs = new Set(arch.layers.filter((l, i) => isConv(l) && !frozenLayer(i)).map((l) => (l as ConvLayer | ConvTransposeLayer).input));
  // When the logits come from a block-form transposed conv, the loss takes them uncropped with the
  // labels padded by 255: no crop of the logits and no padding of their gradient.
  const outIndex = arch.layers.findIndex((l) => l.output === arch.output);
  const outLayer = arch.layers[outIndex];
  const blockOut = outLayer?.op === 'convtranspose' && tuning.convTranspose === 'blocks' && blockFormApplies(outLayer)
    && !frozenLayer(outIndex) && !arch.layers.some((l) => layerInputs(l).includes(arch.output)) ? outLayer : undefined;
  const uncroppedPad = blockOut?.pad ?? 0;
  // ... and with lossLayout 'blocks' they stay in the GEMM's layout [N, rows, cols, C, s, s]
  let lossBlocks: BlockLayout | undefined;
  if (blockOut && tuning.lossLayout === 'blocks') {
    const [, , h, w] = shape(blockOut.input);
    const m = blockOut.kernel / blockOut.stride;
    lossBlocks = { rows: h + m - 1, cols: w + m - 1, size: blockOut.stride };
  }
  arch.layers.forEach((layer, i) => {
    if (frozenLayer(i)) {
      emitEvalLayer(g, layer, param);
    } else if (layer.op === 'convtranspose' && tuning.convTranspose === 'blocks' && blockFormApplies(layer)) {
      blockSaved.set(i, convTransposeBlocks(g, layer.input, param(`${layer.name}.weight`), layer.bias ? param(`${layer.name}.bias`) : undefined,
        layer, shape(layer.input), layer.outChannels, layer.output, layer.name, !(i === outIndex && blockOut !== undefined),
        i === outIndex && lossBlocks !== undefined));
    } else if (layer.op === 'batchnorm') {
      const out = batchNormTrain(g, layer.input, param(`${layer.name}.weight`), param(`${layer.name}.bias`), layer.eps,
        shape(layer.input), layer.output, layer.name, tuning.batchNorm);
      bnSaved.set(i, out.saved);
      const rm = `${layer.name}.running_mean`;
      const rv = `${layer.name}.running_var`;
      batchNormRunningUpdate(g, out, param(rm), param(rv), layer.momentum, [updatedName(rm), updatedName(rv)], layer.name);
    } else if (layer.op === 'maxpool' && needsGrad.has(layer.input)) {
      poolIndices.set(i, maxPoolWithIndices(g, layer.input, layer, layer.output, layer.output));
    } else {
      emitEvalLayer(g, layer, param);
      // a relu output no trained conv keeps (the stem's, read by the max-pool): keep its mask instead
      if (layer.op === 'relu' && needsGrad.has(layer.input) && !convInputs.has(layer.output)) reluMasks.set(i, reluMask(g, layer.output, layer.output));
    }
  });

  const ce = softmaxCrossEntropy(g, arch.output, TRAIN_IO.labels, IGNORE_LABEL,
    { loss: TRAIN_IO.loss, correct: TRAIN_IO.correct, valid: TRAIN_IO.valid }, uncroppedPad, lossBlocks);

  // ---- backward: reverse layer order; a value's gradient is complete once all its consumers are done
  const grads = new Map<string, string>([[arch.output, ce.dlogits]]);
  const paramGrads = new Map<string, string>();
  const accumulate = (value: string, grad: string): void => {
    if (!needsGrad.has(value)) return;
    const prev = grads.get(value);
    grads.set(value, prev ? op(g, 'Add', [prev, grad], `${value}:dsum`) : grad);
  };
  for (let i = arch.layers.length - 1; i >= 0; i--) {
    const layer = arch.layers[i]!;
    const dy = grads.get(layer.output);
    if (!dy || frozenLayer(i)) continue;
    switch (layer.op) {
      case 'conv': {
        const dyShape = shape(layer.output);
        const xShape = shape(layer.input);
        const wForm = tuning.convGradWeight === 'auto' ? (layer.inChannels < 8 ? 'dilated' : 'im2col')
          : tuning.convGradWeight === 'autotap' ? (layer.inChannels < 8 ? 'dilated' : 'tapconv') : tuning.convGradWeight;
        paramGrads.set(`${layer.name}.weight`, convGradWeight(g, layer.input, dy, layer, xShape, dyShape, layer.name, wForm));
        if (layer.bias) paramGrads.set(`${layer.name}.bias`, biasGrad(g, dy, layer.name));
        if (needsGrad.has(layer.input)) {
          const form = layer.stride === 1 ? tuning.convGradInput : 'convtranspose';
          accumulate(layer.input, convGradInput(g, dy, param(`${layer.name}.weight`), layer, xShape, dyShape, form, layer.name));
        }
        break;
      }
      case 'convtranspose': {
        const saved = blockSaved.get(i);
        if (saved) {
          const inBlocks = i === outIndex && lossBlocks !== undefined;
          const dD = convTransposeBlocksGradOutput(g, dy, layer, shape(layer.input), layer.outChannels, layer.name, i === outIndex && blockOut !== undefined,
            inBlocks);
          paramGrads.set(`${layer.name}.weight`, convTransposeBlocksGradWeight(g, dD, saved, layer, layer.inChannels, layer.outChannels, layer.name));
          if (layer.bias) paramGrads.set(`${layer.name}.bias`, biasGrad(g, dy, layer.name, inBlocks ? [0, 1, 2, 4, 5] : undefined));
          if (needsGrad.has(layer.input)) accumulate(layer.input, convTransposeBlocksGradInput(g, dD, saved, layer, shape(layer.input), layer.name));
          break;
        }
        paramGrads.set(`${layer.name}.weight`, convTransposeGradWeight(g, layer.input, dy, layer, shape(layer.input), shape(layer.output), layer.name));
        if (layer.bias) paramGrads.set(`${layer.name}.bias`, biasGrad(g, dy, layer.name));
        if (needsGrad.has(layer.input)) accumulate(layer.input, convTransposeGradInput(g, dy, param(`${layer.name}.weight`), layer, layer.name));
        break;
      }
      case 'batchnorm': {
        const r = batchNormGrad(g, dy, bnSaved.get(i)!, param(`${layer.name}.weight`), layer.name, needsGrad.has(layer.input));
        paramGrads.set(`${layer.name}.weight`, r.dgamma);
        paramGrads.set(`${layer.name}.bias`, r.dbeta);
        if (r.dx) accumulate(layer.input, r.dx);
        break;
      }
      case 'relu':
        accumulate(layer.input, reluGrad(g, layer.output, dy, layer.output, reluMasks.get(i)));
        break;
      case 'maxpool':
        accumulate(layer.input, maxPoolGrad(g, dy, poolIndices.get(i)!, shape(layer.input), layer.output));
        break;
      case 'add':
        accumulate(layer.inputs[0], dy);
        accumulate(layer.inputs[1], dy);
        break;
    }
  }

  // ---- SGD: w ← w − lr·(g + wd·w), or with momentum buf ← μ·buf + (g + wd·w), w ← w − lr·buf. After the
  // whole backward: updated tensors are outputs that live to the end, so allocating them early (right
  // after each gradient) raised the peak while the activations are still alive.
  for (const t of trained) {
    const grad = paramGrads.get(t.name);
    if (!grad) throw new Error(`compileTrainStep: no gradient reaches '${t.name}'`);
    const step = weightDecay > 0 ? op(g, 'Add', [grad, op(g, 'Mul', [t.name, g.constant(weightDecay)], `${t.name}:wdw`)], `${t.name}:step`) : grad;
    let direction = step;
    if (momentum > 0) {
      const buf = g.input(momentumName(t.name), 'float32', t.shape);
      direction = g.node('Add', [op(g, 'Mul', [buf, g.constant(momentum)], `${t.name}:mbuf`), step], {}, updatedName(buf));
      g.output(updatedName(buf), 'float32', t.shape);
    }
    g.node('Sub', [t.name, op(g, 'Mul', [direction, TRAIN_IO.lr], `${t.name}:delta`)], {}, updatedName(t.name));
    g.output(updatedName(t.name), 'float32', t.shape);
    if (opts.gradients) {
      g.node('Identity', [grad], {}, gradientName(t.name));
      g.output(gradientName(t.name), 'float32', t.shape);
    }
  }
  const momentumTensors = momentum > 0 ? trained : [];
  for (const t of state) g.output(updatedName(t.name), 'float32', t.shape);
  g.output(TRAIN_IO.loss, 'float32', []);
  g.output(TRAIN_IO.correct, 'int64', []);
  g.output(TRAIN_IO.valid, 'int64', []);

  const bytes = g.encode(`${arch.name} SGD training step, ${mode} mode, batch ${batch}, ${height}x${width}`);
  return { bytes, options: { ...opts }, numClasses: arch.numClasses, trained, state, momentum: momentumTensors, frozen: frozenNames };
}
