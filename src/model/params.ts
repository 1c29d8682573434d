// Parameters derived from the declaration: names (torchvision's for the body, so ImageNet weights
// load by name), shapes, which are trained, and fresh initial values as PyTorch would make them.
import type { FcnArchitecture } from './fcn.js';
import type { ParamLayer } from './layers.js';
import { bilinearKernel } from './bilinear.js';

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

export function paramLayers(arch: FcnArchitecture): { layer: ParamLayer; backbone: boolean }[] {
  const out: { layer: ParamLayer; backbone: boolean }[] = [];
  arch.layers.forEach((layer, i) => {
    if (layer.op === 'conv' || layer.op === 'batchnorm' || layer.op === 'convtranspose') out.push({ layer, backbone: i <= arch.backboneEnd });
  });
  return out;
}

/** All parameters and buffers in state_dict order (as PyTorch's module would list them). */
export function fcnParameters(arch: FcnArchitecture): ParamSpec[] {
  const specs: ParamSpec[] = [];
  for (const { layer, backbone } of paramLayers(arch)) {
    const add = (suffix: string, shape: number[], role: ParamRole, trainable = true) =>
      specs.push({ name: `${layer.name}.${suffix}`, shape, role, layer, backbone, trainable });
    if (layer.op === 'conv') {
      add('weight', [layer.outChannels, layer.inChannels, layer.kernel, layer.kernel], 'weight');
      if (layer.bias) add('bias', [layer.outChannels], 'bias');
    } else if (layer.op === 'convtranspose') {
      add('weight', [layer.inChannels, layer.outChannels, layer.kernel, layer.kernel], 'weight');
      if (layer.bias) add('bias', [layer.outChannels], 'bias');
    } else {
      add('weight', [layer.channels], 'bn_weight');
      add('bias', [layer.channels], 'bn_bias');
      add('running_mean', [layer.channels], 'running_mean', false);
      add('running_var', [layer.channels], 'running_var', false);
    }
  }
  return specs;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** A named set of float32 tensors (weights, gradients, optimizer state). */
export type TensorMap = Map<string, Float32Array>;

/** A small seeded generator (mulberry32) so fresh networks are reproducible without a runtime. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(random: () => number): number {
  // Box-Muller; 1 - u keeps log away from 0
  const u = 1 - random();
  const v = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/**
 * Fresh parameters as PyTorch initialises them: torchvision ResNet convs kaiming_normal_(fan_out,
 * relu), BN weight 1 / bias 0 / running mean 0 / var 1, 1x1 scoring convs PyTorch's Conv2d default
 * (uniform ±1/sqrt(fan_in) for weight and bias), transposed convs bilinearKernel with the default bias.
 */
export function initParameters(arch: FcnArchitecture, random: () => number = seededRandom(0)): TensorMap {
  const out: TensorMap = new Map();
  for (const spec of fcnParameters(arch)) {
    const n = numel(spec.shape);
    const t = new Float32Array(n);
    const layer = spec.layer;
    if (spec.role === 'bn_weight' || spec.role === 'running_var') t.fill(1);
    else if (spec.role === 'bn_bias' || spec.role === 'running_mean') t.fill(0);
    else if (layer.op === 'convtranspose') {
      if (spec.role === 'weight') t.set(bilinearKernel(layer.inChannels, layer.outChannels, layer.kernel));
      else {
        // PyTorch computes ConvTranspose's fan_in from weight.size(1) * k * k
        const bound = 1 / Math.sqrt(layer.outChannels * layer.kernel * layer.kernel);
        for (let i = 0; i < n; i++) t[i] = (random() * 2 - 1) * bound;
      }
    } else if (layer.op === 'conv' && layer.init === 'zeros') {
      t.fill(0);
    } else if (layer.op === 'conv') {
      const fanIn = layer.inChannels * layer.kernel * layer.kernel;
      if (layer.init === 'kaiming_fan_out' && spec.role === 'weight') {
        const std = Math.sqrt(2 / (layer.outChannels * layer.kernel * layer.kernel));
        for (let i = 0; i < n; i++) t[i] = gaussian(random) * std;
      } else {
        // kaiming_uniform_(a=sqrt(5)) gives bound 1/sqrt(fan_in) for the weight; the bias uses the same bound
        const bound = 1 / Math.sqrt(fanIn);
        for (let i = 0; i < n; i++) t[i] = (random() * 2 - 1) * bound;
      }
    }
    out.set(spec.name, t);
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
