// The book's FCN (random weights, ranges from the timed input itself, as bench.ts's int8 rows) as
// float32 and int8 graphs in one process: timed interleaved (A, B, A, B, ...), best of N, in wall time
// and in CPU time (the process's user + system time: on a loaded shared machine, with --threads 1,
// the work a run did, whatever share of the cores it got); then both profiled, runs interleaved, each
// node's shortest time over the profiled runs, grouped by op kind. --bench: the bench rows' graphs
// (no padding, logits only, logits fetched); otherwise the exported files' (padding, logits and
// mask, mask fetched). Run by hand (never part of the tests):
//   node dist/bench/int8-profile.js [--batch 4] [--size 320x480] [--rounds 3] [--threads 2] [--bench]
//     [--classes 21] [--no-profile] [--profile-runs 3] [--nodes 15] [--optimized FILE (ORT's optimised int8 graph)]
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Session } from '../src/engine/session.js';
import { fcnResNet18 } from '../src/model/fcn.js';
import { initParameters, seededRandom } from '../src/model/params.js';
import { compileInference } from '../src/graph/inference.js';
import { calibratedValues, compileCalibration, compileQuantized, planQuantization } from '../src/graph/quant.js';
import { GrowingHistogram } from '../src/quantize/ranges.js';

const argv = process.argv.slice(2);
const flag = (name: string, fallback: string): string => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1]! : fallback; };
const batch = Number(flag('--batch', '4'));
const [H, W] = flag('--size', '320x480').split('x').map(Number) as [number, number];
const rounds = Number(flag('--rounds', '3'));
const threads = Number(flag('--threads', '2'));
const topNodes = Number(flag('--nodes', '15'));
const classes = Number(flag('--classes', '21'));
const arch = fcnResNet18({ numClasses: classes });
const weights = initParameters(arch, seededRandom(0));
const x = new Float32Array(batch * 3 * H * W).map((_, i) => Math.sin(i * 0.37) * 1.5);

const plan = planQuantization(arch, weights);
const values = calibratedValues(plan);
const cal = await Session.create(compileCalibration(plan), { threads });
const one = x.subarray(0, 3 * H * W);
const out = await cal.run({ [arch.input]: { dtype: 'float32', dims: [1, 3, H, W], data: one } }, values.filter((v) => v !== arch.input));
await cal.dispose();
const ranges = new Map(values.map((v) => {
  const h = new GrowingHistogram();
  h.add(v === arch.input ? one : out[v]!.data as Float32Array);
  return [v, h.range({ method: 'minmax', percentile: 100 })] as const;
}));
// --bench: the bench rows' graphs (no padding, float32 without argmax, logits fetched); else the exported files' (mask fetched)
const benchRows = argv.includes('--bench');
const fetch = benchRows ? 'logits' : 'mask';
const graphs: [string, Uint8Array][] = [
  ['float32', benchRows ? compileInference(arch, weights, { batch, argmax: false }) : compileInference(arch, weights, { padToStride: true })],
  ['int8', compileQuantized(plan, ranges, { padToStride: !benchRows, argmax: !benchRows })],
];
const feeds = { [arch.input]: { dtype: 'float32' as const, dims: [batch, 3, H, W], data: x } };
process.stdout.write(`load average before: ${loadavg().map((l) => l.toFixed(1)).join(' ')}\n`);
const sessions = await Promise.all(graphs.map(([, g]) => Session.create(g, { threads })));
const best = graphs.map(() => Infinity);
const bestCpu = graphs.map(() => Infinity);
for (let r = 0; r < rounds + 1; r++) {
  for (let k = 0; k < sessions.length; k++) {
    const t = performance.now();
    const c = process.cpuUsage();
    await sessions[k]!.run(feeds, [fetch]);
    const d = process.cpuUsage(c);
    // the first round warms up
    if (r > 0) best[k] = Math.min(best[k]!, performance.now() - t);
    if (r > 0) bestCpu[k] = Math.min(bestCpu[k]!, (d.user + d.system) / 1000);
  }
}
for (const s of sessions) await s.dispose();
process.stdout.write(`batch ${batch} ${H}x${W}, ${threads} threads, fetch ${fetch}: wall ${graphs.map(([n], k) => `${n} ${best[k]!.toFixed(0)} ms`).join(', ')}, ratio ${(best[0]! / best[1]!).toFixed(2)}x; ` +
  `cpu ${graphs.map(([n], k) => `${n} ${bestCpu[k]!.toFixed(0)} ms`).join(', ')}, ratio ${(bestCpu[0]! / bestCpu[1]!).toFixed(2)}x (best of ${rounds})\n`);
if (argv.includes('--no-profile')) process.exit(0);
const optimized = flag('--optimized', '');
const profRuns = Number(flag('--profile-runs', '3'));
interface Ev { cat?: string; name: string; ts: number; dur: number; args?: { op_name?: string } }
// profiled sessions of both graphs run interleaved (so load hits both alike); per node its shortest time
const dirs = graphs.map(() => mkdtempSync(join(tmpdir(), 'fcn-int8-profile-')));
const profiled = await Promise.all(graphs.map(([, g], k) => Session.create(g, { threads, profilePrefix: join(dirs[k]!, 'p') })));
for (let i = 0; i < profRuns + 1; i++) for (const s of profiled) await s.run(feeds, [fetch]);
for (const s of profiled) { s.endProfiling(); await s.dispose(); }
for (let k = 0; k < graphs.length; k++) {
  const name = graphs[k]![0];
  const dir = dirs[k]!;
  try {
    const file = readdirSync(dir).find((f) => f.endsWith('.json'))!;
    const events = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Ev[];
    const runs = events.filter((e) => e.name === 'model_run').slice(1);
    const minOf = new Map<string, { op: string; us: number }>();
    for (const r of runs) {
      for (const e of events) {
        if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || e.ts < r.ts || e.ts > r.ts + r.dur) continue;
        const key = e.name.replace(/_kernel_time$/, '');
        const prev = minOf.get(key);
        if (!prev || e.dur < prev.us) minOf.set(key, { op: e.args?.op_name ?? '?', us: e.dur });
      }
    }
    const nodes = [...minOf].map(([n, v]) => ({ name: n, ...v }));
    const runMs = Math.min(...runs.map((r) => r.dur)) / 1000;
    const sum = nodes.reduce((a, n) => a + n.us, 0) / 1000;
    const byOp = new Map<string, { ms: number; n: number }>();
    for (const n of nodes) {
      const e = byOp.get(n.op) ?? { ms: 0, n: 0 };
      e.ms += n.us / 1000;
      e.n++;
      byOp.set(n.op, e);
    }
    process.stdout.write(`\n${name}: shortest profiled run ${runMs.toFixed(0)} ms, per-node minima sum ${sum.toFixed(0)} ms (${runs.length} runs)\n`);
    for (const [op, e] of [...byOp].sort((a, b) => b[1].ms - a[1].ms).filter(([, e]) => e.ms >= 0.5)) process.stdout.write(`  ${op.padEnd(28)} ${String(e.n).padStart(4)} nodes ${e.ms.toFixed(1).padStart(8)} ms\n`);
    process.stdout.write(`  top nodes:\n`);
    for (const n of [...nodes].sort((a, b) => b.us - a.us).slice(0, topNodes)) process.stdout.write(`    ${(n.us / 1000).toFixed(1).padStart(7)} ms ${n.op.padEnd(20)} ${n.name}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
if (optimized) {
  // ORT's optimised int8 graph, for reading its nodes (Session's graph cache writes it)
  const dir = mkdtempSync(join(tmpdir(), 'fcn-int8-opt-'));
  const s = await Session.create(graphs[1]![1], { threads, graphCache: dir });
  await s.dispose();
  const f = readdirSync(dir).find((n) => n.endsWith('.onnx'));
  if (f) { const { copyFileSync } = await import('node:fs'); copyFileSync(join(dir, f), optimized); process.stdout.write(`optimised int8 graph: ${optimized}\n`); }
  rmSync(dir, { recursive: true, force: true });
}
process.stdout.write(`load average after: ${loadavg().map((l) => l.toFixed(1)).join(' ')}\n`);
