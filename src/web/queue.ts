// One inference at a time: requests wait their turn in a FIFO instead of running side by side, so
// twenty concurrent uploads cost one decoded image and one set of activations, not twenty. The
// waiting line is bounded too (a full line answers 503 at once rather than piling up bodies).
import { FcnError } from '../util/errors.js';

export interface QueueStats {
  /** Jobs running now (0 or 1). */
  running: number;
  /** Jobs waiting for their turn. */
  waiting: number;
  /** The most jobs ever seen running at once: stays 1 unless the queue is broken. */
  peakRunning: number;
  peakWaiting: number;
  /** Jobs finished (successfully or not). */
  done: number;
}

/** Thrown when the waiting line is full; the server answers 503. */
export class QueueFullError extends FcnError {
  constructor(limit: number) {
    super(`server busy: ${limit} requests already waiting, try again shortly`);
    this.name = 'QueueFullError';
  }
}

export class InferenceQueue {
  private tail: Promise<unknown> = Promise.resolve();
  private readonly stats: QueueStats = { running: 0, waiting: 0, peakRunning: 0, peakWaiting: 0, done: 0 };

  /** `maxWaiting`: jobs allowed to wait behind the running one before new ones are refused. */
  constructor(readonly maxWaiting = 32) {}

  /** Runs `job` after every job queued before it has settled; its result or error is passed through. */
  run<T>(job: () => Promise<T>): Promise<T> {
    if (this.stats.waiting >= this.maxWaiting) return Promise.reject(new QueueFullError(this.maxWaiting));
    this.stats.waiting++;
    this.stats.peakWaiting = Math.max(this.stats.peakWaiting, this.stats.waiting);
    const result = this.tail.then(async () => {
      this.stats.waiting--;
      this.stats.running++;
      this.stats.peakRunning = Math.max(this.stats.peakRunning, this.stats.running);
      try {
        return await job();
      } finally {
        this.stats.running--;
        this.stats.done++;
      }
    });
    // the next job waits for this one whether it succeeds or fails
    this.tail = result.catch(() => undefined);
    return result;
  }

  /** Resolves once every job queued so far has settled. */
  async drain(): Promise<void> {
    await this.tail;
  }

  snapshot(): QueueStats {
    return { ...this.stats };
  }
}
