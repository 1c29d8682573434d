// What a training run saves beside its weights so that `--resume` continues exactly where it
// stopped: the options that define the run, the last completed epoch, the data RNG's state at that
// epoch boundary, the per-epoch history (metrics.jsonl and curves.png are rebuilt from it) and the
// best epoch so far. It travels as one JSON string in the checkpoint's metadata under TRAIN_STATE_KEY;
// the optimiser's state travels as extra tensors: per slot '<slot>.<parameter>' (SGD's momentum
// buffers: MOMENTUM_PREFIX + parameter; AdamW's 'exp_avg.' and 'exp_avg_sq.'), and AdamW's update count
// as OPTIMIZER_STEP_KEY (one float32: exact to 2^24 updates).
import { FcnError } from '../util/errors.js';
import type { TensorMap } from '../model/params.js';
import type { OptimizerSlot } from '../graph/train.js';
import type { OptimizerState } from './step.js';
import { TRAIN_OPTIONS, type OptionNamer, type TrainOptionKey, type TrainSettings } from './options.js';

export const TRAIN_STATE_KEY = 'fcn.train';
export const TRAIN_STATE_VERSION = 1;
export const MOMENTUM_PREFIX = 'momentum.';
export const OPTIMIZER_STEP_KEY = 'optimizer.step';
const SLOTS: readonly OptimizerSlot[] = ['momentum', 'exp_avg', 'exp_avg_sq'];

type RunKey = { [K in TrainOptionKey]: (typeof TRAIN_OPTIONS)[K]['role'] extends 'invocation' ? never : K }[TrainOptionKey];

/**
 * The settings that define a run (options.ts: role 'run' or 'extendable'), saved in every
 * checkpoint and compared on resume, plus the network's class count and where the starting
 * weights came from ('scratch', 'imagenet:<file>', 'checkpoint:<file>'; informative, not compared).
 */
export type RunConfig = Pick<TrainSettings, RunKey> & { numClasses: number; init: string };

/** The RunConfig of resolved settings (the keys the table marks as defining the run). */
export function runConfig(s: TrainSettings, numClasses: number, init: string): RunConfig {
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(TRAIN_OPTIONS)) if (spec.role !== 'invocation') out[key] = s[key as TrainOptionKey];
  return { ...(out as Pick<TrainSettings, RunKey>), numClasses, init };
}

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
  /** The best val mIoU so far and its epoch (decides whether an epoch is a new best). */
  best: BestEpoch | null;
  /**
   * The epoch whose weights best.safetensors holds. Equal to `best` except after a repair that
   * could not restore `best`'s weights (see checkpoints.ts); absent in older files (= best).
   */
  bestFile?: BestEpoch | null;
}

export interface BestEpoch {
  epoch: number;
  testMeanIoU: number;
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
 * requested resume, so a resume never silently changes the run. Only 'extendable' settings may
 * change, and `epochs` not under a poly schedule (it decays over the planned epochs).
 */
export function checkResumable(saved: RunConfig, requested: RunConfig, source: string, name: OptionNamer = (k) => k): void {
  const keys = [...(Object.keys(TRAIN_OPTIONS) as TrainOptionKey[]), 'numClasses'] as const;
  for (const key of keys) {
    if (key !== 'numClasses' && TRAIN_OPTIONS[key].role === 'invocation') continue;
    if (key !== 'numClasses' && TRAIN_OPTIONS[key].role === 'extendable' && !(key === 'epochs' && saved.lrSchedule === 'poly')) continue;
    const k = key as keyof RunConfig;
    // a setting added after the run was saved is not compared
    if (!(k in saved) && requested[k] === TRAIN_OPTIONS[key as TrainOptionKey]?.default) continue;
    if (!same(saved[k], requested[k])) {
      const show = (v: unknown) => (key === 'crop' && Array.isArray(v) ? `${v[0]}x${v[1]}` : JSON.stringify(v));
      const what = key === 'numClasses' ? 'the number of classes' : name(key);
      throw new FcnError(
        `${source}: cannot resume: ${what} was ${show(saved[k])} in the saved run but is ${show(requested[k])} now (pass the same options, or start a new run in another output folder)`,
      );
    }
  }
}

/** The optimiser's state as checkpoint extras ('<slot>.<parameter>', and AdamW's update count, which its bias correction needs) and back. */
export function optimizerToExtra(state: OptimizerState | undefined): TensorMap {
  const out: TensorMap = new Map();
  if (!state) return out;
  for (const [slot, buffers] of state.slots) for (const [name, t] of buffers) out.set(`${slot}.${name}`, t);
  if (state.slots.has('exp_avg')) out.set(OPTIMIZER_STEP_KEY, Float32Array.of(state.step));
  return out;
}

/** The optimiser state in a checkpoint's extras; undefined when it has none (a run without momentum, or not a run's checkpoint). */
export function optimizerFromExtra(extra: TensorMap | undefined): OptimizerState | undefined {
  if (!extra) return undefined;
  const slots = new Map<OptimizerSlot, TensorMap>();
  for (const [name, t] of extra) {
    const slot = SLOTS.find((s) => name.startsWith(`${s}.`));
    if (!slot) continue;
    if (!slots.has(slot)) slots.set(slot, new Map());
    slots.get(slot)!.set(name.slice(slot.length + 1), t);
  }
  if (slots.size === 0) return undefined;
  const step = extra.get(OPTIMIZER_STEP_KEY)?.[0] ?? 0;
  return { slots, step };
}

/** metrics.jsonl's content for a history: one JSON object per epoch, one per line. */
export function metricsJsonl(history: readonly EpochMetrics[]): string {
  return history.map((m) => JSON.stringify(m)).join('\n') + (history.length > 0 ? '\n' : '');
}

/**
 * The state after `m`'s epoch: its metrics appended to the history; a new best (m.best) becomes
 * both the best epoch and the one best.safetensors is to hold.
 */
export function recordEpoch(prev: TrainState | undefined, config: RunConfig, m: EpochMetrics, rng: number[]): TrainState {
  const history = [...(prev?.history ?? []), m];
  const top = { epoch: m.epoch, testMeanIoU: m.testMeanIoU };
  const best = m.best ? top : prev?.best ?? null;
  const bestFile = m.best ? top : prev?.bestFile !== undefined ? prev.bestFile : best;
  return { version: TRAIN_STATE_VERSION, epoch: m.epoch, rng, config, history, best, bestFile };
}
