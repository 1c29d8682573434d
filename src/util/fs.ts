// File writing that never leaves half-written output: write a sibling temp file, then rename.
import { existsSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { FcnError } from './errors.js';

/** A file-system failure as a one-line error naming the path (the CLI prints FcnErrors without a stack). */
function writeError(path: string, err: unknown, what: string): FcnError {
  const e = err as NodeJS.ErrnoException;
  const why: Record<string, string> = {
    EEXIST: 'a file of that name is in the way of a folder',
    ENOTDIR: 'a file of that name is in the way of a folder',
    EACCES: 'permission denied',
    EPERM: 'permission denied',
    ENOSPC: 'no space left on the device',
    EROFS: 'read-only file system',
    EISDIR: 'a folder of that name is in the way',
  };
  return new FcnError(`${path}: cannot ${what} (${(e.code && why[e.code]) ?? e.message})`);
}

/**
 * The real reason a recursive mkdir failed. Node's recursive mkdir reports ENOENT when a missing
 * folder cannot be made on a read-only file system (it stats the path after EROFS and reports
 * that), which would tell a user their disk is missing a folder; making the first missing folder
 * alone gives the true EROFS or EACCES.
 */
export function mkdirFailure(dir: string, err: unknown, mkdirOne: (path: string) => void = (p) => mkdirSync(p)): unknown {
  if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return err;
  let missing = dir;
  // walk up to the first existing ancestor: its child is the folder mkdir could not make
  while (!existsSync(dirname(missing)) && dirname(missing) !== missing) missing = dirname(missing);
  try {
    mkdirOne(missing);
  } catch (again) {
    return again;
  }
  return err;
}

function tempPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
}

/**
 * Refuses, before any long work, an output file path that writeFileAtomic would only find
 * unwritable at the end: a folder in its place, or a file where one of its folders should be.
 * Creates nothing.
 */
export function checkOutputFile(path: string): void {
  const isDir = (p: string): boolean | undefined => {
    try {
      return statSync(p).isDirectory();
    } catch {
      return undefined;
    }
  };
  if (isDir(path) === true) throw writeError(path, Object.assign(new Error('is a directory'), { code: 'EISDIR' }), 'write');
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    const found = isDir(dir);
    if (found === false) throw writeError(dir, Object.assign(new Error('not a directory'), { code: 'ENOTDIR' }), 'create the output folder');
    if (found === true || dirname(dir) === dir) return;
  }
}

/** Makes a folder and its missing ancestors; a failure is one line naming the folder and why. */
export async function makeFolder(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    throw writeError(dir, mkdirFailure(dir, err), 'create the output folder');
  }
}

export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  await makeFolder(dirname(path));
  const tmp = tempPath(path);
  try {
    await writeFile(tmp, data);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw writeError(path, err, 'write');
  }
}

export function writeFileAtomicSync(path: string, data: Uint8Array | string): void {
  try {
    mkdirSync(dirname(path), { recursive: true });
  } catch (err) {
    throw writeError(dirname(path), mkdirFailure(dirname(path), err), 'create the output folder');
  }
  const tmp = tempPath(path);
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw writeError(path, err, 'write');
  }
}
