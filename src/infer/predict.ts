// Predicting files: each image's mask is written as DIR/<stem>.png, a VOC palette PNG with the
// image's own height and width (plus <stem>.overlay.png when asked). Inputs are checked first so a
// bad file stops the run before anything is written.
import { basename, extname, join } from 'node:path';
import sharp from 'sharp';
import { readImage, writeImage, writeMask } from '../data/image.js';
import { FcnError, errorMessage } from '../util/errors.js';
import { overlay } from '../render/pictures.js';
import type { SegmentationModel, ClassShare } from './model.js';

export interface PredictFilesOptions {
  outDir: string;
  overlay?: boolean;
  onImage?: (file: string, result: { width: number; height: number; classes: ClassShare[]; maskPath: string }) => void;
}

export function stemOf(file: string): string {
  return basename(file, extname(file));
}

/** Checks that every input is a readable image and that no two share a stem (they would overwrite each other). */
export async function checkImageFiles(files: string[]): Promise<void> {
  const stems = new Map<string, string>();
  for (const file of files) {
    const stem = stemOf(file);
    const other = stems.get(stem);
    if (other) throw new FcnError(`${file}: same file stem as ${other}; both would be written to ${stem}.png`);
    stems.set(stem, file);
    try {
      const meta = await sharp(file).metadata();
      if (!meta.width || !meta.height) throw new Error('no size');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new FcnError(`${file}: ${code === 'ENOENT' ? 'no such file' : `not a readable image (JPEG/PNG/WebP expected): ${errorMessage(err)}`}`);
    }
  }
}

export async function predictFiles(model: SegmentationModel, files: string[], opts: PredictFilesOptions): Promise<string[]> {
  await checkImageFiles(files);
  const written: string[] = [];
  for (const file of files) {
    const image = await readImage(file);
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
  return written;
}
