// The book's train_ch13 on our engine: epochs over shuffled random crops (the last incomplete batch
// dropped), one compiled SGD step per batch, and after each epoch the book's numbers (mean loss per
// example, train pixel accuracy) plus val pixel accuracy and mean IoU on full images. Every epoch
// ends with atomic checkpoints (last, and best by val mIoU) that carry the optimizer state, the
// data RNG and the run's options, so `resume` continues exactly as if never stopped; then
// metrics.jsonl and curves.png are rewritten from the saved history. A non-finite loss or weight
// stops the run before anything is written, so the last good checkpoint stays as it was.
import { copyFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { openVoc, readVocExample, type VocDataset } from '../data/dataset.js';
import { epochBatches, prepareSplit, batchesPerEpoch, type Batch, type SmallImages } from '../data/batches.js';
import { IGNORE_INDEX } from '../data/voc.js';
import { Rng } from '../data/rng.js';
import { writeImage } from '../data/image.js';
import { backboneHint, findCachedBackbone } from '../net/download.js';
import { fcnResNet18, FCN_VARIANTS, type FcnArchitecture, type FcnVariant } from '../model/fcn.js';
import { initParameters, seededRandom, type TensorMap } from '../model/params.js';
import { loadBackbone, loadCheckpoint, saveCheckpoint, type Checkpoint } from '../weights/checkpoint.js';
import { SegmentationModel } from '../infer/model.js';
import { defaultCard, type ModelCard } from '../model/card.js';
import { evaluate } from '../infer/evaluate.js';
import { imageGrid, labelToImage } from '../render/pictures.js';
import { Progress } from '../util/progress.js';
import { FcnError, UsageError, errorMessage } from '../util/errors.js';
import { writeFileAtomic } from '../util/fs.js';
import { LabelRangeError, TrainStep, type StepResult } from './step.js';
import { writeCurves } from '../render/curves.js';
import {
  checkResumable, decodeTrainState, encodeTrainState, metricsJsonl, momentumFromExtra, momentumToExtra,
  type EpochMetrics, type RunConfig, type TrainState,
} from './state.js';

export interface TrainOptions {
  /** VOC root (or a folder holding VOCdevkit/VOC2012): trains on the 'train' split, scores on 'val'. */
  data: string;
  /** Output folder (default 'runs/train'). */
  out?: string;
  /** Default 5 (the book's). With `resume`, the total to reach. */
  epochs?: number;
  /** Default 32 (the book's). */
  batchSize?: number;
  /** Random crop [height, width], multiples of 32 (default the book's 320x480). */
  crop?: [number, number];
  /** Default 0.001 (the book's, for the sum-over-batch loss). */
  lr?: number;
  /** Default 1e-3 (the book's). */
  weightDecay?: number;
  /** 'constant' (the book's, default) or 'poly': lr·(1 - step/steps)^0.9 over the planned epochs (torchvision's segmentation recipe). */
  lrSchedule?: LrSchedule;
  /** Default 0 (the book's plain SGD). */
  momentum?: number;
  /** Train only the head (1x1 scoring conv and transposed conv); the body keeps its weights and BN statistics. */
  freezeBackbone?: boolean;
  /** torchvision's ResNet-18 ImageNet state_dict (.pth) for the body. */
  backbone?: string;
  /** A full checkpoint to start from (its architecture and classes are used). */
  init?: string;
  /** Start from random weights even when ImageNet weights are cached. */
  scratch?: boolean;
  /** Continue the run saved in OUT/last.safetensors. */
  resume?: boolean;
  /** Seeds the initial weights, the data order and the crops (default 0). */
  seed?: number;
  /** ONNX Runtime threads (default: all cores). */
  threads?: number;
  /** Default 'fcn32s' (the book's). */
  variant?: FcnVariant;
  /** Score only the first n val images each epoch (default: all). */
  evalLimit?: number;
  /** Training images smaller than the crop: 'filter' (drop them, the book's way; default) or 'pad' (pad with ignored pixels). */
  small?: SmallImages;
  /** Mirror crops left-right at random (default false, as the book). */
  flip?: boolean;
  /** Val images shown in OUT/grid.png (default 4; 0 for none). */
  gridImages?: number;
  /** Progress bars on stderr (default false). */
  progress?: boolean;
  /** Receives the human-readable lines (summaries, notes); default: silent. */
  log?: (line: string) => void;
  /** Called after each epoch with its metrics, once its checkpoint is on disk. */
  onEpoch?: (m: EpochMetrics) => void;
}

export interface TrainResult {
  out: string;
  /** Every epoch of the run, resumed ones included. */
  history: EpochMetrics[];
  /** The last epoch's metrics (undefined only when a resumed run had nothing left to do). */
  final?: EpochMetrics;
  best: { epoch: number; testMeanIoU: number } | null;
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

export type LrSchedule = 'constant' | 'poly';
export const LR_SCHEDULES: readonly LrSchedule[] = ['constant', 'poly'];

/** The learning rate of global step `step` (0-based) of `total` under `schedule`. */
export function scheduledLr(lr: number, schedule: LrSchedule, step: number, total: number): number {
  return schedule === 'poly' ? lr * Math.pow(Math.max(0, 1 - step / total), 0.9) : lr;
}

export const TRAIN_DEFAULTS = Object.freeze({
  out: join('runs', 'train'),
  epochs: 5,
  batchSize: 32,
  crop: [320, 480] as [number, number],
  lr: 0.001,
  lrSchedule: 'constant' as LrSchedule,
  weightDecay: 1e-3,
  momentum: 0,
  seed: 0,
  variant: 'fcn32s' as FcnVariant,
  small: 'filter' as SmallImages,
  gridImages: 4,
});

const DEFAULT_NUM_CLASSES = 21;

interface Resolved extends RunConfig {
  out: string;
  threads: number;
  backbone?: string;
  initFile?: string;
  scratch: boolean;
  resume: boolean;
  gridImages: number;
}

function checkInt(name: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new UsageError(`${name} expects an integer >= ${min}, got ${v}`);
}

function checkNum(name: string, v: number, min: number): void {
  if (!Number.isFinite(v) || v < min) throw new UsageError(`${name} expects a number >= ${min}, got ${v}`);
}

function resolveOptions(o: TrainOptions): Resolved {
  if (typeof o.data !== 'string' || o.data.length === 0) throw new UsageError('--data is required (a VOC root or a folder holding VOCdevkit/VOC2012)');
  const r: Resolved = {
    data: resolve(o.data),
    out: resolve(o.out ?? TRAIN_DEFAULTS.out),
    variant: o.variant ?? TRAIN_DEFAULTS.variant,
    numClasses: DEFAULT_NUM_CLASSES,
    epochs: o.epochs ?? TRAIN_DEFAULTS.epochs,
    batchSize: o.batchSize ?? TRAIN_DEFAULTS.batchSize,
    crop: o.crop ?? TRAIN_DEFAULTS.crop,
    lr: o.lr ?? TRAIN_DEFAULTS.lr,
    lrSchedule: o.lrSchedule ?? TRAIN_DEFAULTS.lrSchedule,
    weightDecay: o.weightDecay ?? TRAIN_DEFAULTS.weightDecay,
    momentum: o.momentum ?? TRAIN_DEFAULTS.momentum,
    freezeBackbone: o.freezeBackbone ?? false,
    seed: o.seed ?? TRAIN_DEFAULTS.seed,
    small: o.small ?? TRAIN_DEFAULTS.small,
    flip: o.flip ?? false,
    evalLimit: o.evalLimit ?? null,
    init: 'scratch',
    threads: o.threads ?? Math.max(1, availableParallelism()),
    backbone: o.backbone,
    initFile: o.init,
    scratch: o.scratch ?? false,
    resume: o.resume ?? false,
    gridImages: o.gridImages ?? TRAIN_DEFAULTS.gridImages,
  };
  checkInt('--epochs', r.epochs, 1);
  checkInt('--batch-size', r.batchSize, 1);
  checkNum('--lr', r.lr, 0);
  checkNum('--wd', r.weightDecay, 0);
  checkNum('--momentum', r.momentum, 0);
  if (r.momentum >= 1) throw new UsageError(`--momentum expects a number in [0, 1), got ${r.momentum}`);
  if (!Number.isInteger(r.seed) || r.seed < 0 || r.seed > Number.MAX_SAFE_INTEGER) throw new UsageError(`--seed expects an integer >= 0, got ${r.seed}`);
  checkInt('--threads', r.threads, 1);
  checkInt('--grid', r.gridImages, 0);
  if (r.evalLimit !== null) checkInt('--eval-limit', r.evalLimit, 1);
  if (!FCN_VARIANTS.includes(r.variant)) throw new UsageError(`--variant expects one of ${FCN_VARIANTS.join(', ')}, got '${String(r.variant)}'`);
  if (!LR_SCHEDULES.includes(r.lrSchedule)) throw new UsageError(`--lr-schedule expects constant or poly, got '${String(r.lrSchedule)}'`);
  if (r.small !== 'filter' && r.small !== 'pad') throw new UsageError(`--small expects filter or pad, got '${String(r.small)}'`);
  const [ch, cw] = r.crop;
  if (!Number.isInteger(ch) || !Number.isInteger(cw) || ch < 32 || cw < 32 || ch % 32 !== 0 || cw % 32 !== 0) {
    throw new UsageError(`--crop expects HxW with both sides multiples of 32 (the FCN's stride), e.g. 320x480; got ${ch}x${cw}`);
  }
  const starts = [r.backbone && '--backbone', r.initFile && '--init', r.scratch && '--scratch'].filter(Boolean);
  if (starts.length > 1) throw new UsageError(`${starts.join(' and ')} choose different starting weights; pass one of them`);
  return r;
}

function allFinite(weights: TensorMap): string | undefined {
  for (const [name, t] of weights) {
    for (let i = 0; i < t.length; i++) if (!Number.isFinite(t[i]!)) return name;
  }
  return undefined;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Temp files of atomic writes that a killed run left behind (`.<name>.<pid>.<time>.tmp`). */
async function removeStaleTemps(out: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(out);
  } catch {
    return;
  }
  await Promise.all(names.filter((n) => /^\..+\.\d+\.\d+\.tmp$/.test(n)).map((n) => rm(join(out, n), { force: true })));
}

/** Copies a finished file under a new name without ever exposing a partial copy. */
async function copyAtomic(from: string, to: string): Promise<void> {
  const tmp = join(resolve(to, '..'), `.${basename(to)}.${process.pid}.${Date.now()}.tmp`);
  try {
    await copyFile(from, tmp);
    await rename(tmp, to);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

interface Start {
  arch: FcnArchitecture;
  weights: TensorMap;
  momentum?: TensorMap;
  meta: ModelCard;
  state?: TrainState;
  init: string;
}

async function startingPoint(r: Resolved, lastPath: string, log: (s: string) => void): Promise<Start> {
  if (r.resume) {
    if (!(await exists(lastPath))) {
      throw new FcnError(`${lastPath}: no checkpoint to resume from (start a run without --resume, or pass the --out of the run to continue)`);
    }
    const ckpt = await loadCheckpoint(lastPath);
    const state = decodeTrainState(ckpt.metadata, lastPath);
    checkResumable(state.config, { ...r, init: state.config.init, numClasses: ckpt.arch.numClasses }, lastPath);
    if (ckpt.arch.variant !== r.variant) throw new FcnError(`${lastPath}: cannot resume: the checkpoint is ${ckpt.arch.name}, not ${r.variant}`);
    return { arch: ckpt.arch, weights: ckpt.weights, momentum: momentumFromExtra(ckpt.extra), meta: metaOf(ckpt), state, init: state.config.init };
  }
  if (r.initFile) {
    const ckpt = await loadCheckpoint(r.initFile);
    if (ckpt.arch.variant !== r.variant) {
      throw new FcnError(`${r.initFile}: the checkpoint is ${ckpt.arch.name} but --variant is ${r.variant} (pass --variant ${ckpt.arch.variant})`);
    }
    log(`starting from the weights in ${r.initFile} (${ckpt.arch.name}, ${ckpt.arch.numClasses} classes)`);
    return { arch: ckpt.arch, weights: ckpt.weights, meta: metaOf(ckpt), init: `checkpoint:${resolve(r.initFile)}` };
  }
  const arch = fcnResNet18({ numClasses: r.numClasses, variant: r.variant });
  const weights = initParameters(arch, seededRandom(r.seed));
  const backbone = r.backbone ?? (r.scratch ? undefined : findCachedBackbone());
  if (backbone) {
    const body = await loadBackbone(backbone, arch);
    for (const [name, t] of body) weights.set(name, t);
    log(`starting from ImageNet weights: ${backbone}`);
    return { arch, weights, meta: defaultCard(arch.numClasses), init: `imagenet:${resolve(backbone)}` };
  }
  if (!r.scratch) log(backboneHint());
  else log('starting from random weights');
  if (r.freezeBackbone) log('note: --freeze-backbone without ImageNet weights trains the head on a random, frozen body');
  return { arch, weights, meta: defaultCard(arch.numClasses), init: 'scratch' };
}

function metaOf(ckpt: Checkpoint): ModelCard {
  return { classes: ckpt.classes, colors: ckpt.colors, normalization: ckpt.normalization };
}

/** Progress counts are whole images, rates get one decimal. */
function count(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

function fmt(x: number): string {
  return x.toFixed(3);
}

/** TrainStep's check of a mask value the network has no class for (e.g. VOC's 21 labels on a 5-class --init), naming the mask file. */
async function runStep(step: TrainStep, batch: Batch, lr: number, ds: VocDataset): Promise<StepResult> {
  try {
    return await step.run(batch.images, batch.labels, lr);
  } catch (err) {
    if (!(err instanceof LabelRangeError)) throw err;
    const id = batch.ids[Math.floor(err.index / (batch.height * batch.width))]!;
    throw new FcnError(`${ds.maskPath(id)}: label ${err.value} is not a class of the network (expected 0..${err.numClasses - 1} or ${IGNORE_INDEX} for void)`);
  }
}

/** The book's per-epoch line, plus val mIoU and the epoch's times. */
export function formatEpoch(m: EpochMetrics): string {
  return `epoch ${m.epoch}/${m.epochs}: loss ${fmt(m.loss)}, train acc ${fmt(m.trainAccuracy)}, test acc ${fmt(m.testAccuracy)}, ` +
    `test mIoU ${fmt(m.testMeanIoU)}, ${m.examplesPerSecond.toFixed(1)} examples/sec, ` +
    `train ${m.trainSeconds.toFixed(1)} s + eval ${m.evalSeconds.toFixed(1)} s${m.best ? ' (best)' : ''}`;
}

/** Predictions of a few val images as the book shows them: image, prediction and truth rows. */
async function writeGrid(path: string, model: SegmentationModel, ds: VocDataset, n: number): Promise<void> {
  const ids = ds.ids.slice(0, n);
  const images = [], preds = [], truths = [];
  for (const id of ids) {
    const ex = await readVocExample(ds, id);
    images.push(ex.image);
    preds.push(labelToImage(await model.predict(ex.image), model.meta.colors));
    truths.push(labelToImage(ex.mask, model.meta.colors));
  }
  const grid = await imageGrid([images, preds, truths], {
    rowTitles: ['image', 'prediction', 'truth'],
    columnTitles: ids,
    rowKernels: ['smooth', 'nearest', 'nearest'],
  });
  await writeImage(path, grid);
}

/**
 * Trains the FCN (see TrainOptions for the defaults: the book's hyper-parameters). Writes to OUT:
 * last.safetensors and best.safetensors (by val mIoU), metrics.jsonl (one object per epoch),
 * curves.png, and at the end grid.png. Throws FcnError for a user's mistake and when the loss
 * stops being finite (the checkpoints then hold the last good epoch).
 */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const r = resolveOptions(options);
  const log = options.log ?? (() => {});
  const files = {
    last: join(r.out, 'last.safetensors'),
    best: join(r.out, 'best.safetensors'),
    metrics: join(r.out, 'metrics.jsonl'),
    curves: join(r.out, 'curves.png'),
    grid: join(r.out, 'grid.png'),
  };
  const trainDs = await openVoc(r.data, 'train');
  const valDs = await openVoc(r.data, 'val');

  const start = await startingPoint(r, files.last, log);
  const { arch } = start;
  r.numClasses = arch.numClasses;
  r.init = start.init;
  const config: RunConfig = {
    data: r.data, variant: r.variant, numClasses: r.numClasses, epochs: r.epochs, batchSize: r.batchSize, crop: r.crop, lr: r.lr,
    lrSchedule: r.lrSchedule, weightDecay: r.weightDecay, momentum: r.momentum, freezeBackbone: r.freezeBackbone, seed: r.seed, small: r.small, flip: r.flip,
    evalLimit: r.evalLimit, init: r.init,
  };
  const history: EpochMetrics[] = start.state ? [...start.state.history] : [];
  let best = start.state?.best ?? null;
  const firstEpoch = (start.state?.epoch ?? 0) + 1;
  const rng = start.state ? Rng.fromState(start.state.rng) : new Rng(r.seed);

  if (!r.resume && (await exists(files.last))) {
    log(`note: ${r.out} holds an earlier run; its files are replaced as this run's epochs finish (--resume continues it instead)`);
  }
  if (start.state) {
    if (r.backbone || r.initFile) log(`note: ${r.backbone ? '--backbone' : '--init'} is ignored: a resumed run continues from the weights in ${files.last}`);
    await removeStaleTemps(r.out);
    log(`resuming after epoch ${start.state.epoch} of ${r.epochs} from ${files.last}`);
  }
  const result = (epsSum: number): TrainResult => ({
    out: r.out, history, final: history[history.length - 1], best, init: r.init, resumedAfter: firstEpoch - 1,
    trainExamples, dropped, examplesPerSecond: epsSum, threads: r.threads,
    files: { last: files.last, best: files.best, metrics: files.metrics, curves: files.curves, grid: r.gridImages > 0 ? files.grid : undefined },
  });

  const { ids, dropped } = await prepareSplit(trainDs, r.crop, r.small);
  const stepsPerEpoch = batchesPerEpoch(ids.length, r.batchSize, true);
  const trainExamples = stepsPerEpoch * r.batchSize;
  if (ids.length < r.batchSize) {
    const why = dropped > 0 ? ` (${dropped} of ${trainDs.ids.length} are smaller than the ${r.crop[0]}x${r.crop[1]} crop; try a smaller --crop or --small pad)` : '';
    throw new FcnError(`${trainDs.root}: the train split has ${ids.length} usable images, fewer than --batch-size ${r.batchSize}${why}`);
  }
  if (firstEpoch > r.epochs) {
    log(`nothing to do: the run in ${r.out} already finished ${firstEpoch - 1} epochs (raise --epochs to train longer)`);
    return result(0);
  }
  log(`read ${ids.length} examples` + (dropped > 0 ? ` (${dropped} smaller than ${r.crop[0]}x${r.crop[1]} dropped)` : '') +
    `; ${valDs.ids.length} val images; ${arch.name}, ${r.freezeBackbone ? 'head only' : 'all layers'}, batch ${r.batchSize}, ` +
    `crop ${r.crop[0]}x${r.crop[1]}, lr ${r.lr}${r.lrSchedule === 'poly' ? ' (poly decay)' : ''}, wd ${r.weightDecay}, momentum ${r.momentum}, ${r.threads} threads`);

  const step = await TrainStep.create(arch, start.weights, {
    mode: r.freezeBackbone ? 'head' : 'full', batch: r.batchSize, height: r.crop[0], width: r.crop[1],
    weightDecay: r.weightDecay, momentum: r.momentum, threads: r.threads,
  }, start.momentum);
  let examplesSeen = 0;
  let trainSecondsSum = 0;
  let finalWeights: TensorMap = start.weights;
  try {
    for (let epoch = firstEpoch; epoch <= r.epochs; epoch++) {
      const bar = options.progress ? new Progress({ total: trainExamples, label: `epoch ${epoch}/${r.epochs}`, unit: 'img', format: count }) : undefined;
      let lossSum = 0, correct = 0, valid = 0, examples = 0, batchIndex = 0;
      const t0 = performance.now();
      for await (const batch of epochBatches(trainDs, ids, {
        batchSize: r.batchSize, crop: r.crop, shuffle: true, rng, flip: r.flip, small: r.small, dropLast: true,
      })) {
        batchIndex++;
        const lr = scheduledLr(r.lr, r.lrSchedule, (epoch - 1) * stepsPerEpoch + batchIndex - 1, r.epochs * stepsPerEpoch);
        const res = await runStep(step, batch, lr, trainDs);
        if (!Number.isFinite(res.loss)) {
          bar?.finish();
          const kept = epoch > 1 ? `${files.last} still holds epoch ${epoch - 1}` : 'no checkpoint was written';
          throw new FcnError(
            `training diverged: the loss became ${res.loss} at epoch ${epoch}, batch ${batchIndex} (--lr ${r.lr} is probably too large); ${kept}`,
          );
        }
        lossSum += res.loss;
        correct += res.correct;
        valid += res.valid;
        examples += batch.n;
        bar?.update(examples, `loss ${fmt(lossSum / examples)}`);
      }
      const trainSeconds = (performance.now() - t0) / 1000;
      bar?.finish(`loss ${fmt(lossSum / examples)}`);
      const weights = step.weights();
      const bad = allFinite(weights);
      if (bad !== undefined) {
        const kept = epoch > 1 ? `${files.last} still holds epoch ${epoch - 1}` : 'no checkpoint was written';
        throw new FcnError(`training diverged: weight '${bad}' is no longer finite after epoch ${epoch} (--lr ${r.lr} is probably too large); ${kept}`);
      }

      const t1 = performance.now();
      const model = await SegmentationModel.fromWeights(arch, weights, start.meta, { threads: r.threads });
      let cm;
      try {
        const total = r.evalLimit !== null ? Math.min(r.evalLimit, valDs.ids.length) : valDs.ids.length;
        const ebar = options.progress ? new Progress({ total, label: 'eval val', unit: 'img', format: count }) : undefined;
        cm = await evaluate(model, valDs, { limit: r.evalLimit ?? undefined, onProgress: (done) => ebar?.update(done) });
        ebar?.finish();
      } finally {
        await model.dispose();
      }
      const evalSeconds = (performance.now() - t1) / 1000;
      const vm = cm.metrics();
      const isBest = best === null || vm.meanIoU > best.testMeanIoU;
      const m: EpochMetrics = {
        epoch, epochs: r.epochs, loss: lossSum / examples, trainAccuracy: valid > 0 ? correct / valid : 0,
        testAccuracy: vm.pixelAccuracy, testMeanIoU: vm.meanIoU, examples, examplesPerSecond: examples / trainSeconds,
        trainSeconds, evalSeconds, testImages: r.evalLimit !== null ? Math.min(r.evalLimit, valDs.ids.length) : valDs.ids.length,
        threads: r.threads, best: isBest,
      };
      history.push(m);
      if (isBest) best = { epoch, testMeanIoU: vm.meanIoU };
      const state: TrainState = { version: 1, epoch, rng: rng.getState(), config, history, best };
      // last.safetensors is the run's record; everything else is derived from it and written after.
      await saveCheckpoint(files.last, {
        arch, weights, classes: start.meta.classes, colors: start.meta.colors.map((c) => [c[0], c[1], c[2]]), normalization: start.meta.normalization,
        metadata: encodeTrainState(state), extra: momentumToExtra(step.momentumBuffers()),
      });
      if (isBest) await copyAtomic(files.last, files.best);
      await writeFileAtomic(files.metrics, metricsJsonl(history));
      await writeCurves(files.curves, history, r.epochs);
      finalWeights = weights;
      examplesSeen += examples;
      trainSecondsSum += trainSeconds;
      log(formatEpoch(m));
      options.onEpoch?.(m);
    }
  } finally {
    await step.dispose();
  }

  const final = history[history.length - 1]!;
  const eps = trainSecondsSum > 0 ? examplesSeen / trainSecondsSum : 0;
  log(`loss ${fmt(final.loss)}, train acc ${fmt(final.trainAccuracy)}, test acc ${fmt(final.testAccuracy)}, test mIoU ${fmt(final.testMeanIoU)}`);
  log(`${eps.toFixed(1)} examples/sec on ${r.threads} CPU thread${r.threads === 1 ? '' : 's'}`);
  if (r.gridImages > 0) {
    const model = await SegmentationModel.fromWeights(arch, finalWeights, start.meta, { threads: r.threads });
    try {
      await writeGrid(files.grid, model, valDs, r.gridImages);
    } catch (err) {
      if (err instanceof FcnError) throw err;
      throw new FcnError(`${files.grid}: cannot write the prediction grid: ${errorMessage(err)}`);
    } finally {
      await model.dispose();
    }
  }
  return result(eps);
}

