// `npm run bench`: forward and training-step times of our ONNX Runtime graphs next to PyTorch 1.13
// on the same machine, in the same run, each measurement in its own process (so peak RSS is its
// own). Prints a table; run by hand on a quiet machine (never part of the tests).
//   npm run bench [-- --only forward|train|torchvision|int8] [--runs N] [--threads N] [--no-torch] [--upsample convtranspose|blocks]
//                 [--no-torchvision]
// (rows for torchvision's fcn_resnet50 and deeplabv3_resnet50: forward at 520x520, torchvision's
// evaluation size, and a full training step at 320x320 batch 4; lraspp_mobilenet_v3_large and
// deeplabv3_mobilenet_v3_large: forward at 520x520; --no-torchvision skips them, --net keeps some)
// (--upsample: the inference graph's transposed convolutions, ORT's ConvTranspose or the default block GEMM)
// (--only int8: forward rows of the int8 graph (fcn quantize's) beside float32, with the speed-up, and
// PyTorch's own FX int8 where it runs: the book's FCN b1/b4 at 320x480, fcn_resnet50 b1 at 520x520)
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { availableParallelism, cpus } from 'node:os';
import { fcnResNet18, initParameters, seededRandom, type FcnArchitecture } from '../src/model/index.js';
import { torchvisionNetwork, type TorchvisionNetwork } from '../src/model/torchvision.js';
import { inferShapes } from '../src/graph/train.js';
import { compileInference } from '../src/graph/inference.js';
import { Session } from '../src/engine/session.js';
import { GraphBuilder } from '../src/graph/onnx.js';
import { planQuantization, compileCalibration, compileQuantized, calibratedValues } from '../src/graph/quant.js';
import { GrowingHistogram } from '../src/quantize/ranges.js';

const FORWARD_GFLOP_PER_IMAGE_320x480 = 11.65; // counted with hooks for the book's FCN (DESIGN.md)
const PYTHON = '/usr/bin/python3';
const here = fileURLToPath(import.meta.url);
const torchScript = fileURLToPath(new URL('../../bench/torch_bench.py', import.meta.url));

interface Case {
  task: 'forward' | 'train' | 'gemm'; mode: 'full' | 'head'; batch: number; height: number; width: number; upsample?: 'convtranspose' | 'blocks';
  /** One of torchvision's networks (21 classes, aux head) instead of the book's FCN. */
  net?: TorchvisionNetwork;
  /** Forward of the int8 graph (calibrated min/max on the timed input itself: the speed does not depend on the ranges). */
  int8?: boolean;
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
  return compileQuantized(plan, ranges, { padToStride: false });
}

function caseArch(c: Case): FcnArchitecture {
  return c.net ? torchvisionNetwork(c.net, { numClasses: 21 }) : fcnResNet18({ numClasses: 21 });
}

/** Forward GFLOP of one image: 2 x multiply-adds of every convolution of the inference graph (the
 *  aux head is not run at inference), at the declaration's shapes. */
function forwardGflop(arch: FcnArchitecture, height: number, width: number): number {
  const shapes = inferShapes(arch, 1, height, width);
  const aux = new Set(arch.auxOutput ? arch.layers.filter((l) => 'name' in l && l.name.startsWith('aux_classifier.')).map((l) => l.output) : []);
  let flop = 0;
  for (const l of arch.layers) {
    if (l.op !== 'conv' || aux.has(l.output)) continue;
    const [, , h, w] = shapes.get(l.output)!;
    flop += 2 * l.outChannels * (l.inChannels / (l.groups ?? 1)) * l.kernel * l.kernel * h * w;
  }
  return flop / 1e9;
}
interface Result { median_ms: number; runs_ms: number[]; peak_rss_mb: number; note?: string }

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Runs one case in this process (called in a child). */
async function runCase(c: Case, runs: number, warmup: number, threads: number): Promise<Result> {
  const arch = caseArch(c);
  const weights = initParameters(arch, seededRandom(0));
  const x = new Float32Array(c.batch * 3 * c.height * c.width);
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.37) * 1.5;
  const times: number[] = [];
  if (c.task === 'gemm') {
    // the machine's ceiling for this engine: one large single-precision GEMM (n = c.width)
    const n = c.width;
    const g = new GraphBuilder('gemm');
    g.input('a', 'float32', [n, n]);
    g.input('b', 'float32', [n, n]);
    g.node('MatMul', ['a', 'b'], {}, 'c');
    g.output('c', 'float32', [n, n]);
    const session = await Session.create(g.encode(), { threads });
    const a = new Float32Array(n * n);
    for (let i = 0; i < a.length; i++) a[i] = Math.sin(i * 0.37);
    const feeds = { a: { dtype: 'float32' as const, dims: [n, n], data: a }, b: { dtype: 'float32' as const, dims: [n, n], data: a } };
    for (let i = 0; i < warmup + runs; i++) {
      const t = performance.now();
      await session.run(feeds, ['c']);
      if (i >= warmup) times.push(performance.now() - t);
    }
    await session.dispose();
  } else if (c.task === 'forward') {
    const graph = c.int8 ? await int8Graph(arch, weights, x, c.height, c.width, threads) : compileInference(arch, weights, { batch: c.batch, upsample: c.upsample });
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
  return { median_ms: median(times), runs_ms: times.map((t) => Math.round(t)), peak_rss_mb: process.resourceUsage().maxRSS / 1024 };
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

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const flag = (name: string) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`usage: npm run bench [-- --only forward|train|torchvision|int8] [--runs N] [--threads N] [--no-torch] [--no-torchvision]
                       [--upsample convtranspose|blocks] [--net NAME,...]
  forward and training-step times of our graphs next to PyTorch 1.13 (/usr/bin/python3 with torch), in
  the same run, each case in its own process; rows for the book's FCN at 320x480 and torchvision's
  fcn_resnet50 / deeplabv3_resnet50 (forward 520x520, training step 320x320 batch 4),
  lraspp_mobilenet_v3_large / deeplabv3_mobilenet_v3_large (forward 520x520).
  --only       forward or train rows only, torchvision's networks only, or int8 against float32 forward rows
  --runs N     timed runs per case (median reported)
  --threads N  ONNX Runtime / PyTorch threads (default: all cores)
  --no-torch   skip the PyTorch column    --no-torchvision  skip torchvision's networks
  --upsample   the inference graph's transposed convolutions: ORT's ConvTranspose or the block GEMM (default)
  --net        only these torchvision networks' rows (comma-separated)
`);
    return;
  }
  if (argv[0] === '--child') {
    const c = JSON.parse(argv[1]!) as Case;
    const r = await runCase(c, Number(argv[2]), Number(argv[3]), Number(argv[4]));
    process.stdout.write(JSON.stringify(r) + '\n');
    return;
  }
  const runs = Number(flag('--runs') ?? 5);
  const warmup = 2;
  const threads = Number(flag('--threads') ?? availableParallelism());
  const only = flag('--only');
  const withTorch = !argv.includes('--no-torch') && torchAvailable();
  const S = { height: 320, width: 480 };
  const cases: Case[] = [];
  const upsample = flag('--upsample') as Case['upsample'];
  if (upsample && upsample !== 'convtranspose' && upsample !== 'blocks') throw new Error(`--upsample expects convtranspose or blocks, got '${upsample}'`);
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
  // what one large SGEMM reaches through ONNX Runtime here: the rate no convolution can beat
  const GEMM_N = 2048;
  const gemm = child([here, '--child', JSON.stringify({ task: 'gemm', mode: 'full', batch: 1, height: GEMM_N, width: GEMM_N }), String(runs), String(warmup), String(threads)]);
  const gemmRate = gemm.runs_ms.length > 0 ? ((2 * GEMM_N ** 3) / 1e9 / (Math.min(...gemm.runs_ms) / 1000)).toFixed(0) : `failed: ${gemm.note}`;
  process.stdout.write(`ceiling: a ${GEMM_N}x${GEMM_N}x${GEMM_N} float32 MatMul through ONNX Runtime runs at ${gemmRate} GFLOP/s (best run) on ${threads} threads\n`);
  const rows: string[][] = [];
  // int8 rows: the speed-up over the float32 row before them and the time against PyTorch's float32
  let lastFloat: { ours: Result; torch?: Result } | undefined;
  const int8Notes: string[] = [];
  for (const c of cases) {
    const what = c.net ? `${c.net} ${c.height}x${c.width} ` : '';
    const label = what + (c.task === 'forward' ? `forward b${c.batch}${c.int8 ? ' int8' : ''}` : `train step b${c.batch}, ${c.mode === 'head' ? 'head only' : 'full'}`);
    process.stderr.write(`running ${label} ...\n`);
    const ours = child([here, '--child', JSON.stringify(c), String(runs), String(warmup), String(threads)]);
    const torch = withTorch
      ? child([torchScript, c.task, '--mode', c.mode, '--batch', String(c.batch), '--height', String(c.height), '--width', String(c.width),
        '--runs', String(runs), '--warmup', String(warmup), '--threads', String(threads), ...(c.net ? ['--net', c.net] : []), ...(c.int8 ? ['--int8'] : [])], PYTHON)
      : undefined;
    // a training step costs about 3x its forward (forward, input gradients, weight gradients)
    const perImage = c.net ? forwardGflop(caseArch(c), c.height, c.width) : FORWARD_GFLOP_PER_IMAGE_320x480;
    const gflop = c.task === 'forward' ? perImage * c.batch : c.net ? 3 * perImage * c.batch : NaN;
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
      Number.isFinite(gflop) && Number.isFinite(ours.median_ms) ? (gflop / (ours.median_ms / 1000)).toFixed(0) : '',
      Number.isFinite(ours.peak_rss_mb) ? ours.peak_rss_mb.toFixed(0) : '',
      fmt(torch),
      torch && Number.isFinite(gflop) && Number.isFinite(torch.median_ms) ? (gflop / (torch.median_ms / 1000)).toFixed(0) : '',
      torch && Number.isFinite(torch.peak_rss_mb) ? torch.peak_rss_mb.toFixed(0) : '',
      torch && Number.isFinite(torch.median_ms) && Number.isFinite(ours.median_ms) ? (ours.median_ms / torch.median_ms).toFixed(2) + 'x' : '',
    ]);
  }
  const header = ['case', 'ours ms', 'ours GFLOP/s', 'ours peak MB', 'PyTorch ms', 'PyTorch GFLOP/s', 'PyTorch peak MB', 'ours/PyTorch time'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => '| ' + cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ') + ' |';
  process.stdout.write([line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n') + '\n');
  for (const n of int8Notes) process.stdout.write(n + '\n');
  process.stdout.write('median of the runs; each cell its own process; compare ratios within one run (these machines drift 2-3x)\n');
}

await main();
