// Two or more inference graphs profiled against each other in one process, runs interleaved (A, B, A,
// B, ...) so a crowded machine hits them alike: per op kind, the sum over nodes of each node's best
// kernel time across the runs (ORT's profile), which on a loaded machine separates graph changes of a
// few percent long before wall times do. Run by hand (never part of the tests):
//   node dist/bench/profile-ab.js --write lraspp_mobilenet_v3_large before.onnx   (a torchvision network's
//        inference graph with seeded random weights, logits only; run from a build of each version)
//   node dist/bench/profile-ab.js before.onnx after.onnx [--size 520x520] [--runs 8] [--threads 1]
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Session } from '../src/engine/session.js';
import { readOnnxSummary } from '../src/graph/onnx.js';
import { compileInference } from '../src/graph/inference.js';
import { initParameters, seededRandom } from '../src/model/index.js';
import { torchvisionNetwork, type TorchvisionNetwork } from '../src/model/torchvision.js';
import { bestKernelsByOp } from './ceiling.js';

const argv = process.argv.slice(2);
const flag = (name: string, fallback: string): string => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1]! : fallback; };
if (argv[0] === '--write') {
  const arch = torchvisionNetwork(argv[1] as TorchvisionNetwork, { numClasses: 21 });
  writeFileSync(argv[2]!, compileInference(arch, initParameters(arch, seededRandom(0)), { batch: 1, argmax: false }));
  process.exit(0);
}
const files = argv.filter((a, i) => !a.startsWith('--') && !(i > 0 && argv[i - 1]!.startsWith('--')));
if (files.length < 2) {
  process.stderr.write('usage: node dist/bench/profile-ab.js A.onnx B.onnx [...] [--size 520x520] [--runs 8] [--threads 1]\n'
    + '       node dist/bench/profile-ab.js --write NETWORK OUT.onnx\n');
  process.exit(2);
}
const [H, W] = flag('--size', '520x520').split('x').map(Number) as [number, number];
const runs = Number(flag('--runs', '8'));
const threads = Number(flag('--threads', '1'));
const dirs = files.map(() => mkdtempSync(join(tmpdir(), 'fcn-profile-ab-')));
try {
  const sessions: Session[] = [];
  for (let k = 0; k < files.length; k++) sessions.push(await Session.create(readFileSync(files[k]!), { threads, profilePrefix: join(dirs[k]!, 'p') }));
  const summaries = files.map((f) => readOnnxSummary(readFileSync(f)));
  const x = new Float32Array(3 * H * W).map((_, i) => Math.sin(i * 0.37) * 1.5);
  const load = loadavg()[0]!;
  const wall = files.map(() => Infinity);
  for (let r = 0; r <= runs; r++) {
    for (let k = 0; k < files.length; k++) {
      const t = performance.now();
      await sessions[k]!.run({ [summaries[k]!.inputs[0]!]: { dtype: 'float32', dims: [1, 3, H, W], data: x } }, [summaries[k]!.outputs[0]!]);
      // the first round warms up
      if (r > 0) wall[k] = Math.min(wall[k]!, performance.now() - t);
    }
  }
  for (const s of sessions) { s.endProfiling(); await s.dispose(); }
  const results = dirs.map((dir) => {
    const p = bestKernelsByOp(join(dir, readdirSync(dir).find((f) => f.endsWith('.json'))!));
    return { ...p, bestRun: Math.min(...p.runs) };
  });
  const ops = [...new Set(results.flatMap((r) => [...r.byOp.keys()]))]
    .sort((a, b) => Math.max(...results.map((r) => r.byOp.get(b) ?? 0)) - Math.max(...results.map((r) => r.byOp.get(a) ?? 0)));
  const row = (cells: string[]) => process.stdout.write(`| ${cells.join(' | ')} |\n`);
  process.stdout.write(`${H}x${W} b1, ${threads} thread(s), ${runs} runs each interleaved, load ${load.toFixed(1)} -> ${loadavg()[0]!.toFixed(1)}\n`);
  row(['op (sum of per-node best, ms)', ...files]);
  row(['---', ...files.map(() => '---:')]);
  for (const op of ops) {
    if (results.every((r) => (r.byOp.get(op) ?? 0) < 0.05)) continue;
    row([op, ...results.map((r) => (r.byOp.get(op) ?? 0).toFixed(1))]);
  }
  row(['all kernels', ...results.map((r) => `${r.total.toFixed(1)} (${(r.total / results[0]!.total).toFixed(2)}x)`)]);
  row(['best profiled run', ...results.map((r) => r.bestRun.toFixed(1))]);
  row(['best wall, output fetched', ...wall.map((w) => w.toFixed(1))]);
} finally {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
}
