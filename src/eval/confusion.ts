// Segmentation metrics: one confusion matrix accumulated over a whole split (void pixels, label 255,
// excluded), then pixel accuracy, mean class accuracy, mean IoU and frequency-weighted IoU computed
// once from it (as torchvision's references ConfusionMatrix and mmseg's IoUMetric do; never averaged
// per image or per batch). Pure: no I/O, no CLI knowledge.
//
// Definitions, for class c with TP = counts[c][c], truth_c = row sum, pred_c = column sum:
//   pixel accuracy       = trace / total
//   class accuracy       = TP / truth_c                   (null when c is absent from the truth)
//   IoU                  = TP / (truth_c + pred_c - TP)   (null when c is absent from truth AND prediction)
//   mean accuracy / mIoU = mean over the non-null classes (absent classes do not count as 0)
//   frequency-weighted   = sum_c (truth_c / total) * IoU_c
// An empty matrix (no labelled pixel counted) gives 0 for the four summary numbers and null for
// every class: callers get finite numbers, never NaN; `total` tells them nothing was counted.

export interface SegmentationMetrics {
  pixelAccuracy: number;
  meanAccuracy: number;
  meanIoU: number;
  frequencyWeightedIoU: number;
  /** Per class; null where the class occurs in neither truth nor prediction. */
  perClassIoU: (number | null)[];
  /** Per class; null where the class does not occur in the truth. */
  perClassAccuracy: (number | null)[];
}

/** The JSON that `fcn eval --json` and `fcn score --json` write (DESIGN.md). */
export interface MetricsReport {
  pixelAccuracy: number;
  meanAccuracy: number;
  meanIoU: number;
  frequencyWeightedIoU: number;
  perClassIoU: Record<string, number | null>;
  classes: string[];
  /** Rows are ground-truth classes, columns predicted classes, pixel counts. */
  confusionMatrix: number[][];
}

/** The label that marks void pixels in VOC masks (kept local: metrics depend on nothing). */
const VOID = 255;

export class ConfusionMatrix {
  readonly numClasses: number;
  /** numClasses² pixel counts, row-major: row = truth, column = prediction. */
  readonly counts: Float64Array;

  constructor(numClasses: number) {
    if (!Number.isInteger(numClasses) || numClasses < 1 || numClasses > VOID) {
      // 255 is void, so at most 255 classes (ids 0..254) can be told apart from it.
      throw new RangeError(`ConfusionMatrix: numClasses must be an integer from 1 to 255, got ${numClasses}`);
    }
    this.numClasses = numClasses;
    this.counts = new Float64Array(numClasses * numClasses);
  }

  /**
   * Counts one prediction against its ground truth (same length, one class id per pixel).
   * Pixels whose truth is 255 are skipped whatever was predicted there; any other truth or
   * prediction value >= numClasses throws an Error naming the value and the pixel, and leaves
   * the matrix unchanged.
   */
  add(prediction: Uint8Array, truth: Uint8Array): this {
    if (prediction.length !== truth.length) {
      throw new RangeError(`ConfusionMatrix.add: prediction has ${prediction.length} pixels but truth has ${truth.length}`);
    }
    const n = this.numClasses;
    // Validate first so a bad mask never leaves a half-counted matrix behind.
    for (let i = 0; i < truth.length; i++) {
      const t = truth[i]!;
      if (t === VOID) continue;
      const p = prediction[i]!;
      if (t >= n) throw new RangeError(`truth value ${t} at pixel ${i} is not a class id (expected 0..${n - 1} or 255 for void)`);
      if (p >= n) throw new RangeError(`prediction value ${p} at pixel ${i} is not a class id (expected 0..${n - 1})`);
    }
    const counts = this.counts;
    for (let i = 0; i < truth.length; i++) {
      const t = truth[i]!;
      if (t !== VOID) counts[t * n + prediction[i]!]! += 1;
    }
    return this;
  }

  /** Adds another matrix's counts (e.g. from another worker or another part of the split). */
  merge(other: ConfusionMatrix): this {
    if (other.numClasses !== this.numClasses) {
      throw new RangeError(`ConfusionMatrix.merge: ${other.numClasses} classes cannot be merged into ${this.numClasses}`);
    }
    for (let i = 0; i < this.counts.length; i++) this.counts[i]! += other.counts[i]!;
    return this;
  }

  reset(): void {
    this.counts.fill(0);
  }

  /** The number of labelled (non-void) pixels counted. */
  get total(): number {
    let s = 0;
    for (let i = 0; i < this.counts.length; i++) s += this.counts[i]!;
    return s;
  }

  metrics(): SegmentationMetrics {
    const n = this.numClasses;
    const c = this.counts;
    const truthSum = new Float64Array(n);
    const predSum = new Float64Array(n);
    let trace = 0;
    let total = 0;
    for (let t = 0; t < n; t++) {
      for (let p = 0; p < n; p++) {
        const v = c[t * n + p]!;
        truthSum[t]! += v;
        predSum[p]! += v;
        total += v;
      }
      trace += c[t * n + t]!;
    }
    const perClassAccuracy: (number | null)[] = [];
    const perClassIoU: (number | null)[] = [];
    let fw = 0;
    for (let k = 0; k < n; k++) {
      const tp = c[k * n + k]!;
      const union = truthSum[k]! + predSum[k]! - tp;
      perClassAccuracy.push(truthSum[k]! > 0 ? tp / truthSum[k]! : null);
      const iou = union > 0 ? tp / union : null;
      perClassIoU.push(iou);
      // truthSum > 0 implies union > 0, so iou is a number wherever the weight is non-zero
      if (truthSum[k]! > 0) fw += (truthSum[k]! / total) * iou!;
    }
    return {
      pixelAccuracy: total > 0 ? trace / total : 0,
      meanAccuracy: meanOfPresent(perClassAccuracy),
      meanIoU: meanOfPresent(perClassIoU),
      frequencyWeightedIoU: fw,
      perClassIoU,
      perClassAccuracy,
    };
  }

  /** The counts as rows (truth) of columns (prediction). */
  toRows(): number[][] {
    const n = this.numClasses;
    return Array.from({ length: n }, (_, t) => Array.from(this.counts.subarray(t * n, (t + 1) * n)));
  }
}

function meanOfPresent(values: readonly (number | null)[]): number {
  let s = 0;
  let k = 0;
  for (const v of values) {
    if (v !== null) {
      s += v;
      k++;
    }
  }
  return k > 0 ? s / k : 0;
}

/** The DESIGN.md metrics JSON for a matrix; `classNames` names its classes in order. */
export function metricsReport(cm: ConfusionMatrix, classNames: readonly string[]): MetricsReport {
  if (classNames.length !== cm.numClasses) {
    throw new RangeError(`metricsReport: ${classNames.length} class names for a ${cm.numClasses}-class matrix`);
  }
  const m = cm.metrics();
  const perClassIoU: Record<string, number | null> = {};
  classNames.forEach((name, k) => {
    perClassIoU[name] = m.perClassIoU[k]!;
  });
  return {
    pixelAccuracy: m.pixelAccuracy,
    meanAccuracy: m.meanAccuracy,
    meanIoU: m.meanIoU,
    frequencyWeightedIoU: m.frequencyWeightedIoU,
    perClassIoU,
    classes: [...classNames],
    confusionMatrix: cm.toRows(),
  };
}

function fixed(v: number | null): string {
  return v === null ? '-' : v.toFixed(4);
}

/**
 * A readable table: the four summary numbers, then one row per class with its IoU, its accuracy
 * and its ground-truth pixel count ('-' where the class is absent, excluded from the means).
 */
export function formatMetricsTable(report: MetricsReport): string {
  const n = report.classes.length;
  const truthPixels = report.confusionMatrix.map((row) => row.reduce((a, b) => a + b, 0));
  const labelled = truthPixels.reduce((a, b) => a + b, 0);
  const present = Object.values(report.perClassIoU).filter((v) => v !== null).length;
  const nameWidth = Math.max(22, ...report.classes.map((s) => s.length)) + 2;
  const lines: string[] = [];
  const summary: [string, number][] = [
    ['pixel accuracy', report.pixelAccuracy],
    ['mean accuracy', report.meanAccuracy],
    ['mean IoU', report.meanIoU],
    ['frequency-weighted IoU', report.frequencyWeightedIoU],
  ];
  for (const [name, v] of summary) lines.push(`${name.padEnd(nameWidth)}${v.toFixed(4)}`);
  lines.push(`(${labelled} labelled pixels; means over the ${present} of ${n} classes present in truth or prediction)`);
  lines.push('');
  lines.push(`${'class'.padEnd(nameWidth)}${'IoU'.padStart(8)}${'acc'.padStart(9)}${'pixels'.padStart(12)}`);
  report.classes.forEach((name, k) => {
    const iou = report.perClassIoU[name] ?? null;
    const row = report.confusionMatrix[k]!;
    const acc = truthPixels[k]! > 0 ? row[k]! / truthPixels[k]! : null;
    lines.push(`${name.padEnd(nameWidth)}${fixed(iou).padStart(8)}${fixed(acc).padStart(9)}${String(truthPixels[k]).padStart(12)}`);
  });
  return lines.join('\n') + '\n';
}
