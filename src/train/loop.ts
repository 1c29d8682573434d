// The book's train_ch13 on our engine, laid out as torchvision's reference: an epoch is
// trainOneEpoch (epoch.ts), evaluate (evaluate.ts) and saveCheckpoints (checkpoints.ts). After each
// epoch come the book's numbers (mean loss per example, train pixel accuracy) plus val pixel
// accuracy and mean IoU on full images, and atomic checkpoints (last, and best by val mIoU) that
// carry the optimizer state, the data RNG and the run's options, so a resume continues exactly as
// if never stopped. A non-finite loss or weight stops the run before anything of that epoch is
// written. The options are declared in options.ts; the saved state in state.ts.
import { openDataset } from '../data/layouts.js';
import { checkVocFiles } from '../data/dataset.js';
import { labelsFromNames } from '../data/labels.js';
import { batchesPerEpoch, prepareSplit } from '../data/batches.js';
import { Rng } from '../data/rng.js';
import { FcnError } from '../util/errors.js';
import { makeFolder } from '../util/fs.js';
import { resolveTrainOptions, trainDefaults, type OptionNamer, type TrainOptions, type TrainSettings } from './options.js';
import { optimizerToExtra, recordEpoch, runConfig, type BestEpoch, type EpochMetrics, type RunConfig, type TrainState } from './state.js';
import { startingPoint, type Start } from './start.js';
import {
  bestFileEpoch, exists, missingFolders, removeIfEmpty, removeStaleTemps, repairBest, runFiles, saveCheckpoints, type RunFiles,
} from './checkpoints.js';
import { trainOneEpoch, type EpochTraining } from './epoch.js';
import { evaluate, writeGrid, type EpochEvaluation } from './evaluate.js';
import { formatEpoch, formatStart, formatSummary } from './report.js';
import { TrainStep } from './step.js';
import type { TensorMap } from '../model/params.js';
import type { Run } from './run.js';

export type { TrainOptions } from './options.js';
export { formatEpoch } from './report.js';
export { LR_SCHEDULES, scheduledLr, type LrSchedule } from './schedule.js';

export interface TrainResult {
  out: string;
  /** Every epoch of the run, resumed ones included. */
  history: EpochMetrics[];
  /** The last epoch's metrics (undefined only when a resumed run had nothing left to do). */
  final?: EpochMetrics;
  /** The epoch best.safetensors holds (the best val mIoU; see TrainState.bestFile for the exception). */
  best: BestEpoch | null;
  /** Where the starting weights came from: 'scratch', 'imagenet:<file>', 'checkpoint:<file>' (of the original run when resumed). */
  init: string;
  /** The epoch this invocation resumed after (0 for a fresh run). */
  resumedAfter: number;
  /** Training examples per epoch, and images dropped as smaller than the crop. */
  trainExamples: number;
  dropped: number;
  /** Training throughput of this invocation (examples / training seconds). */
  examplesPerSecond: number;
  threads: number;
  files: { last: string; best: string; metrics: string; curves: string; grid?: string };
}

/** The defaults of every option (threads: this machine's cores). */
export const TRAIN_DEFAULTS = Object.freeze(trainDefaults());

/** A run ready for its first epoch: everything but the compiled step. */
interface Opened {
  run: Omit<Run, 'step'>;
  start: Start;
  config: RunConfig;
  state?: TrainState;
  dropped: number;
}

async function openRun(s: TrainSettings, o: TrainOptions, files: RunFiles): Promise<Opened> {
  const name: OptionNamer = o.optionName ?? ((k) => k);
  const log = o.log ?? (() => {});
  const labels = s.classes ? labelsFromNames(s.classes, name('classes')) : undefined;
  const openOpts = { layout: s.layout, labels, valFraction: s.valFraction };
  const trainDs = await openDataset(s.data, s.split, openOpts);
  const valDs = await openDataset(s.data, s.valSplit, { ...openOpts, defaultLabels: trainDs.labels });
  if (valDs.labels.classes.length !== trainDs.labels.classes.length) {
    throw new FcnError(`${valDs.root}: the '${s.valSplit}' split has ${valDs.labels.classes.length} classes but '${s.split}' has ${trainDs.labels.classes.length}`);
  }
  if (s.valFraction !== undefined) {
    // the held-out ids exist to be unseen: a training split that holds them (trainval) would score its own images
    const held = new Set(valDs.ids);
    const seen = trainDs.ids.filter((id) => held.has(id));
    if (seen.length > 0) {
      throw new FcnError(`${trainDs.root}: ${seen.length} of the ${held.size} held-out validation ids (e.g. '${seen[0]}') are in the '${s.split}' split too; ` +
        `train on the list they were held out of, or name a val split instead of ${name('valFraction')}`, 2);
    }
  }
  // with rescaling every image is usable: what comes out smaller than the crop is padded
  const { ids, dropped } = await prepareSplit(trainDs, s.crop, s.scale ? 'pad' : s.small);
  if (ids.length < s.batchSize) {
    const why = dropped > 0 ? ` (${dropped} of ${trainDs.ids.length} are smaller than the ${s.crop[0]}x${s.crop[1]} crop; try a smaller ${name('crop')} or ${name('small')} pad)` : '';
    throw new FcnError(`${trainDs.root}: the train split has ${ids.length} usable images, fewer than ${name('batchSize')} ${s.batchSize}${why}`);
  }
  // every file's header before the first step (as fcn eval does): a bad file late in a long split
  // fails in seconds, not an epoch in, nor (in val) after the epoch's training
  await checkVocFiles(trainDs, ids);
  await checkVocFiles(valDs, s.evalLimit !== null ? valDs.ids.slice(0, s.evalLimit) : valDs.ids);
  const start = await startingPoint(s, files.last, log, name, trainDs.labels);
  for (const n of await removeStaleTemps(s.out)) log(`removed ${n}, left in ${s.out} by a run that was stopped while writing`);
  if (!s.resume && (await exists(files.last))) {
    log(`note: ${s.out} holds an earlier run; its files are replaced as this run's epochs finish (resuming continues it instead)`);
  }
  let state = start.state;
  if (state) {
    if (s.backbone || s.init) log(`note: ${name(s.backbone ? 'backbone' : 'init')} is ignored: a resumed run continues from the weights in ${files.last}`);
    state = await repairBest(files, state, log);
    log(`resuming after epoch ${state.epoch} of ${s.epochs} from ${files.last}`);
  }
  const run = {
    settings: s, name, log, progress: o.progress ?? false, files, arch: start.arch, card: start.card, trainDs, valDs, ids,
    stepsPerEpoch: batchesPerEpoch(ids.length, s.batchSize, true), rng: state ? Rng.fromState(state.rng) : new Rng(s.seed),
  };
  return { run, start, config: runConfig(s, start.arch.numClasses, start.init), state, dropped };
}

/** The epoch's numbers as metrics.jsonl records them. */
function epochMetrics(run: Run, epoch: number, t: EpochTraining, e: EpochEvaluation, best: BestEpoch | null): EpochMetrics {
  return {
    epoch, epochs: run.settings.epochs, loss: t.lossSum / t.examples, trainAccuracy: t.valid > 0 ? t.correct / t.valid : 0,
    testAccuracy: e.testAccuracy, testMeanIoU: e.testMeanIoU, examples: t.examples, examplesPerSecond: t.examples / t.seconds,
    trainSeconds: t.seconds, evalSeconds: e.seconds, testImages: e.testImages, threads: run.settings.threads,
    best: best === null || e.testMeanIoU > best.testMeanIoU,
  };
}

/** The epochs left to do (at least one); returns the final state and weights. */
async function runEpochs(run: Run, o: TrainOptions, config: RunConfig, state: TrainState | undefined):
  Promise<{ state: TrainState; weights: TensorMap; examples: number; seconds: number }> {
  let examples = 0, seconds = 0;
  let weights: TensorMap | undefined;
  for (let epoch = (state?.epoch ?? 0) + 1; epoch <= run.settings.epochs; epoch++) {
    const t = await trainOneEpoch(run, epoch);
    const e = await evaluate(run, t.weights);
    const m = epochMetrics(run, epoch, t, e, state?.best ?? null);
    state = recordEpoch(state, config, m, run.rng.getState());
    await saveCheckpoints(run.files, {
      arch: run.arch, weights: t.weights, ...run.card, colors: run.card.colors.map((c) => [c[0], c[1], c[2]]),
      extra: optimizerToExtra(run.step.optimizerState()),
    }, state);
    weights = t.weights;
    examples += t.examples;
    seconds += t.seconds;
    run.log(formatEpoch(m));
    o.onEpoch?.(m);
  }
  return { state: state!, weights: weights!, examples, seconds };
}

/**
 * Trains the FCN (options.ts: the book's hyper-parameters by default). Writes to OUT:
 * last.safetensors and best.safetensors (by val mIoU), metrics.jsonl (one object per epoch),
 * curves.png, and at the end grid.png. Throws FcnError for a user's mistake and when the loss
 * stops being finite (the checkpoints then hold the last good epoch). A run that fails before its
 * first file is whole leaves no output folder behind.
 */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const s = resolveTrainOptions(options);
  const created = await missingFolders(s.out);
  try {
    // made before the data is read: an output path that cannot be a folder fails at once, not after an epoch
    await makeFolder(s.out);
    return await trainIn(s, options, runFiles(s.out));
  } catch (err) {
    await removeIfEmpty(created);
    throw err;
  }
}

async function trainIn(s: TrainSettings, o: TrainOptions, files: RunFiles): Promise<TrainResult> {
  const { run: opened, start, config, state, dropped } = await openRun(s, o, files);
  const result = (st: TrainState | undefined, examplesPerSecond: number): TrainResult => ({
    out: s.out, history: st?.history ?? [], final: st?.history[st.history.length - 1], best: st ? bestFileEpoch(st) : null,
    init: start.init, resumedAfter: state?.epoch ?? 0, trainExamples: opened.stepsPerEpoch * s.batchSize, dropped, examplesPerSecond,
    threads: s.threads, files: { last: files.last, best: files.best, metrics: files.metrics, curves: files.curves, grid: s.gridImages > 0 ? files.grid : undefined },
  });
  if (state && state.epoch >= s.epochs) {
    opened.log(`nothing to do: the run in ${s.out} already finished ${state.epoch} epochs (raise ${opened.name('epochs')} to train longer)`);
    return result(state, 0);
  }
  opened.log(formatStart(opened, dropped));
  const step = await TrainStep.create(start.arch, start.weights, {
    mode: s.freezeBackbone ? 'head' : 'full', batch: s.batchSize, height: s.crop[0], width: s.crop[1],
    weightDecay: s.weightDecay, momentum: s.momentum, optimizer: s.optimizer, threads: s.threads,
  }, start.optimizer);
  const run: Run = { ...opened, step };
  let done;
  try {
    done = await runEpochs(run, o, config, state);
  } finally {
    await step.dispose();
  }
  const eps = done.seconds > 0 ? done.examples / done.seconds : 0;
  for (const line of formatSummary(done.state.history[done.state.history.length - 1]!, eps, s.threads)) run.log(line);
  if (s.gridImages > 0) await writeGrid(run, done.weights);
  return result(done.state, eps);
}
