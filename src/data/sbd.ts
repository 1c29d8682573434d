// VOC's augmented training set, `train_aug` (10,582 images on the real data): VOC 2012's train
// list plus the Semantic Boundaries Dataset's (Hariharan et al., benchmark_RELEASE/dataset) train
// and val lists, minus VOC's val list so that scoring on VOC val stays honest, de-duplicated.
// Where VOC has a mask (SegmentationClass/<id>.png, with its void band) it is used; otherwise SBD's
// cls/<id>.mat. Images come from VOC's JPEGImages when it has them, else from SBD's img/.
import { readFile, readdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { FcnError, errorMessage } from '../util/errors.js';
import { readIdList, type Dataset } from './dataset.js';
import { checkLabels, readLabelMask, type LabelSpace } from './labels.js';
import { decodeSbdMask } from './mat.js';
import type { LabelMap } from './image.js';

export const TRAIN_AUG = 'train_aug';
export const SBD_DIR = 'benchmark_RELEASE';

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

async function stems(dir: string, ext: string): Promise<Set<string>> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new FcnError(`${dir}: cannot read the folder (${code === 'ENOENT' ? 'no such directory' : errorMessage(err)})`);
  }
  return new Set(names.filter((n) => n.toLowerCase().endsWith(ext)).map((n) => n.slice(0, -ext.length)));
}

/** SBD's dataset folder (img/, cls/, train.txt, val.txt) beside the VOC root or under the folder given. */
export async function findSbd(dir: string, vocRoot: string): Promise<string> {
  const candidates = [join(dir, SBD_DIR), join(dirname(dirname(vocRoot)), SBD_DIR), join(dirname(vocRoot), SBD_DIR), dir];
  for (const c of candidates) {
    if (await isDirectory(join(c, 'dataset', 'cls'))) return join(c, 'dataset');
  }
  throw new FcnError(
    `${dir}: no SBD for the ${TRAIN_AUG} split (expected ${join(dir, SBD_DIR, 'dataset')} with cls/, img/, train.txt and val.txt ` +
    `beside VOCdevkit/VOC2012, as \`fcn download sbd\` makes it)`,
  );
}

/** The train_aug ids: (VOC train ∪ SBD train ∪ SBD val) − VOC val, sorted. */
export function trainAugIds(vocTrain: string[], vocVal: string[], sbdTrain: string[], sbdVal: string[]): string[] {
  const val = new Set(vocVal);
  return [...new Set([...vocTrain, ...sbdTrain, ...sbdVal])].filter((id) => !val.has(id)).sort();
}

/** Opens train_aug for the VOC root `vocRoot` found under `dir`. */
export async function openTrainAug(dir: string, vocRoot: string, labels: LabelSpace, maxPixels?: number): Promise<Dataset> {
  const sbd = await findSbd(dir, vocRoot);
  const lists = join(vocRoot, 'ImageSets', 'Segmentation');
  const [vocTrain, vocVal, sbdTrain, sbdVal] = await Promise.all([
    readIdList(join(lists, 'train.txt'), "VOC's 'train' id list"),
    readIdList(join(lists, 'val.txt'), "VOC's 'val' id list"),
    readIdList(join(sbd, 'train.txt'), "SBD's 'train' id list"),
    readIdList(join(sbd, 'val.txt'), "SBD's 'val' id list"),
  ]);
  const ids = trainAugIds(vocTrain, vocVal, sbdTrain, sbdVal);
  const [vocImages, vocMasks, sbdImages, sbdMasks] = await Promise.all([
    stems(join(vocRoot, 'JPEGImages'), '.jpg'),
    stems(join(vocRoot, 'SegmentationClass'), '.png'),
    stems(join(sbd, 'img'), '.jpg'),
    stems(join(sbd, 'cls'), '.mat'),
  ]);
  for (const id of ids) {
    if (!vocMasks.has(id) && !sbdMasks.has(id)) {
      throw new FcnError(`${join(sbd, 'cls', `${id}.mat`)}: no such file (id '${id}' of ${TRAIN_AUG} has no mask in VOC's SegmentationClass nor in SBD's cls)`);
    }
    if (!vocImages.has(id) && !sbdImages.has(id)) {
      throw new FcnError(`${join(sbd, 'img', `${id}.jpg`)}: no such file (id '${id}' of ${TRAIN_AUG} has no image in VOC's JPEGImages nor in SBD's img)`);
    }
  }
  const maskPath = (id: string) => (vocMasks.has(id) ? join(vocRoot, 'SegmentationClass', `${id}.png`) : join(sbd, 'cls', `${id}.mat`));
  return {
    root: vocRoot,
    split: TRAIN_AUG,
    ids,
    layout: 'voc+sbd',
    labels,
    maxPixels,
    imagePath: (id: string) => (vocImages.has(id) ? join(vocRoot, 'JPEGImages', `${id}.jpg`) : join(sbd, 'img', `${id}.jpg`)),
    maskPath,
    readMask: (id: string) => (vocMasks.has(id) ? readLabelMask(maskPath(id), labels, { maxPixels }) : readSbdMask(maskPath(id), labels)),
  };
}

/** Reads an SBD cls/<id>.mat class mask, checked against the label space. */
export async function readSbdMask(path: string, labels: LabelSpace): Promise<LabelMap> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new FcnError(`${path}: cannot read an SBD class mask (${code === 'ENOENT' ? 'no such file' : errorMessage(err)})`);
  }
  return checkLabels(decodeSbdMask(bytes, path), path, labels);
}
