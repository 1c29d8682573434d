// The machine's convolution ceiling for one network, and where a profiled run spends its time.
//
// Ceiling: every convolution of the network's inference graph, at its own shape (batch, channels,
// kernel, stride, padding, dilation, groups, input size), run standalone through ONNX Runtime with
// constant weights at the 'all' level (so it gets the NCHWc kernels the real graph gets), best of
// several runs. The network's ceiling rate is Σ FLOP / Σ t_best: the rate its convolutions would
// reach if each ran as fast as it does alone, i.e. each layer's rate weighted by its FLOPs (time
// adds, rates do not). Transposed convolutions that the inference graph runs as one block GEMM are
// timed as that GEMM ([P, m²·Cin + 1] x [m²·Cin + 1, Cout·s²], constant right-hand side).
//
// Profile: ORT's per-node kernel times of one run (enableProfiling), grouped by op kind (and, for
// convolutions, by shape), with FLOP counts from the shapes ORT records, so that each group's rate can
// be set against the standalone rate of the same shapes.
import { readFileSync } from 'node:fs';
import type { FcnArchitecture } from '../src/model/fcn.js';
import { inferenceLayers } from '../src/model/fcn.js';
import type { ConvLayer, ConvTransposeLayer } from '../src/model/layers.js';
import { inferShapes } from '../src/graph/train.js';
import { blockFormApplies } from '../src/graph/backward.js';
import { GraphBuilder } from '../src/graph/onnx.js';
import { Session } from '../src/engine/session.js';

/** One distinct standalone case: a convolution (or a block-GEMM upsampler) at its shape, and how often the network runs it. */
export interface ConvCase {
  key: string;
  kind: 'conv' | 'gemm';
  batch: number; inChannels: number; outChannels: number; kernel: number; stride: number; pad: number; dilation: number; groups: number;
  height: number; width: number; outHeight: number; outWidth: number;
  /** For 'gemm': [rows, inner, cols] of the block GEMM. */
  gemm?: [number, number, number];
  count: number;
  /** FLOP of one occurrence (2 x multiply-adds). */
  flop: number;
  /** Layer names that have this shape. */
  layers: string[];
}

export interface CeilingRow extends ConvCase { best_ms: number }

/** The key profile events are matched on: what ORT's profile records of a convolution (no dilation). */
export function profileKey(batch: number, cin: number, cout: number, k: number, h: number, w: number, ho: number, wo: number): string {
  return `${cin}>${cout} k${k} ${h}x${w}>${ho}x${wo} b${batch}`;
}

/** The convolutions (and block-GEMM upsamplers) of `arch`'s inference graph at batch x height x width, one entry per distinct shape. */
export function convCases(arch: FcnArchitecture, batch: number, height: number, width: number): ConvCase[] {
  const shapes = inferShapes(arch, batch, height, width);
  const byKey = new Map<string, ConvCase>();
  for (const l of inferenceLayers(arch)) {
    if (l.op !== 'conv' && !(l.op === 'convtranspose' && blockFormApplies(l))) continue;
    const [n, cin, h, w] = shapes.get(l.input)!;
    const [, cout, ho, wo] = shapes.get(l.output)!;
    let c: ConvCase;
    if (l.op === 'conv') {
      const cl = l as ConvLayer;
      const d = cl.dilation ?? 1;
      const groups = cl.groups ?? 1;
      const key = `${profileKey(n, cin, cout, cl.kernel, h, w, ho, wo)} s${cl.stride} p${cl.pad} d${d}${groups > 1 ? ` g${groups}` : ''}`;
      c = { key, kind: 'conv', batch: n, inChannels: cin, outChannels: cout, kernel: cl.kernel, stride: cl.stride, pad: cl.pad, dilation: d, groups,
        height: h, width: w, outHeight: ho, outWidth: wo, count: 0, flop: 2 * n * cout * ho * wo * (cin / groups) * cl.kernel * cl.kernel, layers: [] };
    } else {
      const tl = l as ConvTransposeLayer;
      const m = tl.kernel / tl.stride;
      const rows = n * (h + m - 1) * (w + m - 1);
      const inner = m * m * cin + (tl.bias ? 1 : 0);
      const cols = cout * tl.stride * tl.stride;
      const key = `upsampler ${cin}>${cout} k${tl.kernel} s${tl.stride} ${h}x${w} b${n}: GEMM ${rows}x${inner}x${cols}`;
      c = { key, kind: 'gemm', batch: n, inChannels: cin, outChannels: cout, kernel: tl.kernel, stride: tl.stride, pad: tl.pad, dilation: 1, groups: 1,
        height: h, width: w, outHeight: ho, outWidth: wo, gemm: [rows, inner, cols], count: 0, flop: 2 * rows * inner * cols, layers: [] };
    }
    const seen = byKey.get(c.key) ?? c;
    seen.count++;
    seen.layers.push(l.name);
    byKey.set(c.key, seen);
  }
  return [...byKey.values()];
}

function wave(n: number, phase: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sin(i * 0.37 + phase) * 0.05;
  return a;
}

/**
 * Time (ms) of one occurrence of a case at its best, with constant weights at the 'all' level. A
 * convolution alone in a graph also pays ORT's reorders of its input and output between NCHW and NCHWc,
 * the copies in and out and the run's own overhead, which a network pays once per chain, not per
 * convolution: so the case is timed as K copies reading the same input and summed (ORT folds the sum
 * into the convolutions' accumulation) and as one copy, each best of `runs`, and the ceiling is the
 * difference per extra copy, (t_K - t_1) / (K - 1): the fixed costs cancel.
 */
export async function timeCase(c: ConvCase, threads: number, runs: number, warmup: number, copies = 4): Promise<number> {
  const one = await timeCopies(c, 1, threads, runs, warmup);
  const many = await timeCopies(c, copies, threads, runs, warmup);
  // the difference cannot be trusted below a tenth of the single time (noise): then the single time bounds it
  const perCopy = (many - one) / (copies - 1);
  return perCopy > one / 10 ? Math.min(perCopy, one) : one;
}

/** Best-of-`runs` time of `copies` copies of the case on one input, their outputs summed. */
async function timeCopies(c: ConvCase, copies: number, threads: number, runs: number, warmup: number): Promise<number> {
  const g = new GraphBuilder('ceiling');
  let feedDims: number[];
  let outDims: number[];
  const outs: string[] = [];
  if (c.kind === 'conv') {
    feedDims = [c.batch, c.inChannels, c.height, c.width];
    outDims = [c.batch, c.outChannels, c.outHeight, c.outWidth];
    g.input('x', 'float32', feedDims);
    const wShape = [c.outChannels, c.inChannels / c.groups, c.kernel, c.kernel];
    for (let k = 0; k < copies; k++) {
      g.initializer(`w${k}`, 'float32', wShape, wave(wShape.reduce((a, b) => a * b, 1), k));
      g.initializer(`b${k}`, 'float32', [c.outChannels], wave(c.outChannels, k + 1));
      outs.push(g.node('Conv', ['x', `w${k}`, `b${k}`], {
        kernel_shape: [c.kernel, c.kernel], strides: [c.stride, c.stride], pads: [c.pad, c.pad, c.pad, c.pad],
        dilations: c.dilation !== 1 ? [c.dilation, c.dilation] : undefined, group: c.groups !== 1 ? c.groups : undefined,
      }));
    }
  } else {
    const [rows, inner, cols] = c.gemm!;
    feedDims = [rows, inner];
    outDims = [rows, cols];
    g.input('x', 'float32', feedDims);
    for (let k = 0; k < copies; k++) {
      g.initializer(`w${k}`, 'float32', [inner, cols], wave(inner * cols, k));
      outs.push(g.node('MatMul', ['x', `w${k}`]));
    }
  }
  if (outs.length === 1) g.node('Identity', outs, {}, 'y');
  else g.node('Sum', outs, {}, 'y');
  g.output('y', 'float32', outDims);
  const session = await Session.create(g.encode(), { threads, optimization: 'all' });
  const x = wave(feedDims.reduce((a, b) => a * b, 1), 2);
  let best = Infinity;
  for (let i = 0; i < warmup + runs; i++) {
    const t = performance.now();
    await session.run({ x: { dtype: 'float32', dims: feedDims, data: x } }, ['y']);
    if (i >= warmup) best = Math.min(best, performance.now() - t);
  }
  await session.dispose();
  return best;
}

export interface Ceiling { gflopPerS: number; totalMs: number; totalGflop: number; rows: CeilingRow[] }

export function combine(rows: CeilingRow[]): Ceiling {
  const totalMs = rows.reduce((a, r) => a + r.count * r.best_ms, 0);
  const totalGflop = rows.reduce((a, r) => a + r.count * r.flop, 0) / 1e9;
  return { gflopPerS: totalGflop / (totalMs / 1000), totalMs, totalGflop, rows };
}

// ---------------------------------------------------------------------------------------------
// ORT profiles

interface ProfileEvent {
  cat?: string; name: string; ts: number; dur: number;
  args?: { op_name?: string; input_type_shape?: Record<string, number[]>[]; output_type_shape?: Record<string, number[]>[] };
}

/** One kernel of the last profiled run. */
export interface ProfiledNode { name: string; op: string; us: number; flop: number; key?: string }

const dimsOf = (list: Record<string, number[]>[] | undefined, i: number): number[] | undefined => {
  const entry = list?.[i];
  return entry ? Object.values(entry)[0] : undefined;
};

/** NCHW dims of a value that may be in NCHWc blocks ([N, C/b, H, W, b]). */
function nchw(d: number[]): number[] {
  return d.length === 5 ? [d[0]!, d[1]! * d[4]!, d[2]!, d[3]!] : d;
}

/** FLOP of one node from its recorded shapes (0 for the element-wise and layout kinds). */
function nodeFlop(op: string, inputs: Record<string, number[]>[] | undefined, outputs: Record<string, number[]>[] | undefined): { flop: number; key?: string } {
  const x = dimsOf(inputs, 0);
  const w = dimsOf(inputs, 1);
  const y = dimsOf(outputs, 0);
  if (!x || !y) return { flop: 0 };
  const prod = (d: number[]) => d.reduce((a, b) => a * b, 1);
  if ((op === 'MatMul' || op === 'FusedMatMul') && x.length >= 2) {
    // rows x inner times inner x cols, batch dims broadcast (a constant right-hand side is pre-packed: not in the record)
    return { flop: 2 * prod(y) * x[x.length - 1]! };
  }
  if (!w) return { flop: 0 };
  if ((op === 'Conv' || op === 'FusedConv') && w.length === 4) {
    const [n, cin, h, wd] = nchw(x);
    const [, cout, ho, wo] = nchw(y);
    return { flop: 2 * prod(nchw(y)) * w[1]! * w[2]! * w[3]!, key: profileKey(n!, cin!, cout!, w[2]!, h!, wd!, ho!, wo!) };
  }
  if (op === 'ConvTranspose' && w.length === 4) return { flop: 2 * prod(x) * w[1]! * w[2]! * w[3]! };
  return { flop: 0 };
}

/** The kernels of the profile's last `model_run` (the earlier ones are warm-ups). */
export function readProfile(path: string): { runMs: number; nodes: ProfiledNode[] } {
  const events = JSON.parse(readFileSync(path, 'utf8')) as ProfileEvent[];
  const runs = events.filter((e) => e.name === 'model_run');
  const last = runs[runs.length - 1];
  if (!last) throw new Error(`${path}: no model_run event`);
  const nodes: ProfiledNode[] = [];
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || e.ts < last.ts || e.ts > last.ts + last.dur) continue;
    const op = e.args?.op_name ?? '?';
    const { flop, key } = nodeFlop(op, e.args?.input_type_shape, e.args?.output_type_shape);
    nodes.push({ name: e.name.replace(/_kernel_time$/, ''), op, us: e.dur, flop, key });
  }
  return { runMs: last.dur / 1000, nodes };
}

/**
 * Per op kind, the sum over nodes of each node's best kernel time (ms) across the profile's timed runs
 * (every `model_run` but the first, a warm-up): on a crowded machine this separates graph changes of a few
 * percent long before wall times do. Also the sum over kinds, and each timed run's `model_run` time (ms).
 */
export function bestKernelsByOp(path: string): { byOp: Map<string, number>; total: number; runs: number[] } {
  const events = JSON.parse(readFileSync(path, 'utf8')) as ProfileEvent[];
  const timed = events.filter((e) => e.name === 'model_run').slice(1);
  const best = new Map<string, { op: string; us: number }>();
  for (const run of timed) {
    for (const e of events) {
      if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || e.ts < run.ts || e.ts > run.ts + run.dur) continue;
      const node = best.get(e.name) ?? { op: e.args?.op_name ?? '?', us: Infinity };
      node.us = Math.min(node.us, e.dur);
      best.set(e.name, node);
    }
  }
  const byOp = new Map<string, number>();
  for (const { op, us } of best.values()) byOp.set(op, (byOp.get(op) ?? 0) + us / 1000);
  return { byOp, total: [...byOp.values()].reduce((a, b) => a + b, 0), runs: timed.map((r) => r.dur / 1000) };
}

/** One row of a profile table. */
export interface ProfileRow { what: string; nodes: number; ms: number; share: number; gflop: number; ceilingMs?: number }

/**
 * Groups a profile: convolutions by shape (each with the standalone best time of that shape, when the
 * ceiling has it), everything else by op kind; largest time first.
 */
export function profileRows(nodes: ProfiledNode[], ceiling?: CeilingRow[]): ProfileRow[] {
  const standalone = new Map<string, { ms: number; n: number }>();
  for (const r of ceiling ?? []) {
    if (r.kind !== 'conv') continue;
    // shapes that differ only in dilation or padding share a profile key: their FLOP-weighted mean
    const k = profileKey(r.batch, r.inChannels, r.outChannels, r.kernel, r.height, r.width, r.outHeight, r.outWidth);
    const s = standalone.get(k) ?? { ms: 0, n: 0 };
    s.ms += r.best_ms * r.count;
    s.n += r.count;
    standalone.set(k, s);
  }
  const total = nodes.reduce((a, n) => a + n.us, 0);
  const groups = new Map<string, ProfileRow>();
  for (const n of nodes) {
    const isConv = n.key !== undefined && standalone.size > 0;
    const what = isConv ? `Conv ${n.key}` : n.op;
    const row = groups.get(what) ?? { what, nodes: 0, ms: 0, share: 0, gflop: 0 };
    row.nodes++;
    row.ms += n.us / 1000;
    row.gflop += n.flop / 1e9;
    if (isConv) {
      const s = standalone.get(n.key!);
      if (s) row.ceilingMs = (row.ceilingMs ?? 0) + s.ms / s.n;
    }
    groups.set(what, row);
  }
  for (const r of groups.values()) r.share = total > 0 ? (r.ms * 1000) / total : 0;
  return [...groups.values()].sort((a, b) => b.ms - a.ms);
}
