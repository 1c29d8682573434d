// The book FCN's forward (ResNet-18 FCN-32s, 21 classes, seeded random weights) in several graph forms
// or fetch modes, timed against each other in ONE process with runs interleaved (A, B, C, A, B, C, ...)
// so the load of a shared machine hits all alike: best and median wall time of session.run, logits
// fetched, as the bench's forward rows do. With --profile, ORT's per-op kernel times (sum over nodes
// of each node's best across the runs) for each form. Run by hand (never part of the tests):
//   node dist/bench/forward-ab.js [--forms blocks,convtranspose,...] [--batch 1,4] [--size 320x480]
//        [--rounds 7] [--threads 2] [--profile]
// A form is a graph option set and a fetch mode (FORMS below); the first is the reference the others'
// logits are checked against (max |diff| printed).
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fcnResNet18, initParameters, seededRandom } from '../src/model/index.js';
import { compileInference, type InferenceGraphOptions } from '../src/graph/inference.js';
import { Session, type EngineTensor } from '../src/engine/session.js';
import { bestKernelsByOp } from './ceiling.js';

interface Form {
  graph: InferenceGraphOptions;
  /** Run a batch-1 graph once per image instead (the logits not gathered: a lower bound for that split). */
  perImage?: boolean;
}

const base: InferenceGraphOptions = { argmax: false, winograd: true };
const FORMS: Record<string, Form> = {
  blocks: { graph: { ...base, upsample: 'blocks' } },
  convtranspose: { graph: { ...base, upsample: 'convtranspose' } },
  phases: { graph: { ...base, upsample: 'phases' } },
  phaserows: { graph: { ...base, upsample: 'phaserows' } },
  'blocks-per-image': { graph: { ...base, upsample: 'blocks' }, perImage: true },
};

/** The profile in `dir` (one session's file), per op kind (bestKernelsByOp), and its best model_run. */
function profileByOp(dir: string): { byOp: Map<string, number>; total: number; run: number; runs: number[] } {
  const p = bestKernelsByOp(join(dir, readdirSync(dir).find((f) => f.endsWith('.json'))!));
  return { ...p, run: Math.min(...p.runs) };
}

const argv = process.argv.slice(2);
const flag = (name: string, fallback: string): string => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1]! : fallback; };
const names = flag('--forms', 'blocks,convtranspose').split(',');
for (const n of names) if (!FORMS[n]) throw new Error(`unknown form '${n}' (known: ${Object.keys(FORMS).join(', ')})`);
const batches = flag('--batch', '1,4').split(',').map(Number);
const [H, W] = flag('--size', '320x480').split('x').map(Number) as [number, number];
const rounds = Number(flag('--rounds', '7'));
const threads = Number(flag('--threads', String(availableParallelism())));
const profile = argv.includes('--profile');
const arch = fcnResNet18({ numClasses: 21 });
const weights = initParameters(arch, seededRandom(0));
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[s.length >> 1]!; };

for (const batch of batches) {
  const dirs = names.map(() => (profile ? mkdtempSync(join(tmpdir(), 'fcn-forward-ab-')) : undefined));
  try {
    const sessions: Session[] = [];
    for (let k = 0; k < names.length; k++) {
      const form = FORMS[names[k]!]!;
      sessions.push(await Session.create(compileInference(arch, weights, { ...form.graph, batch: form.perImage ? 1 : batch }), { threads, profilePrefix: dirs[k] && join(dirs[k]!, 'p') }));
    }
    const x = new Float32Array(batch * 3 * H * W).map((_, i) => Math.sin(i * 0.37) * 1.5);
    const feeds = { [arch.input]: { dtype: 'float32', dims: [batch, 3, H, W], data: x } as EngineTensor };
    const load = loadavg()[0]!;
    const times = names.map(() => [] as number[]);
    const first: Float32Array[] = [];
    for (let r = 0; r <= rounds; r++) {
      for (let k = 0; k < names.length; k++) {
        const t = performance.now();
        let out: Record<string, EngineTensor>;
        if (FORMS[names[k]!]!.perImage) {
          const parts: Float32Array[] = [];
          for (let n = 0; n < batch; n++) {
            const one = { dtype: 'float32', dims: [1, 3, H, W], data: x.subarray(n * 3 * H * W, (n + 1) * 3 * H * W) } as EngineTensor;
            parts.push((await sessions[k]!.run({ [arch.input]: one }, ['logits'])).logits!.data as Float32Array);
          }
          out = { logits: { dtype: 'float32', dims: [batch, 21, H, W], data: r === 0 ? Float32Array.from(parts.flatMap((p) => [...p])) : parts[0]! } };
        } else {
          out = await sessions[k]!.run(feeds, ['logits']);
        }
        const ms = performance.now() - t;
        if (r === 0) first.push((out.logits!.data as Float32Array).slice());
        else times[k]!.push(ms); // the first round warms up
      }
    }
    for (const s of sessions) { if (profile) s.endProfiling(); await s.dispose(); }
    process.stdout.write(`book FCN ${H}x${W} b${batch}, ${threads} threads, best/median of ${rounds} interleaved, load ${load.toFixed(1)} -> ${loadavg()[0]!.toFixed(1)}\n`);
    const best0 = Math.min(...times[0]!);
    for (let k = 0; k < names.length; k++) {
      let diff = 0;
      for (let i = 0; i < first[0]!.length; i++) diff = Math.max(diff, Math.abs(first[0]![i]! - first[k]![i]!));
      const best = Math.min(...times[k]!);
      process.stdout.write(`  ${names[k]!.padEnd(22)} best ${best.toFixed(0).padStart(5)} ms  median ${median(times[k]!).toFixed(0).padStart(5)} ms  `
        + `${(best / best0).toFixed(3)}x of ${names[0]}  max|diff| ${diff.toExponential(1)}\n`);
    }
    if (profile) {
      const results = dirs.map((d) => profileByOp(d!));
      const ops = [...new Set(results.flatMap((r) => [...r.byOp.keys()]))].sort((a, b) => (results[0]!.byOp.get(b) ?? 0) - (results[0]!.byOp.get(a) ?? 0));
      process.stdout.write(`  | op (sum of per-node best, ms) | ${names.join(' | ')} |\n`);
      for (const op of ops) {
        if (results.every((r) => (r.byOp.get(op) ?? 0) < 0.2)) continue;
        process.stdout.write(`  | ${op} | ${results.map((r) => (r.byOp.get(op) ?? 0).toFixed(1)).join(' | ')} |\n`);
      }
      process.stdout.write(`  | all kernels | ${results.map((r) => r.total.toFixed(1)).join(' | ')} |\n`);
      process.stdout.write(`  | best model_run (ORT) | ${results.map((r) => r.run.toFixed(1)).join(' | ')} |\n`);
      process.stdout.write(`  | best wall (session.run) | ${times.map((t) => Math.min(...t).toFixed(1)).join(' | ')} |\n`);
      // paired per run: what session.run took beyond ORT's own run (feeds in, outputs copied out)
      const beyond = results.map((r, k) => (r.runs.length === times[k]!.length ? median(times[k]!.map((t, i) => t - r.runs[i]!)).toFixed(1) : 'n/a'));
      process.stdout.write(`  | median wall − model_run, paired | ${beyond.join(' | ')} |\n`);
    }
  } finally {
    for (const d of dirs) if (d) rmSync(d, { recursive: true, force: true });
  }
}
