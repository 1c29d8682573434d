// A cache of ONNX Runtime's optimised graphs, so that a second process skips graph optimisation
// (constant folding, Conv+BN fusion, the NCHWc rewrite and its weight reorders). One file per key:
// 32 bytes of SHA-256 of the rest, then the optimised ONNX bytes. The key covers everything the
// optimised graph depends on: the model's bytes, the optimisation options and thread count, the
// runtime's version, the execution provider, and the CPU (ORT's NCHWc graphs are specific to the
// vector width it found). A file whose checksum fails, or that the runtime refuses, is deleted and
// rebuilt; nothing is read from it before its checksum has passed. The folder keeps the most recently
// used graphs only (a graph is 50-250 MB; every checkpoint has its own).
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { readdir, readFile, rm, stat, utimes } from 'node:fs/promises';
import { homedir, cpus } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/fs.js';

/** The folder graphs are cached in: $FCN_GRAPH_CACHE, else $XDG_CACHE_HOME/fcn/graphs, else ~/.cache/fcn/graphs; undefined when $FCN_GRAPH_CACHE is 'off'. */
export function defaultGraphCacheDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const set = env.FCN_GRAPH_CACHE;
  if (set !== undefined && set.length > 0) return set === 'off' || set === '0' ? undefined : set;
  const base = env.XDG_CACHE_HOME && env.XDG_CACHE_HOME.length > 0 ? env.XDG_CACHE_HOME : join(homedir(), '.cache');
  return join(base, 'fcn', 'graphs');
}

let cpuIdentity: string | undefined;

/** The CPU as the optimised graph depends on it: model name and instruction-set flags (Linux), else the model name. */
export function cpuFeatures(): string {
  if (cpuIdentity !== undefined) return cpuIdentity;
  let flags = '';
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    flags = /^flags\s*:(.*)$/m.exec(info)?.[1]?.trim() ?? '';
  } catch {
    // not Linux: the model name and architecture below stand for the features
  }
  cpuIdentity = `${process.arch} ${cpus()[0]?.model ?? 'unknown'} ${flags}`;
  return cpuIdentity;
}

/** The cache key: SHA-256 over the model's bytes and every setting the optimised graph depends on. */
export function graphCacheKey(model: Uint8Array, settings: Record<string, unknown>): string {
  const h = createHash('sha256');
  h.update(model);
  h.update('\0');
  h.update(JSON.stringify({ ...settings, cpu: cpuFeatures() }));
  return h.digest('hex');
}

const sha256 = (data: Uint8Array): Buffer => createHash('sha256').update(data).digest();

export function graphCachePath(dir: string, key: string): string {
  return join(dir, `${key}.ortgraph`);
}

/** The cached optimised graph for `key`, or undefined (a missing, short or corrupt file; a corrupt one is deleted). */
export async function readCachedGraph(dir: string, key: string): Promise<Uint8Array | undefined> {
  const path = graphCachePath(dir, key);
  let file: Buffer;
  try {
    file = await readFile(path);
  } catch {
    return undefined;
  }
  const body = file.subarray(32);
  if (file.length <= 32 || !sha256(body).equals(file.subarray(0, 32))) {
    await rm(path, { force: true });
    return undefined;
  }
  const now = new Date();
  await utimes(path, now, now).catch(() => undefined); // most recently used: kept longest
  return body;
}

/** How many graphs a cache folder keeps (the most recently used). */
export const GRAPH_CACHE_ENTRIES = 6;

/** Stores an optimised graph under `key` (atomically: a reader sees the old file, the new one, or none). */
export async function writeCachedGraph(dir: string, key: string, graph: Uint8Array): Promise<void> {
  const file = new Uint8Array(32 + graph.length);
  file.set(sha256(graph), 0);
  file.set(graph, 32);
  await writeFileAtomic(graphCachePath(dir, key), file);
  await pruneGraphCache(dir, GRAPH_CACHE_ENTRIES);
}

/** Deletes all but the `keep` most recently used graphs of a cache folder. */
export async function pruneGraphCache(dir: string, keep: number): Promise<void> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.ortgraph'));
  if (names.length <= keep) return;
  const dated = await Promise.all(names.map(async (n) => ({ n, t: await stat(join(dir, n)).then((s) => s.mtimeMs, () => 0) })));
  dated.sort((a, b) => b.t - a.t);
  for (const { n } of dated.slice(keep)) await rm(join(dir, n), { force: true });
}

/** Deletes the cached graph for `key` (one the runtime refused to load). */
export function dropCachedGraph(dir: string, key: string): void {
  rmSync(graphCachePath(dir, key), { force: true });
}
