// By-hand memory script for the training-step graph (not a test): where in the step the process's
// resident memory grows. One process, the book FCN at 320x480, full mode by default; RSS is sampled
// every millisecond while ONNX Runtime runs the step (onnxruntime-node runs it off the main thread)
// and the samples are placed on ORT's profile of the same run, so each growth of RSS is charged to the
// node that was running. Prints the peak RSS of each run, the nodes under which RSS grew the most
// and the process's peak (maxRSS). Each variant needs its own process (peak RSS is per process).
//
//   node dist/bench/train-memory.js [--batch 8] [--size 320x480] [--mode full] [--variant base] [--runs 2]
//        [--top 20] [--profile DIR] [--threads 2]
//
// --variant names changes of bench/train-step.ts (e.g. base, noarena, bnaffine).
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { fcnResNet18, initParameters, seededRandom } from '../src/model/index.js';
import { TrainStep } from '../src/train/step.js';
import { variantOf } from './train-variants.js';

interface ProfileEvent { name: string; cat: string; ts: number; dur: number; args?: { op_name?: string; output_size?: string } }

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const MB = 1024 * 1024;

// The step blocks the main thread: a worker samples the process's RSS into shared memory
// (epoch ms, bytes) every millisecond until told to stop.
const SAMPLER = `
const { workerData } = require('node:worker_threads');
const { memoryUsage } = require('node:process');
const [ctl, data] = workerData;
let i = 0;
const tick = () => {
  if (Atomics.load(ctl, 0) === 1 || 2 * i + 1 >= data.length) { Atomics.store(ctl, 1, i); Atomics.store(ctl, 0, 2); return; }
  data[2 * i] = performance.timeOrigin + performance.now();
  data[2 * i + 1] = memoryUsage.rss();
  i++;
  setTimeout(tick, 1);
};
tick();
`;

function startSampler(): { stop(): Promise<[number, number][]> } {
  const ctl = new Int32Array(new SharedArrayBuffer(8));
  const data = new Float64Array(new SharedArrayBuffer(8 * 2 * 2_000_000));
  const worker = new Worker(SAMPLER, { eval: true, workerData: [ctl, data] });
  return {
    async stop() {
      Atomics.store(ctl, 0, 1);
      while (Atomics.load(ctl, 0) !== 2) await new Promise((r) => setTimeout(r, 2));
      await worker.terminate();
      const n = Atomics.load(ctl, 1);
      return Array.from({ length: n }, (_, i) => [data[2 * i]!, data[2 * i + 1]!] as [number, number]);
    },
  };
}

async function main(): Promise<void> {
  const batch = Number(arg('batch', '8'));
  const [height, width] = arg('size', '320x480').split('x').map(Number) as [number, number];
  const mode = arg('mode', 'full') as 'full' | 'head';
  const variant = arg('variant', 'base');
  const runs = Number(arg('runs', '2'));
  const top = Number(arg('top', '20'));
  const threads = Number(arg('threads', '2'));
  const keep = process.argv.includes('--profile');
  const dir = keep ? arg('profile', '.') : mkdtempSync(path.join(tmpdir(), 'fcn-mem-'));
  const prefix = path.join(dir, `mem_${mode}_b${batch}_${variant}`);

  const arch = fcnResNet18({ numClasses: 21 });
  const weights = initParameters(arch, seededRandom(1));
  const random = seededRandom(2);
  const n = batch * height * width;
  const images = Float32Array.from({ length: n * 3 }, () => random() * 4 - 2);
  const labels = Uint8Array.from({ length: n }, () => (random() < 0.1 ? 255 : Math.floor(random() * 21)));
  const v = variantOf(variant);
  const before = process.memoryUsage.rss();
  const step = await TrainStep.create(arch, weights, {
    mode, batch, height, width, weightDecay: 1e-3, momentum: 0, threads, tuning: v.tuning, session: { ...v.session, profilePrefix: prefix },
  });
  console.log(`${mode} b${batch} ${height}x${width} '${variant}': RSS ${(before / MB).toFixed(0)} MB before the session, ${(process.memoryUsage.rss() / MB).toFixed(0)} MB after`);
  const traces: { t0: number; samples: [number, number][] }[] = [];
  for (let r = 0; r < runs; r++) {
    const sampler = startSampler();
    const t0 = performance.timeOrigin + performance.now();
    await step.run(images, labels, 1e-3);
    const samples = await sampler.stop();
    traces.push({ t0, samples });
    const peak = samples.reduce((m, x) => Math.max(m, x[1]), 0);
    console.log(`run ${r + 1}: ${(performance.timeOrigin + performance.now() - t0).toFixed(0)} ms, ${samples.length} samples, RSS ${(samples[0]?.[1] ?? 0) / MB | 0} -> peak ${(peak / MB).toFixed(0)} -> ${(samples[samples.length - 1]?.[1] ?? 0) / MB | 0} MB`);
  }
  await step.dispose();
  const file = readdirSync(dir).filter((f) => f.startsWith(path.basename(prefix)) && f.endsWith('.json')).map((f) => path.join(dir, f)).pop();
  if (!file) throw new Error(`no profile written under ${dir}`);
  const events = JSON.parse(readFileSync(file, 'utf8')) as ProfileEvent[];
  const modelRuns = events.filter((e) => e.name === 'model_run');
  for (let r = 0; r < traces.length && r < modelRuns.length; r++) {
    const run = modelRuns[r]!;
    const { t0, samples } = traces[r]!;
    const nodes = events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time') && e.ts >= run.ts && e.ts <= run.ts + run.dur)
      .sort((a, b) => a.ts - b.ts);
    // RSS at a profile time (µs): the last sample taken before it
    const at = (ts: number): number => {
      const t = t0 + (ts - run.ts) / 1000;
      let rss = samples[0]![1];
      for (const [st, v] of samples) { if (st > t) break; rss = v; }
      return rss;
    };
    const grown = nodes.map((e, i) => {
      const end = i + 1 < nodes.length ? nodes[i + 1]!.ts : e.ts + e.dur;
      return { name: e.name.replace(/_kernel_time$/, ''), op: e.args?.op_name ?? '?', out: Number(e.args?.output_size ?? 0), index: i, delta: at(end) - at(e.ts), rss: at(end) };
    });
    const peakNode = grown.reduce((a, b) => (b.rss > a.rss ? b : a), grown[0]!);
    console.log(`\nrun ${r + 1}: ${nodes.length} nodes; RSS highest after node #${peakNode.index} ${peakNode.name} (${peakNode.op}): ${(peakNode.rss / MB).toFixed(0)} MB`);
    console.log(`| # | node | op | output MB | RSS growth MB | RSS after MB |`);
    console.log(`| ---: | --- | --- | ---: | ---: | ---: |`);
    for (const x of [...grown].sort((a, b) => b.delta - a.delta).slice(0, top)) {
      console.log(`| ${x.index} | ${x.name} | ${x.op} | ${(x.out / MB).toFixed(1)} | ${(x.delta / MB).toFixed(1)} | ${(x.rss / MB).toFixed(0)} |`);
    }
  }
  console.log(`\nprocess peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`);
  if (!keep) rmSync(dir, { recursive: true, force: true });
}

await main();
