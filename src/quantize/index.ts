// Post-training static int8 quantisation of a trained network: calibrate activation ranges on real
// images of a split, quantise weights per output channel, write the QDQ graph (graph/quant.ts) with
// the same metadata as `fcn export` plus the precision and the calibration settings.
import { compileQuantized, planQuantization, type QuantPlan } from '../graph/quant.js';
import { exportMetadata } from '../graph/inference.js';
import type { Checkpoint } from '../weights/checkpoint.js';
import type { Dataset } from '../data/dataset.js';
import { calibrate, type Calibration } from './calibrate.js';
import { DEFAULT_CALIBRATION, type CalibrationSettings } from './ranges.js';

export { calibrate, spreadIds, Calibration } from './calibrate.js';
export { GrowingHistogram, CALIBRATION_METHODS, DEFAULT_CALIBRATION, type CalibrationMethod, type CalibrationSettings } from './ranges.js';

export interface QuantizeOptions {
  /** Calibration images (spread over the split). Default 100. */
  calib?: number;
  settings?: CalibrationSettings;
  threads?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface QuantizeResult {
  /** The int8 ONNX file. */
  bytes: Uint8Array;
  plan: QuantPlan;
  calibration: Calibration;
  settings: CalibrationSettings;
}

/** The metadata of an int8 file: the export's, `precision`, and how it was calibrated. */
export function int8Metadata(ckpt: Checkpoint, settings: CalibrationSettings, calibration: Calibration, split: string): Record<string, string> {
  return {
    ...exportMetadata(ckpt.arch, ckpt),
    precision: 'int8',
    calibration: JSON.stringify({
      method: settings.method, ...(settings.method === 'percentile' ? { percentile: settings.percentile } : {}),
      images: calibration.images, split,
      weights: 'int8 symmetric per output channel, reduced range -63..63', activations: 'uint8 asymmetric per tensor',
    }),
  };
}

/** The int8 graph of a calibrated plan under `settings`. */
export function compileInt8(ckpt: Checkpoint, plan: QuantPlan, calibration: Calibration, settings: CalibrationSettings, split: string): Uint8Array {
  return compileQuantized(plan, calibration.ranges(settings), { metadata: int8Metadata(ckpt, settings, calibration, split) });
}

/** Quantises a checkpoint's network, calibrating on `ds` (full images, the card's preprocessing). */
export async function quantizeCheckpoint(ckpt: Checkpoint, ds: Dataset, opts: QuantizeOptions = {}): Promise<QuantizeResult> {
  const settings = opts.settings ?? DEFAULT_CALIBRATION;
  const plan = planQuantization(ckpt.arch, ckpt.weights);
  const calibration = await calibrate(plan, ds, {
    images: opts.calib ?? 100, normalization: ckpt.normalization, threads: opts.threads, onProgress: opts.onProgress,
  });
  return { bytes: compileInt8(ckpt, plan, calibration, settings, ds.split), plan, calibration, settings };
}
export { compareModels, type Comparison } from './compare.js';
