// A cache of ONNX Runtime's optimised graphs, so that a second process skips graph optimisation
// (constant folding, Conv+BN fusion, the NCHWc rewrite and its weight reorders). Per key two files:
// `<key>.onnx`, the optimised graph as ORT wrote it (moved into place, not copied), and
// `<key>.sha256`, its checksum. The key covers everything the optimised graph depends on: the model's
// bytes, the optimisation options and thread count, the runtime's version, the execution provider,
// and the CPU (ORT's NCHWc graphs are specific to the vector width it found). A graph whose checksum
// is missing or wrong, or that the runtime refuses, is deleted and rebuilt: nothing is handed to the
// runtime before its checksum has passed. The folder keeps the most recently used graphs only (a
// graph is 50-250 MB; every checkpoint has its own).
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { readdir, readFile, rename, rm, stat, utimes } from 'node:fs/promises';
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

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

export function graphCachePath(dir: string, key: string): string {
  return join(dir, `${key}.onnx`);
}

const sumPath = (dir: string, key: string) => join(dir, `${key}.sha256`);

/** The cached optimised graph for `key`, or undefined (missing, or corrupt: then deleted). */
export async function readCachedGraph(dir: string, key: string): Promise<Uint8Array | undefined> {
  const path = graphCachePath(dir, key);
  let graph: Buffer;
  let sum: string;
  try {
    [graph, sum] = await Promise.all([readFile(path), readFile(sumPath(dir, key), 'utf8')]);
  } catch {
    return undefined;
  }
  if (graph.length === 0 || sha256(graph) !== sum.trim()) {
    dropCachedGraph(dir, key);
    return undefined;
  }
  const now = new Date();
  await utimes(path, now, now).catch(() => undefined); // most recently used: kept longest
  return graph;
}

/** How many graphs a cache folder keeps (the most recently used). */
export const GRAPH_CACHE_ENTRIES = 6;

/**
 * Moves the optimised graph ORT wrote at `file` (in `dir`) into place under `key`, with its checksum
 * (written atomically). A reader in between finds no checksum or a stale one: it rebuilds.
 */
export async function storeCachedGraph(dir: string, key: string, file: string): Promise<void> {
  const sum = sha256(await readFile(file));
  await rename(file, graphCachePath(dir, key));
  await writeFileAtomic(sumPath(dir, key), sum + '\n');
  await pruneGraphCache(dir, GRAPH_CACHE_ENTRIES);
}

/** Stores `graph` under `key` (the graph and its checksum). */
export async function writeCachedGraph(dir: string, key: string, graph: Uint8Array): Promise<void> {
  await writeFileAtomic(graphCachePath(dir, key), graph);
  await writeFileAtomic(sumPath(dir, key), sha256(graph) + '\n');
  await pruneGraphCache(dir, GRAPH_CACHE_ENTRIES);
}

/** Deletes all but the `keep` most recently used graphs of a cache folder. */
export async function pruneGraphCache(dir: string, keep: number): Promise<void> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.onnx') && !n.startsWith('.'));
  if (names.length <= keep) return;
  const dated = await Promise.all(names.map(async (n) => ({ n, t: await stat(join(dir, n)).then((s) => s.mtimeMs, () => 0) })));
  dated.sort((a, b) => b.t - a.t);
  for (const { n } of dated.slice(keep)) dropCachedGraph(dir, n.slice(0, -'.onnx'.length));
}

/** Deletes the cached graph for `key` and its checksum (a corrupt one, or one the runtime refused to load). */
export function dropCachedGraph(dir: string, key: string): void {
  rmSync(graphCachePath(dir, key), { force: true });
  rmSync(sumPath(dir, key), { force: true });
}
