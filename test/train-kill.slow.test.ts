// fcn train killed between its end-of-epoch writes (SIGKILL at a chosen point through the
// FCN_TEST_KILL_AT hook; the part-written temp file of a kill during a write is planted), and out of disk space at its first write (a file-size limit). What
// the next run prints is what is on disk, it removes the killed run's temp files, resumed or not,
// and a run that could not write its first file leaves no output folder behind.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from './helpers/fixtures.js';
import { generateSynthVoc } from '../src/data/synth.js';
import { loadCheckpoint } from '../src/weights/checkpoint.js';
import { decodeTrainState } from '../src/train/state.js';

let tmp: string;
let data: string;
const args = (out: string, ...more: string[]) => [
  'bin/fcn.js', 'train', '--data', data, '--out', out, '--epochs', '1', '--batch-size', '2', '--crop', '32x32', '--lr', '0.001',
  '--seed', '1', '--scratch', '--threads', '2', '--grid', '0', '--eval-limit', '1', ...more,
];
const fcn = (argv: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, argv, { cwd: repoRoot, encoding: 'utf8', env: { ...process.env, ...env } });
const temps = (dir: string) => fs.readdirSync(dir).filter((n) => n.endsWith('.tmp'));
const epochIn = async (file: string) => decodeTrainState((await loadCheckpoint(file)).metadata, file).epoch;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fcn-train-kill-'));
  data = path.join(tmp, 'data');
  await generateSynthVoc(data, { train: 2, val: 1, size: [80, 80], seed: 4 });
});

after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** What a kill in the middle of writing best.safetensors leaves: part of it, under the temp name of a process now gone. */
function plantTemp(out: string): void {
  fs.writeFileSync(path.join(out, `.best.safetensors.${2 ** 22 + 4321}.1700000000000.tmp`), fs.readFileSync(path.join(out, 'last.safetensors')).subarray(0, 4096));
}

test('killed while writing epoch 1\'s best: the resumed run removes the temp file, writes best, and prints what is on disk', async () => {
  const out = path.join(tmp, 'run');
  const killed = fcn(args(out), { FCN_TEST_KILL_AT: 'last-written:1' });
  assert.equal(killed.signal, 'SIGKILL', killed.stderr);
  assert.equal(await epochIn(path.join(out, 'last.safetensors')), 1);
  assert.equal(fs.existsSync(path.join(out, 'best.safetensors')), false);
  plantTemp(out);

  const resumed = fcn(args(out, '--resume'));
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stdout, /removed \.best\.safetensors\.\d+\.\d+\.tmp/);
  assert.match(resumed.stdout, /best\.safetensors was missing; rewrote it with epoch 1/);
  assert.match(resumed.stdout, /nothing to do/);
  assert.match(resumed.stdout, /best\.safetensors \(epoch 1, val mIoU \d\.\d{3}\)/);
  assert.equal(await epochIn(path.join(out, 'best.safetensors')), 1);
  assert.deepEqual(fs.readFileSync(path.join(out, 'best.safetensors')), fs.readFileSync(path.join(out, 'last.safetensors')));
  assert.deepEqual(temps(out), []);
});

test('a fresh run in a killed run\'s folder removes its temp files too', () => {
  const out = path.join(tmp, 'fresh');
  const killed = fcn(args(out), { FCN_TEST_KILL_AT: 'last-written:1' });
  assert.equal(killed.signal, 'SIGKILL', killed.stderr);
  plantTemp(out);
  assert.equal(temps(out).length, 1);
  const again = fcn(args(out));
  assert.equal(again.status, 0, again.stderr);
  assert.deepEqual(temps(out), []);
  assert.match(again.stdout, /best\.safetensors \(epoch 1,/);
});

test('out of space at the first write: one line, exit 1, and no output folder left behind', { skip: process.platform === 'win32' }, () => {
  const out = path.join(tmp, 'full', 'run');
  // a 1 MB file-size limit: last.safetensors (~45 MB) cannot be written; the kernel answers EFBIG, as a full disk answers ENOSPC
  const r = spawnSync('/bin/sh', ['-c', `ulimit -f 2048 && exec "${process.execPath}" "$@"`, 'sh', ...args(out)], { cwd: repoRoot, encoding: 'utf8' });
  assert.equal(r.status, 1, r.stderr);
  const lines = r.stderr.split('\n').filter((l) => l.startsWith('fcn:'));
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /last\.safetensors: cannot write/);
  assert.equal(fs.existsSync(path.join(tmp, 'full')), false);
});
