// The book FCN's stem (7x7 stride-2 conv 3→64, ReLU, 3x3 stride-2 max-pool) against its exact
// space-to-depth rewrite (input padded 4/2, SpaceToDepth by 2, a 4x4 stride-1 conv on 12 channels, or
// on 16 with 4 zero channels for whole NCHWc blocks; the 7x7 kernel shifted into an 8x8 one, zero
// first row and column, and rearranged), constant weights at level 'all', runs interleaved in one
// process; per-node best kernel times from ORT's profile and the max |diff| against the plain stem.
// Run by hand (never part of the tests):  node dist/bench/stem-ab.js [--batch 4] [--rounds 20]
// Measured at batch 4, 2 threads: the conv+ReLU kernel 38.9 ms plain, 41.6 (12 channels) and 42.8
// (16 channels) rewritten, plus Pad, SpaceToDepth and a reorder (7 ms) (load 4.1-5.1); another run
// 40.7 against 109.8 and 124.4 (load 6.5): no gain, the rewrite is not used.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { GraphBuilder } from '../src/graph/onnx.js';
import { Session } from '../src/engine/session.js';

const argv = process.argv.slice(2);
const flag = (name: string, fallback: string): string => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1]! : fallback; };
const N = Number(flag('--batch', '4'));
const rounds = Number(flag('--rounds', '20'));
const [H, W] = [320, 480];
const w7 = new Float32Array(64 * 3 * 49).map((_, i) => Math.sin(i * 0.7) * 0.1);
const w8 = (o: number, c: number, a: number, b: number) => (a === 0 || b === 0 ? 0 : w7[((o * 3 + c) * 7 + a - 1) * 7 + b - 1]!);

/** The 8x8 kernel split by input-pixel parity: [64, channels, 4, 4], channel (py·2 + px)·3 + c (SpaceToDepth's order). */
function s2dWeights(channels: number): Float32Array {
  const w = new Float32Array(64 * channels * 16);
  for (let o = 0; o < 64; o++) for (let py = 0; py < 2; py++) for (let px = 0; px < 2; px++) for (let c = 0; c < 3; c++) {
    for (let jy = 0; jy < 4; jy++) for (let jx = 0; jx < 4; jx++) w[((o * channels + (py * 2 + px) * 3 + c) * 4 + jy) * 4 + jx] = w8(o, c, 2 * jy + py, 2 * jx + px);
  }
  return w;
}

function stem(channels: 0 | 12 | 16): Uint8Array {
  const g = new GraphBuilder('stem');
  g.input('x', 'float32', [N, 3, H, W]);
  let y: string;
  if (channels === 0) {
    g.initializer('w', 'float32', [64, 3, 7, 7], w7);
    y = g.node('Conv', ['x', 'w'], { kernel_shape: [7, 7], strides: [2, 2], pads: [3, 3, 3, 3] });
  } else {
    // output row Y reads padded rows 2Y + t, t = 0..7 (tap 0 zero): 4 before, 2 after
    const p = g.node('Pad', ['x', g.constant([0, 0, 4, 4, 0, 0, 2, 2], 'int64')]);
    let s = g.node('SpaceToDepth', [p], { blocksize: 2 });
    if (channels > 12) s = g.node('Pad', [s, g.constant([0, 0, 0, 0, 0, channels - 12, 0, 0], 'int64')]);
    g.initializer('w', 'float32', [64, channels, 4, 4], s2dWeights(channels));
    y = g.node('Conv', [s, 'w'], { kernel_shape: [4, 4] });
  }
  g.node('MaxPool', [g.node('Relu', [y])], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }, 'y');
  g.output('y', 'float32', [N, 64, 80, 120]);
  return g.encode('stem');
}

const forms = [0, 12, 16] as const;
const dirs = forms.map(() => mkdtempSync(join(tmpdir(), 'fcn-stem-ab-')));
try {
  const sessions: Session[] = [];
  for (let k = 0; k < forms.length; k++) sessions.push(await Session.create(stem(forms[k]!), { threads: 2, profilePrefix: join(dirs[k]!, 'p') }));
  const x = new Float32Array(N * 3 * H * W).map((_, i) => Math.sin(i * 0.37));
  const load = loadavg()[0]!;
  const first: Float32Array[] = [];
  for (let r = 0; r <= rounds; r++) {
    for (let k = 0; k < forms.length; k++) {
      const out = await sessions[k]!.run({ x: { dtype: 'float32', dims: [N, 3, H, W], data: x } });
      if (r === 0) first.push(out.y!.data as Float32Array);
    }
  }
  for (const s of sessions) { s.endProfiling(); await s.dispose(); }
  process.stdout.write(`stem b${N} ${H}x${W}, best of ${rounds} interleaved, load ${load.toFixed(1)} -> ${loadavg()[0]!.toFixed(1)}\n`);
  for (let k = 0; k < forms.length; k++) {
    const events = JSON.parse(readFileSync(join(dirs[k]!, readdirSync(dirs[k]!).find((f) => f.endsWith('.json'))!), 'utf8')) as { cat?: string; name: string; dur: number }[];
    const best = new Map<string, number>();
    for (const e of events) if (e.cat === 'Node' && e.name.endsWith('_kernel_time')) best.set(e.name, Math.min(best.get(e.name) ?? Infinity, e.dur / 1000));
    let diff = 0;
    for (let i = 0; i < first[0]!.length; i++) diff = Math.max(diff, Math.abs(first[0]![i]! - first[k]![i]!));
    const total = [...best.values()].reduce((a, b) => a + b, 0);
    process.stdout.write(`  ${forms[k] ? `space-to-depth, ${forms[k]} channels` : 'plain 7x7/2'}: kernels ${total.toFixed(1)} ms (${[...best].map(([n, ms]) => `${n.replace(/_kernel_time$/, '')} ${ms.toFixed(1)}`).join(', ')}), max |diff| ${diff.toExponential(1)}\n`);
  }
} finally {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}
