// Predicting files: each image's mask is written as DIR/<stem>.png, a VOC palette PNG with the
// image's own height and width (plus <stem>.overlay.png when asked). A batch of 10,000 images must
// not stop at the 17th: every readable image is segmented, each unreadable one is reported and
// skipped, and the caller learns which failed (or, with failFast, the first bad input stops the run).
// Writing is different: an output that cannot be written stops the batch at once.
import { statSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { probeImage, readImage, writeImage, writeMask, type RgbImage } from '../data/image.js';
import { FcnError } from '../util/errors.js';
import { overlay } from '../render/pictures.js';
import type { SegmentationModel, ClassShare } from './model.js';

export interface PredictFilesOptions {
  outDir: string;
  overlay?: boolean;
  /** Stop at the first unreadable image instead of skipping it. */
  failFast?: boolean;
  /** Refuse images with more pixels than this (see maxPixelsLimit). */
  maxPixels?: number;
  onImage?: (file: string, result: { width: number; height: number; classes: ClassShare[]; maskPath: string }) => void;
  /** Called for each image that could not be read, with the one-line reason (the error names the file). */
  onError?: (file: string, error: FcnError) => void;
}

export interface PredictFilesResult {
  /** Every file written, in order. */
  written: string[];
  /** The inputs that could not be read, with why. */
  failed: { file: string; error: FcnError }[];
}

export function stemOf(file: string): string {
  return basename(file, extname(file));
}

/** Checks that no two inputs share a stem (they would overwrite each other's mask): a usage error before anything runs. */
export function checkStems(files: string[]): void {
  const stems = new Map<string, string>();
  for (const file of files) {
    const stem = stemOf(file);
    const other = stems.get(stem);
    if (other) throw new FcnError(`${file}: same file stem as ${other}; both would be written to ${stem}.png`, 2);
    stems.set(stem, file);
  }
}

/** The files a prediction of `file` writes into `outDir`. */
export function outputsOf(file: string, outDir: string, overlay = false): string[] {
  const stem = stemOf(file);
  return overlay ? [join(outDir, `${stem}.png`), join(outDir, `${stem}.overlay.png`)] : [join(outDir, `${stem}.png`)];
}

/**
 * Checks that no output would overwrite an input (`--out` the images' own folder, with PNG inputs):
 * a usage error before anything runs. Files are compared by identity (device and inode), so links
 * and case-insensitive file systems are caught too.
 */
export function checkOutputsSpareInputs(files: string[], outDir: string, overlay = false): void {
  const identity = (path: string): string | undefined => {
    try {
      const st = statSync(path);
      return `${st.dev}:${st.ino}`;
    } catch {
      return undefined;
    }
  };
  const inputs = new Map<string, string>();
  for (const file of files) {
    const id = identity(file);
    if (id !== undefined) inputs.set(id, file);
  }
  for (const file of files) {
    for (const out of outputsOf(file, outDir, overlay)) {
      const id = identity(out);
      const input = id !== undefined ? inputs.get(id) : undefined;
      if (input !== undefined) throw new FcnError(`${input}: an output (${out}) would overwrite this input image; write the masks to another folder`, 2);
    }
  }
}

/**
 * Checks every input from its header (cheap, no decoding), before a model is loaded: returns the
 * readable ones and reports each unreadable one through onError (with failFast: throws the first).
 */
export async function probeImageFiles(files: string[], opts: Pick<PredictFilesOptions, 'failFast' | 'maxPixels' | 'onError'> = {}):
  Promise<{ readable: string[]; failed: PredictFilesResult['failed'] }> {
  const readable: string[] = [];
  const failed: PredictFilesResult['failed'] = [];
  for (const file of files) {
    try {
      await probeImage(file, { maxPixels: opts.maxPixels });
      readable.push(file);
    } catch (err) {
      if (!(err instanceof FcnError) || opts.failFast) throw err;
      failed.push({ file, error: err });
      opts.onError?.(file, err);
    }
  }
  return { readable, failed };
}

export async function predictFiles(model: SegmentationModel, files: string[], opts: PredictFilesOptions): Promise<PredictFilesResult> {
  checkStems(files);
  checkOutputsSpareInputs(files, opts.outDir, opts.overlay);
  const written: string[] = [];
  const failed: PredictFilesResult['failed'] = [];
  // the next image is read and decoded (sharp works on libuv's threads) while the network runs on this one
  const read = (file: string): Promise<{ image: RgbImage } | { error: unknown }> =>
    readImage(file, { maxPixels: opts.maxPixels }).then((image) => ({ image }), (error: unknown) => ({ error }));
  let next = files.length > 0 ? read(files[0]!) : undefined;
  for (const [i, file] of files.entries()) {
    const got = await next!;
    next = i + 1 < files.length ? read(files[i + 1]!) : undefined;
    if ('error' in got) {
      const err = got.error;
      // anything else than a bad input (a bug, out of memory) is not the file's fault: stop
      if (!(err instanceof FcnError) || opts.failFast) throw err;
      failed.push({ file, error: err });
      opts.onError?.(file, err);
      continue;
    }
    const { image } = got;
    const mask = await model.predict(image);
    const maskPath = join(opts.outDir, `${stemOf(file)}.png`);
    await writeMask(maskPath, mask, model.meta.colors);
    written.push(maskPath);
    if (opts.overlay) {
      const overlayPath = join(opts.outDir, `${stemOf(file)}.overlay.png`);
      await writeImage(overlayPath, overlay(image, mask, 0.5, model.meta.colors));
      written.push(overlayPath);
    }
    opts.onImage?.(file, { width: mask.width, height: mask.height, classes: model.classShares(mask), maskPath });
  }
  return { written, failed };
}

/** The one-line summary of a batch with failures (the failures themselves were reported one by one). */
export function failureSummary(result: PredictFilesResult, total: number): FcnError {
  const n = result.failed.length;
  const masks = total - n;
  return new FcnError(`${n} of ${total} image${total === 1 ? '' : 's'} could not be read (each named above); ` +
    `${masks} segmented`);
}
