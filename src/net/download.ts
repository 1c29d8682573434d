// Getting the real data and weights: the PASCAL VOC2012 trainval archive (extracted to
// DIR/VOCdevkit/VOC2012) and torchvision's ImageNet ResNet-18 checkpoint (DIR/resnet18-f37072fd.pth),
// each verified by its published hash before anything uses it.
//
// The downloader speaks plain node:http/https (through an http proxy when the environment names one,
// see proxy.ts): bounded redirects, connect and idle timeouts, a
// progress bar, and HTTP range resume of `<file>.part` (within a run after a dropped connection,
// and across runs). A file only reaches its final name once its size and hash are right; a file
// that fails is renamed `<file>.bad-<time>` and never reused. A verified file is remembered in a
// sidecar (see cache.ts), so a second run transfers nothing and does not re-hash 2 GB.
import { mkdirSync, existsSync, statSync, statfsSync, createWriteStream, truncateSync, rmSync } from 'node:fs';
import { rename, rm, mkdir, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, basename, dirname } from 'node:path';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { isIP, type Socket } from 'node:net';
import type { IncomingMessage, ClientRequest } from 'node:http';
import { FcnError } from '../util/errors.js';
import { Progress } from '../util/progress.js';
import {
  type ExpectedDigest,
  type HashAlgorithm,
  checkCached,
  describeDigest,
  digestMatches,
  hashFile,
  hashFileSync,
  keepAside,
  parseExpectedDigest,
  rememberedDigest,
  writeSidecar,
} from './cache.js';
import { extractTar } from './archive.js';
import { bareHostname, connectTunnel, proxyFor, proxyHeaders, TunnelError } from './proxy.js';

/** The official PASCAL VOC2012 trainval archive (segmentation, detection, ... in one tar). */
export const VOC2012_TRAINVAL = {
  url: 'http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar',
  file: 'VOCtrainval_11-May-2012.tar',
  size: 1_999_639_040,
  sha1: '4e443f8a2eca6b1dac8a6c57641b67dd40621a49',
} as const;

/** torchvision's ImageNet ResNet-18 (IMAGENET1K_V1); the 8 hex digits in the name start its SHA-256. */
export const RESNET18_IMAGENET = {
  url: 'https://download.pytorch.org/models/resnet18-f37072fd.pth',
  file: 'resnet18-f37072fd.pth',
  sha256Prefix: 'f37072fd',
} as const;

/** Where downloads go unless told otherwise: $FCN_HOME, else ~/.cache/fcn. */
export function defaultDownloadDir(): string {
  const home = process.env.FCN_HOME;
  return home && home.length > 0 ? home : join(homedir(), '.cache', 'fcn');
}

/** Why a download failed, for callers that want to add advice (the CLI does for 'unreachable'). */
export type DownloadFailure = 'unreachable' | 'timeout' | 'http' | 'connection-lost' | 'redirect' | 'hash' | 'size' | 'disk';

export class DownloadError extends FcnError {
  constructor(message: string, readonly reason: DownloadFailure) {
    super(message, 1);
    this.name = 'DownloadError';
  }
}

export interface DownloadOptions {
  url: string;
  /** Final path of the verified file; `<dest>.part` holds it while it is incomplete. */
  dest: string;
  /** Digests (full or prefixes) the file must have; at least one. */
  expect: ExpectedDigest[];
  /** Expected size in bytes, when known: a file of any other size is refused. */
  size?: number;
  /** Connect and idle timeout, in milliseconds (default 30000). */
  timeoutMs?: number;
  maxRedirects?: number;
  /** Resumed attempts after a connection drops mid-file (default 5); only attempts that made progress count as retryable. */
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

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const USER_AGENT = 'fcn-download/0.1 (node)';

function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return '?';
  if (n < 1024) return `${Math.round(n)} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

function hostOf(url: URL): string {
  return url.host;
}

function parseHttpUrl(text: string, what = 'URL'): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new FcnError(`${what} '${text}' is not a valid URL`, 2);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new FcnError(`${what} '${text}' is not an http or https URL`, 2);
  return url;
}

/** One line for a network error, classified by its code; `what` names the peer ('host', or 'proxy' when talking to one). */
function networkError(err: unknown, url: URL, what: 'host' | 'proxy' = 'host'): DownloadError {
  if (err instanceof DownloadError) return err;
  const e = err as NodeJS.ErrnoException;
  const code = e?.code ?? '';
  const host = hostOf(url);
  switch (code) {
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_FAIL':
    case 'EAI_NONAME':
    case 'EAI_NODATA':
      return new DownloadError(`cannot reach ${what} ${url.hostname}: DNS lookup failed (${code})`, 'unreachable');
    case 'ECONNREFUSED':
      return new DownloadError(`cannot reach ${what} ${host}: connection refused`, 'unreachable');
    case 'ENETUNREACH':
    case 'EHOSTUNREACH':
    case 'ENETDOWN':
    case 'EHOSTDOWN':
    case 'EADDRNOTAVAIL':
      return new DownloadError(`cannot reach ${what} ${host}: network unreachable (${code})`, 'unreachable');
    case 'ETIMEDOUT':
      return new DownloadError(`cannot reach ${what} ${host}: connection timed out`, 'unreachable');
    case 'ECONNRESET':
    case 'EPIPE':
    case 'ERR_STREAM_PREMATURE_CLOSE':
      return new DownloadError(`connection to ${host} lost (${code})`, 'connection-lost');
  }
  const msg = e instanceof Error ? e.message : String(err);
  if (/^(ERR_TLS|ERR_SSL|CERT_|UNABLE_TO|DEPTH_ZERO|SELF_SIGNED)/.test(code)) {
    return new DownloadError(`TLS error with ${host}: ${msg}`, 'unreachable');
  }
  return new DownloadError(`download from ${host} failed: ${msg}${code ? ` (${code})` : ''}`, 'connection-lost');
}

/** Kills a request when nothing happens for `ms`: no connection, no response, or no data. */
class Watchdog {
  private timer: NodeJS.Timeout | undefined;
  phase: 'connect' | 'response' | 'body' = 'connect';
  constructor(
    private readonly ms: number,
    private readonly url: URL,
    private readonly onFire: (err: DownloadError) => void,
  ) {
    this.kick();
  }
  kick(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.onFire(this.error()), this.ms);
  }
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
  private error(): DownloadError {
    const s = `${+(this.ms / 1000).toFixed(3)} s`;
    const host = hostOf(this.url);
    if (this.phase === 'connect') return new DownloadError(`cannot reach host ${host}: no connection within ${s}`, 'unreachable');
    if (this.phase === 'response') return new DownloadError(`host ${host} did not answer within ${s}`, 'timeout');
    return new DownloadError(`download from ${host} stalled: no data for ${s}`, 'timeout');
  }
}

interface OpenResponse {
  res: IncomingMessage;
  req: ClientRequest;
  url: URL;
  watchdog: Watchdog;
}

/** One GET (no redirects followed), resolved at the response headers; through a proxy when the environment names one. */
async function get(url: URL, headers: Record<string, string>, timeoutMs: number): Promise<OpenResponse> {
  const proxy = proxyFor(url);
  let tunnel: Socket | undefined;
  if (proxy && url.protocol === 'https:') {
    try {
      tunnel = await connectTunnel(proxy, url, timeoutMs);
    } catch (err) {
      throw err instanceof TunnelError ? new DownloadError(err.message, 'unreachable') : networkError(err, proxy, 'proxy');
    }
  }
  return new Promise((resolve, reject) => {
    let req: ClientRequest;
    if (tunnel) {
      // TLS with the real host, over the proxy's tunnel
      const socket = tunnel;
      const host = bareHostname(url);
      req = https.request(url, {
        method: 'GET', headers,
        createConnection: () => tls.connect({ socket, host, servername: isIP(host) ? undefined : host }),
      });
    } else if (proxy) {
      // plain http: the proxy is asked for the absolute URL
      req = http.request({
        host: bareHostname(proxy), port: proxy.port || 80, method: 'GET', path: url.href,
        headers: { ...headers, host: url.host, ...proxyHeaders(proxy) }, agent: false,
      });
    } else {
      const mod = url.protocol === 'https:' ? https : http;
      // a fresh connection per request: no keep-alive socket outlives a failed attempt
      req = mod.request(url, { method: 'GET', headers, agent: false });
    }
    const watchdog = new Watchdog(timeoutMs, url, (err) => req.destroy(err));
    req.on('socket', (socket) => {
      const connected = () => {
        watchdog.phase = 'response';
        watchdog.kick();
      };
      if (socket.connecting) socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', connected);
      else connected();
    });
    req.on('error', (err) => {
      watchdog.stop();
      tunnel?.destroy();
      reject(proxy && !tunnel ? networkError(err, proxy, 'proxy') : networkError(err, url));
    });
    req.on('response', (res) => {
      watchdog.phase = 'body';
      watchdog.kick();
      resolve({ res, req, url, watchdog });
    });
    req.end();
  });
}

/** GET following up to `maxRedirects` redirects (relative Locations resolved, http<->https allowed). */
async function open(start: URL, headers: Record<string, string>, timeoutMs: number, maxRedirects: number): Promise<OpenResponse> {
  let url = start;
  for (let hops = 0; ; hops++) {
    const r = await get(url, headers, timeoutMs);
    const status = r.res.statusCode ?? 0;
    if (!REDIRECTS.has(status)) return r;
    r.watchdog.stop();
    r.res.resume();
    r.req.destroy();
    const location = r.res.headers.location;
    if (!location) throw new DownloadError(`${url.href}: HTTP ${status} redirect without a Location header`, 'redirect');
    if (hops >= maxRedirects) throw new DownloadError(`${start.href}: more than ${maxRedirects} redirects`, 'redirect');
    url = parseHttpUrl(new URL(location, url).href, `redirect target from ${url.host}`);
  }
}

interface AttemptResult {
  /** Bytes received in this attempt. */
  bytes: number;
  /** The complete size, when the server said. */
  total?: number;
  complete: boolean;
  /** The server refused the range and the partial file was unusable: start over. */
  restart?: boolean;
}

class AttemptError extends Error {
  constructor(
    readonly failure: DownloadError,
    readonly bytes: number,
  ) {
    super(failure.message);
  }
}

function partSize(part: string): number {
  try {
    return statSync(part).size;
  } catch {
    return 0;
  }
}

function checkFreeSpace(dir: string, needed: number, what: string): void {
  let st;
  try {
    st = statfsSync(dir);
  } catch {
    return; // no statfs here: let the write fail if it must
  }
  const free = st.bavail * st.bsize;
  if (free < needed) {
    throw new DownloadError(`${dir}: not enough disk space for ${what}: needs ${formatBytes(needed)}, ${formatBytes(free)} free`, 'disk');
  }
}

/** One request for the rest of `part`: appends (206) or rewrites (200) it until the body ends. */
async function attempt(url: URL, part: string, opts: DownloadOptions, transferred: { n: number }): Promise<AttemptResult> {
  const have = partSize(part);
  const headers: Record<string, string> = { 'User-Agent': USER_AGENT, 'Accept-Encoding': 'identity' };
  if (have > 0) headers.Range = `bytes=${have}-`;
  const log = opts.log ?? (() => {});
  const { res, req, watchdog } = await open(url, headers, opts.timeoutMs ?? 30_000, opts.maxRedirects ?? 10);
  const status = res.statusCode ?? 0;
  const finish = () => {
    watchdog.stop();
    res.resume();
    req.destroy();
  };
  let append = false;
  let total: number | undefined;
  const length = res.headers['content-length'] !== undefined ? Number(res.headers['content-length']) : undefined;
  if (status === 206 && have > 0) {
    const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers['content-range'] ?? '');
    if (!m || Number(m[1]) !== have) {
      finish();
      log(`${url.host} answered the range request with '${res.headers['content-range'] ?? ''}'; starting over`);
      return { bytes: 0, complete: false, restart: true };
    }
    append = true;
    total = m[3] !== '*' ? Number(m[3]) : length !== undefined ? have + length : undefined;
  } else if (status === 200 || status === 206) {
    if (have > 0) log(`${url.host} ignored the range request (HTTP ${status}); starting over`);
    total = length;
  } else if (status === 416 && have > 0) {
    finish();
    const m = /^bytes \*\/(\d+)$/.exec(res.headers['content-range'] ?? '');
    if (m && Number(m[1]) === have) return { bytes: 0, total: have, complete: true };
    log(`${url.host} cannot resume at ${formatBytes(have)} (HTTP 416); starting over`);
    return { bytes: 0, complete: false, restart: true };
  } else {
    finish();
    throw new DownloadError(`${url.href}: HTTP ${status} ${res.statusMessage ?? ''}`.trimEnd(), 'http');
  }
  if (opts.size !== undefined && total !== undefined && total !== opts.size) {
    finish();
    throw new DownloadError(`${url.href}: the server offers ${total} bytes, expected ${opts.size}`, 'size');
  }
  const start = append ? have : 0;
  try {
    if (total !== undefined) checkFreeSpace(dirname(part), total - start, basename(opts.dest));
    // the folder is made only once a server answers, so an unreachable host leaves nothing behind
    mkdirSync(dirname(part), { recursive: true });
  } catch (err) {
    finish();
    if (err instanceof FcnError) throw err;
    throw new DownloadError(`${dirname(part)}: cannot create the download folder: ${(err as Error).message}`, 'disk');
  }
  // said only once a server answered: an unreachable host gives one error line and nothing else
  if (append) log(`resuming ${basename(opts.dest)} at ${formatBytes(have)} from ${url.href}`);
  else log(`downloading ${url.href}${total !== undefined ? ` (${formatBytes(total)})` : ''}`);
  const stream = opts.progress ? (opts.progress === true ? process.stderr : opts.progress) : undefined;
  const bar = stream
    ? new Progress({
        total: total !== undefined ? total - start : NaN,
        label: basename(opts.dest) + (start > 0 ? ` (from ${formatBytes(start)})` : ''),
        format: formatBytes,
        stream,
      })
    : undefined;
  const out = createWriteStream(part, { flags: append ? 'a' : 'w' });
  let bytes = 0;
  let lastDraw = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      let done = false;
      const fail = (err: unknown) => {
        if (done) return;
        done = true;
        watchdog.stop();
        res.destroy();
        req.destroy();
        // keep what arrived: end (not destroy, which drops queued writes) and wait until the file
        // is closed, so the resume asks for exactly the bytes that are on disk
        if (out.closed || out.destroyed) reject(err);
        else {
          out.once('close', () => reject(err));
          if (!out.writableEnded) out.end();
        }
      };
      req.on('error', fail);
      res.on('error', fail);
      res.on('aborted', () => fail(Object.assign(new Error('connection closed mid-file'), { code: 'ECONNRESET' })));
      out.on('error', (err) => {
        out.destroy();
        fail(err);
      });
      res.on('data', (chunk: Buffer) => {
        watchdog.kick();
        bytes += chunk.length;
        transferred.n += chunk.length;
        // a redraw per chunk would be tens of thousands of writes for 2 GB: ten a second is plenty
        const now = Date.now();
        if (bar && now - lastDraw >= 100) {
          lastDraw = now;
          bar.update(bytes);
        }
        if (!out.write(chunk)) {
          res.pause();
          out.once('drain', () => res.resume());
        }
      });
      res.on('end', () => {
        if (done) return;
        watchdog.stop();
        if (!res.complete) return fail(Object.assign(new Error('connection closed mid-file'), { code: 'ECONNRESET' }));
        out.end(() => {
          if (done) return;
          done = true;
          resolve();
        });
      });
    });
  } catch (err) {
    if (bar) {
      bar.update(bytes);
      bar.finish('interrupted');
    }
    throw new AttemptError(networkError(err, url), bytes);
  }
  bar?.update(bytes);
  bar?.finish();
  const size = start + bytes;
  if (total !== undefined && size < total) {
    throw new AttemptError(new DownloadError(`connection to ${url.host} closed after ${formatBytes(size)} of ${formatBytes(total)}`, 'connection-lost'), bytes);
  }
  return { bytes, total, complete: true };
}

/** Brings `<dest>.part` to a complete transfer, resuming after dropped connections. */
async function fetchPart(url: URL, part: string, opts: DownloadOptions, transferred: { n: number }): Promise<void> {
  const retries = opts.retries ?? 5;
  const log = opts.log ?? (() => {});
  let failures = 0;
  let restarts = 0;
  for (;;) {
    let r: AttemptResult;
    try {
      r = await attempt(url, part, opts, transferred);
    } catch (err) {
      if (!(err instanceof AttemptError)) throw err;
      const retryable = err.bytes > 0 && (err.failure.reason === 'connection-lost' || err.failure.reason === 'timeout');
      if (!retryable || failures >= retries) {
        if (partSize(part) > 0) throw new DownloadError(`${err.message}; run again to resume from ${part}`, err.failure.reason);
        rmSync(part, { force: true });
        throw err.failure;
      }
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

function expectLine(expect: ExpectedDigest[]): string {
  return expect.map(describeDigest).join(' and ');
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

  if (opts.size !== undefined && !existsSync(part)) {
    const dir = existsSync(dirname(dest)) ? dirname(dest) : undefined;
    if (dir) checkFreeSpace(dir, opts.size, basename(dest));
  }
  const transferred = { n: 0 };
  await fetchPart(url, part, opts, transferred);

  // verify before the file takes its final name
  const size = statSync(part).size;
  if (opts.size !== undefined && size !== opts.size) {
    const bad = keepAside(part, dest);
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
      const bad = keepAside(part, dest);
      throw new DownloadError(
        `${url.href}: ${e.algorithm} is ${actual}, expected ${describeDigest(e)}; refused and kept aside as ${bad}`,
        'hash',
      );
    }
  }
  await rename(part, dest);
  writeSidecar(dest, Object.entries(digests).map(([algorithm, digest]) => ({ algorithm: algorithm as HashAlgorithm, digest: digest! })), url.href);
  log(`saved ${dest} (${formatBytes(size)}, ${expectLine(opts.expect)} verified)`);
  return { path: dest, cached: false, bytesTransferred: transferred.n, digests };
}

// ---------------------------------------------------------------------------------------------
// The two things `fcn download` knows about.

export interface FetchOptions {
  /** Folder to put things in (default defaultDownloadDir()). */
  dir?: string;
  /** A mirror. */
  url?: string;
  /** Hash overrides (hex, or a prefix of at least 8 digits). */
  sha1?: string;
  sha256?: string;
  timeoutMs?: number;
  retryDelayMs?: number;
  progress?: boolean | NodeJS.WriteStream;
  log?: (line: string) => void;
}

/** A file name from the last segment of a URL's path, if it is a plain, safe one. */
function urlFileName(url: URL): string | undefined {
  const name = url.pathname.split('/').pop() ?? '';
  return /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name) ? name : undefined;
}

function overrides(opts: FetchOptions): ExpectedDigest[] {
  const out: ExpectedDigest[] = [];
  if (opts.sha1 !== undefined) out.push(parseExpectedDigest('sha1', opts.sha1));
  if (opts.sha256 !== undefined) out.push(parseExpectedDigest('sha256', opts.sha256));
  return out;
}

export interface Voc2012Result {
  /** DIR/VOCdevkit/VOC2012, ready for `--data`. */
  path: string;
  /** The verified archive it came from (kept as a cache; may be deleted). */
  archive: string;
  cached: boolean;
  bytesTransferred: number;
}

/** Gets PASCAL VOC2012 trainval into DIR/VOCdevkit/VOC2012 (nothing is fetched when it is already there). */
export async function downloadVoc2012(opts: FetchOptions = {}): Promise<Voc2012Result> {
  const dir = opts.dir ?? defaultDownloadDir();
  const log = opts.log ?? (() => {});
  const url = parseHttpUrl(opts.url ?? VOC2012_TRAINVAL.url, '--url');
  const name = urlFileName(url);
  const file = name && /\.(tar|tgz|tar\.gz)$/.test(name) ? name : VOC2012_TRAINVAL.file;
  const archive = join(dir, file);
  const target = join(dir, 'VOCdevkit', 'VOC2012');
  const given = overrides(opts); // flags are checked even when there is nothing to do
  if (existsSync(target)) {
    log(`cached: ${target} already exists; nothing to download (remove it to fetch again)`);
    return { path: target, archive, cached: true, bytesTransferred: 0 };
  }
  const expect = given.length > 0 ? given : [{ algorithm: 'sha1' as const, hex: VOC2012_TRAINVAL.sha1 }];
  // the official size is known; a mirror or a hash override may serve another file
  const size = opts.url === undefined && given.length === 0 ? VOC2012_TRAINVAL.size : undefined;
  const got = await downloadFile({
    url: url.href, dest: archive, expect, size, timeoutMs: opts.timeoutMs, retryDelayMs: opts.retryDelayMs, progress: opts.progress, log,
  });

  // extract into a temporary folder inside DIR; move VOC2012 into place only when all is well
  const tmp = join(dir, `.extract-${process.pid}-${Date.now()}`);
  const archiveSize = statSync(archive).size;
  checkFreeSpace(dir, archiveSize, `extracting ${basename(archive)}`);
  const stream = opts.progress ? (opts.progress === true ? process.stderr : opts.progress) : undefined;
  const bar = stream ? new Progress({ total: archiveSize, label: `extracting ${basename(archive)}`, format: formatBytes, stream }) : undefined;
  try {
    await mkdir(tmp, { recursive: true });
    let lastDraw = 0;
    await extractTar(archive, tmp, {
      onProgress: (n) => {
        const now = Date.now();
        if (bar && now - lastDraw >= 100) {
          lastDraw = now;
          bar.update(n);
        }
      },
    });
    bar?.update(archiveSize);
    bar?.finish();
    const extracted = join(tmp, 'VOCdevkit', 'VOC2012');
    for (const sub of ['JPEGImages', 'SegmentationClass', join('ImageSets', 'Segmentation')]) {
      const s = await stat(join(extracted, sub)).catch(() => undefined);
      if (!s?.isDirectory()) throw new FcnError(`${archive}: expected a folder VOCdevkit/VOC2012/${sub.split('\\').join('/')} in the archive`);
    }
    await mkdir(dirname(target), { recursive: true });
    if (existsSync(target)) throw new FcnError(`${target} appeared while extracting; leaving it alone`);
    await rename(extracted, target);
  } catch (err) {
    if (bar) bar.finish('failed');
    throw err;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  log(`extracted ${target} (the archive ${archive} can be deleted)`);
  return { path: target, archive, cached: false, bytesTransferred: got.bytesTransferred };
}

export interface Resnet18Result {
  /** DIR/resnet18-<8 hex>.pth, ready for `--backbone`. */
  path: string;
  cached: boolean;
  bytesTransferred: number;
}

const TORCHVISION_NAME = /^resnet18-([0-9a-f]{8,})\.pth$/;

/** Gets torchvision's ImageNet ResNet-18 state_dict into DIR, SHA-256-checked as torchvision does. */
export async function downloadResnet18(opts: FetchOptions = {}): Promise<Resnet18Result> {
  const dir = opts.dir ?? defaultDownloadDir();
  const url = parseHttpUrl(opts.url ?? RESNET18_IMAGENET.url, '--url');
  const given = overrides(opts);
  const name = urlFileName(url);
  const m = name ? TORCHVISION_NAME.exec(name) : null;
  const expect: ExpectedDigest[] = [...given];
  let file: string;
  if (m) {
    // torchvision's check_hash: the SHA-256 must start with the hex digits in the file name
    expect.unshift({ algorithm: 'sha256', hex: m[1]! });
    file = name!;
  } else {
    const sha256 = given.find((e) => e.algorithm === 'sha256');
    if (!sha256) {
      throw new FcnError(`--url ${url.href}: the file name is not resnet18-<8 hex>.pth, so its SHA-256 is unknown; pass --sha256 HEX`, 2);
    }
    file = `resnet18-${sha256.hex.slice(0, 8)}.pth`;
  }
  const got = await downloadFile({
    url: url.href, dest: join(dir, file), expect, timeoutMs: opts.timeoutMs, retryDelayMs: opts.retryDelayMs, progress: opts.progress, log: opts.log,
  });
  return { path: got.path, cached: got.cached, bytesTransferred: got.bytesTransferred };
}

/** torch.hub's checkpoint folder ($TORCH_HOME/hub/checkpoints, else $XDG_CACHE_HOME/torch/..., else ~/.cache/torch/...). */
function torchHubCheckpoints(): string {
  const torchHome = process.env.TORCH_HOME || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'torch');
  return join(torchHome, 'hub', 'checkpoints');
}

/**
 * Path of a verified torchvision `resnet18-f37072fd.pth` in `dir`, or (no `dir`) in the default
 * download folder or torch.hub's cache; undefined when there is none. A file with a current
 * sidecar is trusted; otherwise it is hashed (about 45 MB). A file whose hash is wrong is ignored.
 */
export function findCachedBackbone(dir?: string): string | undefined {
  const folders = dir !== undefined ? [dir] : [defaultDownloadDir(), torchHubCheckpoints()];
  const expected: ExpectedDigest = { algorithm: 'sha256', hex: RESNET18_IMAGENET.sha256Prefix };
  for (const folder of folders) {
    const file = join(folder, RESNET18_IMAGENET.file);
    if (!existsSync(file)) continue;
    let digest = rememberedDigest(file, 'sha256');
    if (digest === undefined) {
      try {
        digest = hashFileSync(file, 'sha256');
      } catch {
        continue;
      }
    }
    if (digestMatches(expected, digest)) return file;
  }
  return undefined;
}

/** What to tell a user who trains without ImageNet weights. */
export function backboneHint(): string {
  const where = join(defaultDownloadDir(), RESNET18_IMAGENET.file);
  return (
    'no ImageNet weights found; training from scratch.\n' +
    `Get them with \`fcn download resnet18\` (on a machine with internet) and pass --backbone ${where}`
  );
}
