// Float32 against int8 on a split: each model's confusion matrix and how many pixels their masks
// agree on, over the same full images.
import type { Dataset } from '../data/dataset.js';
import { readExample } from '../data/dataset.js';
import { ConfusionMatrix } from '../eval/confusion.js';
import type { SegmentationModel } from '../infer/model.js';

export interface Comparison {
  reference: ConfusionMatrix;
  candidate: ConfusionMatrix;
  /** Pixels where both masks give the same class, over all pixels of the images. */
  agreement: number;
  images: number;
}

export async function compareModels(reference: SegmentationModel, candidate: SegmentationModel, ds: Dataset,
  opts: { ids?: readonly string[]; onProgress?: (done: number, total: number) => void } = {}): Promise<Comparison> {
  const ids = opts.ids ?? ds.ids;
  const a = new ConfusionMatrix(reference.numClasses);
  const b = new ConfusionMatrix(candidate.numClasses);
  let same = 0;
  let total = 0;
  for (let i = 0; i < ids.length; i++) {
    const { image, mask } = await readExample(ds, ids[i]!);
    const pa = await reference.predict(image);
    const pb = await candidate.predict(image);
    a.add(pa.data, mask.data);
    b.add(pb.data, mask.data);
    for (let j = 0; j < pa.data.length; j++) if (pa.data[j] === pb.data[j]) same++;
    total += pa.data.length;
    opts.onProgress?.(i + 1, ids.length);
  }
  return { reference: a, candidate: b, agreement: total > 0 ? same / total : 1, images: ids.length };
}
