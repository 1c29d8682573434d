// Variants of torchvision's ResNet-50 networks' forward timed against each other in ONE process, runs
// interleaved (A, B, C, A, B, C, ...) so load on a shared machine hits all alike; best of N each, as
// ratios to the first. A variant is a graph form and/or ORT session options. Run by hand:
//   node dist/bench/r50ab.js [--net fcn_resnet50] [--size 520] [--batch 1] [--rounds 3] [--threads 2]
//        [--variants base,static,...] [--profile] [--dump DIR]
// --profile: one profiled run per variant after the timed ones, kernel time by op kind.
// --dump DIR: ORT's optimised graph of each variant, in DIR/<variant>/ (the graph cache's files).
// Variant 'torch': PyTorch 1.13's forward of the same network (/usr/bin/python3, eval mode, no aux
// head, as bench/torch_bench.py), in a child process that runs one forward per request, so it takes
// its turn in the interleaving too (its time is measured inside the child).
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { initParameters, seededRandom } from '../src/model/index.js';
import { torchvisionNetwork, type TorchvisionNetwork } from '../src/model/torchvision.js';
import { compileInference, type InferenceGraphOptions } from '../src/graph/inference.js';
import { Session, type SessionOptions } from '../src/engine/session.js';
import { readProfile } from './ceiling.js';

const argv = process.argv.slice(2);
const flag = (name: string, fallback: string): string => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1]! : fallback; };
const net = flag('--net', 'fcn_resnet50') as TorchvisionNetwork;
const size = Number(flag('--size', '520'));
const batch = Number(flag('--batch', '1'));
const rounds = Number(flag('--rounds', '3'));
const threads = Number(flag('--threads', '2'));
const dump = flag('--dump', '');
const names = flag('--variants', 'conv,matmul').split(',');

interface Variant { graph?: InferenceGraphOptions; session?: SessionOptions }
const VARIANTS: Record<string, Variant> = {
  base: {},
  conv: { graph: { pointwise: 'conv' } },
  nohint: { graph: { sizeHints: false, pointwise: 'conv' } },
  static: { graph: { height: size, width: size } },
  nospin: { session: { spinning: false } },
  extended: { session: { optimization: 'extended' } },
  t1: { session: { threads: 1 } },
  matmul: { graph: { pointwise: 'matmul' } },
};

const arch = torchvisionNetwork(net, { numClasses: 21 });
const weights = initParameters(arch, seededRandom(0));
const x = new Float32Array(batch * 3 * size * size).map((_, i) => Math.sin(i * 0.37) * 1.5);
const feeds = { image: { dtype: 'float32' as const, dims: [batch, 3, size, size], data: x } };

/** A forward runner: ours (an ORT session) or PyTorch's child. */
interface Runner { run(): Promise<{ ms: number; logits?: Float32Array }>; dispose(): Promise<void> }

const TORCH = `
import sys, time, torch
from torchvision.models import segmentation
torch.set_num_threads(int(sys.argv[2])); torch.manual_seed(0)
net = getattr(segmentation, sys.argv[1])(weights=None, weights_backbone=None, num_classes=21, aux_loss=False).eval()
x = torch.randn(int(sys.argv[3]), 3, int(sys.argv[4]), int(sys.argv[4]))
print('ready', flush=True)
for line in sys.stdin:
    with torch.no_grad():
        t = time.perf_counter(); net(x); print((time.perf_counter() - t) * 1000, flush=True)
`;

async function torchRunner(): Promise<Runner> {
  const child = spawn('/usr/bin/python3', ['-c', TORCH, net, String(threads), String(batch), String(size)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async (): Promise<string> => { const r = await lines.next(); if (r.done) throw new Error('PyTorch child exited'); return r.value as string; };
  if ((await next()) !== 'ready') throw new Error('PyTorch child did not start');
  return {
    async run() { child.stdin.write('go\n'); return { ms: Number(await next()) }; },
    async dispose() { child.stdin.end(); },
  };
}

async function runner(name: string, extra: SessionOptions = {}): Promise<Runner> {
  if (name === 'torch') return torchRunner();
  const s = await open(name, extra);
  return {
    async run() {
      const t = performance.now();
      const out = await s.run(feeds, ['logits']);
      return { ms: performance.now() - t, logits: out.logits!.data as Float32Array };
    },
    dispose: () => s.dispose(),
  };
}

async function open(name: string, extra: SessionOptions = {}): Promise<Session> {
  const v = VARIANTS[name];
  if (!v) throw new Error(`unknown variant '${name}' (have ${Object.keys(VARIANTS).join(', ')})`);
  const graph = compileInference(arch, weights, { batch, argmax: false, ...v.graph });
  return Session.create(graph, { threads, ...v.session, ...extra });
}

process.stdout.write(`${net} ${size}x${size} b${batch}, ${threads} threads; load average before: ${loadavg().map((l) => l.toFixed(1)).join(' ')}\n`);
const sessions: Runner[] = [];
for (const n of names) sessions.push(await runner(n, dump ? { graphCache: join(dump, n) } : {}));
const times: number[][] = names.map(() => []);
let ref: Float32Array | undefined;
for (let r = 0; r < rounds + 1; r++) {
  // every other round in reverse order (A B C, C B A, ...), so a load that drifts within a round favours none
  const order = names.map((_, k) => (r % 2 ? names.length - 1 - k : k));
  for (const k of order) {
    const { ms, logits: y } = await sessions[k]!.run();
    if (r > 0) times[k]!.push(ms);
    if (r === 0 && y) {
      if (!ref) ref = y;
      else {
        let d = 0;
        for (let i = 0; i < y.length; i++) d = Math.max(d, Math.abs(y[i]! - ref[i]!));
        process.stdout.write(`${names[k]}: max |logits - ${names[0]}'s| = ${d.toExponential(2)}\n`);
      }
    }
  }
}
const best = times.map((t) => Math.min(...t));
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2; };
for (let k = 0; k < names.length; k++) {
  // the paired ratio: each round's time over the first variant's in the same round, median over rounds
  const paired = median(times[k]!.map((t, r) => t / times[0]![r]!));
  process.stdout.write(`${names[k]!.padEnd(16)} best ${best[k]!.toFixed(0)} ms  (${times[k]!.map((t) => t.toFixed(0)).join(' ')})  best ${(best[k]! / best[0]!).toFixed(3)}x, ` +
    `median paired ${paired.toFixed(3)}x of ${names[0]}\n`);
}
process.stdout.write(`load average after: ${loadavg().map((l) => l.toFixed(1)).join(' ')}\n`);
for (const s of sessions) await s.dispose();

if (argv.includes('--profile')) {
  for (const n of names.filter((v) => v !== 'torch')) {
    const dir = mkdtempSync(join(tmpdir(), 'r50ab-'));
    const s = await open(n, { profilePrefix: join(dir, 'p') });
    for (let i = 0; i < 2; i++) await s.run(feeds, ['logits']);
    s.endProfiling();
    await s.dispose();
    const file = readdirSync(dir).find((f) => f.endsWith('.json'))!;
    const { runMs, nodes } = readProfile(join(dir, file));
    rmSync(dir, { recursive: true, force: true });
    const byOp = new Map<string, { us: number; n: number; flop: number }>();
    for (const nd of nodes) {
      // convolutions split by kernel size (1x1 vs the rest) from the FLOP key
      const kind = nd.key ? `${nd.op} ${/ k(\d+) /.exec(nd.key)?.[1]}x` : nd.op;
      const e = byOp.get(kind) ?? { us: 0, n: 0, flop: 0 };
      e.us += nd.us; e.n++; e.flop += nd.flop;
      byOp.set(kind, e);
    }
    const total = nodes.reduce((a, nd) => a + nd.us, 0);
    process.stdout.write(`\nprofile ${n}: run ${runMs.toFixed(0)} ms, kernels ${(total / 1000).toFixed(0)} ms\n`);
    for (const [op, e] of [...byOp].sort((a, b) => b[1].us - a[1].us)) {
      process.stdout.write(`  ${op.padEnd(22)} ${String(e.n).padStart(4)} nodes ${(e.us / 1000).toFixed(1).padStart(8)} ms ${(100 * e.us / total).toFixed(1).padStart(5)}%` +
        (e.flop ? ` ${(e.flop / 1e9 / (e.us / 1e6)).toFixed(0).padStart(5)} GFLOP/s` : '') + '\n');
    }
  }
}
