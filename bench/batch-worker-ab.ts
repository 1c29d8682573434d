// A/B in one process (interleaved epochs, rounds): the head/full step fed by batches built on this
// thread (data/batches.ts's prefetch) against batches built on a worker thread (train/batchworker.ts).
// Per step cycle (wait for the batch + the step) and step alone, min / p25 / median.
//   node dist/bench/batch-worker-ab.js DATA [head|full] [ROUNDS]   (DATA: 32 train images at 320x480, e.g. bench/process.ts's)
// @ts-nocheck
import { fcnResNet18 } from '../src/model/fcn.js';
import { initParameters, seededRandom } from '../src/model/params.js';
import { TrainStep } from '../src/train/step.js';
import { openDataset } from '../src/data/layouts.js';
import { epochBatches } from '../src/data/batches.js';
import { BatchWorker } from '../src/train/batchworker.js';
import { Rng } from '../src/data/rng.js';
import { normalizeBatch } from '../src/infer/preprocess.js';
import { defaultCard } from '../src/model/card.js';
const arch = fcnResNet18({ numClasses: 6 });
const w = initParameters(arch, seededRandom(0));
const DATA = process.argv[2] ?? 'data';
const mode = process.argv[3] ?? 'head', rounds = Number(process.argv[4] ?? 4);
const ds = await openDataset(DATA, 'train');
const step = await TrainStep.create(arch, w, { mode, batch: 4, height: 320, width: 480, weightDecay: 1e-3, momentum: 0, optimizer: 'sgd', threads: 2 });
const card = defaultCard(6);
const worker = new BatchWorker({ data: DATA, split: 'train', open: {}, batch: { batchSize: 4, crop: [320, 480] }, normalization: card.normalization });
const cyc = { here: [], worker: [] }, runs = { here: [], worker: [] }, cpu = { here: [], worker: [] };
for (let r = 0; r < rounds; r++) for (const v of ['here', 'worker']) {
  let t = performance.now(); let first = true; const c0 = process.cpuUsage();
  for await (const b of epochBatches(ds, ds.ids, { batchSize: 4, crop: [320, 480], shuffle: true, rng: new Rng(r), normalize: (im) => normalizeBatch(im, card.normalization), build: v === 'worker' ? (p) => worker.build(p) : undefined })) {
    const t1 = performance.now();
    await step.run(b.images, b.labels, 1e-3);
    const t2 = performance.now();
    if (!first) cyc[v].push(t2 - t); // wait for this batch + its step
    runs[v].push(t2 - t1);
    first = false; t = t2;
  }
  const c = process.cpuUsage(c0); cpu[v].push(Math.round((c.user + c.system) / 1000));
}
await worker.close();
const q = (a, f) => { const s = [...a].sort((x, y) => x - y); return Math.round(s[Math.floor(f * (s.length - 1))]); };
for (const v of ['here', 'worker']) console.log(v, 'cycle min', q(cyc[v], 0), 'p25', q(cyc[v], 0.25), 'median', q(cyc[v], 0.5), '| run min', q(runs[v], 0), 'p25', q(runs[v], 0.25), 'median', q(runs[v], 0.5), '| main-process cpu ms/epoch', cpu[v].join(' '));
