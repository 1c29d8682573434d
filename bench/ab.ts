// Two ONNX files that fcn wrote (e.g. the float32 export and its int8 quantisation) timed against each
// other in one process, runs interleaved (A, B, A, B, ...) so load on a shared machine hits both alike;
// best of N per batch size. Run by hand (never part of the tests):
//   node dist/bench/ab.js A.onnx B.onnx [--batch 1,4] [--size 320x480] [--rounds 7] [--threads 2]
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { Session } from '../src/engine/session.js';
import { readOnnxSummary } from '../src/graph/onnx.js';

const argv = process.argv.slice(2);
const flag = (name: string, fallback: string): string => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1]! : fallback; };
const files = argv.filter((a, i) => !a.startsWith('--') && !(i > 0 && argv[i - 1]!.startsWith('--')));
if (files.length !== 2) {
  process.stderr.write('usage: node dist/bench/ab.js A.onnx B.onnx [--batch 1,4] [--size 320x480] [--rounds 7] [--threads 2]\n');
  process.exit(2);
}
const batches = flag('--batch', '1,4').split(',').map(Number);
const [H, W] = flag('--size', '320x480').split('x').map(Number) as [number, number];
const rounds = Number(flag('--rounds', '7'));
const threads = Number(flag('--threads', '2'));
const sessions = await Promise.all(files.map((f) => Session.create(readFileSync(f), { threads })));
const inputs = files.map((f) => readOnnxSummary(readFileSync(f)).inputs[0]!);
process.stdout.write(`load average before: ${loadavg().map((l) => l.toFixed(1)).join(' ')}\n`);
for (const n of batches) {
  const x = new Float32Array(n * 3 * H * W).map((_, i) => Math.sin(i * 0.37) * 1.5);
  const best = [Infinity, Infinity];
  for (let r = 0; r < rounds + 1; r++) {
    for (let k = 0; k < 2; k++) {
      const t = performance.now();
      await sessions[k]!.run({ [inputs[k]!]: { dtype: 'float32', dims: [n, 3, H, W], data: x } }, ['mask']);
      // the first round warms up
      if (r > 0) best[k] = Math.min(best[k]!, performance.now() - t);
    }
  }
  process.stdout.write(`batch ${n} ${H}x${W}: A ${best[0]!.toFixed(0)} ms, B ${best[1]!.toFixed(0)} ms, A/B ${(best[0]! / best[1]!).toFixed(2)}x (best of ${rounds})\n`);
}
process.stdout.write(`load average after: ${loadavg().map((l) => l.toFixed(1)).join(' ')}\n`);
for (const s of sessions) await s.dispose();
