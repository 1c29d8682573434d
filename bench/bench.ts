// `npm run bench`: forward and training-step times of our ONNX Runtime graphs next to PyTorch 1.13
// on the same machine, in the same run, each measurement in its own process (so peak RSS is its
// own), against this machine's convolution ceiling for the same network (bench/ceiling.ts: each of
// its convolutions standalone with constant weights at the 'all' level, best of several runs,
// combined by FLOPs), with a per-op table of ORT's profile of one run of each case. Rows: the book's
// FCN at 320x480; torchvision's fcn_resnet50 and deeplabv3_resnet50 (forward at 520x520, their
// evaluation size, and a full training step at 320x320 batch 4); lraspp_mobilenet_v3_large and
// deeplabv3_mobilenet_v3_large (forward at 520x520). Run by hand on a quiet machine (never part of the
// tests); `npm run bench -- --help` lists the options. `--only int8`: the int8 graph (fcn quantize's)
// beside float32 forward rows, with the speed-up, and PyTorch's own FX int8 where it runs.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { availableParallelism, cpus } from 'node:os';
import { fcnResNet18, initParameters, seededRandom, type FcnArchitecture } from '../src/model/index.js';
import { torchvisionNetwork, type TorchvisionNetwork } from '../src/model/torchvision.js';
import { compileInference } from '../src/graph/inference.js';
import { Session } from '../src/engine/session.js';
import { combine, convCases, profileRows, readProfile, timeCase, type Ceiling, type CeilingRow, type ProfiledNode } from './ceiling.js';
import { planQuantization, compileCalibration, compileQuantized, calibratedValues } from '../src/graph/quant.js';
import { GrowingHistogram } from '../src/quantize/ranges.js';

const PYTHON = '/usr/bin/python3';
const here = fileURLToPath(import.meta.url);
const torchScript = fileURLToPath(new URL('../../bench/torch_bench.py', import.meta.url));

interface Case {
  task: 'forward' | 'train' | 'ceiling'; mode: 'full' | 'head'; batch: number; height: number; width: number; upsample?: 'convtranspose' | 'blocks' | 'phases' | 'phaserows';
  /** One of torchvision's networks (21 classes, aux head) instead of the book's FCN. */
  net?: TorchvisionNetwork;
  /** Forward of the int8 graph (calibrated min/max on the timed input itself: the speed does not depend on the ranges). */
  int8?: boolean;
  /** At most this many timed runs, after 1 warm-up, and no profiled run (the heavy batch-32 step). */
  maxRuns?: number;
}

/** The int8 graph of `arch` with `weights`, its ranges measured on `x` (one image, NCHW). */
async function int8Graph(arch: FcnArchitecture, weights: Map<string, Float32Array>, x: Float32Array, height: number, width: number, threads: number): Promise<Uint8Array> {
  const plan = planQuantization(arch, weights);
  const values = calibratedValues(plan);
  const cal = await Session.create(compileCalibration(plan), { threads });
  const one = x.subarray(0, 3 * height * width);
  const out = await cal.run({ [arch.input]: { dtype: 'float32', dims: [1, 3, height, width], data: one } }, values.filter((v) => v !== arch.input));
  await cal.dispose();
  const ranges = new Map(values.map((v) => {
    const h = new GrowingHistogram();
    h.add(v === arch.input ? one : out[v]!.data as Float32Array);
    return [v, h.range({ method: 'minmax', percentile: 100 })] as const;
  }));
  // the same outputs as the float32 row's graph (logits only, no argmax): ORT runs every node, fetched or not
  return compileQuantized(plan, ranges, { padToStride: false, argmax: false });
}

function caseArch(c: Case): FcnArchitecture {
  return c.net ? torchvisionNetwork(c.net, { numClasses: 21 }) : fcnResNet18({ numClasses: 21 });
}

interface Result {
  median_ms: number; runs_ms: number[]; peak_rss_mb: number; note?: string;
  /** The kernels of one profiled run (after the timed runs, in a session of its own). */
  profile?: ProfiledNode[];
  /** For the 'ceiling' task: each conv shape's best standalone time. */
  ceiling?: CeilingRow[];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Runs one case in this process (called in a child). */
async function runCase(c: Case, runs: number, warmup: number, threads: number, profile: boolean): Promise<Result> {
  const arch = caseArch(c);
  if (c.task === 'ceiling') {
    const rows: CeilingRow[] = [];
    for (const k of convCases(arch, c.batch, c.height, c.width)) rows.push({ ...k, best_ms: await timeCase(k, threads, runs, 1) });
    return { median_ms: combine(rows).totalMs, runs_ms: [], peak_rss_mb: process.resourceUsage().maxRSS / 1024, ceiling: rows };
  }
  const weights = initParameters(arch, seededRandom(0));
  const x = new Float32Array(c.batch * 3 * c.height * c.width);
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.37) * 1.5;
  const times: number[] = [];
  if (c.task === 'forward') {
    const graph = c.int8
      ? await int8Graph(arch, weights, x, c.height, c.width, threads)
      : compileInference(arch, weights, { batch: c.batch, upsample: c.upsample, argmax: false, winograd: true });
    const session = await Session.create(graph, { threads });
    for (let i = 0; i < warmup + runs; i++) {
      const t = performance.now();
      await session.run({ image: { dtype: 'float32', dims: [c.batch, 3, c.height, c.width], data: x } }, ['logits']);
      if (i >= warmup) times.push(performance.now() - t);
    }
    await session.dispose();
  } else {
    const { TrainStep } = await import('../src/train/step.js');
    const labels = new Uint8Array(c.batch * c.height * c.width);
    for (let i = 0; i < labels.length; i++) labels[i] = i % 10 === 0 ? 255 : (i * 7) % 21;
    const step = await TrainStep.create(arch, weights, { mode: c.mode, batch: c.batch, height: c.height, width: c.width, weightDecay: 1e-3, momentum: 0, threads });
    for (let i = 0; i < warmup + runs; i++) {
      const t = performance.now();
      await step.run(x, labels, 0.001);
      if (i >= warmup) times.push(performance.now() - t);
    }
    await step.dispose();
  }
  const peak = process.resourceUsage().maxRSS / 1024;
  const result: Result = { median_ms: median(times), runs_ms: times.map((t) => Math.round(t)), peak_rss_mb: peak };
  if (profile && (c.task === 'forward' || c.task === 'train')) result.profile = await profileCase(c, arch, weights, x, threads);
  return result;
}

/** ORT's per-kernel times of one run (after one warm-up) in a fresh profiled session; the file is removed. */
async function profileCase(c: Case, arch: FcnArchitecture, weights: ReturnType<typeof initParameters>, x: Float32Array, threads: number): Promise<ProfiledNode[]> {
  const dir = mkdtempSync(join(tmpdir(), 'fcn-bench-profile-'));
  try {
    const prefix = join(dir, 'profile');
    if (c.task === 'forward') {
      // the graph the timed runs ran: the int8 rows profile their int8 graph
      const graph = c.int8
        ? await int8Graph(arch, weights, x, c.height, c.width, threads)
        : compileInference(arch, weights, { batch: c.batch, upsample: c.upsample, argmax: false, winograd: true });
      const session = await Session.create(graph, { threads, profilePrefix: prefix });
      for (let i = 0; i < 2; i++) await session.run({ image: { dtype: 'float32', dims: [c.batch, 3, c.height, c.width], data: x } }, ['logits']);
      session.endProfiling();
      await session.dispose();
    } else {
      const { TrainStep } = await import('../src/train/step.js');
      const labels = new Uint8Array(c.batch * c.height * c.width);
      const step = await TrainStep.create(arch, weights, {
        mode: c.mode, batch: c.batch, height: c.height, width: c.width, weightDecay: 1e-3, momentum: 0, threads, session: { profilePrefix: prefix },
      });
      for (let i = 0; i < 2; i++) await step.run(x, labels, 0.001);
      await step.dispose(); // ORT writes a profiling session's file when it is released

    }
    const file = readdirSync(dir).find((f) => f.endsWith('.json'));
    if (!file) throw new Error('ONNX Runtime wrote no profile');
    return readProfile(join(dir, file)).nodes;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function child(args: string[], cmd = process.execPath): Result {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 24 });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  if (r.status !== 0 || !line.startsWith('{')) return { median_ms: NaN, runs_ms: [], peak_rss_mb: NaN, note: (r.stderr || r.stdout).trim().split('\n').slice(-1)[0] };
  return JSON.parse(line) as Result;
}

function torchAvailable(): boolean {
  if (!existsSync(PYTHON)) return false;
  return spawnSync(PYTHON, ['-c', 'import torch, torchvision'], { encoding: 'utf8' }).status === 0;
}

function openblasNote(): string {
  const r = spawnSync(PYTHON, ['-c', 'import torch; print(torch.__config__.show())'], { encoding: 'utf8' });
  const blas = /BLAS_INFO=(\w+)/.exec(r.stdout ?? '')?.[1] ?? 'unknown';
  const pthread = existsSync('/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3');
  return `PyTorch BLAS: ${blas}${pthread ? ' (libopenblas0-pthread installed)' : ' (libopenblas0-pthread NOT installed: PyTorch runs the reference BLAS, its numbers are too slow)'}`;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => '| ' + cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ') + ' |';
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n') + '\n';
}

const pct = (x: number) => (Number.isFinite(x) ? `${(100 * x).toFixed(0)}%` : '');
const rate = (gflop: number, ms: number) => (Number.isFinite(gflop) && gflop > 0 && Number.isFinite(ms) && ms > 0 ? (gflop / (ms / 1000)).toFixed(0) : '');

/** The per-op table of one profiled run: convolutions by shape (forward), other kinds by op; the largest `limit` rows and the rest summed. */
function profileTable(label: string, nodes: ProfiledNode[], ceiling: Ceiling, perShape: boolean, limit = 14): string {
  const rows = profileRows(nodes, perShape ? ceiling.rows : undefined);
  const total = rows.reduce((a, r) => a + r.ms, 0);
  const shown = rows.slice(0, limit);
  const rest = rows.slice(limit);
  const cells = shown.map((r) => {
    // a shape's own standalone time when the ceiling has it, else the network's ceiling rate
    const eff = r.ceilingMs !== undefined ? r.ceilingMs / r.ms : r.gflop > 0 ? r.gflop / (r.ms / 1000) / ceiling.gflopPerS : NaN;
    return [r.what, String(r.nodes), r.ms.toFixed(1), pct(r.share), rate(r.gflop, r.ms), r.ceilingMs !== undefined ? rate(r.gflop, r.ceilingMs) : '', pct(eff)];
  });
  if (rest.length > 0) {
    const ms = rest.reduce((a, r) => a + r.ms, 0);
    cells.push([`${rest.length} more kinds/shapes`, String(rest.reduce((a, r) => a + r.nodes, 0)), ms.toFixed(1), pct(ms / total), '', '', '']);
  }
  const convMs = rows.filter((r) => r.gflop > 0).reduce((a, r) => a + r.ms, 0);
  const gflop = rows.reduce((a, r) => a + r.gflop, 0);
  cells.push(['all kernels', String(nodes.length), total.toFixed(1), '100%', rate(gflop, total), ceiling.gflopPerS.toFixed(0), pct(gflop / (total / 1000) / ceiling.gflopPerS)]);
  return `profile of one run, ${label} (ORT kernel times; the kernels with FLOPs took ${pct(convMs / total)} of it):\n`
    + table(['op (conv: in>out kernel in>out batch)', 'nodes', 'ms', 'share', 'GFLOP/s', 'standalone GFLOP/s', 'of ceiling'], cells);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const flag = (name: string) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`usage: npm run bench [-- --only forward|train|torchvision|int8] [--runs N] [--threads N] [--no-torch] [--no-torchvision]
                       [--no-profile] [--upsample convtranspose|blocks|phases|phaserows] [--net NAME,...] [--no-b32]
  forward and training-step times of our graphs next to PyTorch 1.13 (/usr/bin/python3 with torch), in
  the same run, each case in its own process; rows for the book's FCN at 320x480 and torchvision's
  fcn_resnet50 / deeplabv3_resnet50 (forward 520x520, training step 320x320 batch 4),
  lraspp_mobilenet_v3_large / deeplabv3_mobilenet_v3_large (forward 520x520). Each row is set
  against the conv ceiling of its network and shapes: every convolution standalone (constant weights,
  level 'all', best of the runs), combined weighted by FLOPs; a training step counts 3x its forward.
  Then, per case, a table of ORT's profile of one run: time, GFLOP/s and efficiency by op and conv shape.
  --only        forward or train rows only, torchvision's networks only, or int8 against float32 forward rows
  --runs N      timed runs per case (median reported; best of N for the ceiling)
  --threads N   ONNX Runtime / PyTorch threads (default: all cores)
  --no-torch    skip the PyTorch column    --no-torchvision  skip torchvision's networks
  --no-profile  skip the profiled run and its tables
  --upsample    the inference graph's transposed convolutions: ORT's ConvTranspose, the block GEMM (default)
                or the phase GEMM (graph/phaseupsample.ts; phaserows: columns kept whole)
  --net         only these torchvision networks' rows (comma-separated)
  --no-b32      skip the batch-32 full training step (the book's batch; at most 2 runs after 1 warm-up, not profiled)
`);
    return;
  }
  if (argv[0] === '--child') {
    const c = JSON.parse(argv[1]!) as Case;
    const r = await runCase(c, Number(argv[2]), Number(argv[3]), Number(argv[4]), argv[5] === 'profile');
    process.stdout.write(JSON.stringify(r) + '\n');
    return;
  }
  const runs = Number(flag('--runs') ?? 5);
  const warmup = 2;
  const threads = Number(flag('--threads') ?? availableParallelism());
  const only = flag('--only');
  const profile = !argv.includes('--no-profile');
  const withTorch = !argv.includes('--no-torch') && torchAvailable();
  const S = { height: 320, width: 480 };
  const cases: Case[] = [];
  const upsample = flag('--upsample') as Case['upsample'];
  if (upsample && !['convtranspose', 'blocks', 'phases', 'phaserows'].includes(upsample)) {
    throw new Error(`--upsample expects convtranspose, blocks, phases or phaserows, got '${upsample}'`);
  }
  if (only !== undefined && !['forward', 'train', 'torchvision', 'int8'].includes(only)) throw new Error(`--only expects forward, train, torchvision or int8, got '${only}'`);
  const book = only !== 'torchvision' && only !== 'int8';
  if (only === 'int8') {
    for (const batch of [1, 4]) cases.push({ task: 'forward', mode: 'full', batch, ...S }, { task: 'forward', mode: 'full', batch, int8: true, ...S });
    if (!argv.includes('--no-torchvision')) {
      const tv = { task: 'forward', mode: 'full', batch: 1, height: 520, width: 520, net: 'fcn_resnet50' } as const;
      cases.push(tv, { ...tv, int8: true });
    }
  }
  if (book && only !== 'train') cases.push({ task: 'forward', mode: 'full', batch: 1, upsample, ...S }, { task: 'forward', mode: 'full', batch: 4, upsample, ...S });
  if (book && only !== 'forward') {
    for (const batch of [4, 8]) for (const mode of ['head', 'full'] as const) cases.push({ task: 'train', mode, batch, ...S });
    // the book's own batch: time and peak memory of the full step (heavy: at most 2 runs after 1 warm-up)
    if (!argv.includes('--no-b32')) cases.push({ task: 'train', mode: 'full', batch: 32, maxRuns: 2, ...S });
  }
  if (!argv.includes('--no-torchvision') && only !== 'int8') {
    const keep = flag('--net')?.split(',');
    const rows: [TorchvisionNetwork, boolean][] = [
      ['fcn_resnet50', true], ['deeplabv3_resnet50', true], ['lraspp_mobilenet_v3_large', false], ['deeplabv3_mobilenet_v3_large', false],
    ];
    for (const [net, train] of rows) {
      if (keep && !keep.includes(net)) continue;
      if (only !== 'train') cases.push({ task: 'forward', mode: 'full', batch: 1, height: 520, width: 520, net });
      if (only !== 'forward' && train) cases.push({ task: 'train', mode: 'full', batch: 4, height: 320, width: 320, net });
    }
  }
  process.stdout.write(`fcn benchmark: ${cpus()[0]?.model ?? 'cpu'}, ${availableParallelism()} cores, ${threads} threads, ${runs} runs after ${warmup} warm-ups, input ${S.height}x${S.width}\n`);
  if (withTorch) process.stdout.write(openblasNote() + '\n');
  else process.stdout.write('PyTorch not available (/usr/bin/python3 with torch): ours only\n');
  // the yardstick: each network's own convolutions standalone at their best, per (network, batch, size)
  const ceilings = new Map<string, Ceiling>();
  const ceilingOf = (c: Case): Ceiling => {
    const key = `${c.net ?? 'book'} b${c.batch} ${c.height}x${c.width}`;
    let found = ceilings.get(key);
    if (!found) {
      process.stderr.write(`measuring the conv ceiling of ${key} ...\n`);
      const r = child([here, '--child', JSON.stringify({ ...c, task: 'ceiling' }), String(runs), '1', String(threads)]);
      if (!r.ceiling) throw new Error(`the ceiling of ${key} failed: ${r.note}`);
      found = combine(r.ceiling);
      ceilings.set(key, found);
      const rates = found.rows.map((r) => r.flop / 1e6 / r.best_ms);
      process.stdout.write(`ceiling ${key}: ${found.rows.length} conv shapes standalone, ${found.totalGflop.toFixed(1)} GFLOP in ${found.totalMs.toFixed(0)} ms = `
        + `${found.gflopPerS.toFixed(0)} GFLOP/s (shapes ${Math.min(...rates).toFixed(0)}-${Math.max(...rates).toFixed(0)})\n`);
    }
    return found;
  };
  const rows: string[][] = [];
  const profiles: string[] = [];
  // int8 rows: the speed-up over the float32 row before them and the time against PyTorch's float32
  let lastFloat: { ours: Result; torch?: Result } | undefined;
  const int8Notes: string[] = [];
  for (const c of cases) {
    const what = c.net ? `${c.net} ${c.height}x${c.width} ` : '';
    const label = what + (c.task === 'forward' ? `forward b${c.batch}${c.int8 ? ' int8' : ''}` : `train step b${c.batch}, ${c.mode === 'head' ? 'head only' : 'full'}`);
    const ceiling = ceilingOf(c);
    process.stderr.write(`running ${label} ...\n`);
    const [caseRuns, caseWarmup] = c.maxRuns ? [Math.min(runs, c.maxRuns), 1] : [runs, warmup];
    const ours = child([here, '--child', JSON.stringify(c), String(caseRuns), String(caseWarmup), String(threads), profile && !c.maxRuns ? 'profile' : '']);
    const torch = withTorch
      ? child([torchScript, c.task, '--mode', c.mode, '--batch', String(c.batch), '--height', String(c.height), '--width', String(c.width),
        '--runs', String(caseRuns), '--warmup', String(caseWarmup), '--threads', String(threads), ...(c.net ? ['--net', c.net] : []), ...(c.int8 ? ['--int8'] : [])], PYTHON)
      : undefined;
    // the forward is the logits (as PyTorch's net(x)), no argmax;
    // a full training step costs about 3x its forward (forward, input gradients, weight gradients);
    // a head-only one has no single multiple (the frozen body runs forward only): no rate
    const factor = c.task === 'forward' ? 1 : c.mode === 'full' ? 3 : NaN;
    const gflop = factor * ceiling.totalGflop;
    const fmt = (r?: Result) => (r && Number.isFinite(r.median_ms) ? r.median_ms.toFixed(0) : r?.note ? `failed: ${r.note}` : '—');
    if (c.task === 'forward' && !c.int8) lastFloat = { ours, torch };
    if (c.int8 && lastFloat) {
      const up = lastFloat.ours.median_ms / ours.median_ms;
      const vsTorch = lastFloat.torch ? ours.median_ms / lastFloat.torch.median_ms : NaN;
      int8Notes.push(`${label}: ${up.toFixed(2)}x faster than our float32` + (Number.isFinite(vsTorch) ? `, ${vsTorch.toFixed(2)}x PyTorch float32's time` : '') +
        (torch && Number.isFinite(torch.median_ms) ? `; PyTorch int8 ${(lastFloat.torch!.median_ms / torch.median_ms).toFixed(2)}x faster than PyTorch float32` : ''));
    }
    rows.push([
      label,
      fmt(ours),
      rate(gflop, ours.median_ms),
      pct((factor * ceiling.totalMs) / ours.median_ms),
      Number.isFinite(ours.peak_rss_mb) ? ours.peak_rss_mb.toFixed(0) : '',
      fmt(torch),
      torch ? rate(gflop, torch.median_ms) : '',
      torch && Number.isFinite(torch.peak_rss_mb) ? torch.peak_rss_mb.toFixed(0) : '',
      torch && Number.isFinite(torch.median_ms) && Number.isFinite(ours.median_ms) ? (ours.median_ms / torch.median_ms).toFixed(2) + 'x' : '',
    ]);
    if (ours.profile) profiles.push(profileTable(label, ours.profile, ceiling, c.task === 'forward'));
  }
  process.stdout.write(table(['case', 'ours ms', 'ours GFLOP/s', 'of ceiling', 'ours peak MB', 'PyTorch ms', 'PyTorch GFLOP/s', 'PyTorch peak MB', 'ours/PyTorch time'], rows));
  process.stdout.write('median of the runs; each cell its own process; compare ratios within one run (these machines drift 2-3x);\n'
    + '"of ceiling": the network\'s convolutions\' standalone best time (x3 for a full training step) over the case\'s time\n\n');
  for (const n of int8Notes) process.stdout.write(n + '\n');
  for (const p of profiles) process.stdout.write(p + '\n');
}

await main();
