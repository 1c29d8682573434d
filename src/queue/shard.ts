// Shards for job arrays (Kubernetes Indexed Jobs, Slurm arrays): shard K of N takes the inputs whose
// key (file stem or dataset id) hashes to K-1 modulo N. The hash depends only on the key, so every
// copy of the job agrees on the split with no coordinator, and reordering or filtering the input list
// moves no input to another shard.
import { FcnError } from '../util/errors.js';

export interface Shard {
  /** 1-based index of this shard. */
  index: number;
  count: number;
}

/** The most shards: keys hash to 32 bits, so more shards than 2^32 could not all be reached. */
export const MAX_SHARDS = 2 ** 32;

/** Parses 'K/N' with 1 <= K <= N <= 2^32; a bad value is a usage error (exit 2). */
export function parseShard(text: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || count > MAX_SHARDS || index < 1 || index > count) {
    throw new FcnError(`shard '${text}': expected K/N with 1 <= K <= N <= ${MAX_SHARDS} (e.g. 2/8, shard 2 of 8)`, 2);
  }
  return { index, count };
}

/**
 * 32-bit FNV-1a over the key's UTF-8 bytes: fixed, fast, and spreads similar names (2007_000032,
 * 2007_000033, ...) evenly. Not cryptographic; it only has to be stable across machines and versions.
 */
export function fnv1a32(key: string): number {
  let h = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(key)) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** The 1-based shard a key belongs to among `count`. */
export function shardOf(key: string, count: number): number {
  return (fnv1a32(key) % count) + 1;
}

/** The items of `shard`, in their given order; `keyOf` gives each item's stable key. */
export function selectShard<T>(items: readonly T[], shard: Shard, keyOf: (item: T) => string): T[] {
  return items.filter((item) => shardOf(keyOf(item), shard.count) === shard.index);
}
