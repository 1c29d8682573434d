// By-hand speed script for the training-step graph (not a test): full and head-only steps of the
// book FCN at 320x480, median step time and peak RSS, each measurement in its own process (peak RSS
// is per process). Rounds are interleaved over the configurations so drift of this noisy machine
// hits them alike; compare numbers within one run only.
//
//   node dist/bench/train-step.js [--modes full,head] [--batches 4] [--size 320x480] [--runs 4]
//        [--rounds 2] [--variants base,...] [--threads 2] [--momentum 0] [--torch] [--profile DIR] [--ab] [--net fcn_resnet50]
//   with --ab and --profile DIR: also per op kind the sum of each node's best kernel time, per variant;
//   with --ab and --net: a torchvision network (21 classes, seeded random weights) instead of the book's FCN
//   e.g. node dist/bench/train-step.js --batches 4,8 --variants base,prototype --torch --runs 3 --rounds 2
//
// SGD with weight decay 1e-3 and momentum 0 (the book's settings, and bench/torch_bench.py's).
// --variants picks formulation/session alternatives (see CHANGES); --torch adds PyTorch 1.13
// autograd via bench/torch_bench.py (Debian's /usr/bin/python3) in the same interleaving.
// --ab loads all variants of a mode into ONE process and alternates their steps (A B A B ...): the
// fairest speed comparison on a busy machine (peak RSS is then shared, so not reported).
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { fcnResNet18, initParameters, seededRandom } from '../src/model/index.js';
import { TrainStep } from '../src/train/step.js';
import { torchvisionNetwork, type TorchvisionNetwork } from '../src/model/torchvision.js';
import { variantOf } from './train-variants.js';

interface Config {
  engine: 'ort' | 'torch';
  mode: 'full' | 'head';
  batch: number;
  height: number;
  width: number;
  variant: string;
  runs: number;
  threads: number;
  momentum: number;
  profile?: string;
  /** A torchvision network (e.g. fcn_resnet50) instead of the book's FCN (--ab only). */
  net?: TorchvisionNetwork;
}

interface Measurement {
  createMs?: number;
  runsMs: number[];
  medianMs: number;
  peakRssMb: number;
}

const median = (v: number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function batchData(c: Config): { images: Float32Array; labels: Uint8Array } {
  const random = seededRandom(2);
  const n = c.batch * c.height * c.width;
  const images = Float32Array.from({ length: n * 3 }, () => random() * 4 - 2);
  const labels = Uint8Array.from({ length: n }, () => (random() < 0.1 ? 255 : Math.floor(random() * 21)));
  return { images, labels };
}

async function createStep(c: Config, variant: string): Promise<TrainStep> {
  const arch = c.net ? torchvisionNetwork(c.net, { numClasses: 21 }) : fcnResNet18({ numClasses: 21 });
  const weights = initParameters(arch, seededRandom(1));
  const v = variantOf(variant);
  return TrainStep.create(arch, weights, {
    mode: c.mode, batch: c.batch, height: c.height, width: c.width, weightDecay: 1e-3, momentum: c.momentum, threads: c.threads,
    tuning: v.tuning, session: { ...v.session, profilePrefix: c.profile ? path.join(c.profile, `${c.mode}_b${c.batch}_${variant}`) : undefined },
  });
}

/** All `variants` in one process, steps alternated; wall and CPU ms of each step per variant. */
async function childAB(c: Config, variants: string[]): Promise<Record<string, { wall: number[]; cpu: number[] }>> {
  const { images, labels } = batchData(c);
  const steps = [];
  for (const v of variants) {
    const step = await createStep(c, v);
    await step.run(images, labels, 1e-3); // warm-up
    steps.push(step);
  }
  const times: Record<string, { wall: number[]; cpu: number[] }> = Object.fromEntries(variants.map((v) => [v, { wall: [], cpu: [] }]));
  for (let i = 0; i < c.runs; i++) {
    for (let j = 0; j < steps.length; j++) {
      // CPU time is what the step costs with a single thread even while other processes compete for the cores
      const cpu0 = process.cpuUsage();
      const t = performance.now();
      await steps[j]!.run(images, labels, 1e-3);
      const cpu = process.cpuUsage(cpu0);
      times[variants[j]!]!.wall.push(performance.now() - t);
      times[variants[j]!]!.cpu.push((cpu.user + cpu.system) / 1000);
    }
  }
  for (const s of steps) await s.dispose();
  return times;
}

interface ProfileEvent { cat?: string; name: string; ts: number; dur: number; args?: { op_name?: string } }

/**
 * Per op kind, the sum over a profiled step's nodes of each node's best kernel time across the timed
 * runs (the warm-up excluded), from the profile a variant's session wrote under `prefix`.
 */
function bestKernelTimes(prefix: string): Map<string, number> {
  const dir = path.dirname(prefix);
  const file = readdirSync(dir).filter((f) => f.startsWith(`${path.basename(prefix)}_`) && f.endsWith('.json')).map((f) => path.join(dir, f)).pop();
  if (!file) throw new Error(`no profile under ${prefix}`);
  const events = JSON.parse(readFileSync(file, 'utf8')) as ProfileEvent[];
  const runs = events.filter((e) => e.name === 'model_run').slice(1);
  const best = new Map<string, { op: string; us: number }>();
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || !runs.some((r) => e.ts >= r.ts && e.ts <= r.ts + r.dur)) continue;
    const b = best.get(e.name);
    if (!b || e.dur < b.us) best.set(e.name, { op: e.args?.op_name ?? '?', us: e.dur });
  }
  const byOp = new Map<string, number>();
  for (const { op, us } of best.values()) byOp.set(op, (byOp.get(op) ?? 0) + us / 1000);
  return byOp;
}

async function child(c: Config): Promise<Measurement> {
  const { images, labels } = batchData(c);
  const t0 = performance.now();
  const step = await createStep(c, c.variant);
  const createMs = performance.now() - t0;
  const runsMs: number[] = [];
  for (let i = 0; i <= c.runs; i++) {
    const t = performance.now();
    await step.run(images, labels, 1e-3);
    if (i > 0) runsMs.push(performance.now() - t); // the first run warms up (allocations, ORT's planner)
  }
  await step.dispose();
  return { createMs, runsMs, medianMs: median(runsMs), peakRssMb: process.resourceUsage().maxRSS / 1024 };
}

function measure(c: Config): Measurement {
  if (c.engine === 'torch') {
    if (c.momentum !== 0) throw new Error('bench/torch_bench.py trains with momentum 0: compare with --momentum 0');
    const script = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bench/torch_bench.py');
    const r = spawnSync('/usr/bin/python3', [script, 'train', '--mode', c.mode, '--batch', String(c.batch), '--height', String(c.height),
      '--width', String(c.width), '--runs', String(c.runs), '--warmup', '1', '--threads', String(c.threads)], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`torch_bench.py failed: ${r.stderr.trim().split('\n').pop()}`);
    const j = JSON.parse(r.stdout.trim().split('\n').pop()!) as { runs_ms: number[]; median_ms: number; peak_rss_mb: number };
    return { runsMs: j.runs_ms, medianMs: j.median_ms, peakRssMb: j.peak_rss_mb };
  }
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', JSON.stringify(c)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`child failed (${JSON.stringify(c)}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Measurement;
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

async function main(): Promise<void> {
  const abArg = arg('child-ab', '');
  if (abArg) {
    const { config, variants } = JSON.parse(abArg) as { config: Config; variants: string[] };
    process.stdout.write(`${JSON.stringify(await childAB(config, variants))}\n`);
    return;
  }
  const childArg = arg('child', '');
  if (childArg) {
    process.stdout.write(`${JSON.stringify(await child(JSON.parse(childArg) as Config))}\n`);
    return;
  }
  const [height, width] = arg('size', '320x480').split('x').map(Number) as [number, number];
  const runs = Number(arg('runs', '4'));
  const rounds = Number(arg('rounds', '2'));
  const threads = Number(arg('threads', '2'));
  const momentum = Number(arg('momentum', '0'));
  const profile = process.argv.includes('--profile') ? arg('profile', '.') : undefined;
  if (process.argv.includes('--ab')) {
    const variants = arg('variants', 'base').split(',');
    for (const batch of arg('batches', '4').split(',').map(Number)) {
      for (const mode of arg('modes', 'full,head').split(',') as Config['mode'][]) {
        const net = process.argv.includes('--net') ? arg('net', '') as TorchvisionNetwork : undefined;
        const config: Config = { engine: 'ort', mode, batch, height, width, variant: variants.join('+'), runs: runs * rounds, threads, momentum, profile, net };
        const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child-ab', JSON.stringify({ config, variants })], { encoding: 'utf8' });
        if (r.status !== 0) throw new Error(`child failed: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
        const times = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, { wall: number[]; cpu: number[] }>;
        console.log(`${net ?? 'book FCN'} ${mode} b${batch} ${height}x${width}, ${threads} thread(s), alternated in one process:`);
        for (const v of variants) {
          const t = times[v]!;
          console.log(`  ${v.padEnd(14)} wall median ${median(t.wall).toFixed(0)} ms [${t.wall.map((x) => x.toFixed(0)).join(' ')}]  CPU median ${median(t.cpu).toFixed(0)} ms [${t.cpu.map((x) => x.toFixed(0)).join(' ')}]`);
        }
        if (profile) {
          // with --profile: per op kind, Σ over nodes of each node's best kernel time (less sensitive to load than wall time)
          const tables = variants.map((v) => bestKernelTimes(path.join(profile, `${mode}_b${batch}_${v}`)));
          const ops = [...new Set(tables.flatMap((t) => [...t.keys()]))].sort((a, b) => (tables[0]!.get(b) ?? 0) - (tables[0]!.get(a) ?? 0));
          console.log(`  best kernel ms by op (Σ over nodes of each node's best run): ${variants.join(' | ')}`);
          console.log(`    ${'total'.padEnd(22)} ${tables.map((t) => [...t.values()].reduce((a, b) => a + b, 0).toFixed(0).padStart(8)).join(' ')}`);
          for (const op of ops) console.log(`    ${op.padEnd(22)} ${tables.map((t) => (t.get(op) ?? 0).toFixed(0).padStart(8)).join(' ')}`);
        }
      }
    }
    return;
  }
  const configs: Config[] = [];
  for (const batch of arg('batches', '4').split(',').map(Number)) {
    for (const mode of arg('modes', 'full,head').split(',') as Config['mode'][]) {
      for (const variant of arg('variants', 'base').split(',')) configs.push({ engine: 'ort', mode, batch, height, width, variant, runs, threads, momentum, profile });
      if (process.argv.includes('--torch')) configs.push({ engine: 'torch', mode, batch, height, width, variant: 'pytorch', runs, threads, momentum });
    }
  }
  const results = new Map<Config, Measurement[]>(configs.map((c) => [c, []]));
  for (let r = 0; r < rounds; r++) {
    for (const c of configs) {
      const m = measure(c);
      results.get(c)!.push(m);
      console.error(`round ${r + 1}: ${c.engine} ${c.mode} b${c.batch} ${c.variant}: median ${m.medianMs.toFixed(0)} ms [${m.runsMs.map((t) => t.toFixed(0)).join(' ')}], peak RSS ${m.peakRssMb.toFixed(0)} MB`);
    }
  }
  console.log(`| engine | mode | batch | variant | median step ms (all runs) | peak RSS MB |`);
  console.log(`| --- | --- | --- | --- | --- | --- |`);
  for (const [c, ms] of results) {
    const all = ms.flatMap((m) => m.runsMs);
    console.log(`| ${c.engine} | ${c.mode} | ${c.batch} | ${c.variant} | ${median(all).toFixed(0)} (${Math.min(...all).toFixed(0)}–${Math.max(...all).toFixed(0)}) | ${Math.max(...ms.map((m) => m.peakRssMb)).toFixed(0)} |`);
  }
}

await main();
