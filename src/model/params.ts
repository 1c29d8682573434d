// Parameters derived from the declaration: each layer kind's parameters and buffers (PARAMS), their
// names (torchvision's, so its weights load by name), shapes, which are trained, and fresh initial
// values as PyTorch would make them.
import type { FcnArchitecture } from './fcn.js';
import type { Layer, ConvLayer, BatchNormLayer, ConvTransposeLayer, ParamLayer } from './layers.js';
import { bilinearKernel, groupedBilinearKernel } from './bilinear.js';

export type ParamRole = 'weight' | 'bias' | 'bn_weight' | 'bn_bias' | 'running_mean' | 'running_var';

export interface ParamSpec {
  name: string;
  shape: number[];
  role: ParamRole;
  /** The layer that owns it. */
  layer: ParamLayer;
  /** Part of the ResNet body (frozen with --freeze-backbone). */
  backbone: boolean;
  /** Running statistics are state, not trained parameters. */
  trainable: boolean;
}

/** One parameter or buffer of a layer: `${layer.name}.${suffix}`. */
export interface ParamDecl {
  suffix: string;
  shape: number[];
  role: ParamRole;
  /** Running statistics are state, not trained parameters. */
  trainable: boolean;
  /** Fresh values as PyTorch initialises them, drawing from `random` (uniform [0, 1)). */
  init(random: () => number): Float32Array;
  /** How many values init draws from `random` (so a tensor's draws can start where the whole sequence would have them: initParametersOf). */
  draws: number;
}

/** A standard normal draw (Box-Muller; 1 − u keeps log away from 0). */
function gaussian(random: () => number): number {
  const u = 1 - random();
  const v = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** n values uniform in (−bound, bound): kaiming_uniform_(a=√5) and the default bias both give bound 1/√fan_in. */
function uniform(n: number, bound: number, random: () => number): Float32Array {
  const t = new Float32Array(n);
  const seeded = SEEDED.get(random);
  if (seeded) {
    // seededRandom's steps inline, as in normal()
    let a = seeded.a;
    for (let i = 0; i < n; i++) {
      a = (a + MULBERRY32_STEP) >>> 0;
      t[i] = (mulberry32(a) * 2 - 1) * bound;
    }
    seeded.a = a;
    return t;
  }
  for (let i = 0; i < n; i++) t[i] = (random() * 2 - 1) * bound;
  return t;
}

/** n values N(0, std²): kaiming_normal_(mode='fan_out', nonlinearity='relu') has std √(2/fan_out). */
function normal(n: number, std: number, random: () => number): Float32Array {
  const t = new Float32Array(n);
  const seeded = SEEDED.get(random);
  if (seeded) {
    // gaussian(random) with seededRandom's steps inline: the same values, the state kept in a local
    let a = seeded.a;
    for (let i = 0; i < n; i++) {
      a = (a + MULBERRY32_STEP) >>> 0;
      const u = 1 - mulberry32(a);
      a = (a + MULBERRY32_STEP) >>> 0;
      t[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * mulberry32(a)) * std;
    }
    seeded.a = a;
    return t;
  }
  for (let i = 0; i < n; i++) t[i] = gaussian(random) * std;
  return t;
}

const filled = (n: number, value: number) => (): Float32Array => new Float32Array(n).fill(value);

function convParams(layer: ConvLayer): ParamDecl[] {
  const k = layer.kernel;
  const groups = layer.groups ?? 1;
  const shape = [layer.outChannels, layer.inChannels / groups, k, k];
  // PyTorch's fans come from the weight's shape: fan_in = in/groups·k², fan_out = out·k²
  const fanIn = shape[1]! * k * k;
  const fanOut = layer.outChannels * k * k;
  const n = numel(shape);
  const weightInit = layer.init === 'zeros' ? filled(n, 0)
    : layer.init === 'kaiming_fan_out' ? (r: () => number) => normal(n, Math.sqrt(2 / fanOut), r)
      : (r: () => number) => uniform(n, 1 / Math.sqrt(fanIn), r);
  const weightDraws = layer.init === 'zeros' ? 0 : layer.init === 'kaiming_fan_out' ? 2 * n : n; // a normal draw takes two uniforms
  const list: ParamDecl[] = [{ suffix: 'weight', shape, role: 'weight', trainable: true, init: weightInit, draws: weightDraws }];
  if (layer.bias) {
    const c = layer.outChannels;
    // torchvision's own initialisation (kaiming_fan_out: MobileNetV3's squeeze-and-excitation) zeroes biases
    const drawn = layer.init === 'pytorch_default';
    list.push({ suffix: 'bias', shape: [c], role: 'bias', trainable: true, init: drawn ? (r) => uniform(c, 1 / Math.sqrt(fanIn), r) : filled(c, 0), draws: drawn ? c : 0 });
  }
  return list;
}

function batchNormParams(layer: BatchNormLayer): ParamDecl[] {
  const c = layer.channels;
  return [
    { suffix: 'weight', shape: [c], role: 'bn_weight', trainable: true, init: filled(c, 1), draws: 0 },
    { suffix: 'bias', shape: [c], role: 'bn_bias', trainable: true, init: filled(c, 0), draws: 0 },
    { suffix: 'running_mean', shape: [c], role: 'running_mean', trainable: false, init: filled(c, 0), draws: 0 },
    { suffix: 'running_var', shape: [c], role: 'running_var', trainable: false, init: filled(c, 1), draws: 0 },
  ];
}

function convTransposeParams(layer: ConvTransposeLayer): ParamDecl[] {
  const { inChannels: Cin, outChannels: Cout, kernel: k } = layer;
  const groups = layer.groups ?? 1;
  // grouped: every channel's own [1, k, k] filter is the bilinear one, as the full kernel's diagonal
  const init = groups === 1 ? () => bilinearKernel(Cin, Cout, k) : () => groupedBilinearKernel(Cin, Cout / groups, k);
  const list: ParamDecl[] = [{ suffix: 'weight', shape: [Cin, Cout / groups, k, k], role: 'weight', trainable: true, init, draws: 0 }];
  // PyTorch computes ConvTranspose's fan_in from weight.size(1)·k²
  if (layer.bias) list.push({ suffix: 'bias', shape: [Cout], role: 'bias', trainable: true, init: (r) => uniform(Cout, 1 / Math.sqrt(Cout * k * k), r), draws: Cout });
  return list;
}

const none = (): ParamDecl[] => [];

/**
 * Each kind's parameters and buffers in state_dict order, with their initialisers (the declaration's
 * side of a kind; its compilation is src/graph/ops/<kind>.ts). Every kind has an entry.
 */
const PARAMS: { [K in Layer['op']]: (layer: Extract<Layer, { op: K }>) => ParamDecl[] } = {
  conv: convParams,
  batchnorm: batchNormParams,
  convtranspose: convTransposeParams,
  relu: none, maxpool: none, add: none, resize: none, globalavgpool: none, concat: none, dropout: none,
  hardswish: none, hardsigmoid: none, sigmoid: none, mul: none,
};

/** The parameters and buffers `layer` owns. */
export function layerParams(layer: Layer): ParamDecl[] {
  return (PARAMS[layer.op] as (l: Layer) => ParamDecl[])(layer);
}

export function paramLayers(arch: FcnArchitecture): { layer: ParamLayer; backbone: boolean }[] {
  const out: { layer: ParamLayer; backbone: boolean }[] = [];
  arch.layers.forEach((layer, i) => {
    if (layerParams(layer).length > 0) out.push({ layer: layer as ParamLayer, backbone: i <= arch.backboneEnd });
  });
  return out;
}

/** All parameters and buffers in state_dict order (as PyTorch's module would list them); each kind declares its own. */
export function fcnParameters(arch: FcnArchitecture): ParamSpec[] {
  return paramDecls(arch).map(({ decl, ...spec }) => spec);
}

function paramDecls(arch: FcnArchitecture): (ParamSpec & { decl: ParamDecl })[] {
  const specs: (ParamSpec & { decl: ParamDecl })[] = [];
  for (const { layer, backbone } of paramLayers(arch)) {
    for (const decl of layerParams(layer)) {
      specs.push({ name: `${layer.name}.${decl.suffix}`, shape: decl.shape, role: decl.role, layer, backbone, trainable: decl.trainable, decl });
    }
  }
  return specs;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** A named set of float32 tensors (weights, gradients, optimizer state). */
export type TensorMap = Map<string, Float32Array>;

/** mulberry32's state advances by this constant per draw. */
const MULBERRY32_STEP = 0x6d2b79f5;

/** mulberry32's output in [0, 1) for the (already advanced) state `a`. */
function mulberry32(a: number): number {
  let t = a;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

/** The state of each generator seededRandom made, so that normal() and uniform() can draw many values with the state in a local (~27% faster). */
const SEEDED = new WeakMap<() => number, { a: number }>();

/** A small seeded generator (mulberry32) so fresh networks are reproducible without a runtime. */
export function seededRandom(seed: number): () => number {
  const state = { a: seed >>> 0 };
  const random = (): number => {
    state.a = (state.a + MULBERRY32_STEP) >>> 0;
    return mulberry32(state.a);
  };
  SEEDED.set(random, state);
  return random;
}

/**
 * Fresh parameters as PyTorch initialises them (each kind's initialiser, PARAMS above): torchvision
 * ResNet convs kaiming_normal_(fan_out, relu), BN weight 1 / bias 0 / running mean 0 / var 1, 1x1
 * scoring convs PyTorch's Conv2d default (uniform ±1/sqrt(fan_in) for weight and bias), transposed
 * convs bilinearKernel with the default bias. Draws from `random` in state_dict order.
 */
export function initParameters(arch: FcnArchitecture, random: () => number = seededRandom(0)): TensorMap {
  const out: TensorMap = new Map();
  for (const spec of paramDecls(arch)) out.set(spec.name, spec.decl.init(random));
  return out;
}

/** seededRandom(seed) after `skip` draws: its state is seed + skip·step (mod 2³²), so any point of the sequence is reached at once. */
export function seededRandomAt(seed: number, skip: number): () => number {
  return seededRandom(((seed >>> 0) + Math.imul(skip, MULBERRY32_STEP)) >>> 0);
}

/** Each parameter's name and how many values its initialiser draws, in state_dict order. */
export function parameterDraws(arch: FcnArchitecture): { name: string; draws: number }[] {
  return paramDecls(arch).map((spec) => ({ name: spec.name, draws: spec.decl.draws }));
}

/**
 * The tensors named in `names` exactly as initParameters(arch, seededRandom(seed)) draws them: each
 * from its own point of the sequence (the draws of the parameters before it skipped), so disjoint
 * sets of names can be initialised apart (in parallel) and give the same weights.
 */
export function initParametersOf(arch: FcnArchitecture, seed: number, names: ReadonlySet<string>): TensorMap {
  const out: TensorMap = new Map();
  let offset = 0;
  for (const spec of paramDecls(arch)) {
    if (names.has(spec.name)) out.set(spec.name, spec.decl.init(seededRandomAt(seed, offset)));
    offset += spec.decl.draws;
  }
  return out;
}

/** Checks that `tensors` holds every parameter with the declared number of elements; names the first bad one. */
export function checkParameters(arch: FcnArchitecture, tensors: TensorMap, source: string): void {
  for (const spec of fcnParameters(arch)) {
    const t = tensors.get(spec.name);
    if (!t) throw new Error(`${source}: missing tensor '${spec.name}' (expected shape [${spec.shape.join(', ')}])`);
    if (t.length !== numel(spec.shape)) {
      throw new Error(`${source}: tensor '${spec.name}' has ${t.length} values, expected shape [${spec.shape.join(', ')}] (${numel(spec.shape)} values)`);
    }
  }
}
