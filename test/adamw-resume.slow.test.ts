// --optimizer adamw through the whole loop: the checkpoint carries AdamW's moments and update count
// (not SGD's momentum), and a run stopped after its first epoch and resumed ends with exactly the
// weights, optimiser state and numbers of an uninterrupted one (the bias correction continues at the
// saved step). Changing the optimiser on resume is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { generateSynthVoc } from '../src/data/synth.js';
import { loadCheckpoint } from '../src/weights/checkpoint.js';
import { train, type TrainOptions } from '../src/train/loop.js';
import { OPTIMIZER_STEP_KEY } from '../src/train/state.js';
import { tempDirs } from './helpers/tmp.js';

const { root } = tempDirs('fcn-adamw-resume-');

test('an AdamW run resumed after epoch 1 ends exactly as an uninterrupted one; its checkpoint holds the moments and the step', async () => {
  const data = path.join(root, 'data');
  await generateSynthVoc(data, { train: 4, val: 1, size: [80, 96], seed: 6 });
  const base: TrainOptions = {
    data, epochs: 2, batchSize: 2, crop: [64, 64], lr: 1e-3, weightDecay: 0.01, optimizer: 'adamw', seed: 4, scratch: true,
    threads: 2, gridImages: 0, evalLimit: 1,
  };
  const whole = await train({ ...base, out: path.join(root, 'whole') });
  await train({ ...base, out: path.join(root, 'split'), epochs: 1 });
  const resumed = await train({ ...base, out: path.join(root, 'split'), resume: true });
  assert.equal(resumed.resumedAfter, 1);
  const numbers = (h: typeof whole.history) => h.map((m) => [m.loss, m.trainAccuracy, m.testAccuracy, m.testMeanIoU]);
  assert.deepEqual(numbers(resumed.history), numbers(whole.history));
  const [a, b] = [await loadCheckpoint(whole.files.last), await loadCheckpoint(resumed.files.last)];
  for (const [name, t] of a.weights) assert.deepEqual(b.weights.get(name), t, name);
  const keys = [...a.extra.keys()];
  assert.ok(keys.includes('exp_avg.conv1.weight') && keys.includes('exp_avg_sq.transpose_conv.bias') && !keys.some((k) => k.startsWith('momentum.')));
  assert.deepEqual(a.extra.get(OPTIMIZER_STEP_KEY), Float32Array.of(4)); // 2 epochs of 2 steps
  for (const [name, t] of a.extra) assert.deepEqual(b.extra.get(name), t, name);
  await assert.rejects(train({ ...base, out: path.join(root, 'split'), epochs: 3, optimizer: 'sgd', resume: true }),
    /cannot resume: optimizer was "adamw" in the saved run but is "sgd" now/);
});
