// The training-step graph: one plain ONNX graph per (mode, batch, crop size) that takes the weights,
// optimizer state, a batch of images and labels and the learning rate, and returns the loss, the
// pixel counts, the updated weights, running statistics and momentum buffers. onnxruntime-node has
// no training API; this lets its inference API train. A walker over the declaration: each layer's
// kind (./ops/) emits its train-mode forward, the loss (the architecture's) gives dL/dlogits, each
// kind emits its backward in reverse (gradients of values used twice are summed), then the optimiser's
// update (PyTorch's SGD or AdamW rule), its state (momentum, moments) passed in and out like the weights.
import { AUX_LOSS_WEIGHT, layersFor, type FcnArchitecture } from '../model/fcn.js';
import { layerInputs, type BatchNormLayer, type ConvLayer, type Layer, type MaxPoolLayer } from '../model/layers.js';
import { fcnParameters, layerParams, numel, type ParamSpec, type TensorMap } from '../model/params.js';
import { GraphBuilder } from './onnx.js';
import { batchNormGradThroughMaxPool, maxPoolWithIndices, op, recomputeConvBatchNorm, uniqueName, softmaxCrossEntropy, type BatchNormSaved, type Shape4 } from './backward.js';
import { kindOf, type BackwardContext, type LossForm, type StepInputDecl, type TrainContext } from './ops/index.js';
import { DEFAULT_TUNING, RECOMPUTE_AT, type TrainGraphTuning } from './tuning.js';

export type { TrainGraphTuning } from './tuning.js';
export type { StepInputDecl } from './ops/index.js';

export const IGNORE_LABEL = 255;

export interface TrainGraphOptions {
  /** 'full': every parameter trained, batch-norm in training mode; 'head': backbone frozen (eval-mode BN, no gradient into it). */
  mode: 'full' | 'head';
  batch: number;
  height: number;
  width: number;
  weightDecay: number;
  /** SGD momentum (PyTorch's form, dampening 0); 0 = plain SGD and no buffers. Must be 0 for AdamW. */
  momentum: number;
  /**
   * 'sgd' (default): torch.optim.SGD, weight decay added to the gradient. 'adamw': torch.optim.AdamW
   * (betas and eps of ADAMW), weight decay decoupled; the graph then takes TRAIN_IO.step.
   */
  optimizer?: Optimizer;
  /** Also output each trained parameter's gradient as `gradientName(name)` (for tests). */
  gradients?: boolean;
  tuning?: TrainGraphTuning;
  /**
   * The NCHWc block size of the ONNX Runtime that will run the step (TrainStep probes it): with it,
   * convolutions may run on ORT's NCHWc kernels (tuning.convLayout), which makes the graph specific
   * to that block size. Without it: ORT's plain convolutions only.
   */
  nchwcBlock?: number;
}

export type Optimizer = 'sgd' | 'adamw';
export const OPTIMIZERS: readonly Optimizer[] = ['sgd', 'adamw'];

/** torch.optim.AdamW's defaults, which the AdamW step uses. */
export const ADAMW = Object.freeze({ beta1: 0.9, beta2: 0.999, eps: 1e-8 });

/**
 * A per-parameter optimiser state tensor: SGD's momentum buffer; AdamW's first and second moment
 * estimates (PyTorch's state names). Fed as `slotName(param, slot)`, read back from `updatedName(...)`.
 */
export type OptimizerSlot = 'momentum' | 'exp_avg' | 'exp_avg_sq';

/** The slots an optimiser keeps per trained parameter. */
export function optimizerSlots(optimizer: Optimizer, momentum: number): OptimizerSlot[] {
  return optimizer === 'adamw' ? ['exp_avg', 'exp_avg_sq'] : momentum > 0 ? ['momentum'] : [];
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
  /**
   * Parameters with optimiser state, one tensor per slot of `slots` (SGD with momentum: its buffer, fed
   * as `momentumName(name)`; AdamW: both moments), each read back from `updatedName(slotName(name, slot))`.
   */
  momentum: StepTensor[];
  slots: OptimizerSlot[];
  /** Parameters and statistics baked into the graph as initializers (head mode). */
  frozen: string[];
  /** Per-step inputs the step draws from its seed (dropout's keep-masks), fed under their names. */
  stepInputs: StepInputDecl[];
}

/** Graph input and output names besides the per-tensor ones. */
export const TRAIN_IO = {
  /** float32 [N, 3, H, W], normalised. */
  image: 'image',
  /** uint8 [N, H, W], 255 = ignore. */
  labels: 'labels',
  /** float32 scalar. */
  lr: 'lr',
  /** float32 scalar, AdamW only: the 1-based number of this update (its bias correction: 1 − β^step). */
  step: 'step',
  /**
   * float32 scalar: the architecture's loss ('book': Σ over images of the mean loss over the image's
   * valid pixels; 'torchvision': the mean over the batch's valid pixels, + 0.5 x the auxiliary output's).
   */
  loss: 'loss',
  /** int64 scalars. */
  correct: 'correct',
  valid: 'valid',
} as const;

export const updatedName = (name: string): string => `${name}:new`;
export const slotName = (name: string, slot: OptimizerSlot): string => `${name}:${slot}`;
export const momentumName = (name: string): string => slotName(name, 'momentum');
export const gradientName = (name: string): string => `${name}:grad`;

/** The layers a training step computes (those the main and auxiliary outputs need) with their index in the declaration. */
function trainLayers(arch: FcnArchitecture, reluPool: Required<TrainGraphTuning>['reluPool'] = 'declared'): { layer: Layer; index: number }[] {
  const used = new Set(layersFor(arch, arch.auxOutput ? [arch.output, arch.auxOutput] : [arch.output]));
  const layers = arch.layers.map((layer, index) => ({ layer, index })).filter(({ layer }) => used.has(layer));
  return reluPool === 'poolFirst' ? poolBeforeRelu(arch, layers) : layers;
}

/** How many of `layers` read each value. */
function readerCounts(layers: readonly { layer: Layer }[]): Map<string, number> {
  const readers = new Map<string, number>();
  for (const { layer } of layers) for (const v of layerInputs(layer)) readers.set(v, (readers.get(v) ?? 0) + 1);
  return readers;
}

/**
 * Each relu → max-pool pair whose ReLU output nothing else reads, swapped: the pool reads the ReLU's
 * input and the ReLU writes the pool's output (see TrainGraphTuning.reluPool). Indices stay with their
 * position, so frozen ranges are unchanged.
 */
function poolBeforeRelu(arch: FcnArchitecture, layers: { layer: Layer; index: number }[]): { layer: Layer; index: number }[] {
  const readers = readerCounts(layers);
  const out = [...layers];
  for (let i = 0; i + 1 < out.length; i++) {
    const relu = out[i]!.layer;
    const pool = out[i + 1]!.layer;
    if (relu.op !== 'relu' || pool.op !== 'maxpool' || pool.input !== relu.output || readers.get(relu.output) !== 1) continue;
    if (relu.output === arch.output || relu.output === arch.auxOutput) continue;
    const pooled = `${pool.output}:prerelu`;
    out[i] = { layer: { ...pool, input: relu.input, output: pooled }, index: out[i]!.index };
    out[i + 1] = { layer: { ...relu, input: pooled, output: pool.output }, index: out[i + 1]!.index };
    i++;
  }
  return out;
}

/** Static shapes of every value of the declaration for an N x 3 x H x W input. */
export function inferShapes(arch: FcnArchitecture, batch: number, height: number, width: number,
  reluPool: Required<TrainGraphTuning>['reluPool'] = 'declared'): Map<string, Shape4> {
  const shapes = new Map<string, Shape4>([[arch.input, [batch, 3, height, width]]]);
  const get = (name: string): Shape4 => {
    const s = shapes.get(name);
    if (!s) throw new Error(`${arch.name}: value '${name}' is used before it is computed`);
    return s;
  };
  for (const { layer } of trainLayers(arch, reluPool)) {
    try {
      shapes.set(layer.output, kindOf(layer).outputShape(layer, layerInputs(layer).map(get)));
    } catch (err) {
      const hint = arch.stride > 1 ? `; sides must be multiples of ${arch.stride}` : '';
      throw new Error(`${arch.name}: ${(err as Error).message} (at ${height}x${width}${hint})`);
    }
  }
  return shapes;
}

function checkStepOptions(arch: FcnArchitecture, opts: TrainGraphOptions): void {
  const { batch, height, width, weightDecay, momentum } = opts;
  for (const [k, v] of Object.entries({ batch, height, width })) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`compileTrainStep: ${k} must be a positive integer, got ${v}`);
  }
  if (height % arch.stride || width % arch.stride) {
    throw new Error(`compileTrainStep: crop ${height}x${width} must have sides that are multiples of ${arch.stride}`);
  }
  if (!(weightDecay >= 0) || !(momentum >= 0 && momentum < 1)) {
    throw new Error(`compileTrainStep: expected weightDecay >= 0 and 0 <= momentum < 1, got ${weightDecay} and ${momentum}`);
  }
  const optimizer = opts.optimizer ?? 'sgd';
  if (!OPTIMIZERS.includes(optimizer)) throw new Error(`compileTrainStep: optimizer must be one of ${OPTIMIZERS.join(', ')}, got ${String(optimizer)}`);
  if (optimizer === 'adamw' && momentum !== 0) throw new Error(`compileTrainStep: momentum applies to SGD; AdamW has its betas (${ADAMW.beta1}, ${ADAMW.beta2})`);
}

/** The step's parameters: frozen ones baked in as initializers, the rest graph inputs (trained, or state such as BN statistics). */
function declareParameters(g: GraphBuilder, specs: readonly ParamSpec[], isFrozen: (spec: ParamSpec) => boolean, frozen?: TensorMap):
  { trained: StepTensor[]; state: StepTensor[]; frozenNames: string[] } {
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
  return { trained, state, frozenNames };
}

/** The loss of the main output (with pixel counts), plus the auxiliary output's; returns the logits' gradients. */
function emitLoss(g: GraphBuilder, arch: FcnArchitecture, lossForm: LossForm | undefined, defer: (emit: () => void) => void): Map<string, string> {
  const perBatch = arch.loss === 'torchvision';
  const main = softmaxCrossEntropy(g, arch.output, TRAIN_IO.labels, IGNORE_LABEL,
    { loss: arch.auxOutput ? 'loss:main' : TRAIN_IO.loss, correct: TRAIN_IO.correct, valid: TRAIN_IO.valid }, lossForm?.pad ?? 0, lossForm?.blocks, { perBatch, defer });
  const grads = new Map<string, string>([[arch.output, main.dlogits]]);
  if (arch.auxOutput) {
    const aux = softmaxCrossEntropy(g, arch.auxOutput, TRAIN_IO.labels, IGNORE_LABEL, { loss: 'loss:aux' }, 0, undefined,
      { perBatch, weight: AUX_LOSS_WEIGHT, hint: 'ce_aux', defer });
    defer(() => g.node('Add', [main.loss, aux.loss], {}, TRAIN_IO.loss));
    grads.set(arch.auxOutput, aux.dlogits);
  }
  return grads;
}

/**
 * SGD: w ← w − lr·(g + wd·w), or with momentum buf ← μ·buf + (g + wd·w), w ← w − lr·buf. Emitted after
 * the whole backward: updated tensors are outputs that live to the end, so allocating them early (right
 * after each gradient) raised the peak while the activations are still alive.
 */
function emitSgd(g: GraphBuilder, opts: TrainGraphOptions, trained: readonly StepTensor[], paramGrads: ReadonlyMap<string, string>): void {
  const { weightDecay, momentum } = opts;
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
}

/**
 * AdamW as torch.optim.AdamW (amsgrad off), t = TRAIN_IO.step:
 *   w ← w·(1 − lr·wd)                       (decoupled weight decay, before the moments are used)
 *   m ← β1·m + (1 − β1)·g,  v ← β2·v + (1 − β2)·g²
 *   w ← w − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)
 * The scalars (decay factor, step size, √(1 − β2^t)) are computed once per step, then three
 * element-wise passes per tensor. Emitted after the whole backward, as SGD (see emitSgd).
 */
function emitAdamW(g: GraphBuilder, opts: TrainGraphOptions, trained: readonly StepTensor[], paramGrads: ReadonlyMap<string, string>): void {
  const { beta1, beta2, eps } = ADAMW;
  const t = g.input(TRAIN_IO.step, 'float32', []);
  const one = g.constant(1);
  const bc1 = op(g, 'Sub', [one, op(g, 'Pow', [g.constant(beta1), t], 'adamw:b1t')], 'adamw:bc1');
  const bc2 = op(g, 'Sub', [one, op(g, 'Pow', [g.constant(beta2), t], 'adamw:b2t')], 'adamw:bc2');
  const stepSize = op(g, 'Div', [TRAIN_IO.lr, bc1], 'adamw:step_size');
  const sqrtBc2 = op(g, 'Sqrt', [bc2], 'adamw:sqrt_bc2');
  const decay = opts.weightDecay > 0 ? op(g, 'Sub', [one, op(g, 'Mul', [TRAIN_IO.lr, g.constant(opts.weightDecay)], 'adamw:lr_wd')], 'adamw:decay') : undefined;
  const [c1, c1m, c2, c2m, cEps] = [beta1, 1 - beta1, beta2, 1 - beta2, eps].map((v) => g.constant(v));
  for (const p of trained) {
    const grad = paramGrads.get(p.name);
    if (!grad) throw new Error(`compileTrainStep: no gradient reaches '${p.name}'`);
    const m = g.input(slotName(p.name, 'exp_avg'), 'float32', p.shape);
    const v = g.input(slotName(p.name, 'exp_avg_sq'), 'float32', p.shape);
    const m1 = g.node('Add', [op(g, 'Mul', [m, c1!], `${p.name}:m_b1`), op(g, 'Mul', [grad, c1m!], `${p.name}:g_b1`)], {}, updatedName(m));
    const g2 = op(g, 'Mul', [grad, grad], `${p.name}:g2`);
    const v1 = g.node('Add', [op(g, 'Mul', [v, c2!], `${p.name}:v_b2`), op(g, 'Mul', [g2, c2m!], `${p.name}:g2_b2`)], {}, updatedName(v));
    g.output(updatedName(m), 'float32', p.shape);
    g.output(updatedName(v), 'float32', p.shape);
    const denom = op(g, 'Add', [op(g, 'Div', [op(g, 'Sqrt', [v1], `${p.name}:sqrt_v`), sqrtBc2], `${p.name}:sqrt_vhat`), cEps!], `${p.name}:denom`);
    const delta = op(g, 'Mul', [op(g, 'Div', [m1, denom], `${p.name}:ratio`), stepSize], `${p.name}:delta`);
    const decayed = decay ? op(g, 'Mul', [p.name, decay], `${p.name}:decayed`) : p.name;
    g.node('Sub', [decayed, delta], {}, updatedName(p.name));
    g.output(updatedName(p.name), 'float32', p.shape);
    if (opts.gradients) {
      g.node('Identity', [grad], {}, gradientName(p.name));
      g.output(gradientName(p.name), 'float32', p.shape);
    }
  }
}

/** Which values carry a gradient (outputs of layers with trained parameters, and anything computed from
 *  them), and which a trained convolution reads (kept for its weight gradient anyway). */
function gradientSets(layers: readonly { layer: Layer; index: number }[], frozenLayer: (i: number) => boolean): { needsGrad: Set<string>; kept: Set<string> } {
  const needsGrad = new Set<string>();
  for (const { layer, index } of layers) {
    const owns = layerParams(layer).some((p) => p.trainable) && !frozenLayer(index);
    if (owns || layerInputs(layer).some((v) => needsGrad.has(v))) needsGrad.add(layer.output);
  }
  const kept = new Set(layers.filter(({ layer, index }) => (layer.op === 'conv' || layer.op === 'convtranspose') && !frozenLayer(index))
    .map(({ layer }) => (layer as { input: string }).input));
  return { needsGrad, kept };
}

/** A stem whose x̂ and pool argmax the backward recomputes (TrainGraphTuning.stemRecompute). */
interface RecomputedStem {
  conv: ConvLayer;
  bn: BatchNormLayer;
  pool: MaxPoolLayer;
}

/**
 * The conv → batch-norm → max-pool chain on the image that stemRecompute applies to, if the step has
 * one and it is trained: the conv reads the image (kept anyway), plain (no groups, no dilation), each
 * output read by the next layer only; batch-norm in its 'explicit' form.
 */
function recomputedStem(arch: FcnArchitecture, layers: readonly { layer: Layer; index: number }[], tuning: Required<TrainGraphTuning>,
  frozenLayer: (i: number) => boolean, shape: (v: string) => Shape4): RecomputedStem | undefined {
  if (tuning.stemRecompute === 'off' || tuning.batchNorm !== 'explicit') return undefined;
  const readers = readerCounts(layers);
  for (let i = 0; i + 2 < layers.length; i++) {
    const [a, b, c] = [layers[i]!, layers[i + 1]!, layers[i + 2]!];
    if (a.layer.op !== 'conv' || b.layer.op !== 'batchnorm' || c.layer.op !== 'maxpool') continue;
    const [conv, bn, pool] = [a.layer, b.layer, c.layer];
    if (conv.input !== arch.input || bn.input !== conv.output || pool.input !== bn.output) continue;
    if ((conv.groups ?? 1) !== 1 || (conv.dilation ?? 1) !== 1 || readers.get(conv.output) !== 1 || readers.get(bn.output) !== 1) continue;
    if ([a, b, c].some(({ index }) => frozenLayer(index))) continue;
    if (tuning.stemRecompute === 'auto' && shape(bn.output).reduce((x, y) => x * y, 1) < RECOMPUTE_AT) return undefined;
    return { conv, bn, pool };
  }
  return undefined;
}

/**
 * Each trained max-pool that reads a trained batch-norm's output nothing else reads (the stem once its
 * ReLU moved after the pool), by pool: the pair's backward is batchNormGradThroughMaxPool
 * (TrainGraphTuning.poolBatchNorm).
 */
function poolsOverBatchNorm(layers: readonly { layer: Layer; index: number }[], tuning: Required<TrainGraphTuning>,
  frozenLayer: (i: number) => boolean): Map<Layer, BatchNormLayer> {
  const pairs = new Map<Layer, BatchNormLayer>();
  if (tuning.poolBatchNorm !== 'fused') return pairs;
  const readers = readerCounts(layers);
  const byOutput = new Map(layers.map((e) => [e.layer.output, e]));
  for (const { layer, index } of layers) {
    if (layer.op !== 'maxpool' || frozenLayer(index)) continue;
    const below = byOutput.get(layer.input);
    if (!below || below.layer.op !== 'batchnorm' || frozenLayer(below.index) || readers.get(layer.input) !== 1) continue;
    pairs.set(layer, below.layer);
  }
  return pairs;
}

/** Compiles one training step (SGD or AdamW). In head mode `frozen` must hold the backbone's parameters and statistics (baked in as initializers). */
export function compileTrainStep(arch: FcnArchitecture, opts: TrainGraphOptions, frozen?: TensorMap): TrainGraph {
  checkStepOptions(arch, opts);
  const { mode, batch, height, width, momentum } = opts;
  const tuning: Required<TrainGraphTuning> = { ...DEFAULT_TUNING, ...opts.tuning };
  const shapes = inferShapes(arch, batch, height, width, tuning.reluPool);
  const shape = (v: string): Shape4 => {
    const s = shapes.get(v);
    if (!s) throw new Error(`compileTrainStep: no shape for '${v}'`);
    return s;
  };
  const layers = trainLayers(arch, tuning.reluPool);
  const specs = fcnParameters(arch);
  const specByName = new Map(specs.map((s) => [s.name, s]));
  const frozenLayer = (i: number): boolean => mode === 'head' && i <= arch.backboneEnd;

  const g = new GraphBuilder(`${arch.name}-train-${mode}`);
  g.input(TRAIN_IO.image, 'float32', [batch, 3, height, width]);
  g.input(TRAIN_IO.labels, 'uint8', [batch, height, width]);
  g.input(TRAIN_IO.lr, 'float32', []);
  const { trained, state, frozenNames } = declareParameters(g, specs, (spec) => mode === 'head' && spec.backbone, frozen);
  const param = (name: string): string => {
    if (!specByName.has(name)) throw new Error(`compileTrainStep: no parameter '${name}'`);
    return name;
  };

  const { needsGrad, kept } = gradientSets(layers, frozenLayer);
  const stepInputs: StepInputDecl[] = [];
  const ctx: TrainContext = {
    g, shape, param, tuning,
    nchwcBlock: tuning.convLayout === 'nchwc' ? opts.nchwcBlock : undefined,
    needsGrad: (v) => needsGrad.has(v),
    kept: (v) => kept.has(v),
    updated: updatedName,
    stepInput(decl) {
      g.input(decl.name, decl.dtype, decl.shape);
      stepInputs.push(decl);
      return decl.name;
    },
  };

  // The layer computing the logits may hand them to the loss in a cheaper layout (see ops/convtranspose.ts)
  // when it is trained and nothing else reads them.
  const outEntry = layers.find(({ layer }) => layer.output === arch.output);
  if (!outEntry) throw new Error(`${arch.name}: no layer computes the output '${arch.output}'`);
  const lossForm: LossForm | undefined = !frozenLayer(outEntry.index) && !layers.some(({ layer }) => layerInputs(layer).includes(arch.output))
    ? kindOf(outEntry.layer).lossForm?.(ctx, outEntry.layer) : undefined;

  // ---- forward (train mode where trained, eval mode where frozen)
  const stem = recomputedStem(arch, layers, tuning, frozenLayer, shape);
  const poolOverBn = poolsOverBatchNorm(layers, tuning, frozenLayer);
  const saved = new Map<Layer, unknown>();
  for (const { layer, index } of layers) {
    const kind = kindOf(layer);
    // frozen layers in eval mode; the recomputed stem's pool without its argmax (taken again in the backward)
    if (frozenLayer(index) || layer === stem?.pool) kind.emitEval({ g, param, weight: () => undefined, shape, upsample: 'convtranspose' }, layer);
    else saved.set(layer, kind.forward(layer === outEntry.layer && lossForm ? { ...ctx, lossForm } : ctx, layer));
  }

  // the loss's scalar outputs are emitted last (see CrossEntropyReduction.defer): ONNX Runtime then
  // computes them before the backward
  const lateNodes: (() => void)[] = [];
  const grads = emitLoss(g, arch, lossForm, (emit) => lateNodes.push(emit));

  // ---- backward: reverse layer order; a value's gradient is complete once all its consumers are done
  const paramGrads = new Map<string, string>();
  let zero: string | undefined;
  const back: BackwardContext = {
    ...ctx,
    accumulate(value, grad) {
      if (!needsGrad.has(value)) return;
      const prev = grads.get(value);
      grads.set(value, prev ? op(g, 'Add', [prev, grad], `${value}:dsum`) : grad);
    },
    paramGrad: (name, grad) => paramGrads.set(name, grad),
    // 0 from the learning rate (finite: TrainStep checks it), so ORT cannot fold what is built from it
    runtimeZero: () => (zero ??= op(g, 'Mul', [TRAIN_IO.lr, g.constant(0)], 'step:zero')),
  };
  for (let j = layers.length - 1; j >= 0; j--) {
    const { layer, index } = layers[j]!;
    const dy = grads.get(layer.output);
    if (!dy || frozenLayer(index)) continue;
    if (layer === stem?.pool) {
      // the stem's x̂ and the pool's argmax from the image again, just before the backward reads them
      const { conv, bn, pool } = stem;
      const re = recomputeConvBatchNorm(g, conv.input, param(`${conv.name}.weight`), conv.bias ? param(`${conv.name}.bias`) : undefined, conv,
        saved.get(bn) as BatchNormSaved, param(`${bn.name}.weight`), param(`${bn.name}.bias`), bn.name);
      saved.set(bn, re.saved);
      saved.set(pool, maxPoolWithIndices(g, re.output, pool, uniqueName(g, `${pool.output}:repooled`), `${pool.output}:re`));
    }
    const bn = poolOverBn.get(layer);
    if (bn) {
      // the batch-norm's gradient straight from the pool's (its output gradient is never made)
      const r = batchNormGradThroughMaxPool(g, dy, saved.get(layer) as string, saved.get(bn) as BatchNormSaved, param(`${bn.name}.weight`),
        shape(bn.output), bn.name, needsGrad.has(bn.input));
      back.paramGrad(`${bn.name}.weight`, r.dgamma);
      back.paramGrad(`${bn.name}.bias`, r.dbeta);
      if (r.dx) back.accumulate(bn.input, r.dx);
      continue;
    }
    kindOf(layer).backward(layer === outEntry.layer && lossForm ? { ...back, lossForm } : back, layer, saved.get(layer), dy);
  }
  const optimizer = opts.optimizer ?? 'sgd';
  if (optimizer === 'adamw') emitAdamW(g, opts, trained, paramGrads);
  else emitSgd(g, opts, trained, paramGrads);
  const slots = optimizerSlots(optimizer, momentum);
  const momentumTensors = slots.length > 0 ? trained : [];
  for (const emit of lateNodes) emit();
  for (const t of state) g.output(updatedName(t.name), 'float32', t.shape);
  g.output(TRAIN_IO.loss, 'float32', []);
  g.output(TRAIN_IO.correct, 'int64', []);
  g.output(TRAIN_IO.valid, 'int64', []);

  const bytes = g.encode(`${arch.name} ${optimizer === 'adamw' ? 'AdamW' : 'SGD'} training step, ${mode} mode, batch ${batch}, ${height}x${width}`);
  return { bytes, options: { ...opts }, numClasses: arch.numClasses, trained, state, momentum: momentumTensors, slots, frozen: frozenNames, stepInputs };
}
