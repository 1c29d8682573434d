// Scoring a model on a whole split: full images (never crops), one confusion matrix for the split.
import type { VocDataset } from '../data/dataset.js';
import { readVocExample } from '../data/dataset.js';
import { ConfusionMatrix } from '../eval/confusion.js';
import type { SegmentationModel } from './model.js';
import { FcnError, errorMessage } from '../util/errors.js';

export interface EvaluateOptions {
  /** Only the first n images of the split. */
  limit?: number;
  /** Evaluate these ids of the split instead (e.g. one shard of it). */
  ids?: readonly string[];
  onProgress?: (done: number, total: number) => void;
}

export async function evaluate(model: SegmentationModel, ds: VocDataset, opts: EvaluateOptions = {}): Promise<ConfusionMatrix> {
  const ids = opts.ids ?? (opts.limit !== undefined ? ds.ids.slice(0, opts.limit) : ds.ids);
  const cm = new ConfusionMatrix(model.numClasses);
  let next = ids.length > 0 ? readVocExample(ds, ids[0]!) : undefined;
  for (let i = 0; i < ids.length; i++) {
    const ex = await next!;
    // decode the next image while this one runs
    next = i + 1 < ids.length ? readVocExample(ds, ids[i + 1]!) : undefined;
    const pred = await model.predict(ex.image);
    try {
      cm.add(pred.data, ex.mask.data);
    } catch (err) {
      // a label the model has no class for (e.g. a 5-class model on VOC's 21): name the mask file
      throw new FcnError(`${ds.maskPath(ids[i]!)}: ${errorMessage(err)}; the model has ${model.numClasses} classes`);
    }
    opts.onProgress?.(i + 1, ids.length);
  }
  return cm;
}
