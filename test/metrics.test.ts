// ConfusionMatrix and the metrics derived from it, against hand-computed examples: void (255)
// skipped, absent classes null and out of the means, frequency weighting, merge, the JSON report.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfusionMatrix, metricsReport, formatMetricsTable } from '../src/eval/confusion.js';

const u8 = (a: number[]) => Uint8Array.from(a);
const close = (a: number, b: number, msg?: string) => assert.ok(Math.abs(a - b) < 1e-12, `${msg ?? ''} ${a} != ${b}`);

// Example A (3 classes). Pairs (truth, prediction), the 6th pixel void:
// (0,0) (0,1) (1,1) (1,1) (2,0) (255,2) (0,0) (1,2)
//   counts  p0 p1 p2 | truth
//   t0       2  1  0 |  3
//   t1       0  2  1 |  3
//   t2       1  0  0 |  1
//   pred     3  3  1 | total 7, trace 4
// class acc 2/3, 2/3, 0 -> mean 4/9; IoU 2/4, 2/4, 0/2 -> mIoU 1/3; fwIoU 3/7·½ + 3/7·½ + 1/7·0 = 3/7.
const A_TRUTH = [0, 0, 1, 1, 2, 255, 0, 1];
const A_PRED = [0, 1, 1, 1, 0, 2, 0, 2];

test('hand-computed 3-class example: counts, pixel/mean accuracy, IoU, mIoU, fwIoU; 255 skipped', () => {
  const cm = new ConfusionMatrix(3).add(u8(A_PRED), u8(A_TRUTH));
  assert.deepEqual(Array.from(cm.counts), [2, 1, 0, 0, 2, 1, 1, 0, 0]);
  assert.equal(cm.total, 7);
  const m = cm.metrics();
  close(m.pixelAccuracy, 4 / 7);
  close(m.meanAccuracy, 4 / 9);
  close(m.meanIoU, 1 / 3);
  close(m.frequencyWeightedIoU, 3 / 7);
  assert.deepEqual(m.perClassAccuracy, [2 / 3, 2 / 3, 0]);
  assert.deepEqual(m.perClassIoU, [0.5, 0.5, 0]);
});

test('absent classes are null and excluded from the means (not counted as 0)', () => {
  // 4 classes: class 2 occurs nowhere; class 3 only in the prediction (a false positive).
  // (0,0) (0,3) (1,1) (1,1): truth 0:2 1:2; pred 0:1 1:2 3:1.
  // acc: 1/2, 1, null, null -> mean 3/4. IoU: 1/(2+1-1)=1/2, 2/2=1, null, 0/(0+1)=0 -> mIoU 1/2.
  // A void truth pixel predicted as 2 must not make class 2 present.
  const cm = new ConfusionMatrix(4).add(u8([0, 3, 1, 1, 2]), u8([0, 0, 1, 1, 255]));
  const m = cm.metrics();
  assert.deepEqual(m.perClassAccuracy, [0.5, 1, null, null]);
  assert.deepEqual(m.perClassIoU, [0.5, 1, null, 0]);
  close(m.meanAccuracy, 0.75);
  close(m.meanIoU, 0.5);
  close(m.frequencyWeightedIoU, 0.5 * 0.5 + 0.5 * 1);
  close(m.pixelAccuracy, 0.75);
});

test('a perfect prediction scores 1 everywhere it can', () => {
  const truth = u8([0, 5, 5, 20, 255, 0]);
  const pred = u8([0, 5, 5, 20, 7, 0]); // anything under void is ignored
  const m = new ConfusionMatrix(21).add(pred, truth).metrics();
  assert.equal(m.pixelAccuracy, 1);
  assert.equal(m.meanAccuracy, 1);
  assert.equal(m.meanIoU, 1);
  assert.equal(m.frequencyWeightedIoU, 1);
  assert.equal(m.perClassIoU.filter((v) => v !== null).length, 3);
  assert.equal(m.perClassIoU[7], null);
});

test('accumulated over the split, not averaged per image; merge equals one matrix over all pixels', () => {
  const whole = new ConfusionMatrix(3).add(u8(A_PRED), u8(A_TRUTH));
  const a = new ConfusionMatrix(3).add(u8(A_PRED.slice(0, 4)), u8(A_TRUTH.slice(0, 4)));
  const b = new ConfusionMatrix(3).add(u8(A_PRED.slice(4)), u8(A_TRUTH.slice(4)));
  // per-image pixel accuracies are 3/4 and 1/3: their mean (0.5417) is not the split's 4/7
  close(a.metrics().pixelAccuracy, 3 / 4);
  close(b.metrics().pixelAccuracy, 1 / 3);
  const merged = new ConfusionMatrix(3).merge(a).merge(b);
  assert.deepEqual(Array.from(merged.counts), Array.from(whole.counts));
  close(merged.metrics().pixelAccuracy, 4 / 7);
  // adding twice counts twice
  const twice = new ConfusionMatrix(3).add(u8(A_PRED), u8(A_TRUTH)).add(u8(A_PRED), u8(A_TRUTH));
  assert.deepEqual(Array.from(twice.counts), Array.from(whole.counts).map((v) => 2 * v));
  assert.throws(() => new ConfusionMatrix(4).merge(whole), /3 classes cannot be merged into 4/);
});

test('out-of-range values throw an error naming the value, and leave the matrix unchanged', () => {
  const cm = new ConfusionMatrix(3).add(u8([0]), u8([0]));
  assert.throws(() => cm.add(u8([0, 1]), u8([1, 7])), /truth value 7 at pixel 1/);
  assert.throws(() => cm.add(u8([0, 3]), u8([1, 1])), /prediction value 3 at pixel 1/);
  assert.throws(() => cm.add(u8([255, 0]), u8([0, 0])), /prediction value 255 at pixel 0/);
  assert.throws(() => cm.add(u8([0, 0]), u8([0])), /2 pixels but truth has 1/);
  assert.deepEqual(Array.from(cm.counts), [1, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.throws(() => new ConfusionMatrix(0), /numClasses/);
  assert.throws(() => new ConfusionMatrix(256), /numClasses/);
});

test('an empty matrix (nothing counted, or all void) gives zeros and nulls, never NaN; reset empties', () => {
  const cm = new ConfusionMatrix(3).add(u8([1, 2]), u8([255, 255]));
  assert.equal(cm.total, 0);
  const m = cm.metrics();
  assert.deepEqual(
    [m.pixelAccuracy, m.meanAccuracy, m.meanIoU, m.frequencyWeightedIoU, m.perClassIoU, m.perClassAccuracy],
    [0, 0, 0, 0, [null, null, null], [null, null, null]],
  );
  cm.add(u8(A_PRED), u8(A_TRUTH));
  assert.equal(cm.total, 7);
  cm.reset();
  assert.equal(cm.total, 0);
});

test('metricsReport: the DESIGN.md JSON keys, per-class IoU by name with null for absent classes', () => {
  const cm = new ConfusionMatrix(4).add(u8([0, 3, 1, 1]), u8([0, 0, 1, 1]));
  const report = metricsReport(cm, ['background', 'cat', 'dog', 'tv/monitor']);
  assert.deepEqual(Object.keys(report), [
    'pixelAccuracy', 'meanAccuracy', 'meanIoU', 'frequencyWeightedIoU', 'perClassIoU', 'classes', 'confusionMatrix',
  ]);
  const json = JSON.parse(JSON.stringify(report));
  assert.deepEqual(json, {
    pixelAccuracy: 0.75,
    meanAccuracy: 0.75,
    meanIoU: 0.5,
    frequencyWeightedIoU: 0.75,
    perClassIoU: { background: 0.5, cat: 1, dog: null, 'tv/monitor': 0 },
    classes: ['background', 'cat', 'dog', 'tv/monitor'],
    confusionMatrix: [
      [1, 0, 0, 1],
      [0, 2, 0, 0],
      [0, 0, 0, 0],
      [0, 0, 0, 0],
    ],
  });
  assert.throws(() => metricsReport(cm, ['a', 'b']), /2 class names for a 4-class matrix/);
});

test('formatMetricsTable: the four summary numbers and a row per class, absent classes as "-"', () => {
  const report = metricsReport(new ConfusionMatrix(3).add(u8(A_PRED), u8(A_TRUTH)), ['background', 'aeroplane', 'bicycle']);
  const table = formatMetricsTable(report);
  assert.match(table, /^pixel accuracy\s+0\.5714$/m);
  assert.match(table, /^mean accuracy\s+0\.4444$/m);
  assert.match(table, /^mean IoU\s+0\.3333$/m);
  assert.match(table, /^frequency-weighted IoU\s+0\.4286$/m);
  assert.match(table, /^background\s+0\.5000\s+0\.6667\s+3$/m);
  assert.match(table, /^bicycle\s+0\.0000\s+0\.0000\s+1$/m);
  const absent = formatMetricsTable(metricsReport(new ConfusionMatrix(4).add(u8([0, 3, 1, 1]), u8([0, 0, 1, 1])), ['a', 'b', 'c', 'd']));
  assert.match(absent, /^c\s+-\s+-\s+0$/m);
  assert.match(absent, /^d\s+0\.0000\s+-\s+0$/m);
});
