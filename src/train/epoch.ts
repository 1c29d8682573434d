// torchvision's train_one_epoch: one pass over shuffled random crops (the last incomplete batch
// dropped; normalised by the model card, as inference normalises), one compiled SGD step per batch at the scheduled learning rate, the loss checked after
// every step and the weights after the epoch (divergence.ts), a progress bar on stderr.
import { epochBatches, type Batch } from '../data/batches.js';
import { IGNORE_INDEX } from '../data/voc.js';
import { meanColor } from '../data/transforms.js';
import { normalizeBatch } from '../infer/preprocess.js';
import type { TensorMap } from '../model/params.js';
import { Progress } from '../util/progress.js';
import { FcnError } from '../util/errors.js';
import { checkLoss, checkWeights, type DivergenceContext } from './divergence.js';
import { scheduledLr } from './schedule.js';
import { LabelRangeError, type StepResult } from './step.js';
import { count, fmt } from './report.js';
import type { Run } from './run.js';

export interface EpochTraining {
  /** Sum over the examples of each one's mean loss. */
  lossSum: number;
  /** Correctly classified and labelled pixels of the training crops. */
  correct: number;
  valid: number;
  examples: number;
  seconds: number;
  /** The weights after the epoch (all finite). */
  weights: TensorMap;
}

/** The dropout masks' seed of a global step: a function of the run's seed and the step alone, so a
 *  resumed run draws the masks an uninterrupted one would. */
export function dropoutSeed(runSeed: number, step: number): number {
  return (Math.imul(runSeed >>> 0, 0x2545f491) + step) >>> 0;
}

/** One step; a mask value the network has no class for (e.g. VOC's 21 labels on a 5-class init) names the mask file. */
async function runStep(run: Run, batch: Batch, lr: number, step: number): Promise<StepResult> {
  try {
    return await run.step.run(batch.images, batch.labels, lr, dropoutSeed(run.settings.seed, step));
  } catch (err) {
    if (!(err instanceof LabelRangeError)) throw err;
    const id = batch.ids[Math.floor(err.index / (batch.height * batch.width))]!;
    throw new FcnError(`${run.trainDs.maskPath(id)}: label ${err.value} is not a class of the network (expected 0..${err.numClasses - 1} or ${IGNORE_INDEX} for void)`);
  }
}

export async function trainOneEpoch(run: Run, epoch: number): Promise<EpochTraining> {
  const s = run.settings;
  const total = run.stepsPerEpoch * s.batchSize;
  const bar = run.progress ? new Progress({ total, label: `epoch ${epoch}/${s.epochs}`, unit: 'img', format: count }) : undefined;
  const divergence: DivergenceContext = { epoch, lr: s.lr, lastFile: run.files.last, name: run.name };
  let lossSum = 0, correct = 0, valid = 0, examples = 0, batchIndex = 0;
  const t0 = performance.now();
  try {
    for await (const batch of epochBatches(run.trainDs, run.ids, {
      batchSize: s.batchSize, crop: s.crop, shuffle: true, rng: run.rng, flip: s.flip, small: s.small, dropLast: true, scale: s.scale,
      normalize: (images) => normalizeBatch(images, run.card.normalization), padColor: meanColor(run.card.normalization),
    })) {
      const step = (epoch - 1) * run.stepsPerEpoch + batchIndex++;
      const res = await runStep(run, batch, scheduledLr(s.lr, s.lrSchedule, step, s.epochs * run.stepsPerEpoch), step);
      checkLoss(res.loss, batchIndex, divergence);
      // the book's loss is a sum of per-image means; torchvision's a mean over the batch's pixels
      lossSum += run.arch.loss === 'torchvision' ? res.loss * batch.n : res.loss;
      correct += res.correct;
      valid += res.valid;
      examples += batch.n;
      bar?.update(examples, `loss ${fmt(lossSum / examples)}`);
    }
  } finally {
    bar?.finish(examples > 0 ? `loss ${fmt(lossSum / examples)}` : undefined);
  }
  const seconds = (performance.now() - t0) / 1000;
  const weights = run.step.weights();
  checkWeights(weights, divergence);
  return { lossSum, correct, valid, examples, seconds, weights };
}
