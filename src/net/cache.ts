// The download cache's bookkeeping: file hashing, expected-digest checks, the verification sidecar
// that lets a verified file be trusted again without re-hashing it, and keeping refused files aside.
//
// A verified file `<file>` gets a sidecar `<file>.verified.json` recording the algorithm, the full
// hex digest, the size and the mtime it had when it was hashed. While size and mtime still agree the
// file is trusted without reading it (a 2 GB archive takes seconds to hash); any change (or no
// sidecar) means it is hashed again before use. A file that fails its check is never reused: it is
// renamed to `<file>.bad-<time>` so the evidence stays for inspection and nothing silently picks it up.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, renameSync, rmSync, statSync, openSync, readSync, closeSync } from 'node:fs';
import { writeFileAtomicSync } from '../util/fs.js';
import { FcnError } from '../util/errors.js';

export type HashAlgorithm = 'md5' | 'sha1' | 'sha256';

/** A digest a file must have: the full hex digest, or a prefix of it (torchvision names files by
 *  the first 8 hex digits of their SHA-256). */
export interface ExpectedDigest {
  algorithm: HashAlgorithm;
  hex: string;
}

const HEX_LENGTH: Record<HashAlgorithm, number> = { md5: 32, sha1: 40, sha256: 64 };

/** Validates a user-given hex digest or prefix (at least 8 digits, at most the full length). */
export function parseExpectedDigest(algorithm: HashAlgorithm, hex: string): ExpectedDigest {
  const h = hex.trim().toLowerCase();
  if (!/^[0-9a-f]+$/.test(h) || h.length < 8 || h.length > HEX_LENGTH[algorithm]) {
    throw new FcnError(`--${algorithm} expects 8 to ${HEX_LENGTH[algorithm]} hex digits, got '${hex}'`, 2);
  }
  return { algorithm, hex: h };
}

export function digestMatches(expected: ExpectedDigest, actualHex: string): boolean {
  return actualHex.toLowerCase().startsWith(expected.hex);
}

export function describeDigest(d: ExpectedDigest): string {
  return d.hex.length < HEX_LENGTH[d.algorithm] ? `${d.algorithm} starting with ${d.hex}` : `${d.algorithm} ${d.hex}`;
}

/** Hashes a file by streaming it (constant memory, so a 2 GB archive is fine). */
export async function hashFile(path: string, algorithm: HashAlgorithm, onBytes?: (n: number) => void): Promise<string> {
  const hash = createHash(algorithm);
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
    onBytes?.((chunk as Buffer).length);
  }
  return hash.digest('hex');
}

/** The same, synchronously, for small files (a 45 MB checkpoint hashes in well under a second). */
export function hashFileSync(path: string, algorithm: HashAlgorithm): string {
  const hash = createHash(algorithm);
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

interface Sidecar {
  algorithm: HashAlgorithm;
  digest: string;
  size: number;
  mtimeMs: number;
  url?: string;
}

export function sidecarPath(file: string): string {
  return `${file}.verified.json`;
}

function readSidecar(file: string): Sidecar[] {
  try {
    const parsed = JSON.parse(readFileSync(sidecarPath(file), 'utf8')) as unknown;
    const list = Array.isArray(parsed) ? parsed : [parsed];
    return list.filter(
      (s): s is Sidecar =>
        typeof s === 'object' && s !== null &&
        Object.hasOwn(HEX_LENGTH, (s as Sidecar).algorithm) &&
        typeof (s as Sidecar).digest === 'string' && typeof (s as Sidecar).size === 'number' && typeof (s as Sidecar).mtimeMs === 'number',
    );
  } catch {
    return [];
  }
}

/** Records that `file`, as it is now on disk, has these digests. */
export function writeSidecar(file: string, digests: { algorithm: HashAlgorithm; digest: string }[], url?: string): void {
  const st = statSync(file);
  const entries: Sidecar[] = digests.map((d) => ({ algorithm: d.algorithm, digest: d.digest, size: st.size, mtimeMs: st.mtimeMs, ...(url ? { url } : {}) }));
  writeFileAtomicSync(sidecarPath(file), JSON.stringify(entries.length === 1 ? entries[0] : entries, null, 2) + '\n');
}

/** The digest the sidecar remembers for `file`, if the file still has the size and mtime it had when hashed. */
export function rememberedDigest(file: string, algorithm: HashAlgorithm): string | undefined {
  let st;
  try {
    st = statSync(file);
  } catch {
    return undefined;
  }
  const s = readSidecar(file).find((e) => e.algorithm === algorithm);
  if (!s || s.size !== st.size || s.mtimeMs !== st.mtimeMs) return undefined;
  return s.digest;
}

export type CacheCheck =
  | { state: 'missing' }
  /** verified: `rehashed` says whether the file was read (no usable sidecar) or trusted from the sidecar. */
  | { state: 'verified'; rehashed: boolean; digests: Map<HashAlgorithm, string> }
  | { state: 'mismatch'; algorithm: HashAlgorithm; actual: string; expected: ExpectedDigest };

/** Checks a file already at its final place against the expected digests, trusting the sidecar
 *  when it still describes the file, hashing otherwise (and then remembering the result). */
export async function checkCached(file: string, expected: ExpectedDigest[], onHash?: (algorithm: HashAlgorithm) => void): Promise<CacheCheck> {
  if (!existsSync(file)) return { state: 'missing' };
  const digests = new Map<HashAlgorithm, string>();
  let rehashed = false;
  for (const e of expected) {
    let actual = rememberedDigest(file, e.algorithm);
    if (actual === undefined) {
      onHash?.(e.algorithm);
      actual = await hashFile(file, e.algorithm);
      rehashed = true;
    }
    if (!digestMatches(e, actual)) return { state: 'mismatch', algorithm: e.algorithm, actual, expected: e };
    digests.set(e.algorithm, actual);
  }
  if (rehashed) writeSidecar(file, [...digests].map(([algorithm, digest]) => ({ algorithm, digest })));
  return { state: 'verified', rehashed, digests };
}

/** Renames a refused file to `<file>.bad-<time>` (never reused, kept for inspection) and drops its
 *  sidecar. Returns the new path. */
export function keepAside(file: string, finalName = file): string {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  let bad = `${finalName}.bad-${stamp}`;
  for (let i = 1; existsSync(bad); i++) bad = `${finalName}.bad-${stamp}-${i}`;
  renameSync(file, bad);
  rmSync(sidecarPath(finalName), { force: true });
  return bad;
}
