// The queue worker: takes segmentation jobs from a BullMQ queue, runs them on one loaded model and
// returns the results through BullMQ. It refuses jobs made for another model (identity mismatch)
// without retry, treats an undecodable input as a final failure, and lets anything else be retried.
// A worker that dies mid-job loses its lock; BullMQ's stalled-job check in the other workers puts the
// job back. close() finishes the jobs in hand; handBack() returns them to the queue at once.
import { hostname } from 'node:os';
import { Worker, UnrecoverableError, WaitingError, type Job } from 'bullmq';
import type { Checkpoint } from '../weights/checkpoint.js';
import { tileSizeProblem, type SegmentationModel } from '../infer/model.js';
import { decodeImage, decodeMask, encodeMask, type LabelMap, type RgbImage } from '../data/image.js';
import { ConfusionMatrix } from '../eval/confusion.js';
import { errorMessage } from '../util/errors.js';
import { openQueueModel } from './model.js';
import { parseQueueUrl, redisOptions } from './url.js';
import { checkRedis } from './redis.js';
import {
  BAD_INPUT, DEFAULT_QUEUE_NAME, MODEL_MISMATCH, checkQueueName, fromBase64, shortIdentity, toBase64,
  type SegmentJobData, type SegmentJobResult,
} from './jobs.js';

export interface QueueWorkerOptions {
  /** redis[s]://[USER:PASSWORD@]HOST:PORT[/DB] */
  queue: string;
  /** BullMQ queue name (default 'fcn'). */
  name?: string;
  /** Anything loadModel reads (checkpoint, .pth, ONNX file fcn wrote, downloaded network's name), or a checkpoint already read. */
  model: string | Checkpoint;
  /** The network a model file must hold (loadModel's arch option). */
  arch?: string;
  /** Jobs run at once by this process (default 1). */
  concurrency?: number;
  /** ORT intra-op threads (default: all cores). */
  threads?: number;
  tileSize?: number;
  /** How long a job's lock lasts without renewal: a dead worker's job is taken back after about this (default 30000 ms). */
  lockDurationMs?: number;
  /** How often to look for jobs whose worker died (default: half the lock duration). */
  stalledIntervalMs?: number;
  /** Called after each job, with its outcome. */
  onJob?: (event: { id: string; source: string; ok: boolean; error?: string; ms: number }) => void;
}

export interface QueueWorker {
  identity: string;
  model: SegmentationModel;
  /** Jobs done and failed by this process so far. */
  readonly stats: { done: number; failed: number };
  /** Stops taking jobs, finishes those in hand, disconnects and frees the model. */
  close(): Promise<void>;
  /** Returns the jobs in hand to the queue as soon as their current run ends (for a second signal). */
  handBack(): void;
}

/** The job's image (and ground-truth mask, for evaluation); a bad one fails the job for good (no retry). */
async function decodeJob(d: SegmentJobData): Promise<{ image: RgbImage; truth?: LabelMap }> {
  let image: RgbImage;
  let truth: LabelMap | undefined;
  try {
    image = await decodeImage(fromBase64(d.image), d.source);
    if (d.truth !== undefined) truth = decodeMask(fromBase64(d.truth), `${d.source} (ground truth)`);
  } catch (err) {
    throw new UnrecoverableError(`${BAD_INPUT}${errorMessage(err)}`);
  }
  if (truth && (truth.width !== image.width || truth.height !== image.height)) {
    throw new UnrecoverableError(`${BAD_INPUT}${d.source}: mask is ${truth.height}x${truth.width} (HxW) but its image is ${image.height}x${image.width}; they must match`);
  }
  return { image, truth };
}

/** One image's confusion matrix, as the producer sums them. */
function confusionOf(pred: Uint8Array, truth: Uint8Array, numClasses: number, source: string): number[] {
  const cm = new ConfusionMatrix(numClasses);
  try {
    cm.add(pred, truth);
  } catch (err) {
    throw new UnrecoverableError(`${BAD_INPUT}${source}: ${errorMessage(err)}; the model has ${numClasses} classes`);
  }
  return Array.from(cm.counts);
}

export async function startQueueWorker(opts: QueueWorkerOptions): Promise<QueueWorker> {
  const conn = parseQueueUrl(opts.queue);
  const queueName = checkQueueName(opts.name ?? DEFAULT_QUEUE_NAME);
  await checkRedis(conn);
  const source = await openQueueModel(opts.model, opts.arch);
  const modelName = typeof opts.model === 'string' ? opts.model : source.arch.name;
  const identity = source.identity;
  const model = await source.open({ threads: opts.threads, tileSize: opts.tileSize });
  const me = `${hostname()}/${process.pid}`;
  const stats = { done: 0, failed: 0 };
  const lockDuration = opts.lockDurationMs ?? 30_000;

  const segmentJob = async (job: Job<SegmentJobData, SegmentJobResult>, token?: string, signal?: AbortSignal): Promise<SegmentJobResult> => {
    const handBackIfAsked = async () => {
      if (signal?.aborted && token) {
        await job.moveToWait(token);
        throw new WaitingError();
      }
    };
    await handBackIfAsked();
    const d = job.data;
    if (d.model !== identity) {
      throw new UnrecoverableError(`${MODEL_MISMATCH}${d.source}: worker ${me} serves model ${shortIdentity(identity)} (${modelName}), `
        + `not model ${shortIdentity(d.model)} the job was made for; run the workers with the producer's model (or use another queue name)`);
    }
    const { image, truth } = await decodeJob(d);
    const tileProblem = d.tileSize === undefined ? undefined : tileSizeProblem(model.arch, d.tileSize, model.tileMargin);
    if (tileProblem) throw new UnrecoverableError(`${BAD_INPUT}${d.source}: ${tileProblem}`);
    const mask = await model.predict(image, d.tileSize);
    await handBackIfAsked();
    const pixels = new Array<number>(model.numClasses).fill(0);
    for (const v of mask.data) pixels[v]!++;
    const result: SegmentJobResult = {
      width: mask.width, height: mask.height, mask: toBase64(encodeMask(mask)), pixels, worker: `${queueName}@${me}`,
    };
    if (truth) result.confusion = confusionOf(mask.data, truth.data, model.numClasses, d.source);
    return result;
  };

  const worker = new Worker<SegmentJobData, SegmentJobResult>(queueName, async (job, token, signal) => {
    const t0 = Date.now();
    try {
      const r = await segmentJob(job, token, signal);
      stats.done++;
      opts.onJob?.({ id: job.id ?? '?', source: job.data.source, ok: true, ms: Date.now() - t0 });
      return r;
    } catch (err) {
      if (!(err instanceof WaitingError)) {
        stats.failed++;
        opts.onJob?.({ id: job.id ?? '?', source: job.data.source, ok: false, error: errorMessage(err), ms: Date.now() - t0 });
      }
      throw err;
    }
  }, {
    connection: redisOptions(conn),
    concurrency: opts.concurrency ?? 1,
    lockDuration,
    stalledInterval: opts.stalledIntervalMs ?? Math.max(1000, Math.floor(lockDuration / 2)),
    // a job whose worker died twice is still given a third chance before it fails
    maxStalledCount: 2,
    autorun: false,
  });
  // connection trouble is reported by ioredis and retried (about once a second while Redis is away;
  // without a listener Node would throw): each distinct message once a minute, with how often it came
  let last = { message: '', at: 0, repeats: 0 };
  worker.on('error', (err) => {
    const message = errorMessage(err);
    const now = Date.now();
    if (message === last.message && now - last.at < 60_000) {
      last.repeats++;
      return;
    }
    const again = message === last.message && last.repeats > 0 ? ` (${last.repeats + 1} times in ${Math.round((now - last.at) / 1000)} s)` : '';
    process.stderr.write(`fcn worker: ${message}${again}\n`);
    last = { message, at: now, repeats: 0 };
  });
  void worker.run();
  await worker.waitUntilReady();

  let closing: Promise<void> | undefined;
  return {
    identity,
    model,
    stats,
    close: () => closing ??= (async () => {
      await worker.close();
      await model.dispose();
    })(),
    handBack: () => worker.cancelAllJobs('worker shutting down'),
  };
}
