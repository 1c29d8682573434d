// What a training run saves beside its weights so that `--resume` continues exactly where it
// stopped: the options that define the run, the last completed epoch, the data RNG's state at that
// epoch boundary, the per-epoch history (metrics.jsonl and curves.png are rebuilt from it) and the
// best epoch so far. It travels as one JSON string in the checkpoint's metadata under TRAIN_STATE_KEY;
// the momentum buffers travel as extra tensors named MOMENTUM_PREFIX + parameter name.
import { FcnError } from '../util/errors.js';
import type { FcnVariant } from '../model/fcn.js';
import type { TensorMap } from '../model/params.js';
import type { SmallImages } from '../data/batches.js';

export const TRAIN_STATE_KEY = 'fcn.train';
export const TRAIN_STATE_VERSION = 1;
export const MOMENTUM_PREFIX = 'momentum.';

/** The options that define a run: saved in every checkpoint and compared on resume. */
export interface RunConfig {
  /** Absolute path of the dataset folder as given (resolved). */
  data: string;
  variant: FcnVariant;
  numClasses: number;
  /** Total epochs planned; the only setting a resume may change (to train longer). */
  epochs: number;
  batchSize: number;
  /** [height, width] of the random training crops. */
  crop: [number, number];
  lr: number;
  /** 'constant' or 'poly' (decays over `epochs`, so a poly run's epochs cannot change on resume). */
  lrSchedule: 'constant' | 'poly';
  weightDecay: number;
  momentum: number;
  freezeBackbone: boolean;
  seed: number;
  small: SmallImages;
  flip: boolean;
  /** Val images scored each epoch (null: the whole split). */
  evalLimit: number | null;
  /** Where the starting weights came from (informative; not compared on resume). */
  init: string;
}

/** Settings that may differ between the interrupted run and its resume. */
const RESUMABLE_CHANGES: ReadonlySet<keyof RunConfig> = new Set<keyof RunConfig>(['epochs', 'init']);

/** One line of metrics.jsonl: the book's train_ch13 numbers for one epoch, plus val mIoU and timings. */
export interface EpochMetrics {
  epoch: number;
  epochs: number;
  /** Mean loss per training example (sum of per-image mean cross-entropies / examples). */
  loss: number;
  /** Pixel accuracy on the training crops (correct / labelled pixels). */
  trainAccuracy: number;
  /** Pixel accuracy on the val split, full images (the book's "test acc"). */
  testAccuracy: number;
  /** Mean IoU on the val split, full images. */
  testMeanIoU: number;
  /** Training examples seen this epoch. */
  examples: number;
  /** Training throughput (steps and data waits; evaluation excluded, as the book times it). */
  examplesPerSecond: number;
  trainSeconds: number;
  evalSeconds: number;
  /** Val images scored. */
  testImages: number;
  threads: number;
  /** This epoch set a new best val mIoU (best.safetensors was written). */
  best: boolean;
}

export interface TrainState {
  version: number;
  /** Epochs completed. */
  epoch: number;
  /** The data RNG's state after `epoch` epochs (Rng.getState()). */
  rng: number[];
  config: RunConfig;
  history: EpochMetrics[];
  best: { epoch: number; testMeanIoU: number } | null;
}

export function encodeTrainState(state: TrainState): Record<string, string> {
  return { [TRAIN_STATE_KEY]: JSON.stringify(state) };
}

/** Reads the training state from a checkpoint's metadata; `source` names the file in errors. */
export function decodeTrainState(metadata: Record<string, string> | undefined, source: string): TrainState {
  const text = metadata?.[TRAIN_STATE_KEY];
  if (text === undefined) {
    throw new FcnError(`${source}: no training state in this checkpoint (expected metadata '${TRAIN_STATE_KEY}' written by fcn train)`);
  }
  let state: TrainState;
  try {
    state = JSON.parse(text) as TrainState;
  } catch {
    throw new FcnError(`${source}: training state '${TRAIN_STATE_KEY}' is not valid JSON`);
  }
  if (state?.version !== TRAIN_STATE_VERSION) {
    throw new FcnError(`${source}: training state version ${String(state?.version)} (expected ${TRAIN_STATE_VERSION})`);
  }
  const ok = Number.isInteger(state.epoch) && state.epoch >= 1 && Array.isArray(state.rng) && state.rng.length === 4 &&
    typeof state.config === 'object' && state.config !== null && Array.isArray(state.history) && state.history.length === state.epoch;
  if (!ok) throw new FcnError(`${source}: training state is incomplete (expected epoch, rng, config and one history entry per epoch)`);
  return state;
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Throws a one-line error naming the first setting that differs between the saved run and the
 * requested resume (flag names as the CLI spells them), so a resume never silently changes the run.
 */
export function checkResumable(saved: RunConfig, requested: RunConfig, source: string): void {
  const flag: Record<keyof RunConfig, string> = {
    data: '--data', variant: '--variant', numClasses: 'classes', epochs: '--epochs', batchSize: '--batch-size', crop: '--crop',
    lr: '--lr', lrSchedule: '--lr-schedule', weightDecay: '--wd', momentum: '--momentum', freezeBackbone: '--freeze-backbone', seed: '--seed', small: '--small',
    flip: '--flip', evalLimit: '--eval-limit', init: '--init/--backbone',
  };
  for (const key of Object.keys(flag) as (keyof RunConfig)[]) {
    if (RESUMABLE_CHANGES.has(key) && !(key === 'epochs' && saved.lrSchedule === 'poly')) continue;
    if (!same(saved[key], requested[key])) {
      const show = (v: unknown) => (key === 'crop' && Array.isArray(v) ? `${v[0]}x${v[1]}` : JSON.stringify(v));
      throw new FcnError(
        `${source}: cannot resume: ${flag[key]} was ${show(saved[key])} in the saved run but is ${show(requested[key])} now (pass the same options, or start a new run with another --out)`,
      );
    }
  }
}

/** Momentum buffers as checkpoint extras (names prefixed) and back. */
export function momentumToExtra(buffers: TensorMap | undefined): TensorMap {
  const out: TensorMap = new Map();
  if (buffers) for (const [name, t] of buffers) out.set(MOMENTUM_PREFIX + name, t);
  return out;
}

export function momentumFromExtra(extra: TensorMap | undefined): TensorMap | undefined {
  if (!extra) return undefined;
  const out: TensorMap = new Map();
  for (const [name, t] of extra) if (name.startsWith(MOMENTUM_PREFIX)) out.set(name.slice(MOMENTUM_PREFIX.length), t);
  return out.size > 0 ? out : undefined;
}

/** metrics.jsonl's content for a history: one JSON object per epoch, one per line. */
export function metricsJsonl(history: readonly EpochMetrics[]): string {
  return history.map((m) => JSON.stringify(m)).join('\n') + (history.length > 0 ? '\n' : '');
}
