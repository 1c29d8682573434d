// Whole processes, fcn's CLI against PyTorch scripts doing the same job, each timed from spawn to exit
// (module loading, graph compilation, data reading and file writing included), both sides back to
// back in one run. Run by hand (never part of the tests); needs /usr/bin/python3 with torch.
//   node dist/bench/process.js [--only finetune|predict|train] [--threads N] [--keep DIR]
//        [--net fcn_resnet50] [--epochs 3] [--train 16] [--val 8] [--crop 160] [--batch 4] [--lr X] [--momentum X] [--wd X]
// Sections:
//   finetune  `fcn train --init sd.pth` (a seeded random torchvision state_dict, the network recognised
//             from its keys) against scripts/finetune_torch.py with the same recipe, data, crops (fcn's own
//             generator, ported) and val scoring: both val mIoUs (the goal: within 0.05) and wall times.
//   predict   `fcn predict` of 16 images at 320x480 (the book's FCN from a PyTorch state_dict) against
//             scripts/predict_torch.py (load, predict, write PNGs); 1-image runs split start-up from
//             per-image time; fcn twice in a row (the first with an empty graph cache in the run's folder, the second with what the first left there); fcn's
//             start-up split into phases by bench/startup.ts.
//   train     one epoch of `fcn train` on 32 images at 320x480, batch 4, full and --freeze-backbone,
//             against finetune_torch.py's book FCN; then fcn train's start-up, steps, val and saving
//             split into phases by bench/startup.ts (one process per mode).
// Both sides get the same thread count; `fcn train` runs with --grid 0 (the PyTorch side draws no grid).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateSynthVoc } from '../src/data/synth.js';

const PYTHON = '/usr/bin/python3';
const FCN = fileURLToPath(new URL('../../bin/fcn.js', import.meta.url));
const FINETUNE_PY = fileURLToPath(new URL('../../scripts/finetune_torch.py', import.meta.url));
const PREDICT_PY = fileURLToPath(new URL('../../scripts/predict_torch.py', import.meta.url));
const STARTUP = fileURLToPath(new URL('./startup.js', import.meta.url));
const SECTIONS = ['finetune', 'predict', 'train'] as const;

interface Timed {
  seconds: number;
  /** Seconds from spawn to the first mask PNG in `watch` (predict runs). */
  firstFile?: number;
  stdout: string;
}

/**
 * Environment for every child: fcn's graph cache in the run's own folder (set by main), so the first
 * `fcn predict` of a run starts cold whatever earlier runs left in ~/.cache, and the second finds it warm.
 */
const childEnv: Record<string, string> = {};

/** Runs a command to its end; fails with its last stderr lines when it does. Polls `watch` for the first finished *.png. */
function timed(cmd: string, args: string[], watch?: string): Promise<Timed> {
  return new Promise((resolvePromise, reject) => {
    const t0 = performance.now();
    let firstFile: number | undefined;
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...childEnv } });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
    const poll = watch ? setInterval(() => {
      if (firstFile === undefined && existsSync(watch) && readdirSync(watch).some((f) => /^[^.].*\.png$/.test(f))) firstFile = (performance.now() - t0) / 1000;
    }, 10) : undefined;
    child.on('error', reject);
    child.on('close', (code) => {
      if (poll) clearInterval(poll);
      const seconds = (performance.now() - t0) / 1000;
      if (code !== 0) reject(new Error(`${[cmd, ...args].join(' ')} exited ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`));
      else resolvePromise({ seconds, firstFile, stdout });
    });
  });
}

function lastJson<T>(stdout: string): T {
  const line = stdout.trim().split('\n').reverse().find((l) => l.startsWith('{'));
  if (!line) throw new Error(`no JSON line in: ${stdout.slice(-300)}`);
  return JSON.parse(line) as T;
}

interface FcnEpoch { epoch: number; loss: number; testMeanIoU: number; testAccuracy: number; trainSeconds: number; evalSeconds: number }
function fcnMetrics(out: string): FcnEpoch[] {
  return readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as FcnEpoch);
}

interface TorchRun {
  valMeanIoU: number; valPixelAccuracy: number; trainSeconds: number; evalSeconds: number; firstStepSeconds: number; wallSeconds: number;
  history: { epoch: number; loss: number; valMeanIoU: number }[];
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => '| ' + cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ') + ' |';
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n') + '\n';
}

const s = (x: number) => x.toFixed(1);
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
const say = (line: string) => process.stdout.write(line + '\n');
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');

interface Args {
  dir: string; threads: number; net: string; epochs: number; train: number; val: number; crop: number; batch: number;
  lr: number; momentum: number; wd: number;
}

async function finetune(a: Args): Promise<void> {
  const data = join(a.dir, 'finetune-data');
  // sides drawn around crop*1.2 within ±15%: every image holds the crop, and the crops move
  const base = Math.round(a.crop * 1.2);
  await generateSynthVoc(data, { train: a.train, val: a.val, size: [base, base], spread: 0.15, seed: 0 });
  const sd = join(a.dir, `${a.net}.pth`);
  // the synthetic set's 6 classes (its labelmap.txt), so both sides fine-tune the state_dict's own class layers
  await timed(PYTHON, [FINETUNE_PY, '--write-init', sd, '--net', a.net, '--num-classes', '6', '--seed', '0']);
  const recipe = ['--epochs', String(a.epochs), '--batch-size', String(a.batch), '--crop', `${a.crop}x${a.crop}`, '--lr', String(a.lr),
    '--momentum', String(a.momentum), '--wd', String(a.wd), '--threads', String(a.threads), '--seed', '0'];
  say(`finetune: ${a.net} from a seeded random state_dict, synthetic ${a.train} train / ${a.val} val (sides ${Math.round(base * 0.85)}..${Math.round(base * 1.15)}), ` +
    `crop ${a.crop}x${a.crop}, batch ${a.batch}, ${a.epochs} epochs, lr ${a.lr}, momentum ${a.momentum}, wd ${a.wd}, ${a.threads} threads; load ${load()}`);
  const fcnOut = join(a.dir, 'finetune-fcn');
  const fcnArgs = [FCN, 'train', '--data', data, '--init', sd, '--out', fcnOut, '--grid', '0', ...recipe];
  say(`  fcn: node ${fcnArgs.map((x) => x.replace(a.dir, '$DIR')).join(' ')}`);
  const ours = await timed(process.execPath, fcnArgs);
  const fm = fcnMetrics(fcnOut);
  const torchArgs = [FINETUNE_PY, '--data', data, '--init', sd, '--out', join(a.dir, 'finetune-torch'), ...recipe];
  say(`  PyTorch: python3 ${torchArgs.map((x) => x.replace(a.dir, '$DIR')).join(' ')}`);
  const theirs = await timed(PYTHON, torchArgs);
  const tm = lastJson<TorchRun>(theirs.stdout);
  const rows = fm.map((e, i) => [String(e.epoch), e.loss.toFixed(4), e.testMeanIoU.toFixed(3), tm.history[i]?.loss.toFixed(4) ?? '', tm.history[i]?.valMeanIoU.toFixed(3) ?? '']);
  say(table(['epoch', 'fcn loss', 'fcn val mIoU', 'PyTorch loss', 'PyTorch val mIoU'], rows));
  const fcnTrain = fm.reduce((t, e) => t + e.trainSeconds, 0), fcnEval = fm.reduce((t, e) => t + e.evalSeconds, 0);
  say(table(['', 'whole process s', 'training s', 'val scoring s', 'the rest s'], [
    ['fcn train', s(ours.seconds), s(fcnTrain), s(fcnEval), s(ours.seconds - fcnTrain - fcnEval)],
    ['PyTorch', s(theirs.seconds), s(tm.trainSeconds), s(tm.evalSeconds), s(theirs.seconds - tm.trainSeconds - tm.evalSeconds)],
  ]));
  const diff = Math.abs(fm[fm.length - 1]!.testMeanIoU - tm.valMeanIoU);
  say(`  final val mIoU: fcn ${fm[fm.length - 1]!.testMeanIoU.toFixed(3)}, PyTorch ${tm.valMeanIoU.toFixed(3)} (|difference| ${diff.toFixed(3)}, goal <= 0.05: ${diff <= 0.05 ? 'met' : 'NOT met'}); ` +
    `whole process fcn/PyTorch ${ratio(ours.seconds, theirs.seconds)} (goal <= 1: ${ours.seconds <= theirs.seconds ? 'met' : 'NOT met'}); load ${load()}`);
}

async function predict(a: Args): Promise<void> {
  const data = join(a.dir, 'process-data');
  const images = readdirSync(join(data, 'JPEGImages')).filter((f) => f.startsWith('val_')).sort().map((f) => join(data, 'JPEGImages', f));
  const sd = join(a.dir, 'book.pth');
  await timed(PYTHON, [FINETUNE_PY, '--write-init', sd, '--net', 'book', '--num-classes', '21', '--seed', '0']);
  say(`predict: the book's FCN-32s (a PyTorch state_dict), ${images.length} images at 320x480, ${a.threads} threads; load ${load()}`);
  let k = 0;
  const run = async (engine: 'fcn' | 'torch', n: number): Promise<Timed> => {
    const out = join(a.dir, `predict-${engine}-${k++}`);
    const args = engine === 'fcn' ? [FCN, 'predict', '--model', sd, '--out', out, '--threads', String(a.threads), ...images.slice(0, n)]
      : [PREDICT_PY, '--model', sd, '--out', out, '--threads', String(a.threads), ...images.slice(0, n)];
    return timed(engine === 'fcn' ? process.execPath : PYTHON, args, out);
  };
  const n = images.length;
  const f1 = await run('fcn', n), t1 = await run('torch', n);
  const f2 = await run('fcn', n), t2 = await run('torch', n);
  const fOne = await run('fcn', 1), tOne = await run('torch', 1);
  // the start-up's first part: loading the CLI's modules (onnxruntime, sharp, ...) / importing torch and torchvision
  const fLoad = await timed(process.execPath, [FCN, 'predict', '--help']);
  const tLoad = await timed(PYTHON, ['-c', 'import torch, torchvision, PIL.Image']);
  const phases = lastJson<Record<string, number>>((await timed(process.execPath, [STARTUP, sd, images[0]!, String(a.threads)])).stdout);
  const perImage = (all: Timed, one: Timed) => (all.seconds - one.seconds) / (n - 1);
  const best = (x: Timed, y: Timed) => (x.seconds <= y.seconds ? x : y);
  const fb = best(f1, f2), tb = best(t1, t2);
  say(table(['', `${n} images s (run 1, run 2)`, 'first mask at s (run 1, run 2)', '1 image s', 'per image s (from the best runs)',
    'start-up s (1 image - per image)', 'of which module loading s'], [
    ['fcn predict', `${s(f1.seconds)}, ${s(f2.seconds)}`, `${f1.firstFile?.toFixed(2)}, ${f2.firstFile?.toFixed(2)}`, s(fOne.seconds),
      perImage(fb, fOne).toFixed(3), s(fOne.seconds - perImage(fb, fOne)), `${s(fLoad.seconds)} (fcn predict --help)`],
    ['PyTorch', `${s(t1.seconds)}, ${s(t2.seconds)}`, `${t1.firstFile?.toFixed(2)}, ${t2.firstFile?.toFixed(2)}`, s(tOne.seconds),
      perImage(tb, tOne).toFixed(3), s(tOne.seconds - perImage(tb, tOne)), `${s(tLoad.seconds)} (import torch, torchvision)`],
  ]));
  say(`  fcn/PyTorch: ${n} images ${ratio(fb.seconds, tb.seconds)} (best of 2 each; goal <= 0.5), per image ${ratio(perImage(fb, fOne), perImage(tb, tOne))}, ` +
    `first mask ${ratio(fb.firstFile!, tb.firstFile!)}; fcn's second run ${f2.seconds < f1.seconds ? 'faster' : 'not faster'} than its first; load ${load()}`);
  say(`  fcn's start-up by phase, ms (bench/startup.js, one process): ${Object.entries(phases).map(([k, v]) => `${k} ${v}`).join(', ')}`);
}

async function trainProcess(a: Args): Promise<void> {
  const data = join(a.dir, 'process-data');
  say(`train: one epoch of the book's FCN-32s from random weights on 32 images at 320x480 (crop 320x480), batch 4, val scored on 8, ${a.threads} threads; load ${load()}`);
  const rows: string[][] = [];
  const ratios: string[] = [];
  for (const mode of ['full', 'head'] as const) {
    const freeze = mode === 'head' ? ['--freeze-backbone'] : [];
    const recipe = ['--epochs', '1', '--batch-size', '4', '--eval-limit', '8', '--threads', String(a.threads), ...freeze];
    const fcnOut = join(a.dir, `train-fcn-${mode}`);
    const ours = await timed(process.execPath, [FCN, 'train', '--data', data, '--scratch', '--out', fcnOut, '--grid', '0', ...recipe]);
    const fm = fcnMetrics(fcnOut)[0]!;
    const theirs = await timed(PYTHON, [FINETUNE_PY, '--data', data, '--num-classes', '6', '--out', join(a.dir, `train-torch-${mode}`), ...recipe]);
    const tm = lastJson<TorchRun>(theirs.stdout);
    const label = mode === 'head' ? '--freeze-backbone' : 'full';
    rows.push([`fcn train, ${label}`, s(ours.seconds), s(fm.trainSeconds), s(fm.evalSeconds), s(ours.seconds - fm.trainSeconds - fm.evalSeconds)]);
    rows.push([`PyTorch, ${label}`, s(theirs.seconds), s(tm.trainSeconds), s(tm.evalSeconds), s(theirs.seconds - tm.trainSeconds - tm.evalSeconds)]);
    ratios.push(`${label} ${ratio(ours.seconds, theirs.seconds)} (goal <= ${mode === 'head' ? '0.4' : '0.75'}; the epoch's steps alone ${ratio(fm.trainSeconds, tm.trainSeconds)})`);
  }
  say(table(['', 'whole process s', 'training s', 'val scoring s', 'start-up and saving s'], rows));
  say(`  fcn/PyTorch whole process: ${ratios.join('; ')}; load ${load()}`);
  for (const mode of ['full', 'head'] as const) {
    const args = [STARTUP, 'train', data, String(a.threads), ...(mode === 'head' ? ['--freeze-backbone'] : [])];
    const phases = lastJson<Record<string, number>>((await timed(process.execPath, args)).stdout);
    say(`  fcn train's phases, ${mode === 'head' ? '--freeze-backbone' : 'full'}, ms (bench/startup.js train, one process): ${Object.entries(phases).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  }
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const flag = (name: string) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`usage: node dist/bench/process.js [--only finetune|predict|train] [--threads N] [--keep DIR]
         [--net fcn_resnet50] [--epochs 3] [--train 16] [--val 8] [--crop 160] [--batch 4] [--lr 0.001] [--momentum 0] [--wd 0.001]
  whole processes of fcn's CLI against PyTorch scripts doing the same (scripts/finetune_torch.py,
  scripts/predict_torch.py), timed from spawn to exit, back to back in one run
  finetune   fcn train --init (a torchvision state_dict) vs PyTorch: val mIoU and wall time
  predict    fcn predict of 16 images at 320x480 vs PyTorch: wall, first mask, start-up vs per image
  train      one epoch of fcn train (32 images 320x480, batch 4), full and --freeze-backbone, vs PyTorch
  --keep DIR   work in DIR and leave it (default: a temporary folder, removed)
  the finetune recipe (defaults: fcn train's own lr, momentum, wd): --net --epochs --train --val --crop --batch --lr --momentum --wd
`);
    return;
  }
  const only = flag('--only');
  if (only !== undefined && !(SECTIONS as readonly string[]).includes(only)) throw new Error(`--only expects ${SECTIONS.join(', ')}, got '${only}'`);
  if (spawnSync(PYTHON, ['-c', 'import torch, torchvision'], { encoding: 'utf8' }).status !== 0) throw new Error(`${PYTHON} with torch and torchvision is needed`);
  const keep = flag('--keep');
  const dir = keep ?? mkdtempSync(join(tmpdir(), 'fcn-process-'));
  const num = (name: string, d: number) => { const v = flag(name); const n = v === undefined ? d : Number(v); if (!Number.isFinite(n)) throw new Error(`${name} expects a number, got '${v}'`); return n; };
  const a: Args = {
    dir, threads: num('--threads', availableParallelism()), net: flag('--net') ?? 'fcn_resnet50', epochs: num('--epochs', 3), train: num('--train', 16),
    val: num('--val', 8), crop: num('--crop', 160), batch: num('--batch', 4), lr: num('--lr', 0.001), momentum: num('--momentum', 0), wd: num('--wd', 1e-3),
  };
  childEnv.FCN_GRAPH_CACHE = join(dir, 'graph-cache');
  say(`fcn whole-process bench: ${cpus()[0]?.model ?? 'cpu'}, ${availableParallelism()} cores, ${a.threads} threads; working in ${dir}`);
  try {
    if (only === undefined || only === 'predict' || only === 'train') {
      // 32 train and 16 val images of exactly 320x480: every image is a whole crop
      await generateSynthVoc(join(dir, 'process-data'), { train: 32, val: 16, size: [320, 480], spread: 0, seed: 0 });
    }
    if (only === undefined || only === 'finetune') await finetune(a);
    if (only === undefined || only === 'predict') await predict(a);
    if (only === undefined || only === 'train') await trainProcess(a);
  } finally {
    if (!keep) rmSync(dir, { recursive: true, force: true });
  }
}

await main();
