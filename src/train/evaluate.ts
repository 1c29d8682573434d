// torchvision's evaluate: the epoch's weights compiled for inference and scored on the val split
// (full images, as `fcn eval` scores them); and the book's prediction grid at the end of a run.
import { readVocExample, type VocDataset } from '../data/dataset.js';
import { writeImage } from '../data/image.js';
import type { TensorMap } from '../model/params.js';
import { SegmentationModel } from '../infer/model.js';
import { evaluate as scoreSplit } from '../infer/evaluate.js';
import { imageGrid, labelToImage } from '../render/pictures.js';
import { Progress } from '../util/progress.js';
import { FcnError, errorMessage } from '../util/errors.js';
import { count } from './report.js';
import type { Run } from './run.js';

export interface EpochEvaluation {
  testAccuracy: number;
  testMeanIoU: number;
  testImages: number;
  seconds: number;
}

async function withModel<T>(run: Run, weights: TensorMap, use: (m: SegmentationModel) => Promise<T>): Promise<T> {
  const model = await SegmentationModel.fromWeights(run.arch, weights, run.card, { threads: run.settings.threads });
  try {
    return await use(model);
  } finally {
    await model.dispose();
  }
}

/** Val pixel accuracy and mean IoU of `weights` (the first evalLimit images, or all). */
export async function evaluate(run: Run, weights: TensorMap): Promise<EpochEvaluation> {
  const t0 = performance.now();
  const limit = run.settings.evalLimit;
  const testImages = limit !== null ? Math.min(limit, run.valDs.ids.length) : run.valDs.ids.length;
  const cm = await withModel(run, weights, async (model) => {
    const bar = run.progress ? new Progress({ total: testImages, label: 'eval val', unit: 'img', format: count }) : undefined;
    const res = await scoreSplit(model, run.valDs, { limit: limit ?? undefined, onProgress: (done) => bar?.update(done) });
    bar?.finish();
    return res;
  });
  const m = cm.metrics();
  return { testAccuracy: m.pixelAccuracy, testMeanIoU: m.meanIoU, testImages, seconds: (performance.now() - t0) / 1000 };
}

/** Predictions of a few val images as the book shows them: image, prediction and truth rows. */
async function renderGrid(model: SegmentationModel, ds: VocDataset, n: number) {
  const ids = ds.ids.slice(0, n);
  const images = [], preds = [], truths = [];
  for (const id of ids) {
    const ex = await readVocExample(ds, id);
    images.push(ex.image);
    preds.push(labelToImage(await model.predict(ex.image), model.meta.colors));
    truths.push(labelToImage(ex.mask, model.meta.colors));
  }
  return imageGrid([images, preds, truths], {
    rowTitles: ['image', 'prediction', 'truth'],
    columnTitles: ids,
    rowKernels: ['smooth', 'nearest', 'nearest'],
  });
}

/** OUT/grid.png from the final weights. */
export async function writeGrid(run: Run, weights: TensorMap): Promise<void> {
  await withModel(run, weights, async (model) => {
    try {
      await writeImage(run.files.grid, await renderGrid(model, run.valDs, run.settings.gridImages));
    } catch (err) {
      if (err instanceof FcnError) throw err;
      throw new FcnError(`${run.files.grid}: cannot write the prediction grid: ${errorMessage(err)}`);
    }
  });
}
