// Safe extraction of a tar archive (VOC2012's tar, SBD's tgz) into a fresh folder, and the move of
// the one folder a dataset needs from there into place.
//
// Archives from the internet may try to write outside the folder they are unpacked into. node-tar
// already strips or skips such entries with a warning; here they are refused outright: the first
// entry whose path is absolute or has a `..` component, a symlink or hardlink that points outside,
// or a device/FIFO, stops the extraction with an error naming that entry. The caller extracts into
// a temporary folder and moves the result into place only when this returns, so a refused archive
// leaves nothing at the target. After extraction every symlink is resolved on disk as well, which
// catches escapes that only show through a chain of links (`a -> sub`, `sub/l -> ..`, `x -> a/l/..`).
import { createReadStream, existsSync, statSync } from 'node:fs';
import { lstat, mkdir, readdir, realpath, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, posix, relative, isAbsolute, sep } from 'node:path';
import type { ReadEntry } from 'tar';
import { FcnError } from '../util/errors.js';

export interface ExtractOptions {
  /** Called as the archive is read: bytes read so far and the archive's size. */
  onProgress?: (bytesRead: number, total: number) => void;
}

const ALLOWED_TYPES = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory', 'GNUDumpDir', 'SymbolicLink', 'Link']);

function isAbsoluteTarPath(p: string): boolean {
  return p.startsWith('/') || p.startsWith('\\') || /^[a-zA-Z]:/.test(p);
}

function hasDotDot(p: string): boolean {
  return p.split(/[\\/]/).includes('..');
}

/** Why an entry may not be extracted, or undefined when it is fine. Paths are tar paths (posix). */
export function unsafeEntryReason(path: string, type: string, linkpath?: string): string | undefined {
  if (isAbsoluteTarPath(path)) return 'absolute path';
  if (hasDotDot(path)) return "path contains '..'";
  if (!ALLOWED_TYPES.has(type)) return `unsupported entry type ${type}`;
  if (type === 'SymbolicLink' || type === 'Link') {
    const target = linkpath ?? '';
    if (target === '') return 'link without a target';
    if (isAbsoluteTarPath(target)) return `link to the absolute path '${target}'`;
    // a symlink's target is relative to the link's folder; a hardlink's to the archive root
    const base = type === 'SymbolicLink' ? posix.dirname(path.replace(/\\/g, '/')) : '.';
    const resolved = posix.normalize(posix.join(base, target.replace(/\\/g, '/')));
    if (resolved === '..' || resolved.startsWith('../')) return `link to '${target}' outside the target folder`;
    if (type === 'Link' && hasDotDot(target)) return `hardlink to '${target}' with '..'`;
  }
  return undefined;
}

function within(root: string, p: string): boolean {
  const rel = relative(root, p);
  return rel === '' || (!rel.startsWith('..' + sep) && rel !== '..' && !isAbsolute(rel));
}

/** Resolves every symlink under `root` on disk; throws for one that lands outside `root`. */
async function checkSymlinksOnDisk(archive: string, root: string): Promise<void> {
  const realRoot = await realpath(root);
  const stack = [root];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    for (const d of await readdir(dir, { withFileTypes: true })) {
      const p = join(dir, d.name);
      if (d.isDirectory()) stack.push(p);
      else if (d.isSymbolicLink()) {
        let target: string;
        try {
          target = await realpath(p);
        } catch {
          continue; // dangling: its text was checked when it was extracted
        }
        if (!within(realRoot, target)) {
          throw new FcnError(`${archive}: refusing entry '${relative(root, p).split(sep).join('/')}': symlink resolves outside the target folder`);
        }
      }
    }
  }
}

/**
 * Extracts `archive` (an uncompressed or gzip tar) into the folder `into` (created if needed; it
 * should be a fresh temporary folder). Throws FcnError naming the first unsafe entry; what was
 * written to `into` before then is left for the caller to remove.
 */
export async function extractTar(archive: string, into: string, opts: ExtractOptions = {}): Promise<void> {
  let total: number;
  try {
    total = statSync(archive).size;
  } catch {
    throw new FcnError(`${archive}: archive not found`);
  }
  await mkdir(into, { recursive: true });
  let refusal: FcnError | undefined;
  let failure: unknown;
  let stop: () => void = () => {};
  // node-tar is loaded on the first extraction, not by every command that imports src/net
  const { Unpack } = await import('tar');
  const unpack = new Unpack({
    cwd: into,
    strict: true, // any warning (bad header, write through a symlink, ...) fails the extraction
    preserveOwner: false,
    filter: (path: string, entry) => {
      if (refusal || failure) return false;
      const e = entry as ReadEntry;
      const reason = unsafeEntryReason(path, e.type, e.linkpath);
      if (reason === undefined) return true;
      refusal = new FcnError(`${archive}: refusing to extract entry '${path}': ${reason}`);
      stop();
      return false;
    },
  });
  await new Promise<void>((resolve, reject) => {
    const input = createReadStream(archive, { highWaterMark: 1 << 20 });
    let read = 0;
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      clearTimeout(fallback);
      if (refusal || failure) reject(refusal ?? failure);
      else resolve();
    };
    let fallback: NodeJS.Timeout | undefined;
    // On the first problem: stop reading and end the unpacker, then wait for its 'close', which
    // comes once its pending file writes are done, so the caller can remove the folder cleanly.
    // (Parser.abort() would leave those writes running with no event to wait for.)
    stop = () => {
      if (fallback) return;
      input.unpipe(unpack);
      input.destroy();
      unpack.end();
      fallback = setTimeout(settle, 5000); // should 'close' never come, do not hang
    };
    input.on('data', (chunk) => {
      read += (chunk as Buffer).length;
      opts.onProgress?.(read, total);
    });
    input.on('error', (err) => {
      failure ??= err;
      stop();
    });
    unpack.on('error', (err: unknown) => {
      failure ??= err;
      stop();
    });
    unpack.on('close', settle);
    input.pipe(unpack);
  }).catch((err: unknown) => {
    if (refusal) throw refusal;
    if (err instanceof FcnError) throw err;
    const msg = err instanceof Error ? err.message : String(err);
    throw new FcnError(`${archive}: cannot extract: ${msg}`);
  });
  await checkSymlinksOnDisk(archive, into);
  // the walk above follows directories only; make sure the root itself was not replaced
  if (!(await lstat(into)).isDirectory()) throw new FcnError(`${archive}: extraction did not produce a folder at ${into}`);
}

/**
 * Extracts `archive` into a temporary folder inside `dir`, checks that `folder` (a posix path inside
 * the archive) holds every `required` sub-folder, and moves it to `dir/folder`. Returns that path.
 * Nothing appears at the target unless all of it went well; the temporary folder is always removed.
 */
export async function extractFolder(archive: string, dir: string, folder: string, required: string[], opts: ExtractOptions = {}): Promise<string> {
  const target = join(dir, ...folder.split('/'));
  const tmp = join(dir, `.extract-${process.pid}-${Date.now()}`);
  try {
    await extractTar(archive, tmp, opts);
    const extracted = join(tmp, ...folder.split('/'));
    for (const sub of required) {
      const s = await stat(join(extracted, ...sub.split('/'))).catch(() => undefined);
      if (!s?.isDirectory()) throw new FcnError(`${archive}: expected a folder ${folder}/${sub} in the archive`);
    }
    await mkdir(dirname(target), { recursive: true });
    if (existsSync(target)) throw new FcnError(`${target} appeared while extracting; leaving it alone`);
    await rename(extracted, target);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return target;
}
