// Training and evaluation batches from a VOC split: which examples are usable at a crop size (the
// book drops images smaller than the crop: "read 1114 examples"), and one epoch of randomly
// cropped, optionally flipped batches, normalised as the network's model card says. The next batch
// is decoded (sharp's thread pool) and cropped while the caller runs the current one, so the
// trainer rarely waits for data.
import type Sharp from 'sharp';
import { requireCjs } from '../util/cjs.js';
import { FcnError, errorMessage } from '../util/errors.js';
import { readVocExample, type VocDataset } from './dataset.js';
import { Rng } from './rng.js';
import { hflip, IMAGENET_MEAN_RGB, normalizeToNCHW, padTo, randomCrop } from './transforms.js';
import { augment } from './augment.js';
import type { LabelMap, RgbImage } from './image.js';

const sharp = requireCjs('sharp') as typeof Sharp;

export interface Batch {
  /** N*3*H*W, normalised by BatchOptions.normalize. */
  images: Float32Array;
  /** N*H*W class ids, 255 = ignore. */
  labels: Uint8Array;
  n: number;
  height: number;
  width: number;
  ids: string[];
}

export type SmallImages = 'filter' | 'pad';

export interface BatchOptions {
  batchSize: number;
  /** [height, width] of every crop. */
  crop: [number, number];
  shuffle: boolean;
  rng: Rng;
  /** Mirror each example left-right with probability 1/2 (the book does not). */
  flip?: boolean;
  /** Images smaller than the crop: dropped ('filter', the default; see prepareSplit) or padded with label 255. */
  small?: SmallImages;
  /** Drop the last incomplete batch; default: true when shuffling (the book's DataLoader drop_last=True for train). */
  dropLast?: boolean;
  /**
   * Turns the crops into the network's input: the model card's normalisation of the network being
   * trained (train/ passes infer/preprocess.ts's normalizeBatch); default ImageNet's (normalizeToNCHW).
   */
  normalize?: (images: RgbImage[]) => Float32Array;
  /** The colour small images are padded with, one that normalises to ~0 (default the ImageNet mean). */
  padColor?: readonly number[];
  /** Rescale each example by a random factor in [lo, hi] before cropping (augment.ts; what comes out smaller is padded, whatever `small` says). */
  scale?: [number, number];
}

/** How many examples are read at once when listing sizes (bounded, so huge splits don't open every file at once). */
const METADATA_CONCURRENCY = 16;

async function imageSize(path: string): Promise<{ width: number; height: number }> {
  let meta;
  try {
    meta = await sharp(path).metadata();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = /missing|ENOENT|no such file/i.test(errorMessage(err)) || code === 'ENOENT' ? 'no such file' : errorMessage(err);
    throw new FcnError(`${path}: cannot read the image size (${why})`);
  }
  if (!meta.width || !meta.height) throw new FcnError(`${path}: image has no width/height`);
  return { width: meta.width, height: meta.height };
}

/**
 * Lists the usable examples once (reads image sizes cheaply via sharp metadata, without decoding)
 * and reports how many were dropped: with 'filter', images smaller than the crop in either side;
 * with 'pad', none (they are padded when batched).
 */
export async function prepareSplit(ds: VocDataset, crop: [number, number], small: SmallImages): Promise<{ ids: string[]; dropped: number }> {
  const [ch, cw] = crop;
  if (small === 'pad') return { ids: [...ds.ids], dropped: 0 };
  const keep: boolean[] = new Array<boolean>(ds.ids.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < ds.ids.length) {
      const i = next++;
      const { width, height } = await imageSize(ds.imagePath(ds.ids[i]!));
      keep[i] = height >= ch && width >= cw;
    }
  };
  await Promise.all(Array.from({ length: Math.min(METADATA_CONCURRENCY, ds.ids.length) }, worker));
  const ids = ds.ids.filter((_, i) => keep[i]);
  return { ids, dropped: ds.ids.length - ids.length };
}

export function batchesPerEpoch(n: number, batchSize: number, dropLast: boolean): number {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batch size must be a positive integer, got ${batchSize}`);
  return dropLast ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
}

interface Planned {
  id: string;
  /** Seeds the example's own crop/flip draws, fixed when the epoch starts. */
  seed: number;
}

async function buildBatch(ds: VocDataset, plan: Planned[], opts: BatchOptions): Promise<Batch> {
  const [height, width] = opts.crop;
  const examples = await Promise.all(plan.map((p) => readVocExample(ds, p.id)));
  const images: RgbImage[] = [];
  const labels = new Uint8Array(plan.length * height * width);
  examples.forEach((ex, k) => {
    const rng = new Rng(plan[k]!.seed);
    let image = ex.image;
    let mask: LabelMap = ex.mask;
    if (opts.scale) {
      ({ image, mask } = augment(image, mask, { crop: [height, width], scale: opts.scale, flip: opts.flip, padColor: opts.padColor }, rng));
      images.push(image);
      labels.set(mask.data, k * height * width);
      return;
    }
    if (opts.small === 'pad') ({ image, mask } = padTo(image, mask, height, width, opts.padColor ?? IMAGENET_MEAN_RGB));
    else if (image.height < height || image.width < width) {
      throw new FcnError(
        `${ds.imagePath(ex.id)}: image is ${image.height}x${image.width} (HxW), smaller than the ${height}x${width} crop (filter the split with prepareSplit, or pad)`,
      );
    }
    ({ image, mask } = randomCrop(image, mask, height, width, rng));
    if (opts.flip && rng.next() < 0.5) ({ image, mask } = hflip(image, mask));
    images.push(image);
    labels.set(mask.data, k * height * width);
  });
  return { images: (opts.normalize ?? normalizeToNCHW)(images), labels, n: plan.length, height, width, ids: plan.map((p) => p.id) };
}

/**
 * One epoch of batches over `ids`. All of the epoch's randomness (the order, then one seed per
 * example for its crop and flip) is drawn from `opts.rng` when the epoch starts, so the rng's state
 * after an epoch does not depend on how far the caller got or on decoding order: saving it at an
 * epoch boundary and restoring it reproduces the following epochs exactly.
 * Each batch holds fresh arrays (the caller may keep them). While the caller uses a batch, the next
 * one is already being read.
 */
export async function* epochBatches(ds: VocDataset, ids: string[], opts: BatchOptions): AsyncGenerator<Batch> {
  const [ch, cw] = opts.crop;
  if (!Number.isInteger(ch) || !Number.isInteger(cw) || ch < 1 || cw < 1) throw new RangeError(`crop must be positive integers, got ${ch}x${cw}`);
  const dropLast = opts.dropLast ?? opts.shuffle;
  const count = batchesPerEpoch(ids.length, opts.batchSize, dropLast);
  const order = opts.shuffle ? opts.rng.shuffle([...ids]) : [...ids];
  const plan: Planned[] = order.map((id) => ({ id, seed: opts.rng.nextUint32() }));
  const batchPlan = (b: number): Planned[] => plan.slice(b * opts.batchSize, Math.min((b + 1) * opts.batchSize, plan.length));

  if (count === 0) return;
  let pending: Promise<Batch> = buildBatch(ds, batchPlan(0), opts);
  try {
    for (let b = 0; b < count; b++) {
      const batch = await pending;
      if (b + 1 < count) {
        pending = buildBatch(ds, batchPlan(b + 1), opts);
        // If the caller stops early, the prefetched batch is abandoned: its failure is not theirs.
        pending.catch(() => {});
      }
      yield batch;
    }
  } finally {
    // Let an abandoned prefetch finish before returning so no decode outlives the generator.
    await pending.catch(() => {});
  }
}
