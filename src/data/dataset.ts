// The dataset interface the trainer, eval and show read (a split's ids, each id's image and
// class-index mask, the label space), and the PASCAL VOC layout itself: finding the VOC root under
// whatever folder the user names, reading a split's id list (ImageSets/Segmentation/<split>.txt),
// and loading one example (image and mask, checked to be the same size). The other layouts
// (CVAT, mmsegmentation, ADE20K, VOC+SBD's train_aug) live in layouts.ts and sbd.ts.
import { readFile, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { FcnError, readFailure } from '../util/errors.js';
import { binaryOffset, hasControl, printable } from '../util/text.js';
import { probeImage, probeMask, readImage, readMask, type DecodeLimits, type LabelMap, type RgbImage } from './image.js';
import { vocLabels, type LabelSpace } from './labels.js';

export type LayoutName = 'voc' | 'cvat' | 'mmseg' | 'ade20k';
export const LAYOUTS: readonly LayoutName[] = ['voc', 'cvat', 'mmseg', 'ade20k'];

export interface Dataset {
  /** The layout's root (VOC: the folder holding JPEGImages, SegmentationClass and ImageSets). */
  root: string;
  /** The split's name as asked for ('train', 'val', 'train_aug', ...). */
  split: string;
  ids: string[];
  /** How the folder was read: a layout name, or 'voc+sbd' for train_aug. */
  layout: LayoutName | 'voc+sbd';
  /** Class names and colours; every mask value is a class index of it or 255 (void). */
  labels: LabelSpace;
  imagePath(id: string): string;
  maskPath(id: string): string;
  /** Pixel limit for its images and masks (default: the decoders' own, see maxPixelsLimit). */
  maxPixels?: number;
  /** Reads and decodes an id's mask into class indices of `labels` (checked). */
  readMask(id: string): Promise<LabelMap>;
}

/** The name the first release gave the dataset interface (it read VOC only). */
export type VocDataset = Dataset;

/** One example: an image and its class-index mask, the same size. */
export type Example = VocExample;

export interface VocExample {
  id: string;
  image: RgbImage;
  mask: LabelMap;
}

const LIST_DIR = join('ImageSets', 'Segmentation');

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/** Finds the VOC root: `dir` itself, or `dir/VOCdevkit/VOC2012`, or `dir/VOC2012` (the archive's layouts). */
export async function findVocRoot(dir: string): Promise<string> {
  if (!(await isDirectory(dir))) {
    throw new FcnError(`${dir}: no such directory (expected a VOC root with ${LIST_DIR}, or a folder holding VOCdevkit/VOC2012)`);
  }
  for (const candidate of [dir, join(dir, 'VOCdevkit', 'VOC2012'), join(dir, 'VOC2012')]) {
    if (await isDirectory(join(candidate, LIST_DIR))) return candidate;
  }
  throw new FcnError(`${dir}: not a VOC dataset (expected ${LIST_DIR} in it, or in VOCdevkit/VOC2012 or VOC2012 under it)`);
}

/** Reads an id list (ImageSets/Segmentation/<split>.txt): one id per line; CRLF and blank lines allowed. */
export async function readIdList(listPath: string, what = 'the id list'): Promise<string[]> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(listPath);
  } catch (err) {
    throw new FcnError(`${listPath}: cannot read ${what} (${readFailure(err)})`);
  }
  // a list is small text: a binary file (an image, an archive) would print as screens of garbage
  const binaryAt = binaryOffset(bytes);
  if (binaryAt >= 0) throw new FcnError(`${listPath}: ${what} is binary data (at byte ${binaryAt}), not text (expected one image id per line)`);
  const text = new TextDecoder().decode(bytes);
  // One id per line; real lists end with a newline, some copies carry CRLF or trailing blanks.
  const lines = text.split(/\r?\n/).map((line) => line.trim());
  const ids = lines.filter((line) => line.length > 0);
  if (ids.length === 0) throw new FcnError(`${listPath}: ${what} is empty (expected one image id per line)`);
  // VOC's classification lists (ImageSets/Main/<class>_<split>.txt) pair each id with a flag: ' -1', '  0', '  1'
  const classification = (id: string) => /^\S+( -1|  [01])$/.test(id);
  const bad = ids.find((id) => !isImageId(id) || classification(id));
  if (bad !== undefined) {
    const line = lines.indexOf(bad) + 1;
    const flagged = classification(bad) ? '; an id followed by a flag is a classification list (ImageSets/Main), not a segmentation one' : '';
    throw new FcnError(`${listPath}: line ${line}: '${printable(bad)}' is not an image id (expected one id per line, e.g. 2007_000032 or folder/image_01${flagged})`);
  }
  return ids;
}

/**
 * An id names an image and its mask below their folders: CVAT's exports keep the folders an image
 * was uploaded in (`set1/frame 001`) and the file's own spaces. So '/'-separated names, none empty,
 * '.' or '..', without backslashes, tabs or control characters (ids are printed: no terminal escapes).
 */
export function isImageId(id: string): boolean {
  if (/[\t\v\f\r\n\\]/.test(id) || hasControl(id)) return false;
  return id.split('/').every((part) => part.length > 0 && part !== '.' && part !== '..' && part.trim() === part);
}

/**
 * Opens a split of a VOC-layout dataset. `dir` may be the VOC root (has ImageSets/Segmentation),
 * or a parent holding VOCdevkit/VOC2012 or VOC2012. Errors name the missing path or list.
 */
export async function openVoc(dir: string, split: string, limits: DecodeLimits = {}): Promise<VocDataset> {
  if (!/^[\w.-]+$/.test(split)) throw new FcnError(`split '${split}': expected a list name such as train, val or trainval`);
  const root = await findVocRoot(dir);
  const ids = await readIdList(join(root, LIST_DIR, `${split}.txt`), `the '${split}' id list`);
  const maskPath = (id: string) => join(root, 'SegmentationClass', `${id}.png`);
  return {
    root,
    split,
    ids,
    layout: 'voc',
    labels: vocLabels(),
    imagePath: (id: string) => join(root, 'JPEGImages', `${id}.jpg`),
    maskPath,
    maxPixels: limits.maxPixels,
    // any VOC palette index is read as it is (the trainer checks the range against its network)
    readMask: (id: string) => readMask(maskPath(id), limits),
  };
}

/**
 * Checks every listed example's files from their headers (present, an image, a PNG mask, within
 * the pixel limit) without decoding them: a bad file in a long split is found in seconds, before a
 * model is loaded or an hour of evaluation is spent. Errors name the file.
 */
export async function checkVocFiles(ds: VocDataset, ids: readonly string[] = ds.ids): Promise<void> {
  const limits = { maxPixels: ds.maxPixels };
  for (const id of ids) {
    const mask = ds.maskPath(id);
    // PNG headers only: train_aug's SBD masks are MAT-files, checked as they are decoded
    if (extname(mask).toLowerCase() === '.png') await probeMask(mask, limits);
    await probeImage(ds.imagePath(id), limits);
  }
}

/** Reads one image and its class-index mask; a size mismatch is an error naming both files. */
export async function readExample(ds: Dataset, id: string): Promise<VocExample> {
  const imagePath = ds.imagePath(id);
  const maskPath = ds.maskPath(id);
  const limits = { maxPixels: ds.maxPixels };
  const [image, mask] = await Promise.all([readImage(imagePath, limits), ds.readMask(id)]);
  if (image.width !== mask.width || image.height !== mask.height) {
    throw new FcnError(
      `${maskPath}: mask is ${mask.height}x${mask.width} (HxW) but its image ${imagePath} is ${image.height}x${image.width}; they must match`,
    );
  }
  return { id, image, mask };
}

/** The first release's name for readExample. */
export const readVocExample = readExample;
