// The published files `fcn download NAME` fetches (registry.ts): datasets extracted safely into DIR
// (VOC2012 -> DIR/VOCdevkit/VOC2012, SBD -> DIR/benchmark_RELEASE), weights kept as torchvision
// names them (DIR/resnet50-0676ba61.pth ...), each verified by its published digest before anything
// uses it; and the look-ups that find a verified copy again without the network.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, join } from 'node:path';
import { FcnError } from '../util/errors.js';
import { Progress } from '../util/progress.js';
import { type ExpectedDigest, digestMatches, hashFileSync, parseExpectedDigest, rememberedDigest } from './cache.js';
import { extractFolder } from './archive.js';
import { parseHttpUrl } from './http.js';
import { checkFreeSpace, downloadFile, formatBytes, type DownloadOptions } from './transfer.js';
import { PUBLISHED, published, type Published, RESNET18_IMAGENET } from './registry.js';

export { DownloadError, type DownloadFailure } from './http.js';
export { downloadFile, type DownloadOptions, type DownloadResult } from './transfer.js';
export { PUBLISHED, PUBLISHED_NAMES, VOC2012_TRAINVAL, RESNET18_IMAGENET, isPublishedWeights, type Published } from './registry.js';

/** Where downloads go unless told otherwise: $FCN_HOME, else ~/.cache/fcn. */
export function defaultDownloadDir(): string {
  const home = process.env.FCN_HOME;
  return home && home.length > 0 ? home : join(homedir(), '.cache', 'fcn');
}

/** How `fcn download NAME` fetches: where to, from which mirror, and the transfer's own options. */
export interface FetchOptions extends Pick<DownloadOptions, 'timeoutMs' | 'retryDelayMs' | 'progress' | 'log'> {
  /** Folder to put things in (default defaultDownloadDir()). */
  dir?: string;
  /** A mirror. */
  url?: string;
  /** Digest overrides (hex, or a prefix of at least 8 digits), for a mirror serving another file. */
  md5?: string;
  sha1?: string;
  sha256?: string;
}

export interface PublishedResult {
  /** A dataset's extracted folder (ready for `--data`), or the verified weights file. */
  path: string;
  /** A dataset's verified archive (kept as a cache; may be deleted). */
  archive?: string;
  cached: boolean;
  bytesTransferred: number;
}

/** A file name from the last segment of a URL's path, if it is a plain, safe one. */
function urlFileName(url: URL): string | undefined {
  const name = url.pathname.split('/').pop() ?? '';
  return /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name) ? name : undefined;
}

function overrides(opts: FetchOptions): ExpectedDigest[] {
  const out: ExpectedDigest[] = [];
  for (const algorithm of ['md5', 'sha1', 'sha256'] as const) {
    const hex = opts[algorithm];
    if (hex !== undefined) out.push(parseExpectedDigest(algorithm, hex));
  }
  return out;
}

function progressStream(opts: FetchOptions): NodeJS.WriteStream | undefined {
  return opts.progress ? (opts.progress === true ? process.stderr : opts.progress) : undefined;
}

/** A dataset archive: downloaded (or found verified) and its folder extracted into DIR. */
async function fetchDataset(p: Published, opts: FetchOptions): Promise<PublishedResult> {
  const layout = p.archive!;
  const dir = opts.dir ?? defaultDownloadDir();
  const log = opts.log ?? (() => {});
  const url = parseHttpUrl(opts.url ?? p.url, '--url');
  const name = urlFileName(url);
  const archive = join(dir, name && /\.(tar|tgz|tar\.gz)$/.test(name) ? name : p.file);
  const target = join(dir, ...layout.folder.split('/'));
  const given = overrides(opts); // flags are checked even when there is nothing to do
  if (existsSync(target)) {
    log(`cached: ${target} already exists; nothing to download (remove it to fetch again)`);
    return { path: target, archive, cached: true, bytesTransferred: 0 };
  }
  const got = await downloadFile({
    url: url.href,
    dest: archive,
    expect: given.length > 0 ? given : [p.digest],
    // the publisher's size is known; a mirror or a digest override may serve another file
    size: opts.url === undefined && given.length === 0 ? p.size : undefined,
    timeoutMs: opts.timeoutMs,
    retryDelayMs: opts.retryDelayMs,
    progress: opts.progress,
    log,
  });
  const archiveSize = statSync(archive).size;
  checkFreeSpace(dir, archiveSize, `extracting ${basename(archive)}`);
  const stream = progressStream(opts);
  const bar = stream ? new Progress({ total: archiveSize, label: `extracting ${basename(archive)}`, format: formatBytes, stream }) : undefined;
  let lastDraw = 0;
  try {
    await extractFolder(archive, dir, layout.folder, layout.required, {
      onProgress: (n) => {
        const now = Date.now();
        if (bar && now - lastDraw >= 100) {
          lastDraw = now;
          bar.update(n);
        }
      },
    });
  } catch (err) {
    bar?.finish('failed');
    throw err;
  }
  bar?.update(archiveSize);
  bar?.finish();
  log(`extracted ${target} (the archive ${archive} can be deleted)`);
  return { path: target, archive, cached: false, bytesTransferred: got.bytesTransferred };
}

/** A torchvision checkpoint into DIR, SHA-256-checked as torch.hub does (the prefix in its file name). */
async function fetchWeights(p: Published, opts: FetchOptions): Promise<PublishedResult> {
  const dir = opts.dir ?? defaultDownloadDir();
  const url = parseHttpUrl(opts.url ?? p.url, '--url');
  const given = overrides(opts);
  const stem = p.file.replace(/-[0-9a-f]+\.pth$/, '');
  const name = urlFileName(url);
  const m = name ? new RegExp(`^${stem}-([0-9a-f]{8,})\\.pth$`).exec(name) : null;
  const expect: ExpectedDigest[] = [...given];
  let file: string;
  if (m) {
    // torchvision's check_hash: the SHA-256 must start with the hex digits in the file name
    expect.unshift({ algorithm: 'sha256', hex: m[1]! });
    file = name!;
  } else {
    const sha256 = given.find((e) => e.algorithm === 'sha256');
    if (!sha256) {
      throw new FcnError(`--url ${url.href}: the file name is not ${stem}-<8 hex>.pth, so its SHA-256 is unknown; pass --sha256 HEX`, 2);
    }
    file = `${stem}-${sha256.hex.slice(0, 8)}.pth`;
  }
  const got = await downloadFile({
    url: url.href, dest: join(dir, file), expect, timeoutMs: opts.timeoutMs, retryDelayMs: opts.retryDelayMs, progress: opts.progress, log: opts.log,
  });
  return { path: got.path, cached: got.cached, bytesTransferred: got.bytesTransferred };
}

/** Fetches the published file `name` (see PUBLISHED) into `opts.dir`, verified; nothing is fetched when a verified copy is there. */
export async function downloadPublished(name: string, opts: FetchOptions = {}): Promise<PublishedResult> {
  const p = published(name);
  if (!p) throw new FcnError(`no published file is called '${name}'; known: ${PUBLISHED.map((e) => e.name).join(', ')}`, 2);
  return p.archive ? fetchDataset(p, opts) : fetchWeights(p, opts);
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
  const r = await downloadPublished('voc2012', opts);
  return { path: r.path, archive: r.archive!, cached: r.cached, bytesTransferred: r.bytesTransferred };
}

export interface Resnet18Result {
  /** DIR/resnet18-<8 hex>.pth, ready for `--backbone`. */
  path: string;
  cached: boolean;
  bytesTransferred: number;
}

/** Gets torchvision's ImageNet ResNet-18 state_dict into DIR, SHA-256-checked as torchvision does. */
export async function downloadResnet18(opts: FetchOptions = {}): Promise<Resnet18Result> {
  const r = await downloadPublished('resnet18', opts);
  return { path: r.path, cached: r.cached, bytesTransferred: r.bytesTransferred };
}

// ---------------------------------------------------------------------------------------------
// Finding a verified copy without the network.

/** torch.hub's checkpoint folder ($TORCH_HOME/hub/checkpoints, else $XDG_CACHE_HOME/torch/..., else ~/.cache/torch/...). */
function torchHubCheckpoints(): string {
  const torchHome = process.env.TORCH_HOME || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'torch');
  return join(torchHome, 'hub', 'checkpoints');
}

/** The folders a bare name is looked up in: `dir` alone, or the download folder then torch.hub's cache. */
function lookupFolders(dir?: string): string[] {
  return dir !== undefined ? [dir] : [defaultDownloadDir(), torchHubCheckpoints()];
}

interface Found {
  path?: string;
  /** A file of the right name whose digest is wrong. */
  mismatched?: string;
}

/** The first `folders/<p.file>` whose digest is right: a current sidecar is trusted, otherwise it is hashed. */
function findVerified(p: Published, folders: string[]): Found {
  let mismatched: string | undefined;
  for (const folder of folders) {
    const file = join(folder, p.file);
    if (!existsSync(file)) continue;
    let digest = rememberedDigest(file, p.digest.algorithm);
    if (digest === undefined) {
      try {
        digest = hashFileSync(file, p.digest.algorithm);
      } catch {
        continue;
      }
    }
    if (digestMatches(p.digest, digest)) return { path: file };
    mismatched ??= file;
  }
  return { mismatched };
}

/**
 * The files `fcn download NAME --url URL --sha256 HEX` saved from a mirror serving another file than
 * the published one: `<stem>-<8 hex>.pth` whose sidecar records a SHA-256 starting with those digits
 * and still describes the file (same size and time). Named after the user's digest, they are the
 * network the user fetched under that name.
 */
function findMirrored(p: Published, folders: string[]): string[] {
  const stem = p.file.replace(/-[0-9a-f]+\.pth$/, '');
  const pattern = new RegExp(`^${stem}-([0-9a-f]{8})\\.pth$`);
  const found: string[] = [];
  for (const folder of folders) {
    let names: string[];
    try {
      names = readdirSync(folder);
    } catch {
      continue;
    }
    for (const n of names.sort()) {
      const m = pattern.exec(n);
      if (!m || n === p.file) continue;
      const file = join(folder, n);
      if (rememberedDigest(file, 'sha256')?.startsWith(m[1]!)) found.push(file);
    }
  }
  return found;
}

/**
 * Path of a verified torchvision `resnet18-f37072fd.pth` in `dir`, or (no `dir`) in the default
 * download folder or torch.hub's cache; undefined when there is none. A file with a current
 * sidecar is trusted; otherwise it is hashed (about 45 MB). A file whose hash is wrong is ignored.
 */
export function findCachedBackbone(dir?: string): string | undefined {
  return findVerified(published('resnet18')!, lookupFolders(dir)).path;
}

/** What to tell a user who trains without ImageNet weights. */
export function backboneHint(): string {
  const where = join(defaultDownloadDir(), RESNET18_IMAGENET.file);
  return (
    'no ImageNet weights found; training from scratch.\n' +
    `Get them with \`fcn download resnet18\` (on a machine with internet) and pass --backbone ${where}`
  );
}

function shellWord(s: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The verified local file for a published network or body name (`fcn_resnet50`, `resnet50`, ...):
 * looked up in `dir`, or in the download folder and then torch.hub's cache. When there is none, an
 * FcnError names the `fcn download` command that fetches it and where the file would be put.
 */
export function resolveNamedWeights(name: string, dir?: string): string {
  const p = published(name);
  if (!p || p.kind === 'dataset') {
    const known = PUBLISHED.filter((e) => e.kind !== 'dataset').map((e) => e.name);
    throw new FcnError(`'${name}' is not a published network; known: ${known.join(', ')}`, 2);
  }
  const folders = lookupFolders(dir);
  const found = findVerified(p, folders);
  if (found.path) return found.path;
  const mirrored = findMirrored(p, folders);
  if (mirrored.length === 1) return mirrored[0]!;
  if (mirrored.length > 1) {
    throw new FcnError(`${name}: ${p.file} is not downloaded, and ${mirrored.length} other verified downloads of ${name} are (${mirrored.join(', ')}); name one of them by its path`);
  }
  const command = `fcn download ${name}${dir !== undefined ? ` --dir ${shellWord(dir)}` : ''}`;
  const where = join(folders[0]!, p.file);
  const why = found.mismatched
    ? `${found.mismatched} is not the published file (its ${p.digest.algorithm} does not start with ${p.digest.hex})`
    : `${p.file} is not in ${folders.join(' or ')}`;
  throw new FcnError(`${name}: ${why}; \`${command}\` fetches it to ${where}`);
}
