// Would the graph cache (engine/graphcache.ts) start the training step faster? Creates the step's ORT
// session three ways, interleaved in one process, best of N: 'plain' (ORT optimises the graph),
// 'cold' (optimises and writes the optimised graph to an empty cache, as a first run would) and
// 'warm' (loads the cached optimised graph, optimisation off, as a repeated run would).
//   node dist/bench/step-cache.js [head|full] [ROUNDS]
// The book FCN at 320x480, batch 4, 6 classes, 2 threads, the session options TrainStep uses.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fcnResNet18 } from '../src/model/fcn.js';
import { initParameters, seededRandom } from '../src/model/params.js';
import { compileTrainStep } from '../src/graph/train.js';
import { Session, type SessionOptions } from '../src/engine/session.js';

const mode = (process.argv[2] ?? 'head') as 'head' | 'full';
const rounds = Number(process.argv[3] ?? 6);
const arch = fcnResNet18({ numClasses: 6 });
const weights = initParameters(arch, seededRandom(0));
const { bytes } = compileTrainStep(arch, { mode, batch: 4, height: 320, width: 480, weightDecay: 1e-3, momentum: 0, optimizer: 'sgd' },
  mode === 'head' ? weights : undefined);
const dir = mkdtempSync(join(tmpdir(), 'fcn-step-cache-'));
const base: SessionOptions = { memPattern: false, optimization: mode === 'full' ? 'extended' : 'all', threads: 2 };
const best = { plain: Infinity, cold: Infinity, warm: Infinity };
try {
  await (await Session.create(bytes, base)).dispose(); // the runtime's own first-session costs, paid by none of the three
  for (let r = 0; r < rounds; r++) {
    for (const v of ['plain', 'cold', 'warm'] as const) {
      if (v === 'cold') rmSync(join(dir, 'g'), { recursive: true, force: true });
      const t = performance.now();
      const s = await Session.create(bytes, v === 'plain' ? base : { ...base, graphCache: join(dir, 'g') });
      best[v] = Math.min(best[v], performance.now() - t);
      await s.dispose();
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.stdout.write(`${mode} step graph ${(bytes.length / 1e6).toFixed(1)} MB, session creation best of ${rounds}, ms: ` +
  `plain ${best.plain.toFixed(0)}, cold cache ${best.cold.toFixed(0)}, warm cache ${best.warm.toFixed(0)}\n`);
