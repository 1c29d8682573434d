// Activation ranges from calibration data: per tensor the exact min and max, and a histogram from
// which a percentile range is read. Pure: no I/O, no runtime.
//
// Methods (the range a tensor is quantised over, before it is widened to hold 0):
// - 'minmax': [min, max] of every value seen. No value clips, but one outlier stretches the step for all.
// - 'percentile' (p, e.g. 99.99): [q(1 − p), q(p)], the quantiles of all values seen, read from the
//   histogram (bin edges, so within one bin width of exact). Clips the outliers, keeps a finer step.
import type { ValueRange } from '../graph/quant.js';

export type CalibrationMethod = 'minmax' | 'percentile';
export const CALIBRATION_METHODS: readonly CalibrationMethod[] = ['minmax', 'percentile'];

/** Settings of a calibration: stored in the int8 file's metadata. */
export interface CalibrationSettings {
  method: CalibrationMethod;
  /** The percentile kept (method 'percentile'), e.g. 99.99. */
  percentile: number;
}

// Measured on the demo's trained FCN-8s (40 val images, 100 calibration images, 7-bit weights): min/max
// masks agree with float32's on 99.24% of val pixels (mIoU 0.3241, float32 0.3265), percentile 99.99 on
// 99.09% (mIoU 0.3269), percentile 99.9 on 96.2%: min/max is the default.
export const DEFAULT_CALIBRATION: CalibrationSettings = { method: 'minmax', percentile: 99.99 };

/**
 * A histogram over [lo, lo + width) in `bins` equal bins that grows to cover whatever it is given:
 * when a value falls outside, the range doubles (towards that value) and pairs of bins merge, so
 * earlier counts stay exact at the coarser step. The range always holds 0.
 */
export class GrowingHistogram {
  readonly counts: Float64Array;
  lo = 0;
  width = 0;
  min = Infinity;
  max = -Infinity;
  total = 0;

  constructor(readonly bins = 4096) {
    if (bins % 2 !== 0 || bins < 2) throw new Error('histogram bins must be an even number ≥ 2');
    this.counts = new Float64Array(bins);
  }

  add(data: Float32Array): void {
    let mn = Infinity;
    let mx = -Infinity;
    for (let i = 0; i < data.length; i++) {
      const v = data[i]!;
      if (v < mn) mn = v;
      if (v > mx) mx = v;
    }
    if (!(Number.isFinite(mn) && Number.isFinite(mx))) {
      if (data.length === 0) return;
      throw new Error('a calibration tensor holds NaN or infinite values');
    }
    this.min = Math.min(this.min, mn);
    this.max = Math.max(this.max, mx);
    if (this.width === 0) {
      // first data: a range from its extremes (holding 0), with a little room
      const lo = Math.min(mn, 0);
      const hi = Math.max(mx, 0);
      this.lo = lo;
      this.width = Math.max(hi - lo, 1e-6) * 1.0001;
    }
    while (mn < this.lo) this.grow(false);
    while (mx >= this.lo + this.width) this.grow(true);
    const k = this.bins / this.width;
    const last = this.bins - 1;
    const counts = this.counts;
    const lo = this.lo;
    for (let i = 0; i < data.length; i++) {
      const b = Math.floor((data[i]! - lo) * k);
      counts[b > last ? last : b]!++;
    }
    this.total += data.length;
  }

  /** Doubles the range upwards (`up`) or downwards, merging pairs of bins. */
  private grow(up: boolean): void {
    const n = this.bins;
    const old = Float64Array.from(this.counts);
    this.counts.fill(0);
    if (up) {
      // new bin j covers old bins 2j, 2j + 1
      for (let i = 0; i < n; i++) this.counts[i >> 1]! += old[i]!;
    } else {
      // the range [lo − width, lo + width): old bin i lands in new bin (n + i) / 2
      for (let i = 0; i < n; i++) this.counts[(n + i) >> 1]! += old[i]!;
      this.lo -= this.width;
    }
    this.width *= 2;
  }

  /** The value below which a fraction `q` of all values lie (a bin edge). */
  quantile(q: number): number {
    if (this.total === 0) return 0;
    const target = q * this.total;
    let acc = 0;
    for (let b = 0; b < this.bins; b++) {
      acc += this.counts[b]!;
      if (acc >= target) return this.lo + ((b + 1) * this.width) / this.bins;
    }
    return this.lo + this.width;
  }

  range(settings: CalibrationSettings): ValueRange {
    if (this.total === 0) throw new Error('no calibration data');
    if (settings.method === 'minmax') return { min: this.min, max: this.max };
    const p = settings.percentile / 100;
    // bin edges can overshoot the extremes by a bin: never past what was seen
    return { min: Math.max(this.min, this.quantile(1 - p) - this.width / this.bins), max: Math.min(this.max, this.quantile(p)) };
  }
}
