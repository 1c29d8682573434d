// Post-training int8 quantisation of the inference graph in ONNX's QDQ form: QuantizeLinear →
// DequantizeLinear pairs around the values the integer kernels read and write, weights stored as
// int8 and read through DequantizeLinear. ONNX Runtime (graph optimisation 'all') fuses each
// DQ → Conv → Q group into QLinearConv (u8 activations x s8 weights, int32 accumulation), DQ → Add → Q
// into QLinearAdd and DQ → MaxPool → Q into a uint8 MaxPool; what has no quantised form stays float.
//
// The maths:
// - Batch-norm (eval mode) is folded into the convolution before it: with a = γ / sqrt(σ² + ε),
//   w'[o] = a[o]·w[o] and b'[o] = a[o]·(b[o] − μ[o]) + β[o]. Quantising the folded weight is what makes
//   the integer kernel compute conv+bn at once.
// - Weights: per output channel, symmetric: s_w[o] = max|w'[o]| / Q, q = round(w'/s_w) in −Q..Q, with
//   Q = 63 by default ('reduced range', 7 bits): x86 CPUs without VNNI multiply u8 x s8 with VPMADDUBSW,
//   whose int16 sum of two products saturates past 32767 (2 x 255 x 127 = 64770 does; 2 x 255 x 63 does
//   not). Measured on an AVX2 machine, the demo net's masks agree with float32's on 99.2% of val pixels
//   with Q = 63 and 98.5% with Q = 127; Q = 127 is for VNNI/ARM targets.
// - Activations: per tensor, asymmetric uint8 over a calibrated range [lo, hi] widened to hold 0:
//   s = (hi − lo) / 255, z = round(−lo / s), x ≈ s·(q − z). A ReLU's output has lo = 0, so z = 0.
// - Bias: int32 with scale s_x·s_w[o] (zero point 0), as QLinearConv adds it to the int32 accumulator.
// - Which convolutions are integer: every one with another convolution downstream. The last ones
//   (those that compute the class scores: the book's final_conv and skip scorers, torchvision's
//   classifier.4) and everything after them (the bilinear upsampling, the skip additions, the resize,
//   the logits, argmax) stay float, so the scores are never rounded to 256 levels.
// - A ReLU after an integer op is not quantised on its input side: only its output is, with z = 0,
//   and ORT folds the ReLU into the quantisation's clamp (its ReluQuantFusion).
import { inferenceLayers, type FcnArchitecture } from '../model/fcn.js';
import { layerInputs, type Layer, type ConvLayer, type BatchNormLayer } from '../model/layers.js';
import { fcnParameters, type TensorMap } from '../model/params.js';
import { GraphBuilder } from './onnx.js';
import { kindOf, type EvalContext } from './ops/index.js';
import { emitCropBack, emitPadToStride } from './inference.js';

/** A calibrated value range (float), before it is widened to hold 0. */
export interface ValueRange {
  min: number;
  max: number;
}

/** uint8 quantisation parameters of one activation tensor. */
export interface ActivationQuant {
  scale: number;
  zeroPoint: number;
}

/** What quantising a network means for its graph: which layers run in int8, which values get Q/DQ. */
export interface QuantPlan {
  arch: FcnArchitecture;
  /** The inference layers with batch-norms folded into their convolutions and dropout removed. */
  layers: Layer[];
  /** Parameters after folding (folded convolutions carry a bias). */
  weights: TensorMap;
  /** Shapes of those parameters. */
  shapes: Map<string, number[]>;
  /** Names of the convolutions computed in int8. */
  intConvs: Set<string>;
  /** Values followed by QuantizeLinear → DequantizeLinear, in graph order (the graph input first if it is one). */
  quantized: string[];
  /** Values whose quantisation parameters are another value's (a max-pool's output shares its input's). */
  sharesWith: Map<string, string>;
}

const DQ = ':dq';

function renameInputs(layer: Layer, rename: (v: string) => string): Layer {
  const l = { ...layer } as Layer;
  if ('input' in l) l.input = rename(l.input);
  if ('like' in l) l.like = rename(l.like);
  if ('inputs' in l) l.inputs = l.inputs.map(rename) as typeof l.inputs;
  return l;
}

/** Folds eval-mode batch-norm into convolution weights (see the header): returns [w', b']. */
export function foldBatchNorm(conv: ConvLayer, bn: BatchNormLayer, weights: TensorMap): [Float32Array, Float32Array] {
  const get = (name: string): Float32Array => {
    const t = weights.get(name);
    if (!t) throw new Error(`quantisation: no weights for '${name}'`);
    return t;
  };
  const w = get(`${conv.name}.weight`);
  const b = conv.bias ? get(`${conv.name}.bias`) : undefined;
  const gamma = get(`${bn.name}.weight`);
  const beta = get(`${bn.name}.bias`);
  const mean = get(`${bn.name}.running_mean`);
  const variance = get(`${bn.name}.running_var`);
  const O = conv.outChannels;
  const per = w.length / O;
  const wf = new Float32Array(w.length);
  const bf = new Float32Array(O);
  for (let o = 0; o < O; o++) {
    const a = gamma[o]! / Math.sqrt(variance[o]! + bn.eps);
    for (let i = o * per; i < (o + 1) * per; i++) wf[i] = w[i]! * a;
    bf[o] = a * ((b ? b[o]! : 0) - mean[o]!) + beta[o]!;
  }
  return [wf, bf];
}

/** Plans the quantisation of `arch` with `weights` (all its parameters): folding, int8 layers, Q/DQ values. */
export function planQuantization(arch: FcnArchitecture, weights: TensorMap): QuantPlan {
  const specs = new Map(fcnParameters(arch).map((s) => [s.name, [...s.shape]]));
  // dropout is the identity at inference: its readers read its input
  const alias = new Map<string, string>();
  const resolve = (v: string): string => alias.get(v) ?? v;
  const plain: Layer[] = [];
  for (const layer of inferenceLayers(arch)) {
    if (layer.op === 'dropout') {
      alias.set(layer.output, resolve(layer.input));
      continue;
    }
    plain.push(renameInputs(layer, resolve));
  }
  const consumersOf = (list: Layer[]): Map<string, Layer[]> => {
    const m = new Map<string, Layer[]>();
    for (const l of list) for (const v of layerInputs(l)) m.set(v, [...(m.get(v) ?? []), l]);
    return m;
  };
  // fold each batch-norm into the convolution that alone feeds it
  let consumers = consumersOf(plain);
  const folded = new Map<string, BatchNormLayer>();
  for (const l of plain) {
    if (l.op !== 'conv' || l.output === arch.output) continue;
    const readers = consumers.get(l.output) ?? [];
    if (readers.length === 1 && readers[0]!.op === 'batchnorm') folded.set(l.name, readers[0] as BatchNormLayer);
  }
  const foldedBns = new Set([...folded.values()].map((b) => b.name));
  const w: TensorMap = new Map(weights);
  const shapes = new Map(specs);
  const layers: Layer[] = [];
  for (const l of plain) {
    if (l.op === 'batchnorm' && foldedBns.has(l.name)) continue;
    if (l.op === 'conv' && folded.has(l.name)) {
      const bn = folded.get(l.name)!;
      const [wf, bf] = foldBatchNorm(l, bn, weights);
      w.set(`${l.name}.weight`, wf);
      w.set(`${l.name}.bias`, bf);
      shapes.set(`${l.name}.bias`, [l.outChannels]);
      layers.push({ ...l, bias: true, output: bn.output });
      continue;
    }
    layers.push(l);
  }
  consumers = consumersOf(layers);
  // which values reach a convolution (walking the declaration, which is in topological order, backwards)
  const reachesConv = new Set<string>();
  for (let i = layers.length - 1; i >= 0; i--) {
    const l = layers[i]!;
    if ((consumers.get(l.output) ?? []).some((c) => c.op === 'conv' || reachesConv.has(c.output))) reachesConv.add(l.output);
  }
  const isInt = (l: Layer | undefined): boolean =>
    l !== undefined && (l.op === 'conv' || l.op === 'add' || l.op === 'maxpool') && reachesConv.has(l.output);
  const intConvs = new Set(layers.filter((l): l is ConvLayer => l.op === 'conv' && isInt(l)).map((l) => l.name));
  const producer = new Map(layers.map((l) => [l.output, l]));
  // an integer op's output read only by a ReLU: quantised after the ReLU instead
  const beforeRelu = (v: string): boolean => {
    const readers = consumers.get(v) ?? [];
    return isInt(producer.get(v)) && readers.length === 1 && readers[0]!.op === 'relu';
  };
  const needsQdq = (v: string): boolean => {
    if (beforeRelu(v)) return false;
    const p = producer.get(v);
    const fromInt = isInt(p) || (p?.op === 'relu' && beforeRelu(p.input));
    return fromInt || (consumers.get(v) ?? []).some(isInt);
  };
  const quantized: string[] = [];
  const sharesWith = new Map<string, string>();
  if (needsQdq(arch.input)) quantized.push(arch.input);
  for (const l of layers) {
    if (!needsQdq(l.output)) continue;
    quantized.push(l.output);
    if (l.op === 'maxpool') {
      if (!quantized.includes(l.input)) throw new Error(`quantisation: ${l.output}: a max-pool over an unquantised value`);
      sharesWith.set(l.output, l.input);
    }
  }
  return { arch, layers, weights: w, shapes, intConvs, quantized, sharesWith };
}

/** The values whose ranges calibration must measure (a max-pool's output takes its input's). */
export function calibratedValues(plan: QuantPlan): string[] {
  return plan.quantized.filter((v) => !plan.sharesWith.has(v));
}

/**
 * The float graph calibration runs: the folded layers (so the measured values are exactly those the
 * int8 graph quantises), logits, plus every calibrated value except the graph input as an output.
 */
export function compileCalibration(plan: QuantPlan): Uint8Array {
  const { arch } = plan;
  const g = new GraphBuilder(`${arch.name}-calibration`);
  g.input(arch.input, 'float32', ['N', 3, 'H', 'W']);
  const ctx = floatContext(g, plan);
  for (const l of plan.layers) kindOf(l).emitEval(ctx, l);
  g.output(arch.output, 'float32', ['N', arch.numClasses, 'H', 'W']);
  for (const v of calibratedValues(plan)) if (v !== arch.input && v !== arch.output) g.output(v, 'float32', ['N', `${v}.C`, `${v}.H`, `${v}.W`]);
  return g.encode(`${arch.name}: folded float graph for int8 calibration`);
}

function floatContext(g: GraphBuilder, plan: QuantPlan): EvalContext {
  const added = new Set<string>();
  const weight = (name: string): Float32Array => {
    const t = plan.weights.get(name);
    if (!t) throw new Error(`quantisation: no weights for '${name}'`);
    return t;
  };
  return {
    g,
    param(name) {
      if (!added.has(name)) g.initializer(name, 'float32', plan.shapes.get(name)!, weight(name));
      added.add(name);
      return name;
    },
    weight,
    shape: () => undefined,
    upsample: 'blocks',
  };
}

/** uint8 parameters for a range, widened to hold 0 (so zero padding and ReLU's zeros are exact). */
export function activationQuant(r: ValueRange): ActivationQuant {
  const lo = Math.min(r.min, 0);
  let hi = Math.max(r.max, 0);
  if (!(Number.isFinite(lo) && Number.isFinite(hi))) throw new Error(`quantisation: range [${r.min}, ${r.max}] is not finite`);
  if (hi - lo < 1e-12) hi = lo + 1e-12;
  const scale = (hi - lo) / 255;
  const zeroPoint = Math.min(255, Math.max(0, Math.round(-lo / scale)));
  return { scale, zeroPoint };
}

/** Symmetric per-output-channel int8 weights: q = round(w / s), s = max|w[o]| / qmax (1 for an all-zero channel). */
export function quantizeWeightsPerChannel(w: Float32Array, outChannels: number, qmax = 127): { q: Int8Array; scale: Float32Array } {
  const per = w.length / outChannels;
  const q = new Int8Array(w.length);
  const scale = new Float32Array(outChannels);
  for (let o = 0; o < outChannels; o++) {
    let m = 0;
    for (let i = o * per; i < (o + 1) * per; i++) m = Math.max(m, Math.abs(w[i]!));
    const s = m > 0 ? m / qmax : 1;
    scale[o] = s;
    for (let i = o * per; i < (o + 1) * per; i++) q[i] = Math.max(-qmax, Math.min(qmax, Math.round(w[i]! / s)));
  }
  return { q, scale };
}

export interface QuantizedGraphOptions {
  /** Pad to the stride inside the graph and crop the logits back, as `fcn export` does. Default true. */
  padToStride?: boolean;
  /** Weights in −63..63 (7 bits; safe on x86 without VNNI, see the header) instead of −127..127. Default true. */
  reduceRange?: boolean;
  /**
   * Also output `mask` = argmax over classes (int64, N x H x W). Default true (the file fcn quantize
   * writes has both outputs, as the export's); false for a logits-only graph, the like of
   * compileInference's `argmax: false` (ORT runs every node whether its output is fetched or not).
   */
  argmax?: boolean;
  metadata?: Record<string, string>;
}

/**
 * The int8 graph: the plan's layers with Q/DQ pairs on its quantised values (parameters from
 * `ranges`, one per calibrated value), int8 weights for its integer convolutions, float weights
 * for the rest. Inputs and outputs as the export's: image → logits and mask (see `argmax`).
 */
export function compileQuantized(plan: QuantPlan, ranges: ReadonlyMap<string, ValueRange>, opts: QuantizedGraphOptions = {}): Uint8Array {
  const { arch } = plan;
  const g = new GraphBuilder(`${arch.name}-int8`);
  g.input(arch.input, 'float32', ['N', 3, 'H', 'W']);
  const pad = (opts.padToStride ?? true) && arch.stride > 1;
  const inner = (v: string): string => (pad && (v === arch.input || v === arch.output) ? `${v}_padded` : v);
  const qset = new Set(plan.quantized);
  const read = (v: string): string => (qset.has(v) ? inner(v) + DQ : inner(v));
  const params = new Map<string, ActivationQuant>();
  const quantOf = (v: string): ActivationQuant => {
    const own = plan.sharesWith.get(v) ?? v;
    let p = params.get(own);
    if (!p) {
      const r = ranges.get(own);
      if (!r) throw new Error(`quantisation: no calibrated range for '${own}'`);
      p = activationQuant(r);
      params.set(own, p);
    }
    return p;
  };
  const qdq = (v: string): void => {
    const p = quantOf(v);
    const s = g.constant(p.scale);
    const z = g.constant(p.zeroPoint, 'uint8');
    const q = g.node('QuantizeLinear', [inner(v), s, z], {}, `${inner(v)}:q`);
    g.node('DequantizeLinear', [q, s, z], {}, inner(v) + DQ);
  };
  const hw = pad ? emitPadToStride(g, arch.input, arch.stride, inner(arch.input)) : '';
  if (qset.has(arch.input)) qdq(arch.input);
  const float = floatContext(g, plan);
  const qmax = opts.reduceRange ?? true ? 63 : 127;
  for (const layer of plan.layers) {
    const l = renameInputs(layer, read);
    l.output = inner(layer.output);
    if (l.op === 'conv' && plan.intConvs.has(l.name)) {
      const sx = quantOf((layer as ConvLayer).input).scale;
      kindOf(l).emitEval({ ...float, param: (name) => intParam(g, plan, l, name, sx, qmax) }, l);
    } else {
      kindOf(l).emitEval(float, l);
    }
    if (qset.has(layer.output)) qdq(layer.output);
  }
  if (pad) emitCropBack(g, inner(arch.output), hw, arch.output);
  g.output(arch.output, 'float32', ['N', arch.numClasses, 'H', 'W']);
  if (opts.argmax ?? true) {
    g.node('ArgMax', [arch.output], { axis: 1, keepdims: 0 }, 'mask');
    g.output('mask', 'int64', ['N', 'H', 'W']);
  }
  return g.encode(`${arch.name}, ${arch.numClasses} classes, int8 (QDQ)`, opts.metadata);
}

/** An integer convolution's weight (int8, per channel) or bias (int32, scale s_x·s_w), dequantised. */
function intParam(g: GraphBuilder, plan: QuantPlan, conv: ConvLayer, name: string, inputScale: number, qmax: number): string {
  const w = plan.weights.get(`${conv.name}.weight`)!;
  const { q, scale } = quantizeWeightsPerChannel(w, conv.outChannels, qmax);
  if (name === `${conv.name}.weight`) {
    const qName = g.initializer(`${name}:q`, 'int8', plan.shapes.get(name)!, q);
    const s = g.initializer(`${name}:scale`, 'float32', [conv.outChannels], scale);
    const z = g.initializer(`${name}:zero`, 'int8', [conv.outChannels], new Int8Array(conv.outChannels));
    return g.node('DequantizeLinear', [qName, s, z], { axis: 0 }, `${name}${DQ}`);
  }
  if (name === `${conv.name}.bias`) {
    const b = plan.weights.get(name)!;
    const bs = new Float32Array(conv.outChannels);
    const bq = new Int32Array(conv.outChannels);
    for (let o = 0; o < conv.outChannels; o++) {
      bs[o] = inputScale * scale[o]!;
      bq[o] = Math.max(-(2 ** 31) + 1, Math.min(2 ** 31 - 1, Math.round(b[o]! / bs[o]!)));
    }
    const qName = g.initializer(`${name}:q`, 'int32', [conv.outChannels], bq);
    const s = g.initializer(`${name}:scale`, 'float32', [conv.outChannels], bs);
    return g.node('DequantizeLinear', [qName, s], { axis: 0 }, `${name}${DQ}`);
  }
  throw new Error(`quantisation: ${conv.name} has no parameter '${name}'`);
}
