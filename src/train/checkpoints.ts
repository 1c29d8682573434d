// What a run keeps on disk, and the order it is written in so that a kill at any moment leaves a
// folder the next run can continue. last.safetensors is the run's record (weights, momentum, data
// RNG, history, which epoch best.safetensors holds); everything else is derived from it and written
// after it: best.safetensors with last's very bytes when the epoch is a new best, then
// metrics.jsonl and curves.png. Every write is atomic (util/fs.ts), so a kill leaves at most a
// `.<name>.<pid>.<time>.tmp` beside the files, which the next run in the folder removes. A kill
// between last and best leaves best one best epoch behind; since the record says which epoch best
// must hold, and that epoch is then last's own, the next run repairs it by copying last again.
import { readdir, readFile, rm, rmdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { encodeCheckpoint, loadCheckpoint, type Checkpoint } from '../weights/checkpoint.js';
import { writeCurves } from '../render/curves.js';
import { writeFileAtomic } from '../util/fs.js';
import { FcnError, errorMessage } from '../util/errors.js';
import { decodeTrainState, encodeTrainState, metricsJsonl, type BestEpoch, type TrainState } from './state.js';

export interface RunFiles {
  out: string;
  last: string;
  best: string;
  metrics: string;
  curves: string;
  grid: string;
}

export function runFiles(out: string): RunFiles {
  return {
    out,
    last: join(out, 'last.safetensors'),
    best: join(out, 'best.safetensors'),
    metrics: join(out, 'metrics.jsonl'),
    curves: join(out, 'curves.png'),
    grid: join(out, 'grid.png'),
  };
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** The epoch best.safetensors holds according to the record (older records: the best epoch). */
export function bestFileEpoch(state: TrainState): BestEpoch | null {
  return state.bestFile !== undefined ? state.bestFile : state.best;
}

/** A checkpoint of the epoch in `state` (the weights, the model card, the momentum buffers as extras). */
export type EpochCheckpoint = Omit<Checkpoint, 'metadata'>;

/** The run's record for the epoch: last.safetensors with the state in its metadata. Returns the file's bytes. */
export async function writeLast(files: RunFiles, ckpt: EpochCheckpoint, state: TrainState): Promise<Uint8Array> {
  const bytes = encodeCheckpoint({ ...ckpt, metadata: encodeTrainState(state) });
  await writeFileAtomic(files.last, bytes);
  return bytes;
}

/**
 * Tests stop a run at a chosen point between writes: FCN_TEST_KILL_AT=<point>:<epoch> makes the
 * process SIGKILL itself there (no cleanup runs, as after a real kill). Nothing else sets it.
 */
function killPoint(point: string, epoch: number): void {
  if (process.env['FCN_TEST_KILL_AT'] === `${point}:${epoch}`) process.kill(process.pid, 'SIGKILL');
}

/** best.safetensors with the same bytes as last.safetensors (given, or read back from the file). */
export async function writeBest(files: RunFiles, bytes?: Uint8Array): Promise<void> {
  let data = bytes;
  if (!data) {
    try {
      data = await readFile(files.last);
    } catch (err) {
      throw new FcnError(`${files.last}: cannot read (${errorMessage(err)})`);
    }
  }
  await writeFileAtomic(files.best, data);
}

/** metrics.jsonl and curves.png, rebuilt from the history. */
export async function writeRecords(files: RunFiles, history: TrainState['history'], epochs: number): Promise<void> {
  await writeFileAtomic(files.metrics, metricsJsonl(history));
  await writeCurves(files.curves, history, epochs);
}

/** The end of an epoch on disk, in the order that keeps a killed run resumable (see the header). */
export async function saveCheckpoints(files: RunFiles, ckpt: EpochCheckpoint, state: TrainState): Promise<void> {
  const bytes = await writeLast(files, ckpt, state);
  killPoint('last-written', state.epoch);
  if (bestFileEpoch(state)?.epoch === state.epoch) await writeBest(files, bytes);
  await writeRecords(files, state.history, state.history[state.history.length - 1]!.epochs);
}

/** The training state inside best.safetensors, or undefined when the file is missing or unreadable. */
async function bestFileState(files: RunFiles): Promise<TrainState | undefined> {
  if (!(await exists(files.best))) return undefined;
  try {
    const ckpt = await loadCheckpoint(files.best);
    return decodeTrainState(ckpt.metadata, files.best);
  } catch {
    return undefined;
  }
}

/**
 * Makes best.safetensors hold the epoch the record says (called when a run resumes). When it does
 * not (missing, from another run, or one best epoch behind after a kill) and that epoch is the last
 * one, last.safetensors is copied again. When the recorded epoch's weights are gone (someone removed
 * the file), best is rewritten with the last epoch and the returned state says so.
 */
export async function repairBest(files: RunFiles, state: TrainState, log: (s: string) => void): Promise<TrainState> {
  const want = bestFileEpoch(state);
  if (want === null) return state;
  const held = await bestFileState(files);
  const holds = held !== undefined && held.epoch === want.epoch &&
    JSON.stringify(held.history[want.epoch - 1]) === JSON.stringify(state.history[want.epoch - 1]);
  if (holds) return state;
  const was = held === undefined ? 'was missing' : `held epoch ${held.epoch}${held.epoch === want.epoch ? ' of another run' : ''}`;
  await writeBest(files);
  if (want.epoch === state.epoch) {
    log(`note: ${files.best} ${was}; rewrote it with epoch ${want.epoch} from ${files.last}`);
    return state;
  }
  const last = state.history[state.epoch - 1]!;
  log(`note: ${files.best} ${was} and epoch ${want.epoch}'s weights are gone; it now holds epoch ${state.epoch} (val mIoU ${last.testMeanIoU.toFixed(3)})`);
  return { ...state, bestFile: { epoch: state.epoch, testMeanIoU: last.testMeanIoU } };
}

/** True when `pid` names a running process. */
function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes the temp files of atomic writes that a killed run left in `out` (`.<name>.<pid>.<time>.tmp`, pid gone). */
export async function removeStaleTemps(out: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(out);
  } catch {
    return [];
  }
  const stale = names.filter((n) => {
    const m = /^\..+\.(\d+)\.\d+\.tmp$/.exec(n);
    return m !== null && !alive(Number(m[1]));
  });
  await Promise.all(stale.map((n) => rm(join(out, n), { force: true })));
  return stale;
}

/**
 * The folders that creating `dir` would make (it and its missing ancestors, deepest first), so
 * that a run failing before its first whole file can remove exactly what it created.
 */
export async function missingFolders(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (let d = dir; !(await exists(d)); d = dirname(d)) {
    out.push(d);
    if (dirname(d) === d) break;
  }
  return out;
}

/** Removes the folders in `created` (deepest first) that are empty; a folder holding anything stays. */
export async function removeIfEmpty(created: readonly string[]): Promise<void> {
  for (const dir of created) {
    try {
      await rmdir(dir);
    } catch {
      return;
    }
  }
}
