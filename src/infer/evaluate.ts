// Scoring a model on a whole split: full images (never crops), one confusion matrix for the split.
import type { VocDataset } from '../data/dataset.js';
import { readVocExample } from '../data/dataset.js';
import { ConfusionMatrix } from '../eval/confusion.js';
import type { SegmentationModel } from './model.js';
import { FcnError, errorMessage } from '../util/errors.js';
import { resizeBilinearPil, resizeNearestPil, shorterSideSize } from '../data/resize.js';

export interface EvaluateOptions {
  /** Only the first n images of the split. */
  limit?: number;
  /** Evaluate these ids of the split instead (e.g. one shard of it). */
  ids?: readonly string[];
  onProgress?: (done: number, total: number) => void;
  /** Resize each image (bilinear) and mask (nearest) so the shorter side is this many pixels before
   *  predicting and scoring, as torchvision's evaluation preset does (520 for its published numbers). */
  resize?: number;
}

export async function evaluate(model: SegmentationModel, ds: VocDataset, opts: EvaluateOptions = {}): Promise<ConfusionMatrix> {
  const ids = opts.ids ?? (opts.limit !== undefined ? ds.ids.slice(0, opts.limit) : ds.ids);
  const cm = new ConfusionMatrix(model.numClasses);
  let next = ids.length > 0 ? readVocExample(ds, ids[0]!) : undefined;
  for (let i = 0; i < ids.length; i++) {
    let { image, mask } = await next!;
    // decode the next image while this one runs
    next = i + 1 < ids.length ? readVocExample(ds, ids[i + 1]!) : undefined;
    if (opts.resize !== undefined) {
      const [h, w] = shorterSideSize(image.height, image.width, opts.resize);
      image = resizeBilinearPil(image, h, w);
      mask = resizeNearestPil(mask, h, w);
    }
    const pred = await model.predict(image);
    try {
      cm.add(pred.data, mask.data);
    } catch (err) {
      // a label the model has no class for (e.g. a 5-class model on VOC's 21): name the mask file
      throw new FcnError(`${ds.maskPath(ids[i]!)}: ${errorMessage(err)}; the model has ${model.numClasses} classes`);
    }
    opts.onProgress?.(i + 1, ids.length);
  }
  return cm;
}
