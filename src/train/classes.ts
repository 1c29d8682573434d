// Starting a network with other classes from a checkpoint (`init` with another label space): the
// body and every layer whose shape does not depend on the class count keep their trained weights;
// the class layers (the 1x1 scoring convolutions and the transposed convolutions, whose shapes
// hold the class count) take the fresh network's initialisation (bilinear for the upsamplers).
import { fcnParameters, type TensorMap } from '../model/params.js';
import type { FcnArchitecture } from '../model/fcn.js';

export interface AdaptedWeights {
  weights: TensorMap;
  /** Parameters taken from the fresh initialisation, in declaration order. */
  reinitialised: string[];
}

/**
 * The checkpoint's weights where their shape fits `arch`, the fresh ones elsewhere. `from`, the
 * checkpoint's architecture, compares whole shapes (a grouped upsampler [C, 1, k, k] can have as many
 * values as a full one of fewer classes); without it, the sizes.
 */
export function adaptClassLayers(checkpoint: TensorMap, arch: FcnArchitecture, fresh: TensorMap, from?: FcnArchitecture): AdaptedWeights {
  const weights: TensorMap = new Map();
  const reinitialised: string[] = [];
  const oldShapes = from ? new Map(fcnParameters(from).map((s) => [s.name, s.shape.join('x')])) : undefined;
  for (const spec of fcnParameters(arch)) {
    const size = spec.shape.reduce((a, b) => a * b, 1);
    const old = checkpoint.get(spec.name);
    const fits = old !== undefined && old.length === size && (oldShapes === undefined || oldShapes.get(spec.name) === spec.shape.join('x'));
    if (fits) {
      weights.set(spec.name, old);
    } else {
      weights.set(spec.name, fresh.get(spec.name)!);
      reinitialised.push(spec.name);
    }
  }
  return { weights, reinitialised };
}
