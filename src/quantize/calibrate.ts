// Calibration: the folded float graph (graph/quant.ts) run over real images of a split, every value
// the int8 graph quantises read out and added to its histogram. Full images, preprocessed exactly as
// inference does them (the model card's normalisation, zero padding to the stride: infer/preprocess).
import { compileCalibration, calibratedValues, type QuantPlan, type ValueRange } from '../graph/quant.js';
import { Session } from '../engine/session.js';
import { readImage } from '../data/image.js';
import type { Dataset } from '../data/dataset.js';
import type { Normalization } from '../model/card.js';
import { normalizeWindow } from '../infer/preprocess.js';
import { FcnError } from '../util/errors.js';
import { GrowingHistogram, type CalibrationSettings } from './ranges.js';

export interface CalibrateOptions {
  /** How many images of the split (spread evenly over it); all when it has fewer. */
  images: number;
  normalization: Normalization;
  threads?: number;
  onProgress?: (done: number, total: number) => void;
}

/** What calibration measured: one histogram per quantised value. */
export class Calibration {
  constructor(readonly histograms: ReadonlyMap<string, GrowingHistogram>, readonly images: number) {}

  ranges(settings: CalibrationSettings): Map<string, ValueRange> {
    return new Map([...this.histograms].map(([v, h]) => [v, h.range(settings)]));
  }
}

/** `n` ids spread evenly over `ids` (in their order), so a split sorted by scene is sampled across. */
export function spreadIds(ids: readonly string[], n: number): string[] {
  if (n >= ids.length) return [...ids];
  return Array.from({ length: n }, (_, i) => ids[Math.floor((i * ids.length) / n)]!);
}

export async function calibrate(plan: QuantPlan, ds: Dataset, opts: CalibrateOptions): Promise<Calibration> {
  if (ds.ids.length === 0) throw new FcnError(`${ds.root}: the '${ds.split}' split has no images to calibrate on`);
  const ids = spreadIds(ds.ids, opts.images);
  const values = calibratedValues(plan);
  const histograms = new Map(values.map((v) => [v, new GrowingHistogram()]));
  const { arch } = plan;
  const fetches = values.filter((v) => v !== arch.input);
  const session = await Session.create(compileCalibration(plan), { threads: opts.threads });
  try {
    let next = readImage(ds.imagePath(ids[0]!), { maxPixels: ds.maxPixels });
    for (let i = 0; i < ids.length; i++) {
      const image = await next;
      if (i + 1 < ids.length) next = readImage(ds.imagePath(ids[i + 1]!), { maxPixels: ds.maxPixels });
      const x = normalizeWindow(image, opts.normalization, 0, 0, image.height, image.width, arch.stride);
      const out = fetches.length > 0
        ? await session.run({ [arch.input]: { dtype: 'float32', dims: [1, 3, x.height, x.width], data: x.data } }, fetches)
        : {};
      for (const v of values) histograms.get(v)!.add(v === arch.input ? x.data : out[v]!.data as Float32Array);
      opts.onProgress?.(i + 1, ids.length);
    }
  } finally {
    await session.dispose();
  }
  return new Calibration(histograms, ids.length);
}
