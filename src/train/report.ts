// What a run prints: the book's per-epoch line (plus val mIoU and times), the line before the first
// epoch, and the closing summary.
import type { EpochMetrics } from './state.js';
import type { Run } from './run.js';

/** Progress counts are whole images, rates get one decimal. */
export function count(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

export function fmt(x: number): string {
  return x.toFixed(3);
}

/** The book's per-epoch line, plus val mIoU and the epoch's times. */
export function formatEpoch(m: EpochMetrics): string {
  return `epoch ${m.epoch}/${m.epochs}: loss ${fmt(m.loss)}, train acc ${fmt(m.trainAccuracy)}, test acc ${fmt(m.testAccuracy)}, ` +
    `test mIoU ${fmt(m.testMeanIoU)}, ${m.examplesPerSecond.toFixed(1)} examples/sec, ` +
    `train ${m.trainSeconds.toFixed(1)} s + eval ${m.evalSeconds.toFixed(1)} s${m.best ? ' (best)' : ''}`;
}

/** The book's "read N examples" and the run's settings, before the first epoch. */
export function formatStart(run: Pick<Run, 'settings' | 'ids' | 'valDs' | 'arch' | 'trainDs'>, dropped: number): string {
  const s = run.settings;
  const l = run.trainDs.labels;
  const data = `data: ${run.trainDs.root} (${run.trainDs.layout}), ${l.classes.length} classes from ${l.source}: ` +
    `${l.classes.slice(0, 8).join(', ')}${l.classes.length > 8 ? ', ...' : ''}` +
    (s.scale ? `; augmentation: rescale ${s.scale[0]}..${s.scale[1]}, random crop padded with void${s.flip ? ', flip' : ''}` : '');
  return `${data}\nread ${run.ids.length} examples` + (dropped > 0 ? ` (${dropped} smaller than ${s.crop[0]}x${s.crop[1]} dropped)` : '') +
    `; ${run.valDs.ids.length} val images; ${run.arch.name}, ${s.freezeBackbone ? 'head only' : 'all layers'}, batch ${s.batchSize}, ` +
    `crop ${s.crop[0]}x${s.crop[1]}, lr ${s.lr}${s.lrSchedule === 'poly' ? ' (poly decay)' : ''}, wd ${s.weightDecay}, ${s.optimizer === 'adamw' ? 'AdamW' : `momentum ${s.momentum}`}, ${s.threads} threads`;
}

/** The book's closing lines: the last epoch's numbers and the training throughput. */
export function formatSummary(final: EpochMetrics, examplesPerSecond: number, threads: number): string[] {
  return [
    `loss ${fmt(final.loss)}, train acc ${fmt(final.trainAccuracy)}, test acc ${fmt(final.testAccuracy)}, test mIoU ${fmt(final.testMeanIoU)}`,
    `${examplesPerSecond.toFixed(1)} examples/sec on ${threads} CPU thread${threads === 1 ? '' : 's'}`,
  ];
}
