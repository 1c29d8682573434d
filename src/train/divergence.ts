// The divergence check: a non-finite loss after a step, or a non-finite weight after an epoch, stops
// the run before anything of that epoch is written, so the last checkpoint keeps the last good epoch.
import type { TensorMap } from '../model/params.js';
import { FcnError } from '../util/errors.js';
import type { OptionNamer } from './options.js';

/** The name of the first tensor holding a NaN or an infinity, or undefined when all are finite. */
export function firstNonFinite(weights: TensorMap): string | undefined {
  for (const [name, t] of weights) {
    for (let i = 0; i < t.length; i++) if (!Number.isFinite(t[i]!)) return name;
  }
  return undefined;
}

export interface DivergenceContext {
  epoch: number;
  lr: number;
  /** The checkpoint that stays as it was (named in the message). */
  lastFile: string;
  name: OptionNamer;
}

function diverged(what: string, c: DivergenceContext): FcnError {
  const kept = c.epoch > 1 ? `${c.lastFile} still holds epoch ${c.epoch - 1}` : 'no checkpoint was written';
  return new FcnError(`training diverged: ${what} (the learning rate, ${c.name('lr')} ${c.lr}, is probably too large); ${kept}`);
}

/** Throws when a step's loss is not finite. */
export function checkLoss(loss: number, batch: number, c: DivergenceContext): void {
  if (!Number.isFinite(loss)) throw diverged(`the loss became ${loss} at epoch ${c.epoch}, batch ${batch}`, c);
}

/** Throws when a weight is no longer finite after an epoch. */
export function checkWeights(weights: TensorMap, c: DivergenceContext): void {
  const bad = firstNonFinite(weights);
  if (bad !== undefined) throw diverged(`weight '${bad}' is no longer finite after epoch ${c.epoch}`, c);
}
