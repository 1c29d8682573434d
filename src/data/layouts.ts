// The dataset layouts people bring, found under the folder they name and opened as one Dataset:
//   voc     PASCAL VOC: ImageSets/Segmentation/<split>.txt, JPEGImages/, SegmentationClass/ (index PNGs)
//   cvat    CVAT's VOC-style "Segmentation mask" export: the same folders plus labelmap.txt, colour
//           masks, images with any common extension, often a single list (default.txt)
//   mmseg   mmsegmentation's custom layout: img_dir/<split>/ and ann_dir/<split>/, masks matched by
//           file stem, classes.json (or labelmap.txt) beside them
//   ade20k  ADEChallengeData2016: images|annotations/{training,validation}, 150 classes, label 0 ignored
// `train` and `val` name every layout's training and validation split (ADE20K's training and
// validation). Every id's image and mask are paired before anything is decoded: a mask without its
// image, an image without its mask, and a listed id with neither are one-line errors.
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { FcnError, errorMessage } from '../util/errors.js';
import { LAYOUTS, readIdList, type Dataset, type LayoutName } from './dataset.js';
import { ade20kLabels, readLabelFile, readLabelMask, vocLabels, LABELMAP_FILE, type LabelSpace } from './labels.js';
import { openTrainAug, TRAIN_AUG } from './sbd.js';

export interface OpenOptions {
  /** Read the folder as this layout instead of detecting it. */
  layout?: LayoutName;
  /** Classes given by the user: they replace the dataset's class file. */
  labels?: LabelSpace;
  /** Classes for a dataset without a class file (e.g. the model's, when scoring it); default VOC's. */
  defaultLabels?: LabelSpace;
  /** Largest image or mask accepted, in pixels (default: the decoders' own, see maxPixelsLimit). */
  maxPixels?: number;
  /**
   * Hold out this fraction (0 < f < 1) of the training list as 'val' and train on the rest: for
   * exports with a single list (CVAT's default.txt) or without a validation split. The split is a
   * fixed function of the ids (ordered by a hash), so it is the same on every run and machine.
   */
  valFraction?: number;
}

/** A split the folder does not have; `available` lists the ones it has. */
export class SplitNotFoundError extends FcnError {
  constructor(message: string, readonly split: string, readonly available: string[]) {
    super(message);
    this.name = 'SplitNotFoundError';
  }
}

/** Image file extensions accepted beside masks (case-insensitive). */
export const IMAGE_EXTENSIONS: readonly string[] = ['.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff'];

const VOC_LISTS = join('ImageSets', 'Segmentation');
const ADE_ROOT = 'ADEChallengeData2016';
const ADE_SPLITS: Record<string, string> = { train: 'training', val: 'validation' };

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

async function listFiles(dir: string, role: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { withFileTypes: true });
    return entries.filter((e) => e.isFile() && !e.name.startsWith('.')).map((e) => e.name);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such directory' : code === 'ENOTDIR' ? 'not a directory' : errorMessage(err);
    throw new FcnError(`${dir}: cannot read the ${role} folder (${why})`);
  }
}

/** How deep listTree looks below a split's folder. */
const TREE_DEPTH = 8;

/**
 * The files below a folder as '/'-separated paths relative to it (sub-folders too, as
 * mmsegmentation lists a split's img_dir and ann_dir recursively); symbolic links are not followed.
 */
async function listTree(dir: string, role: string): Promise<string[]> {
  const out = await listFiles(dir, role);
  const walk = async (rel: string, depth: number): Promise<void> => {
    const entries = await readdir(join(dir, ...rel.split('/')), { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const path = rel ? `${rel}/${e.name}` : e.name;
      if (e.isFile() && rel) out.push(path);
      else if (e.isDirectory() && depth < TREE_DEPTH) await walk(path, depth + 1);
    }
  };
  await walk('', 0);
  return out;
}

async function subdirs(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort();
  } catch {
    return [];
  }
}

/** Files of a folder keyed by stem; an image stem found with several extensions prefers .jpg, then the list's order. */
function byStem(names: string[], extensions: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  const rank = (n: string) => extensions.indexOf(extname(n).toLowerCase());
  for (const name of names) {
    if (rank(name) < 0) continue;
    const stem = name.slice(0, -extname(name).length);
    const had = out.get(stem);
    if (had === undefined || rank(name) < rank(had)) out.set(stem, name);
  }
  return out;
}

/**
 * The files of a folder for a list's ids, keyed by id (see byStem). An id with folders in it
 * (`set1/frame_001`, as CVAT exports images uploaded in folders) is looked up in that sub-folder;
 * a sub-folder that is not there has no files, and the pairing names the id.
 */
async function filesById(dir: string, ids: readonly string[], role: string, extensions: readonly string[]): Promise<Map<string, string>> {
  const out = byStem(await listFiles(dir, role), extensions);
  const folders = new Set(ids.filter((id) => id.includes('/')).map((id) => id.slice(0, id.lastIndexOf('/'))));
  for (const folder of folders) {
    const names = await listFiles(join(dir, ...folder.split('/')), role).catch(() => []);
    for (const [stem, name] of byStem(names, extensions)) out.set(`${folder}/${stem}`, `${folder}/${name}`);
  }
  return out;
}

/** What kind of layout a folder is, without looking below it. */
async function layoutAt(dir: string): Promise<LayoutName | undefined> {
  if (await isDirectory(join(dir, VOC_LISTS))) return (await isFile(join(dir, LABELMAP_FILE))) ? 'cvat' : 'voc';
  if ((await isDirectory(join(dir, 'img_dir'))) && (await isDirectory(join(dir, 'ann_dir')))) return 'mmseg';
  if ((await isDirectory(join(dir, 'images'))) && (await isDirectory(join(dir, 'annotations')))) {
    const splits = await subdirs(join(dir, 'images'));
    if (basename(dir) === ADE_ROOT || splits.includes('training') || splits.includes('validation')) return 'ade20k';
  }
  return undefined;
}

function compatible(found: LayoutName, forced: LayoutName | undefined): boolean {
  if (forced === undefined) return true;
  // a VOC-style root is either, whichever its class file says
  if (forced === 'voc' || forced === 'cvat') return found === 'voc' || found === 'cvat';
  return found === forced;
}

const EXPECTED =
  'expected a VOC root (ImageSets/Segmentation), a CVAT VOC export (the same plus labelmap.txt), an mmsegmentation ' +
  'folder (img_dir/ and ann_dir/) or ADEChallengeData2016 (images/ and annotations/), or the folder holding one';

/**
 * Finds the dataset under `dir`: `dir` itself, VOCdevkit/VOC2012, VOC2012 or ADEChallengeData2016
 * under it, or its only sub-folder that is a dataset. `layout` restricts the search to that layout.
 */
export async function findDataset(dir: string, layout?: LayoutName): Promise<{ root: string; layout: LayoutName }> {
  if (layout !== undefined && !LAYOUTS.includes(layout)) throw new FcnError(`layout '${String(layout)}': expected one of ${LAYOUTS.join(', ')}`, 2);
  if (!(await isDirectory(dir))) throw new FcnError(`${dir}: ${(await isFile(dir)) ? 'a file, not a directory' : 'no such directory'} (${EXPECTED})`);
  for (const candidate of [dir, join(dir, 'VOCdevkit', 'VOC2012'), join(dir, 'VOC2012'), join(dir, ADE_ROOT)]) {
    const found = await layoutAt(candidate);
    if (found !== undefined && compatible(found, layout)) return { root: candidate, layout: layout ?? found };
  }
  const below: { root: string; layout: LayoutName }[] = [];
  for (const name of await subdirs(dir)) {
    const found = await layoutAt(join(dir, name));
    if (found !== undefined && compatible(found, layout)) below.push({ root: join(dir, name), layout: layout ?? found });
  }
  if (below.length === 1) return below[0]!;
  if (below.length > 1) throw new FcnError(`${dir}: holds several datasets (${below.map((b) => basename(b.root)).join(', ')}); name one of them`);
  throw new FcnError(`${dir}: not a ${layout ?? 'known'} dataset (${EXPECTED})`);
}

/** FNV-1a: a fixed, platform-independent hash of an id, so the held-out ids never change. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * Splits ids into a training and a held-out part: the round(f·n) ids of lowest hash (at least one,
 * leaving at least one) are held out; both keep the input order.
 */
export function holdOut(ids: string[], fraction: number, source: string): { train: string[]; val: string[] } {
  if (!(fraction > 0 && fraction < 1)) throw new FcnError(`validation fraction ${fraction}: expected a number between 0 and 1`, 2);
  if (ids.length < 2) throw new FcnError(`${source}: ${ids.length} id, too few to hold any out for validation`);
  const k = Math.min(ids.length - 1, Math.max(1, Math.round(fraction * ids.length)));
  const order = [...ids].sort((a, b) => fnv1a(a) - fnv1a(b) || (a < b ? -1 : a > b ? 1 : 0));
  const held = new Set(order.slice(0, k));
  return { train: ids.filter((id) => !held.has(id)), val: ids.filter((id) => held.has(id)) };
}

function checkSplitName(split: string): void {
  if (!/^[\w.-]+$/.test(split) || split === '.' || split === '..') {
    throw new FcnError(`split '${split}': expected a name such as train, val or trainval`);
  }
}

/** ids of a split given as lists of names or folders: the named one, or train/val held out of `source`. */
async function chooseIds(
  split: string, available: string[], read: (name: string) => Promise<string[]>, where: string, valFraction: number | undefined,
  missing: (name: string) => string,
): Promise<string[]> {
  const source = available.includes('default') ? 'default' : available.includes('train') ? 'train' : available.length === 1 ? available[0]! : undefined;
  // with a held-out fraction the source list, by its own name too (CVAT's default), is its training part: never the val images
  if (valFraction !== undefined && (split === 'train' || split === 'val' || split === source)) {
    if (source === undefined) throw new SplitNotFoundError(`${where}: no list to hold a validation part out of (expected default or train; has ${available.join(', ') || 'none'})`, split, available);
    const parts = holdOut(await read(source), valFraction, `${where}/${source}`);
    return split === 'val' ? parts.val : parts.train;
  }
  if (available.includes(split)) return read(split);
  const hint = available.length === 1
    ? `; the only split is '${available[0]}': hold out a validation fraction of it, or name it as the split`
    : `; the splits are ${available.map((a) => `'${a}'`).join(', ') || 'none'}`;
  throw new SplitNotFoundError(`${missing(split)} (no '${split}' split${hint})`, split, available);
}

/** Pairs ids with image and mask files; every kind of mismatch is a one-line error. */
function pair(
  ids: string[], images: Map<string, string>, masks: Map<string, string>, imageDir: string, maskDir: string, listed: string | undefined,
): void {
  for (const id of ids) {
    const image = images.get(id);
    const mask = masks.get(id);
    if (image !== undefined && mask === undefined) throw new FcnError(`${join(imageDir, image)}: image without a mask (expected ${join(maskDir, `${id}.png`)})`);
    if (image === undefined && mask !== undefined) throw new FcnError(`${join(maskDir, mask)}: mask without an image (expected ${join(imageDir, id)} with one of ${IMAGE_EXTENSIONS.join(' ')})`);
    if (image === undefined) throw new FcnError(`${listed ?? imageDir}: id '${id}' has neither an image in ${imageDir} nor a mask in ${maskDir}`);
  }
}

function makeDataset(
  root: string, split: string, layout: LayoutName, ids: string[], labels: LabelSpace,
  imageDir: string, images: Map<string, string>, maskDir: string, masks: Map<string, string>, maxPixels: number | undefined,
): Dataset {
  const maskPath = (id: string) => join(maskDir, masks.get(id) ?? `${id}.png`);
  return {
    root, split, ids, layout, labels, maxPixels,
    imagePath: (id: string) => join(imageDir, images.get(id) ?? `${id}.jpg`),
    maskPath,
    readMask: (id: string) => readLabelMask(maskPath(id), labels, { maxPixels }),
  };
}

async function openVocStyle(root: string, layout: LayoutName, split: string, opts: OpenOptions): Promise<Dataset> {
  const labels = opts.labels ?? (await readLabelFile(root)) ?? opts.defaultLabels ?? vocLabels();
  if (layout === 'cvat' && !opts.labels && !(await isFile(join(root, LABELMAP_FILE)))) {
    throw new FcnError(`${join(root, LABELMAP_FILE)}: no such file (a CVAT export carries its labels in it: # label:color_rgb:parts:actions, then name:r,g,b:: lines)`);
  }
  const listDir = join(root, VOC_LISTS);
  const lists = (await listFiles(listDir, 'list')).filter((n) => n.endsWith('.txt')).map((n) => n.slice(0, -4)).sort();
  const ids = await chooseIds(split, lists, (name) => readIdList(join(listDir, `${name}.txt`), `the '${name}' id list`), listDir, opts.valFraction,
    (name) => `${join(listDir, `${name}.txt`)}: no such file`);
  const imageDir = join(root, 'JPEGImages');
  const maskDir = join(root, 'SegmentationClass');
  if (layout === 'cvat' && !(await isDirectory(imageDir)) && (await isDirectory(maskDir))) {
    throw new FcnError(`${imageDir}: no such directory (CVAT's export holds the images only when "Save images" is ticked: export again with it, or put the images there)`);
  }
  const images = await filesById(imageDir, ids, 'image', IMAGE_EXTENSIONS);
  const masks = await filesById(maskDir, ids, 'mask', ['.png']);
  pair(ids, images, masks, imageDir, maskDir, join(listDir, `${lists.includes(split) ? split : lists.includes('default') ? 'default' : split}.txt`));
  return makeDataset(root, split, layout, ids, labels, imageDir, images, maskDir, masks, opts.maxPixels);
}

/** Folder-per-split layouts (mmseg, ADE20K): every image has a mask of the same stem and the reverse. */
async function openFolders(
  root: string, layout: LayoutName, split: string, opts: OpenOptions, imagesDir: string, masksDir: string, labels: LabelSpace,
  folderOf: (split: string) => string,
): Promise<Dataset> {
  const available = await subdirs(join(root, imagesDir));
  const wanted = folderOf(split);
  const readFolder = async (folder: string): Promise<string[]> => {
    const imageDir = join(root, imagesDir, folder);
    const maskDir = join(root, masksDir, folder);
    const images = byStem(await listTree(imageDir, 'image'), IMAGE_EXTENSIONS);
    const masks = byStem(await listTree(maskDir, 'mask'), ['.png']);
    for (const [stem, file] of masks) {
      if (!images.has(stem)) throw new FcnError(`${join(maskDir, file)}: mask without an image (expected ${join(imageDir, stem)} with one of ${IMAGE_EXTENSIONS.join(' ')})`);
    }
    const ids = [...images.keys()].sort();
    pair(ids, images, masks, imageDir, maskDir, undefined);
    if (ids.length === 0) throw new FcnError(`${imageDir}: no images (expected ${IMAGE_EXTENSIONS.join(' ')} files with masks of the same name in ${maskDir})`);
    found.set(folder, { images, masks, imageDir, maskDir });
    return ids;
  };
  const found = new Map<string, { images: Map<string, string>; masks: Map<string, string>; imageDir: string; maskDir: string }>();
  const ids = await chooseIds(wanted, available, readFolder, join(root, imagesDir), opts.valFraction !== undefined && (split === 'train' || split === 'val') ? opts.valFraction : undefined,
    (name) => `${join(root, imagesDir, name)}: no such directory`)
    .catch((err: unknown) => {
      if (err instanceof SplitNotFoundError) throw new SplitNotFoundError(err.message, split, err.available);
      throw err;
    });
  // with a held-out fraction, chooseIds read the source folder under its own name
  const f = found.get(wanted) ?? [...found.values()][0]!;
  return makeDataset(root, split, layout, ids, labels, f.imageDir, f.images, f.maskDir, f.masks, opts.maxPixels);
}

/**
 * Opens a split of the dataset under `dir` (any layout above; see findDataset for where it may
 * sit). `train_aug` on a VOC root is VOC's train plus SBD's train and val, minus VOC's val (sbd.ts).
 */
export async function openDataset(dir: string, split: string, opts: OpenOptions = {}): Promise<Dataset> {
  checkSplitName(split);
  const { root, layout } = await findDataset(dir, opts.layout);
  switch (layout) {
    case 'voc':
    case 'cvat':
      if (split === TRAIN_AUG && !(await isFile(join(root, VOC_LISTS, `${TRAIN_AUG}.txt`)))) {
        // train_aug holds all of VOC's train: a part held out of it for validation would be trained on too
        if (opts.valFraction !== undefined) {
          throw new FcnError(`${root}: ${TRAIN_AUG} is scored on VOC's val list; a validation fraction held out of the training list would also be in ${TRAIN_AUG}`, 2);
        }
        return openTrainAug(dir, root, opts.labels ?? (await readLabelFile(root)) ?? opts.defaultLabels ?? vocLabels(), opts.maxPixels);
      }
      return openVocStyle(root, layout, split, opts);
    case 'mmseg': {
      const labels = opts.labels ?? (await mmsegLabelFile(root)) ?? opts.defaultLabels ?? vocLabels();
      return openFolders(root, layout, split, opts, 'img_dir', 'ann_dir', labels, (s) => s);
    }
    case 'ade20k': {
      // its folders are training and validation: a held-out fraction would have nothing to apply to
      if (opts.valFraction !== undefined) throw new FcnError(`${root}: ADE20K has its validation split (annotations/validation); a held-out validation fraction is for data without one`, 2);
      const labels: LabelSpace = { ...(opts.labels ?? ade20kLabels()), reduceZeroLabel: true };
      return openFolders(root, layout, split, opts, 'images', 'annotations', labels, (s) => ADE_SPLITS[s] ?? s);
    }
  }
}

/** An mmsegmentation folder's class file: beside img_dir/ and ann_dir/, or one folder up. */
function mmsegLabelFile(root: string): Promise<LabelSpace | undefined> {
  return readLabelFile(root).then((found) => found ?? readLabelFile(dirname(root)));
}

/**
 * The label space of a folder of ground-truth masks as a dataset lays them out, for scoring masks
 * outside a dataset: a class file in the folder or beside it (VOC or CVAT's SegmentationClass/),
 * an mmsegmentation folder's for its ann_dir/<split>/, ADE20K's 150 classes (value 0 ignored) for
 * ADEChallengeData2016's annotations/<split>/; undefined when none of these applies.
 */
export async function maskFolderLabels(dir: string): Promise<LabelSpace | undefined> {
  const own = (await readLabelFile(dir)) ?? (await readLabelFile(dirname(dir)));
  if (own) return own;
  const root = dirname(dirname(dir));
  const parent = basename(dirname(dir));
  const layout = await layoutAt(root);
  if (layout === 'mmseg' && parent === 'ann_dir') return mmsegLabelFile(root);
  if (layout === 'ade20k' && parent === 'annotations') return ade20kLabels();
  return undefined;
}
