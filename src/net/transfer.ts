// What the downloader adds on top of the HTTP client (http.ts): a file that only reaches its final
// name once its size and hash are right. While incomplete it is `<file>.part`, resumed with a Range
// request after a dropped connection (within a run) and by the next run (across runs); a file that
// fails its check is renamed `<file>.bad-<time>` and never reused; a verified file is remembered in
// a sidecar (cache.ts), so a second run transfers nothing and does not re-hash 2 GB. Free space is
// checked against what the server announces before the `.part` (or its folder) is created, and
// every failure that leaves a `.part` behind says where it is.
import { existsSync, mkdirSync, rmSync, statSync, statfsSync, truncateSync } from 'node:fs';
import { open, rename, type FileHandle } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { FcnError } from '../util/errors.js';
import { Progress } from '../util/progress.js';
import {
  type ExpectedDigest,
  type HashAlgorithm,
  checkCached,
  describeDigest,
  digestMatches,
  hashFile,
  keepAside,
  writeSidecar,
} from './cache.js';
import { DownloadError, HttpClient, discard, parseHttpUrl, type HttpResponse } from './http.js';

export interface DownloadOptions {
  url: string;
  /** Final path of the verified file; `<dest>.part` holds it while it is incomplete. */
  dest: string;
  /** Digests (full or prefixes) the file must have; at least one. */
  expect: ExpectedDigest[];
  /** Expected size in bytes, when known: a file of any other size is refused. */
  size?: number;
  /** Connect, headers and idle timeout, in milliseconds (default 30000). */
  timeoutMs?: number;
  maxRedirects?: number;
  /** Resumed attempts after a connection drops mid-file, and retries of a transient HTTP answer (default 5 each). */
  retries?: number;
  retryDelayMs?: number;
  /** Draw a progress bar (on this stream, or stderr for `true`). Default: none. */
  progress?: boolean | NodeJS.WriteStream;
  /** Human-readable status lines (cached, resuming, verifying ...). */
  log?: (line: string) => void;
}

export interface DownloadResult {
  path: string;
  /** True when a verified copy was already there and nothing was transferred. */
  cached: boolean;
  /** Bytes received over the network in this call. */
  bytesTransferred: number;
  /** Hex digests of the file, by algorithm. */
  digests: Partial<Record<HashAlgorithm, string>>;
}

export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return '?';
  if (n < 1024) return `${Math.round(n)} B`;
  const units = ['kB', 'MB', 'GB', 'TB', 'PB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

function partSize(part: string): number {
  try {
    return statSync(part).size;
  } catch {
    return 0;
  }
}

/** Refuses `needed` bytes in `dir` (or, when it does not exist yet, the folder it would be made in) when they do not fit. */
export function checkFreeSpace(dir: string, needed: number, what: string): void {
  let existing = dir;
  while (!existsSync(existing) && dirname(existing) !== existing) existing = dirname(existing);
  let free: number;
  try {
    const st = statfsSync(existing);
    free = st.bavail * st.bsize;
  } catch {
    return; // no statfs here: the write fails if it must
  }
  if (free < needed) {
    throw new DownloadError(`${dir}: not enough disk space for ${what}: needs ${formatBytes(needed)}, ${formatBytes(free)} free`, 'disk');
  }
}

interface AttemptResult {
  /** Bytes received in this attempt. */
  bytes: number;
  complete: boolean;
  /** The server refused the range and the partial file was unusable: start over. */
  restart?: boolean;
}

/** A network failure after `bytes` of body arrived (retryable when > 0). */
class AttemptError extends Error {
  constructor(readonly failure: DownloadError, readonly bytes: number) {
    super(failure.message);
  }
}

interface Plan {
  append: boolean;
  /** The whole file's size, when the server said. */
  total?: number;
}

/** What to do with an answer to a request for the rest of a `.part` of `have` bytes; undefined: not a body to keep. */
function planFor(res: HttpResponse, have: number, log: (l: string) => void): Plan | AttemptResult {
  const { status, url, headers } = res;
  const length = headers['content-length'] !== undefined ? Number(headers['content-length']) : undefined;
  if (status === 206 && have > 0) {
    const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(headers['content-range'] ?? ''));
    if (!m || Number(m[1]) !== have) {
      log(`${url.host} answered the range request with '${headers['content-range'] ?? ''}'; starting over`);
      return { bytes: 0, complete: false, restart: true };
    }
    return { append: true, total: m[3] !== '*' ? Number(m[3]) : length !== undefined ? have + length : undefined };
  }
  if (status === 200 || status === 206) {
    if (have > 0) log(`${url.host} ignored the range request (HTTP ${status}); starting over`);
    return { append: false, total: length };
  }
  if (status === 416 && have > 0) {
    const m = /^bytes \*\/(\d+)$/.exec(String(headers['content-range'] ?? ''));
    if (m && Number(m[1]) === have) return { bytes: 0, complete: true };
    log(`${url.host} cannot resume at ${formatBytes(have)} (HTTP 416); starting over`);
    return { bytes: 0, complete: false, restart: true };
  }
  throw new DownloadError(`${url.href}: HTTP ${status} ${res.statusText}`.trimEnd(), 'http');
}

function progressBar(opts: DownloadOptions, total: number | undefined, start: number): Progress | undefined {
  const stream = opts.progress ? (opts.progress === true ? process.stderr : opts.progress) : undefined;
  if (!stream) return undefined;
  return new Progress({
    total: total !== undefined ? total - start : NaN,
    label: basename(opts.dest) + (start > 0 ? ` (from ${formatBytes(start)})` : ''),
    format: formatBytes,
    stream,
  });
}

/** One request for the rest of `part`: appends (206) or rewrites (200) it until the body ends. */
async function attempt(client: HttpClient, url: URL, part: string, opts: DownloadOptions, transferred: { n: number }): Promise<AttemptResult> {
  const have = partSize(part);
  const log = opts.log ?? (() => {});
  const res = await client.get(url, have > 0 ? { range: `bytes=${have}-` } : {});
  let plan: Plan | AttemptResult;
  try {
    plan = planFor(res, have, log);
    if ('complete' in plan) return plan;
    if (opts.size !== undefined && plan.total !== undefined && plan.total !== opts.size) {
      throw new DownloadError(`${res.url.href}: the server offers ${plan.total} bytes, expected ${opts.size}`, 'size');
    }
    // before the .part or its folder exists: a server announcing more than fits leaves nothing behind
    if (plan.total !== undefined) checkFreeSpace(dirname(part), plan.total - (plan.append ? have : 0), basename(opts.dest));
  } catch (err) {
    discard(res.body);
    throw err;
  }
  const start = plan.append ? have : 0;
  // said only once a server answered: an unreachable host gives one error line and nothing else
  if (plan.append) log(`resuming ${basename(opts.dest)} at ${formatBytes(have)} from ${res.url.href}`);
  else log(`downloading ${res.url.href}${plan.total !== undefined ? ` (${formatBytes(plan.total)})` : ''}`);
  const bar = progressBar(opts, plan.total, start);
  let bytes = 0;
  let lastDraw = 0;
  let file: FileHandle | undefined;
  const openPart = async () => {
    // the folder and the .part are made at the first byte, so a server that stalls leaves nothing
    try {
      mkdirSync(dirname(part), { recursive: true });
      return await open(part, plan.append ? 'a' : 'w');
    } catch (err) {
      throw new DownloadError(`${part}: cannot write the download: ${(err as Error).message}`, 'disk');
    }
  };
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      file ??= await openPart();
      try {
        await file.write(chunk);
      } catch (err) {
        throw new DownloadError(`${part}: cannot write the download: ${(err as Error).message}`, 'disk');
      }
      bytes += chunk.length;
      transferred.n += chunk.length;
      // a redraw per chunk would be tens of thousands of writes for 2 GB: ten a second is plenty
      const now = Date.now();
      if (bar && now - lastDraw >= 100) {
        lastDraw = now;
        bar.update(bytes);
      }
    }
    file ??= await openPart(); // an empty body is an empty file
  } catch (err) {
    discard(res.body);
    bar?.update(bytes);
    bar?.finish('interrupted');
    if (err instanceof DownloadError && err.reason === 'disk') throw err;
    throw new AttemptError(client.failure(err, res.url), bytes);
  } finally {
    await file?.close();
  }
  bar?.update(bytes);
  bar?.finish();
  const size = start + bytes;
  if (plan.total !== undefined && size < plan.total) {
    throw new AttemptError(new DownloadError(`connection to ${res.url.host} closed after ${formatBytes(size)} of ${formatBytes(plan.total)}`, 'connection-lost'), bytes);
  }
  return { bytes, complete: true };
}

/** Brings `<dest>.part` to a complete transfer, resuming after dropped connections. */
async function fetchPart(client: HttpClient, url: URL, part: string, opts: DownloadOptions, transferred: { n: number }): Promise<void> {
  const retries = opts.retries ?? 5;
  const log = opts.log ?? (() => {});
  let failures = 0;
  let restarts = 0;
  for (;;) {
    let r: AttemptResult;
    try {
      r = await attempt(client, url, part, opts, transferred);
    } catch (err) {
      if (!(err instanceof AttemptError)) throw err;
      // only an attempt that made progress is worth another: a dead server stays dead
      const retryable = err.bytes > 0 && (err.failure.reason === 'connection-lost' || err.failure.reason === 'timeout');
      if (!retryable || failures >= retries) throw err.failure;
      failures++;
      const delay = (opts.retryDelayMs ?? 1000) * failures;
      log(`${err.message}; resuming in ${delay / 1000} s (retry ${failures} of ${retries})`);
      await new Promise((r) => setTimeout(r, delay));
      continue;
    }
    if (r.complete) return;
    if (r.restart) {
      if (restarts++ >= 1) throw new DownloadError(`${url.href}: the server does not resume consistently`, 'http');
      truncateSync(part, 0);
    }
  }
}

/** A failure with the `.part` it leaves named (or the empty `.part` removed). */
function leavingPart(err: unknown, part: string): unknown {
  if (partSize(part) === 0) {
    rmSync(part, { force: true });
    return err;
  }
  if (err instanceof DownloadError && !err.message.includes(part)) {
    return new DownloadError(`${err.message}; run again to resume from ${part}`, err.reason);
  }
  return err;
}

function expectLine(expect: ExpectedDigest[]): string {
  return expect.map(describeDigest).join(' and ');
}

/** Hashes `part` and refuses it (kept aside as `<dest>.bad-<time>`) when its size or a digest is wrong. */
async function verify(part: string, url: URL, opts: DownloadOptions): Promise<Partial<Record<HashAlgorithm, string>>> {
  const log = opts.log ?? (() => {});
  const size = statSync(part).size;
  if (opts.size !== undefined && size !== opts.size) {
    const bad = keepAside(part, opts.dest);
    throw new DownloadError(`${url.href}: got ${size} bytes, expected ${opts.size}; refused and kept aside as ${bad}`, 'size');
  }
  const digests: Partial<Record<HashAlgorithm, string>> = {};
  for (const e of opts.expect) {
    if (digests[e.algorithm] === undefined) {
      if (size > 64 << 20) log(`verifying the ${e.algorithm} of ${formatBytes(size)}`);
      digests[e.algorithm] = await hashFile(part, e.algorithm);
    }
    const actual = digests[e.algorithm]!;
    if (!digestMatches(e, actual)) {
      const bad = keepAside(part, opts.dest);
      throw new DownloadError(`${url.href}: ${e.algorithm} is ${actual}, expected ${describeDigest(e)}; refused and kept aside as ${bad}`, 'hash');
    }
  }
  return digests;
}

/**
 * Downloads `opts.url` to `opts.dest`, verified. A verified copy already at `dest` is reused
 * without any transfer; an unverifiable one is kept aside and fetched again. Throws DownloadError
 * with one line; on a hash or size mismatch the downloaded file is kept as `<dest>.bad-<time>`.
 */
export async function downloadFile(opts: DownloadOptions): Promise<DownloadResult> {
  if (opts.expect.length === 0) throw new FcnError(`${opts.dest}: no expected hash given for ${opts.url}`, 2);
  const url = parseHttpUrl(opts.url);
  const log = opts.log ?? (() => {});
  const { dest } = opts;
  const part = `${dest}.part`;

  const cached = await checkCached(dest, opts.expect, (alg) => log(`checking the ${alg} of ${dest}`));
  if (cached.state === 'verified' && (opts.size === undefined || statSync(dest).size === opts.size)) {
    log(`cached: ${dest} (${expectLine(opts.expect)}${cached.rehashed ? ' checked' : ' verified earlier'}); nothing to download`);
    return { path: dest, cached: true, bytesTransferred: 0, digests: Object.fromEntries(cached.digests) };
  }
  if (cached.state !== 'missing') {
    const bad = keepAside(dest);
    log(`${dest} does not match the expected ${expectLine(opts.expect)}; kept aside as ${bad}, downloading again`);
  }

  const transferred = { n: 0 };
  const client = await HttpClient.open({
    timeoutMs: opts.timeoutMs ?? 30_000,
    maxRedirects: opts.maxRedirects ?? 10,
    retries: opts.retries ?? 5,
    retryDelayMs: opts.retryDelayMs ?? 1000,
    log,
  });
  try {
    if (opts.size !== undefined && !existsSync(part)) checkFreeSpace(dirname(dest), opts.size, basename(dest));
    await fetchPart(client, url, part, opts, transferred);
  } catch (err) {
    throw leavingPart(err, part);
  } finally {
    await client.close();
  }

  // verify before the file takes its final name
  const digests = await verify(part, url, opts);
  await rename(part, dest);
  writeSidecar(dest, Object.entries(digests).map(([algorithm, digest]) => ({ algorithm: algorithm as HashAlgorithm, digest: digest! })), url.href);
  log(`saved ${dest} (${formatBytes(statSync(dest).size)}, ${expectLine(opts.expect)} verified)`);
  return { path: dest, cached: false, bytesTransferred: transferred.n, digests };
}
