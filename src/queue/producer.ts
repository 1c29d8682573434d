// The producer side of the queue: one BullMQ job per input, results read back and turned into the
// same files and numbers as a local run. `fcn predict --queue` writes the masks (and overlays) a local
// predict writes; `fcn eval --queue` sums the workers' per-image confusion matrices into the matrix a
// local eval counts. The producer keeps at most `maxWaiting` of its jobs in Redis (and waits while the
// queue holds that many waiting jobs from anyone), so a large batch cannot exhaust Redis' memory;
// results are removed once read.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Queue, QueueEvents, Job } from 'bullmq';
import type { Checkpoint } from '../weights/checkpoint.js';
import type { ModelCard } from '../model/card.js';
import { tileSizeProblem, type ClassShare } from '../infer/model.js';
import { stemOf } from '../infer/predict.js';
import type { VocDataset } from '../data/dataset.js';
import { decodeImage, decodeMask, probeImage, writeImage, writeMask } from '../data/image.js';
import { VOC_PALETTE } from '../data/voc.js';
import { ConfusionMatrix } from '../eval/confusion.js';
import { overlay } from '../render/pictures.js';
import { FcnError, errorMessage } from '../util/errors.js';
import { openQueueModel } from './model.js';
import { parseQueueUrl, redisOptions } from './url.js';
import { checkRedis } from './redis.js';
import {
  BAD_INPUT, DEFAULT_QUEUE_NAME, MODEL_MISMATCH, checkQueueName, fromBase64, toBase64,
  type JobKind, type SegmentJobData, type SegmentJobResult,
} from './jobs.js';

export interface QueueProducerOptions {
  /** redis[s]://[USER:PASSWORD@]HOST:PORT[/DB] */
  queue: string;
  /** BullMQ queue name (default 'fcn'); workers must use the same. */
  name?: string;
  /** The model the jobs are for: anything loadModel reads, or a checkpoint already read (only its identity and card are used here). */
  model: string | Checkpoint;
  /** The network a model file must hold (loadModel's arch option). */
  arch?: string;
  /** At most this many of this producer's jobs in Redis at once, and no new job while the queue holds this many waiting (default 64). */
  maxWaiting?: number;
  /** Tries per job (default 3) and the first retry's delay, doubled each time (default 1000 ms). */
  attempts?: number;
  backoffMs?: number;
  /** Called after each finished input (done counts failures too). */
  onProgress?: (done: number, total: number) => void;
  /**
   * Called while jobs wait and no worker is connected to the queue: after `noWorkerMs` without one,
   * then every 6 × `noWorkerMs` while it lasts, with the seconds waited (jobs stay queued meanwhile;
   * a worker that starts takes them, and those a killed worker held, up).
   */
  onNoWorkers?: (seconds: number) => void;
  /** How often to look for workers (default 10000 ms). */
  noWorkerMs?: number;
}

export interface QueueRunStats {
  jobs: number;
  /** Jobs that ran more than once (a worker died or failed mid-job, and another attempt finished it). */
  retried: number;
}

export interface QueuePredictOptions extends QueueProducerOptions {
  outDir: string;
  overlay?: boolean;
  /** Tile images with a side longer than this (as fcn predict --tile); default: each worker's own setting. */
  tileSize?: number;
  /** Refuse, without sending a job, images that declare more pixels than this (as fcn predict --max-pixels); workers keep their own limit too. */
  maxPixels?: number;
  /** In input order, as a local predict calls it. */
  onImage?: (file: string, result: { width: number; height: number; classes: ClassShare[]; maskPath: string }) => void;
  /** In input order: an input that could not be segmented (unreadable, not an image). */
  onFailure?: (file: string, message: string) => void;
}

export interface QueuePredictResult extends QueueRunStats {
  written: string[];
  failed: string[];
}

interface Input {
  source: string;
  /** The job's payload; FcnError when the producer cannot read the input (then no job is sent). */
  data(): Promise<Omit<SegmentJobData, 'model'>>;
}

interface Outcome {
  index: number;
  result?: SegmentJobResult;
  error?: string;
}

/**
 * Runs one job per input through the queue with at most `maxWaiting` outstanding, calling `onOutcome`
 * as each finishes (any order). A model mismatch, or an outcome for which `onOutcome` returns a
 * message, stops the run: jobs no worker has started are withdrawn, and it throws that message.
 */
async function runJobs(kind: JobKind, inputs: Input[], opts: QueueProducerOptions, identity: string,
  onOutcome: (o: Outcome) => Promise<string | void>): Promise<QueueRunStats> {
  const conn = parseQueueUrl(opts.queue);
  const name = checkQueueName(opts.name ?? DEFAULT_QUEUE_NAME);
  await checkRedis(conn);
  const connection = redisOptions(conn);
  // results travel in the job (read back below), so the events stream needs no long history
  const queue = new Queue<SegmentJobData, SegmentJobResult>(name, { connection, streams: { events: { maxLen: 1000 } } });
  const events = new QueueEvents(name, { connection });
  // each followed job listens on both (waitUntilFinished) until it ends: up to maxWaiting at once
  events.setMaxListeners(0);
  queue.setMaxListeners(0);
  queue.on('error', () => { /* ioredis reconnects; failures surface in the calls */ });
  events.on('error', () => { /* idem */ });
  const maxWaiting = Math.max(1, opts.maxWaiting ?? 64);
  const stats: QueueRunStats = { jobs: 0, retried: 0 };
  // why the run stops early: a worker serving another model, or a failure the caller cannot go past
  let stopReason: string | undefined;
  let done = 0;
  const inflight = new Map<string, { promise: Promise<void>; withdraw: () => void }>();
  // nobody to run the jobs: say so (a worker killed mid-job and none left looks like a hang otherwise)
  let lonely = 0;
  const lonelyTimer = opts.onNoWorkers && setInterval(() => {
    if (inflight.size === 0) return;
    // CLIENT LIST underneath: a server that forbids it (-1) counts as having workers
    void queue.getWorkersCount().catch(() => -1).then((n) => {
      if (n !== 0) {
        lonely = 0;
        return;
      }
      lonely++;
      if (lonely % 6 === 1) opts.onNoWorkers!(Math.round((lonely * (opts.noWorkerMs ?? 10_000)) / 1000));
    });
  }, opts.noWorkerMs ?? 10_000);
  try {
    await events.waitUntilReady();
    const follow = async (index: number, job: Job<SegmentJobData, SegmentJobResult>, withdrawn: Promise<'withdrawn'>) => {
      let error: string | undefined;
      const finished = await Promise.race([job.waitUntilFinished(events).then(() => 'done' as const, (err) => {
        error = errorMessage(err);
        return 'failed' as const;
      }), withdrawn]);
      if (finished === 'withdrawn') return;
      const fresh = await Job.fromId<SegmentJobData, SegmentJobResult>(queue, job.id!);
      if (fresh && fresh.attemptsStarted > 1) stats.retried++;
      await fresh?.remove().catch(() => undefined);
      if (error?.startsWith(MODEL_MISMATCH)) {
        stopReason ??= error.slice(MODEL_MISMATCH.length);
        return;
      }
      if (stopReason) return;
      const outcome: Outcome = error !== undefined
        ? { index, error: error.startsWith(BAD_INPUT) ? error.slice(BAD_INPUT.length) : `${inputs[index]!.source}: failed on the workers after ${opts.attempts ?? 3} tries: ${error}` }
        : { index, result: fresh?.returnvalue };
      if (!outcome.error && !outcome.result) outcome.error = `${inputs[index]!.source}: its result was lost (job ${job.id} removed from the queue)`;
      if (outcome.result && !isJobResult(outcome.result)) {
        // the queue name is shared with another BullMQ application whose worker took the job
        stopReason ??= `${inputs[index]!.source}: job ${job.id} on queue '${name}' came back without an fcn result (another application's worker shares the queue name? give fcn its own)`;
        return;
      }
      const fatal = await onOutcome(outcome);
      if (typeof fatal === 'string') {
        stopReason ??= fatal;
        return;
      }
      opts.onProgress?.(++done, inputs.length);
    };
    for (let index = 0; index < inputs.length && stopReason === undefined; index++) {
      while (inflight.size >= maxWaiting) await Promise.race([...inflight.values()].map((f) => f.promise));
      // other producers count too: wait while the queue already holds a full window of waiting jobs
      while (stopReason === undefined && (await queue.getWaitingCount()) >= maxWaiting) await sleep(100);
      if (stopReason !== undefined) break;
      let input: Omit<SegmentJobData, 'model'>;
      try {
        input = await inputs[index]!.data();
      } catch (err) {
        // an input the producer cannot read is its failure, in order with the rest: no job for it
        if (!(err instanceof FcnError)) throw err;
        const fatal = await onOutcome({ index, error: err.message });
        if (typeof fatal === 'string') stopReason ??= fatal;
        else opts.onProgress?.(++done, inputs.length);
        continue;
      }
      const data: SegmentJobData = { model: identity, ...input };
      const job = await queue.add(kind, data, {
        attempts: opts.attempts ?? 3,
        backoff: { type: 'exponential', delay: opts.backoffMs ?? 1000 },
        // kept until read back and removed below; the age bounds what a producer killed mid-run leaves in Redis
        removeOnComplete: { age: ORPHAN_AGE_S },
        removeOnFail: { age: ORPHAN_AGE_S },
      });
      stats.jobs++;
      let withdraw!: () => void;
      const withdrawn = new Promise<'withdrawn'>((resolve) => { withdraw = () => resolve('withdrawn'); });
      const promise = follow(index, job, withdrawn).finally(() => inflight.delete(job.id!));
      inflight.set(job.id!, { promise, withdraw });
    }
    if (stopReason !== undefined) {
      // withdraw what no worker has started; jobs already running finish and are removed as they end
      for (const [id, f] of inflight) if ((await queue.remove(id)) === 1) f.withdraw();
    }
    while (inflight.size > 0) await Promise.race([...inflight.values()].map((f) => f.promise));
  } finally {
    if (lonelyTimer) clearInterval(lonelyTimer);
    await events.close();
    await queue.close();
  }
  if (stopReason !== undefined) throw new FcnError(stopReason);
  return stats;
}

/** Whether a job's return value has the shape an fcn worker gives (anything else came from another application). */
function isJobResult(r: unknown): r is SegmentJobResult {
  const o = r as Partial<SegmentJobResult> | null;
  return typeof o === 'object' && o !== null && Number.isInteger(o.width) && Number.isInteger(o.height)
    && typeof o.mask === 'string' && Array.isArray(o.pixels) && (o.confusion === undefined || Array.isArray(o.confusion));
}

/** Results nobody read (their producer died) are dropped after a day, at the next job's completion. */
const ORPHAN_AGE_S = 24 * 3600;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function readBytes(path: string, what: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new FcnError(`${path}: cannot read ${what} (${code === 'ENOENT' ? 'no such file' : errorMessage(err)})`);
  }
}

/** The classes present in a mask, most pixels first: what SegmentationModel.classShares gives for the same mask. */
function classShares(pixels: readonly number[], card: ModelCard): ClassShare[] {
  const total = pixels.reduce((a, b) => a + b, 0) || 1;
  const out: ClassShare[] = [];
  pixels.forEach((n, id) => {
    if (n > 0) out.push({ id, name: card.classes[id] ?? `class_${id}`, color: card.colors[id] ?? VOC_PALETTE[id]!, pixels: n, fraction: n / total });
  });
  return out.sort((a, b) => b.pixels - a.pixels);
}

/**
 * Segments `files` on the queue's workers and writes what a local predict writes: OUT/<stem>.png
 * (palette PNG) and with `overlay` OUT/<stem>.overlay.png. onImage and onFailure are called in input
 * order. Inputs that fail are named (onFailure) and the rest still written.
 */
export async function predictQueued(files: readonly string[], opts: QueuePredictOptions): Promise<QueuePredictResult> {
  const stems = new Map<string, string>();
  for (const file of files) {
    const other = stems.get(stemOf(file));
    if (other) throw new FcnError(`${file}: same file stem as ${other}; both would be written to ${stemOf(file)}.png`);
    stems.set(stemOf(file), file);
  }
  const { card, identity, arch } = await openQueueModel(opts.model, opts.arch);
  const tileProblem = opts.tileSize === undefined ? undefined : tileSizeProblem(arch, opts.tileSize);
  if (tileProblem) throw new FcnError(tileProblem, 2);
  const written: string[] = [];
  const failed: string[] = [];
  // results arrive in any order; lines are released in input order, as a local run prints them
  const ready = new Map<number, () => void>();
  let nextToReport = 0;
  const release = () => {
    for (let f = ready.get(nextToReport); f; f = ready.get(nextToReport)) {
      ready.delete(nextToReport++);
      f();
    }
  };
  const inputs: Input[] = files.map((file) => ({
    source: file,
    data: async () => {
      if (opts.maxPixels !== undefined) await probeImage(file, { maxPixels: opts.maxPixels });
      return { source: file, image: toBase64(await readBytes(file, 'the image')), ...(opts.tileSize !== undefined ? { tileSize: opts.tileSize } : {}) };
    },
  }));
  const stats = await runJobs('segment', inputs, opts, identity, async ({ index, result, error }) => {
    const file = files[index]!;
    const message = error;
    if (message !== undefined || !result) {
      failed.push(file);
      ready.set(index, () => opts.onFailure?.(file, message ?? `${file}: no result`));
      return release();
    }
    const mask = decodeMask(fromBase64(result.mask), `${file} (mask from ${result.worker})`);
    const maskPath = join(opts.outDir, `${stemOf(file)}.png`);
    await writeMask(maskPath, mask, card.colors);
    written.push(maskPath);
    if (opts.overlay) {
      const image = await decodeImage(await readBytes(file, 'the image'), file);
      const overlayPath = join(opts.outDir, `${stemOf(file)}.overlay.png`);
      await writeImage(overlayPath, overlay(image, mask, 0.5, card.colors));
      written.push(overlayPath);
    }
    const classes = classShares(result.pixels, card);
    ready.set(index, () => opts.onImage?.(file, { width: mask.width, height: mask.height, classes, maskPath }));
    release();
  });
  return { ...stats, written, failed };
}

export interface QueueEvaluateOptions extends QueueProducerOptions {
  /** Evaluate these ids of the split (default: all of them, in the list's order). */
  ids?: readonly string[];
}

/**
 * Scores the model on a split through the queue's workers: each job is one image with its mask, each
 * result that image's confusion matrix; their sum is exactly the matrix a local evaluate() counts.
 * A bad image or mask stops the run with its error, as a local evaluation does.
 */
export async function evaluateQueued(ds: VocDataset, opts: QueueEvaluateOptions): Promise<{ matrix: ConfusionMatrix; classes: string[] } & QueueRunStats> {
  const { arch, card, identity } = await openQueueModel(opts.model, opts.arch);
  const ids = opts.ids ?? ds.ids;
  const matrix = new ConfusionMatrix(arch.numClasses);
  const inputs: Input[] = ids.map((id) => ({
    source: ds.imagePath(id),
    data: async () => ({
      source: ds.imagePath(id),
      image: toBase64(await readBytes(ds.imagePath(id), 'the image')),
      truth: toBase64(await readBytes(ds.maskPath(id), 'the mask')),
    }),
  }));
  // a bad image or mask ends the evaluation, as it does locally: a partial matrix is not the split's
  const stats = await runJobs('evaluate', inputs, opts, identity, async ({ result, error }) => {
    if (error !== undefined || !result?.confusion) return error ?? 'a worker returned no confusion matrix';
    if (result.confusion.length !== matrix.counts.length) {
      return `a worker returned a ${Math.round(Math.sqrt(result.confusion.length))}-class confusion matrix for a ${arch.numClasses}-class model`;
    }
    for (let k = 0; k < matrix.counts.length; k++) matrix.counts[k]! += result.confusion[k]!;
  });
  return { ...stats, matrix, classes: card.classes };
}
