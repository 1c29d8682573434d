// Parameters derived from the declaration: names (torchvision's for the body, so ImageNet weights
// load by name), shapes, which are trained, and fresh initial values as PyTorch would make them.
import type { FcnArchitecture } from './fcn.js';
import type { ParamLayer } from './layers.js';
// Each layer kind declares its parameters and initialiser in its module (src/graph/ops/); this file
// only walks the declaration. (The kinds import nothing from here at run time.)
import { kindOf, type ParamDecl } from '../graph/ops/index.js';

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
    if (kindOf(layer).params(layer).length > 0) out.push({ layer: layer as ParamLayer, backbone: i <= arch.backboneEnd });
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
    for (const decl of kindOf(layer).params(layer)) {
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

/**
 * Fresh parameters as PyTorch initialises them (each kind's initialiser, see src/graph/ops/): torchvision
 * ResNet convs kaiming_normal_(fan_out, relu), BN weight 1 / bias 0 / running mean 0 / var 1, 1x1
 * scoring convs PyTorch's Conv2d default (uniform ±1/sqrt(fan_in) for weight and bias), transposed
 * convs bilinearKernel with the default bias. Draws from `random` in state_dict order.
 */
export function initParameters(arch: FcnArchitecture, random: () => number = seededRandom(0)): TensorMap {
  const out: TensorMap = new Map();
  for (const spec of paramDecls(arch)) out.set(spec.name, spec.decl.init(random));
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
