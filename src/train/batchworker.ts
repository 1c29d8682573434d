// Training batches built on a worker thread. ONNX Runtime's run() blocks the main thread for the
// whole step, so a batch prefetched there (data/batches.ts) only starts its reads, JPEG decodes and
// mask decodes, and its JS crops and normalisation run after the step, between steps. On a worker
// thread the next batch is built while the step runs; the main thread only receives the arrays
// (transferred, not copied). What a batch holds is the same either way: the plan (order and each
// example's seed) is drawn on the main thread, and the worker runs the same buildBatch.
// This module is both sides: imported, it exports BatchWorker; started as a worker, it serves batches.
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { buildBatch, type Batch, type BatchOptions, type PlannedExample } from '../data/batches.js';
import { openDataset, type OpenOptions } from '../data/layouts.js';
import type { Normalization } from '../model/card.js';
import { normalizeBatch } from '../infer/preprocess.js';
import { FcnError, errorMessage } from '../util/errors.js';

/** What the worker needs to open the split and build its batches (plain data: it is cloned to the thread). */
export interface BatchWorkerSetup {
  data: string;
  split: string;
  open: Omit<OpenOptions, 'defaultLabels'>;
  batch: Pick<BatchOptions, 'batchSize' | 'crop' | 'flip' | 'small' | 'scale' | 'padColor'>;
  normalization: Normalization;
}

interface Request { k: number; plan: PlannedExample[] }
type Reply =
  | { k: number; batch: Batch }
  | { k: number; error: { message: string; stack?: string; exitCode?: number } };

const MARK = 'fcn-batch-worker';

/** The main thread's side: one worker for a run, batches asked for by plan. */
export class BatchWorker {
  private readonly worker: Worker;
  private readonly waiting = new Map<number, { resolve: (b: Batch) => void; reject: (e: unknown) => void }>();
  private next = 0;
  private failed: unknown;

  constructor(setup: BatchWorkerSetup) {
    this.worker = new Worker(new URL(import.meta.url), { workerData: { [MARK]: setup } });
    this.worker.on('message', (r: Reply) => {
      const w = this.waiting.get(r.k);
      if (!w) return;
      this.waiting.delete(r.k);
      if ('batch' in r) w.resolve(r.batch);
      else w.reject(r.error.exitCode !== undefined ? new FcnError(r.error.message, r.error.exitCode) : Object.assign(new Error(r.error.message), { stack: r.error.stack }));
    });
    const fail = (err: unknown): void => {
      this.failed ??= err;
      for (const w of this.waiting.values()) w.reject(err);
      this.waiting.clear();
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`the batch worker thread exited (code ${code})`)));
  }

  /** The batch of `plan` (epochBatches' `build`). */
  build(plan: PlannedExample[]): Promise<Batch> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
    const k = this.next++;
    return new Promise<Batch>((resolve, reject) => {
      this.waiting.set(k, { resolve, reject });
      this.worker.postMessage({ k, plan } satisfies Request);
    });
  }

  async close(): Promise<void> {
    this.failed ??= new Error('the batch worker is closed');
    await this.worker.terminate();
  }
}

/** The worker's side: opens the split once, then builds each batch asked for, in order. */
async function serve(setup: BatchWorkerSetup): Promise<void> {
  const port = parentPort!;
  const ds = openDataset(setup.data, setup.split, setup.open);
  const opts = { ...setup.batch, shuffle: false, normalize: (images: Parameters<typeof normalizeBatch>[0]) => normalizeBatch(images, setup.normalization) };
  port.on('message', (r: Request) => {
    ds.then((d) => buildBatch(d, r.plan, opts)).then(
      (batch) => port.postMessage({ k: r.k, batch } satisfies Reply, [batch.images.buffer as ArrayBuffer, batch.labels.buffer as ArrayBuffer]),
      (err: unknown) => port.postMessage({
        k: r.k,
        error: err instanceof FcnError ? { message: err.message, exitCode: err.exitCode } : { message: errorMessage(err), stack: err instanceof Error ? err.stack : undefined },
      } satisfies Reply),
    );
  });
}

if (!isMainThread && (workerData as Record<string, unknown> | null)?.[MARK]) {
  await serve((workerData as Record<string, BatchWorkerSetup>)[MARK]!);
}
