// Winograd minimal filtering (src/graph/winograd.ts) against ONNX Runtime's direct Conv for the
// networks' 3x3 stride-1 convolutions: one convolution (+ReLU) per shape, the direct Conv (constant
// weights, level 'all', so NCHWc) against the Winograd graph, timed interleaved (direct, form 1,
// form 2, ..., direct, ...) in one process, best of N, so load on a shared machine hits every form
// alike. Each form's output is checked against the direct one (max |diff| / max |y|). Run by hand
// (never part of the tests):
//   node dist/bench/winograd.js [--rounds 5] [--threads 2] [--only book|r50] [--shape TEXT] [--forms w4,w2,w4sym] [--profile]
// or the whole inference graph (compileInference) without and with `winograd`, interleaved A/B:
//   node dist/bench/winograd.js --net book|fcn_resnet50|... [--size 320x480] [--batch 1,4] [--rounds 5] [--winograd true,256] [--profile]
// Forms: w2 / w4 = F(2x2,3x3) / F(4x4,3x3) on static shapes; w2sym / w4sym the same with symbolic
// H and W (shapes computed in the graph, as the inference graph has them).
//
// Measured (the feasibility study, commit 012e96c, which also tried α² depthwise Convs + Concat,
// separable input transforms, Split/Add output transforms and dilated convs as sub-grids): see
// src/graph/winograd.ts winogradApplies for the shapes where it wins.
import { loadavg } from 'node:os';
import { readdirSync, rmSync } from 'node:fs';
import { GraphBuilder } from '../src/graph/onnx.js';
import { Session, type EngineTensor } from '../src/engine/session.js';
import { readProfile, type ProfiledNode } from './ceiling.js';
import { emitWinogradConv } from '../src/graph/winograd.js';
import { compileInference } from '../src/graph/inference.js';
import { fcnResNet18, initParameters, seededRandom } from '../src/model/index.js';
import { torchvisionNetwork, type TorchvisionNetwork } from '../src/model/torchvision.js';

interface Shape { name: string; n: number; c: number; k: number; h: number; w: number; d: number }

const argv = process.argv.slice(2);
const flag = (name: string, fallback: string): string => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1]! : fallback; };
const rounds = Number(flag('--rounds', '5'));
const threads = Number(flag('--threads', '2'));
const only = flag('--only', 'all');
const formNames = flag('--forms', 'w2,w4').split(',');
// --profile: after timing, one profiled run of each form; per-op-kind kernel times
const profile = argv.includes('--profile');
const shapeFilter = flag('--shape', '');

const FORMS: Record<string, { m: 2 | 4; symbolic: boolean }> = {
  w2: { m: 2, symbolic: false },
  w4: { m: 4, symbolic: false },
  w2sym: { m: 2, symbolic: true },
  w4sym: { m: 4, symbolic: true },
};

const book: Shape[] = [];
for (const n of [1, 4]) {
  book.push({ name: `book 64>64 80x120 b${n}`, n, c: 64, k: 64, h: 80, w: 120, d: 1 });
  book.push({ name: `book 128>128 40x60 b${n}`, n, c: 128, k: 128, h: 40, w: 60, d: 1 });
  book.push({ name: `book 256>256 20x30 b${n}`, n, c: 256, k: 256, h: 20, w: 30, d: 1 });
  book.push({ name: `book 512>512 10x15 b${n}`, n, c: 512, k: 512, h: 10, w: 15, d: 1 });
}
// fcn_resnet50 at 520x520: the FCNHead's 3x3 (dilation 1); the dilated layer3/4 convs stay direct
const r50: Shape[] = [
  { name: 'r50 head 2048>512 65x65', n: 1, c: 2048, k: 512, h: 65, w: 65, d: 1 },
];
const shapes = (only === 'book' ? book : only === 'r50' ? r50 : [...book, ...r50]).filter((s) => s.name.includes(shapeFilter));

/** ORT's profile of the second of two runs of `graph` (level 'all') on `feeds`, its file removed after. */
async function profiledRun(graph: Uint8Array, feeds: Record<string, EngineTensor>, fetch: string): Promise<{ runMs: number; nodes: ProfiledNode[] }> {
  const ps = await Session.create(graph, { threads, optimization: 'all', profilePrefix: `/tmp/wino-prof-${process.pid}` });
  for (let r = 0; r < 2; r++) await ps.run(feeds, [fetch]);
  ps.endProfiling();
  await ps.dispose();
  const file = readdirSync('/tmp').filter((n) => n.startsWith(`wino-prof-${process.pid}`)).sort().pop()!;
  const profiled = readProfile(`/tmp/${file}`);
  rmSync(`/tmp/${file}`);
  return profiled;
}

/** Kernel time (µs) and node count summed per key. */
function sumBy(nodes: ProfiledNode[], key: (nd: ProfiledNode) => string): Map<string, { us: number; n: number }> {
  const sums = new Map<string, { us: number; n: number }>();
  for (const nd of nodes) {
    const e = sums.get(key(nd)) ?? { us: 0, n: 0 };
    e.us += nd.us;
    e.n++;
    sums.set(key(nd), e);
  }
  return sums;
}

function wave(n: number, phase: number, scale: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sin(i * 0.37 + phase) * scale;
  return a;
}

/** The graph of one form: x -> conv(x) + bias -> ReLU (ORT fuses the ReLU into the direct Conv). */
function graph(s: Shape, form: string, weight: Float32Array, bias: Float32Array): Uint8Array {
  const g = new GraphBuilder('winograd');
  const symbolic = FORMS[form]?.symbolic ?? false;
  g.input('x', 'float32', symbolic ? ['N', s.c, 'H', 'W'] : [s.n, s.c, s.h, s.w]);
  let y: string;
  if (form === 'direct') {
    g.initializer('w', 'float32', [s.k, s.c, 3, 3], weight);
    g.initializer('b', 'float32', [s.k], bias);
    y = g.node('Conv', ['x', 'w', 'b'], { kernel_shape: [3, 3], pads: [s.d, s.d, s.d, s.d], dilations: s.d !== 1 ? [s.d, s.d] : undefined });
  } else {
    const f = FORMS[form]!;
    y = emitWinogradConv(g, 'x', weight, bias, { inChannels: s.c, outChannels: s.k, height: f.symbolic ? undefined : s.h, width: f.symbolic ? undefined : s.w }, 'wg', f.m);
  }
  g.node('Relu', [y], {}, 'y');
  g.output('y', 'float32', symbolic ? ['N', s.k, 'H', 'W'] : [s.n, s.k, s.h, s.w]);
  return g.encode();
}

process.stdout.write(`load average before: ${loadavg().map((l) => l.toFixed(1)).join(' ')}; ${threads} threads, best of ${rounds}\n`);
const net = flag('--net', '');
if (net) await netAB(net);
for (const s of net ? [] : shapes) {
  const weight = wave(s.k * s.c * 9, 1, 1 / Math.sqrt(s.c * 9));
  const bias = wave(s.k, 2, 0.1);
  const x = wave(s.n * s.c * s.h * s.w, 3, 1);
  const forms = ['direct', ...formNames];
  const sessions = await Promise.all(forms.map((f) => Session.create(graph(s, f, weight, bias), { threads, optimization: 'all' })));
  const best = forms.map(() => Infinity);
  const outs: Float32Array[] = [];
  for (let r = 0; r <= rounds; r++) {
    for (let k = 0; k < forms.length; k++) {
      const t = performance.now();
      const res = await sessions[k]!.run({ x: { dtype: 'float32', dims: [s.n, s.c, s.h, s.w], data: x } }, ['y']);
      const ms = performance.now() - t;
      if (r === 0) outs[k] = res.y!.data as Float32Array;
      else best[k] = Math.min(best[k]!, ms);
    }
  }
  const flop = 2 * s.n * s.k * s.c * 9 * s.h * s.w;
  const ref = outs[0]!;
  let maxY = 0;
  for (const v of ref) maxY = Math.max(maxY, Math.abs(v));
  const cells = forms.map((f, k) => {
    if (k === 0) return `direct ${best[0]!.toFixed(1)} ms (${(flop / best[0]! / 1e6).toFixed(0)} GFLOP/s)`;
    let md = 0;
    const o = outs[k]!;
    for (let i = 0; i < ref.length; i++) md = Math.max(md, Math.abs(o[i]! - ref[i]!));
    return `${f} ${best[k]!.toFixed(1)} ms (${(best[0]! / best[k]!).toFixed(2)}x, err ${(md / maxY).toExponential(1)})`;
  });
  process.stdout.write(`${s.name}: ${cells.join(' | ')}\n`);
  for (const ss of sessions) await ss.dispose();
  if (!profile) continue;
  for (const f of forms) {
    const { runMs, nodes } = await profiledRun(graph(s, f, weight, bias), { x: { dtype: 'float32', dims: [s.n, s.c, s.h, s.w], data: x } }, 'y');
    const byOp = sumBy(nodes, (nd) => nd.op);
    for (const [key, e] of sumBy(nodes.filter((nd) => nd.op === 'Conv' || nd.op === 'Transpose'), (nd) => `${nd.op}:${nd.name}`)) byOp.set(key, e);
    const parts = [...byOp.entries()].sort((a, b) => b[1].us - a[1].us).map(([op, e]) => `${op}x${e.n} ${(e.us / 1000).toFixed(1)}`);
    process.stdout.write(`  profile ${f}: run ${runMs.toFixed(1)} ms: ${parts.join(', ')}\n`);
  }
}
process.stdout.write(`load average after: ${loadavg().map((l) => l.toFixed(1)).join(' ')}\n`);

/** The whole inference graph without (A) and with (B) Winograd, interleaved; logits compared. */
async function netAB(name: string): Promise<void> {
  const arch = name === 'book' ? fcnResNet18({ numClasses: 21 }) : torchvisionNetwork(name as TorchvisionNetwork, { numClasses: 21 });
  const weights = initParameters(arch, seededRandom(0));
  const [H, W] = flag('--size', name === 'book' ? '320x480' : '520x520').split('x').map(Number) as [number, number];
  for (const n of flag('--batch', '1').split(',').map(Number)) {
    // --winograd 1024,256: the thresholds (input channels) of the forms timed against direct
    const forms = [false, ...flag('--winograd', 'true').split(',').map((t) => (t === 'true' ? true : Number(t)))];
    const graphs = forms.map((winograd) => compileInference(arch, weights, { batch: n, argmax: false, winograd }));
    const sessions = await Promise.all(graphs.map((gr) => Session.create(gr, { threads, optimization: 'all' })));
    const x = wave(n * 3 * H * W, 3, 1.5);
    const best = forms.map(() => Infinity);
    const outs: Float32Array[] = [];
    for (let r = 0; r <= rounds; r++) {
      for (let k = 0; k < forms.length; k++) {
        const t = performance.now();
        const res = await sessions[k]!.run({ [arch.input]: { dtype: 'float32', dims: [n, 3, H, W], data: x } }, [arch.output]);
        const ms = performance.now() - t;
        if (r === 0) outs[k] = res[arch.output]!.data as Float32Array;
        else best[k] = Math.min(best[k]!, ms);
      }
    }
    let maxY = 0;
    for (const v of outs[0]!) maxY = Math.max(maxY, Math.abs(v));
    const cells = forms.slice(1).map((f, j) => {
      let md = 0;
      for (let i = 0; i < outs[0]!.length; i++) md = Math.max(md, Math.abs(outs[0]![i]! - outs[j + 1]![i]!));
      return `winograd ${f === true ? 'default' : `>=${f}`} ${best[j + 1]!.toFixed(0)} ms, ${(best[0]! / best[j + 1]!).toFixed(2)}x, logits rel diff ${(md / maxY).toExponential(1)}`;
    });
    process.stdout.write(`${name} ${H}x${W} b${n}: direct ${best[0]!.toFixed(0)} ms | ${cells.join(' | ')} (best of ${rounds})\n`);
    for (const ss of sessions) await ss.dispose();
    if (!profile) continue;
    for (let k = 0; k < forms.length; k++) {
      const { runMs, nodes } = await profiledRun(graphs[k]!, { [arch.input]: { dtype: 'float32', dims: [n, 3, H, W], data: x } }, arch.output);
      const byOp = sumBy(nodes, (nd) => (nd.op === 'Conv' ? `Conv ${nd.key ?? '?'}` : nd.op));
      const parts = [...byOp.entries()].sort((a, b) => b[1].us - a[1].us).map(([op, e]) => `${op} x${e.n} ${(e.us / 1000).toFixed(1)}`);
      process.stdout.write(`  profile ${k ? `winograd ${forms[k]}` : 'direct'}: run ${runMs.toFixed(0)} ms:\n    ${parts.join('\n    ')}\n`);
    }
  }
}
