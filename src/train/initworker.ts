// A fresh network's weights drawn on two threads: the same values as
// initParameters(arch, seededRandom(seed)) (model/params.ts), in about half the time. Drawing
// ResNet-18's 11 M kaiming-normal weights (Box-Muller: two uniforms, a log, a square root and a
// cosine each) is the largest piece of `fcn train`'s start-up from scratch, and nothing else runs
// then. The parameters are split in two sets of about equal draws; a worker thread draws one set
// while this thread draws the other, each tensor from its own point of the seeded sequence
// (initParametersOf). This module is both sides: imported, it exports initParametersParallel;
// started as a worker, it draws the names it is given and returns them (transferred, not copied).
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type { FcnArchitecture } from '../model/fcn.js';
import { fcnParameters, initParameters, initParametersOf, parameterDraws, seededRandom, type TensorMap } from '../model/params.js';

/** Below this many draws the thread's start (~50 ms) costs more than it saves: one thread. */
const PARALLEL_MIN_DRAWS = 2_000_000;

const MARK = 'fcn-init-worker';

interface Job { arch: FcnArchitecture; seed: number; names: string[] }

/** The first and second half of the parameters by draws (state_dict order). */
function halves(arch: FcnArchitecture): { total: number; first: Set<string>; second: Set<string> } {
  const draws = parameterDraws(arch);
  const total = draws.reduce((t, d) => t + d.draws, 0);
  const first = new Set<string>(), second = new Set<string>();
  let acc = 0;
  for (const d of draws) {
    (acc + d.draws / 2 <= total / 2 ? first : second).add(d.name);
    acc += d.draws;
  }
  return { total, first, second };
}

function drawOnWorker(job: Job): Promise<TensorMap> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: { [MARK]: job } });
    worker.once('message', (entries: [string, Float32Array][]) => {
      resolve(new Map(entries));
      void worker.terminate();
    });
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the weight initialisation thread exited (code ${code})`)));
  });
}

/**
 * initParameters(arch, seededRandom(seed)), on two threads for a network of at least `minDraws`
 * random draws (default 2 M: ResNet-18 takes 22 M), else, or when no thread can be started, on this one.
 */
export async function initParametersParallel(arch: FcnArchitecture, seed: number, opts: { minDraws?: number } = {}): Promise<TensorMap> {
  const { total, first, second } = halves(arch);
  if (total < (opts.minDraws ?? PARALLEL_MIN_DRAWS) || second.size === 0) return initParameters(arch, seededRandom(seed));
  let theirs: Promise<TensorMap>;
  try {
    theirs = drawOnWorker({ arch, seed, names: [...second] });
  } catch {
    return initParameters(arch, seededRandom(seed));
  }
  theirs.catch(() => undefined); // awaited below; a failure there is handled there
  const mine = initParametersOf(arch, seed, first);
  const other = await theirs.catch(() => initParametersOf(arch, seed, second));
  // state_dict order, as initParameters lists them
  return new Map(fcnParameters(arch).map((spec) => [spec.name, mine.get(spec.name) ?? other.get(spec.name)!]));
}

if (!isMainThread && (workerData as Record<string, unknown> | null)?.[MARK]) {
  const job = (workerData as Record<string, Job>)[MARK]!;
  const drawn = initParametersOf(job.arch, job.seed, new Set(job.names));
  parentPort!.postMessage([...drawn], [...drawn.values()].map((t) => t.buffer as ArrayBuffer));
}
