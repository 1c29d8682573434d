// --resume: a run killed (SIGKILL) in the middle of its second epoch continues from the last
// completed epoch and ends with exactly the numbers and weights of an uninterrupted run with the same
// seed; the checkpoint on disk is whole at any moment. Resuming without a checkpoint, or with
// different options, is a clear error that changes nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from './helpers/fixtures.js';
import { generateSynthVoc } from '../src/data/synth.js';
import { loadCheckpoint } from '../src/weights/checkpoint.js';
import { decodeTrainState, type EpochMetrics } from '../src/train/state.js';

let tmp: string;
let data: string;
const cli = (args: string[]) => spawnSync(process.execPath, ['bin/fcn.js', ...args], { cwd: repoRoot, encoding: 'utf8' });
const sha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');
const args = (out: string, ...more: string[]) => [
  'train', '--data', data, '--out', out, '--epochs', '3', '--batch-size', '2', '--crop', '64x64', '--lr', '0.01', '--momentum', '0.9',
  '--seed', '5', '--scratch', '--threads', '2', '--grid', '0', '--eval-limit', '2', ...more,
];
const readMetrics = (out: string): EpochMetrics[] =>
  fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as EpochMetrics);
/** What must not depend on the interruption (times and throughput may). */
const numbers = (m: EpochMetrics) => ({ epoch: m.epoch, loss: m.loss, trainAccuracy: m.trainAccuracy, testAccuracy: m.testAccuracy, testMeanIoU: m.testMeanIoU, best: m.best });

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fcn-resume-'));
  data = path.join(tmp, 'data');
  await generateSynthVoc(data, { train: 8, val: 2, size: [112, 144], seed: 2 });
});

after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Runs the CLI and SIGKILLs it once `ready(stdout, stderr)` holds; resolves with the outputs. */
function runUntil(argv: string[], ready: (stdout: string, stderr: string) => boolean): Promise<{ stdout: string; stderr: string; killed: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/fcn.js', ...argv], { cwd: repoRoot });
    let stdout = '';
    let stderr = '';
    let killed = false;
    const check = () => {
      if (!killed && ready(stdout, stderr)) {
        killed = true;
        child.kill('SIGKILL');
      }
    };
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); check(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); check(); });
    child.on('error', reject);
    child.on('close', () => resolve({ stdout, stderr, killed }));
  });
}

test('a run killed in its 2nd epoch resumes from epoch 1 and ends exactly as an uninterrupted run', async () => {
  const whole = path.join(tmp, 'whole');
  const r = cli(args(whole));
  assert.equal(r.status, 0, r.stderr);
  const expected = readMetrics(whole);
  assert.deepEqual(expected.map((m) => m.epoch), [1, 2, 3]);

  const cut = path.join(tmp, 'cut');
  const last = path.join(cut, 'last.safetensors');
  // Progress lines go to stderr (plain lines when not a TTY): the first one of epoch 2 is printed
  // after its first batch, i.e. epoch 1's checkpoint is written and epoch 2 is under way.
  const killed = await runUntil(args(cut), (_out, err) => /epoch 2\/3 \d+%/.test(err) && fs.existsSync(last));
  assert.equal(killed.killed, true, `the run finished before it could be killed:\n${killed.stdout}`);
  assert.match(killed.stdout, /epoch 1\/3: loss/);
  assert.doesNotMatch(killed.stdout, /epoch 2\/3: loss/);
  // the checkpoint is whole and says epoch 1
  const ckpt = await loadCheckpoint(last);
  assert.equal(decodeTrainState(ckpt.metadata, last).epoch, 1);
  assert.equal(readMetrics(cut).length, 1);

  const resumed = cli(args(cut, '--resume'));
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stdout, /resuming after epoch 1 of 3/);
  assert.doesNotMatch(resumed.stdout, /epoch 1\/3: loss/);
  assert.deepEqual(readMetrics(cut).map(numbers), expected.map(numbers));
  // bit for bit the same weights, momentum buffers and data RNG state
  const a = await loadCheckpoint(path.join(whole, 'last.safetensors'));
  const b = await loadCheckpoint(last);
  assert.deepEqual(decodeTrainState(b.metadata, 'cut').rng, decodeTrainState(a.metadata, 'whole').rng);
  for (const [name, t] of a.weights) assert.deepEqual(b.weights.get(name), t, name);
  for (const [name, t] of a.extra) assert.deepEqual(b.extra.get(name), t, name);
  assert.deepEqual(fs.readdirSync(cut).filter((n) => n.endsWith('.tmp')), []);

  // a finished run has nothing left to do; raising --epochs would continue it
  const again = cli(args(whole, '--resume'));
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, /nothing to do: .* already finished 3 epochs/);
});

test('--resume without a checkpoint, or with different options, is a one-line error and changes nothing', () => {
  const empty = path.join(tmp, 'empty');
  const r = cli(args(empty, '--resume'));
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^fcn: .*empty[/\\]last\.safetensors: no checkpoint to resume from/);
  assert.equal(fs.existsSync(path.join(empty, 'metrics.jsonl')), false);

  const whole = path.join(tmp, 'whole');
  const prior = sha256(path.join(whole, 'last.safetensors'));
  const cases: [string[], RegExp][] = [
    [['--lr', '0.02'], /cannot resume: --lr was 0\.01 in the saved run but is 0\.02 now/],
    [['--crop', '96x96'], /cannot resume: --crop was 64x64 in the saved run but is 96x96 now/],
    [['--seed', '6'], /cannot resume: --seed was 5/],
  ];
  for (const [flags, message] of cases) {
    // later flags win in commander, so appending overrides the shared ones
    const bad = cli([...args(whole, '--resume'), ...flags]);
    assert.equal(bad.status, 1, `${flags.join(' ')}: ${bad.stderr}`);
    assert.match(bad.stderr, message);
    assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
  }
  assert.equal(sha256(path.join(whole, 'last.safetensors')), prior);
});
