// The queue end to end with real parts: Debian's redis-server on a free loopback port, three
// `fcn worker` processes, `fcn predict --queue` over 200 small images while one worker is SIGKILLed
// mid-run (every mask equals local predict's, none missing or duplicated, the retry is reported);
// `fcn eval --queue` and the merge of `--shard 1/3..3/3` equal a local `fcn eval` exactly; a worker
// with another model fails the run clearly; a bad queue address is a usage error; SIGTERM stops a
// worker cleanly.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { repoRoot } from './helpers/fixtures.js';
import { fcnResNet18, initParameters, seededRandom } from '../src/model/index.js';
import { defaultCard } from '../src/model/card.js';
import { saveCheckpoint } from '../src/weights/checkpoint.js';
import { encodeMask } from '../src/data/image.js';
import { SegmentationModel } from '../src/infer/model.js';
import { predictQueued } from '../src/queue/producer.js';
import { startQueueWorker } from '../src/queue/worker.js';
import { Redis } from 'ioredis';

const REDIS = fs.existsSync('/usr/bin/redis-server') ? '/usr/bin/redis-server' : 'redis-server';
const haveRedis = fs.existsSync(REDIS) || spawnSync('redis-server', ['--version']).status === 0;
const N_IMAGES = 200;

let tmp: string;
let redis: ChildProcess | undefined;
let queueUrl: string;
let model: string;
let otherModel: string;
let images: string[];
let data: string;
const workers: ChildProcess[] = [];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

function cli(args: string[]) {
  return spawnSync(process.execPath, ['bin/fcn.js', ...args], { cwd: repoRoot, encoding: 'utf8', timeout: 120_000 });
}

/** Runs the CLI without blocking the event loop (workers and the kill below need it). */
function cliAsync(args: string[], onStderr?: (text: string, child: ChildProcess) => void): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/fcn.js', ...args], { cwd: repoRoot });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); onStderr?.(stderr, child); });
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** Starts `fcn worker` and resolves once it says it is serving (bounded wait). */
function startWorker(modelPath: string): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/fcn.js', 'worker', '--queue', queueUrl, '--model', modelPath, '--threads', '1', '--lock-ms', '3000', '--quiet'],
      { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] });
    workers.push(child);
    let err = '';
    const timer = setTimeout(() => reject(new Error(`worker did not start in 60 s: ${err}`)), 60_000);
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('serving')) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.on('exit', (code) => { clearTimeout(timer); if (!err.includes('serving')) reject(new Error(`worker exited ${code}: ${err}`)); });
  });
}

async function stopWorkers(): Promise<void> {
  for (const w of workers.splice(0)) {
    if (w.exitCode === null && w.signalCode === null) {
      w.kill('SIGKILL');
      await new Promise((r) => w.once('exit', r));
    }
  }
}

/** A 40x40 picture with a disc and a bar somewhere, so a random network's mask has structure. */
function picture(i: number): Buffer {
  const w = 40;
  const h = 40;
  const px = Buffer.alloc(w * h * 3);
  const cx = 8 + ((i * 7) % 24);
  const cy = 8 + ((i * 13) % 24);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const k = (y * w + x) * 3;
      const disc = (x - cx) ** 2 + (y - cy) ** 2 < 64 + (i % 5) * 20;
      const bar = x > (i % 30) && x < (i % 30) + 6;
      px[k] = disc ? 230 : (x * 255) / w;
      px[k + 1] = bar ? 20 : (y * 255) / h;
      px[k + 2] = (x * y + i * 31) % 256;
    }
  }
  return px;
}

before(async () => {
  if (!haveRedis) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fcn-queue-'));
  const port = await freePort();
  redis = spawn(REDIS, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tmp], { stdio: 'ignore' });
  queueUrl = `redis://127.0.0.1:${port}/0`;
  // a 2-class network with random (seeded) weights, its class-1 bias moved so that the two classes
  // split the pixels (a random net alone calls everything one class); and one with other weights
  const arch = fcnResNet18({ numClasses: 2 });
  const card = { ...defaultCard(2), classes: ['background', 'thing'] };
  model = path.join(tmp, 'model.safetensors');
  otherModel = path.join(tmp, 'other.safetensors');
  const weights = initParameters(arch, seededRandom(11));
  const probe = await SegmentationModel.fromWeights(arch, weights, undefined, { threads: 1 });
  const margins: number[] = [];
  for (let i = 0; i < 8; i++) {
    const l = await probe.logits({ width: 40, height: 40, data: picture(i) });
    for (let p = 0; p < 1600; p++) margins.push(l[1600 + p]! - l[p]!);
  }
  await probe.dispose();
  margins.sort((a, b) => a - b);
  const bias = Float32Array.from(weights.get('final_conv.bias')!);
  bias[1]! -= margins[Math.floor(margins.length * 0.3)]!;
  weights.set('final_conv.bias', bias);
  await saveCheckpoint(model, { arch, weights, ...card, metadata: {}, extra: new Map() });
  await saveCheckpoint(otherModel, { arch, weights: initParameters(arch, seededRandom(12)), ...card, metadata: {}, extra: new Map() });
  // a VOC-layout split of the same pictures (JPEG images, palette masks with some void) for eval
  data = path.join(tmp, 'voc');
  for (const d of ['JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation']) fs.mkdirSync(path.join(data, d), { recursive: true });
  images = [];
  const ids: string[] = [];
  for (let i = 0; i < N_IMAGES; i++) {
    const id = `img_${String(i).padStart(4, '0')}`;
    ids.push(id);
    const raw = { raw: { width: 40, height: 40, channels: 3 as const } };
    const file = path.join(data, 'JPEGImages', `${id}.jpg`);
    await sharp(picture(i), raw).jpeg({ quality: 90 }).toFile(file);
    images.push(file);
    const m = new Uint8Array(40 * 40);
    for (let k = 0; k < m.length; k++) m[k] = (k + i) % 97 === 0 ? 255 : ((k % 40) + i) % 40 < 20 ? 1 : 0;
    fs.writeFileSync(path.join(data, 'SegmentationClass', `${id}.png`), encodeMask({ width: 40, height: 40, data: m }));
  }
  fs.writeFileSync(path.join(data, 'ImageSets/Segmentation/val.txt'), ids.join('\n') + '\n');
  // Redis answers (bounded wait)
  for (let t = 0; ; t++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.write('PING\r\n'); });
      s.on('data', (d) => { s.destroy(); resolve(d.toString().startsWith('+PONG')); });
      s.on('error', () => resolve(false));
    });
    if (ok) break;
    if (t > 100) throw new Error('redis-server did not answer in 10 s');
    await new Promise((r) => setTimeout(r, 100));
  }
});

after(async () => {
  await stopWorkers();
  if (redis && redis.exitCode === null) {
    redis.kill('SIGTERM');
    await new Promise((r) => redis!.once('exit', r));
  }
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('predict --queue: 3 workers, one SIGKILLed mid-run: every mask equals local predict, none missing or duplicated, retries reported', { skip: !haveRedis && 'redis-server not installed' }, async () => {
  const localOut = path.join(tmp, 'local');
  const local = cli(['predict', '--model', model, '--out', localOut, '--threads', '1', ...images]);
  assert.equal(local.status, 0, local.stderr);

  await Promise.all([startWorker(model), startWorker(model), startWorker(model)]);
  const victim = workers[0]!;
  const queueOut = path.join(tmp, 'queued');
  let killedAt = -1;
  let finished = false;
  const running = cliAsync(['predict', '--queue', queueUrl, '--model', model, '--out', queueOut, ...images]).finally(() => { finished = true; });
  // Once a tenth of the masks are written, kill the victim while it holds a job: freeze it (SIGSTOP),
  // and if a job stays active over 2 s (its lock, 3 s, is no longer renewed; the live workers take
  // a few ms per image) that job is the victim's: SIGKILL. Otherwise let it run on and try again.
  const redisClient = new Redis(queueUrl, { maxRetriesPerRequest: 1 });
  try {
    for (let t = 0; t < 3000 && killedAt < 0 && !finished; t++) {
      await new Promise((r) => setTimeout(r, 20));
      if (!fs.existsSync(queueOut) || fs.readdirSync(queueOut).length < N_IMAGES / 10) continue;
      victim.kill('SIGSTOP');
      const first = await redisClient.lrange('bull:fcn:active', 0, -1);
      await new Promise((r) => setTimeout(r, 2000));
      const held = (await redisClient.lrange('bull:fcn:active', 0, -1)).filter((id) => first.includes(id));
      if (held.length > 0) {
        killedAt = fs.readdirSync(queueOut).length;
        victim.kill('SIGKILL');
      } else {
        // it held nothing (between jobs, or none waiting): let it run long enough to take one again
        victim.kill('SIGCONT');
        await new Promise((r) => setTimeout(r, 150 + 250 * Math.random()));
      }
    }
  } finally {
    redisClient.disconnect();
  }
  const run = await running;
  assert.equal(run.status, 0, run.stderr);
  assert.ok(killedAt > 0 && killedAt < N_IMAGES, `a worker was killed mid-run (at ${killedAt} masks)`);
  const retried = /queue: (\d+) jobs, (\d+) retried/.exec(run.stderr);
  assert.ok(retried, run.stderr);
  assert.equal(Number(retried[1]), N_IMAGES);
  assert.ok(Number(retried[2]) >= 1, `the killed worker's job was retried: ${run.stderr}`);

  // the same lines as local predict, in the same order, once each
  assert.equal(run.stdout.split(queueOut).join('OUT'), local.stdout.split(localOut).join('OUT'));
  assert.match(local.stdout, /thing \d+\.\d%, background \d+\.\d%|background \d+\.\d%, thing \d+\.\d%/, 'masks hold both classes');
  const lines = run.stdout.trimEnd().split('\n');
  assert.equal(lines.length, N_IMAGES);
  assert.equal(new Set(lines).size, N_IMAGES);
  // exactly the same files, byte for byte
  const names = fs.readdirSync(queueOut).sort();
  assert.deepEqual(names, fs.readdirSync(localOut).sort());
  assert.equal(names.length, N_IMAGES);
  for (const n of names) assert.ok(fs.readFileSync(path.join(queueOut, n)).equals(fs.readFileSync(path.join(localOut, n))), n);
});

test('eval --queue and the merge of --shard 1/3..3/3 equal a local eval exactly', { skip: !haveRedis && 'redis-server not installed' }, async () => {
  if (workers.filter((w) => w.exitCode === null && w.signalCode === null).length < 2) await startWorker(model);
  const localJson = path.join(tmp, 'local.json');
  const local = cli(['eval', '--model', model, '--data', data, '--threads', '1', '--json', localJson]);
  assert.equal(local.status, 0, local.stderr);
  const queued = await cliAsync(['eval', '--queue', queueUrl, '--model', model, '--data', data, '--json', path.join(tmp, 'queued.json')]);
  assert.equal(queued.status, 0, queued.stderr);
  assert.equal(queued.stdout, local.stdout);
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(tmp, 'queued.json'), 'utf8')), JSON.parse(fs.readFileSync(localJson, 'utf8')));

  const shards: string[] = [];
  let counted = 0;
  for (const k of [1, 2, 3]) {
    const json = path.join(tmp, `shard${k}.json`);
    shards.push(json);
    const r = await cliAsync(['eval', '--queue', queueUrl, '--model', model, '--data', data, '--shard', `${k}/3`, '--json', json]);
    assert.equal(r.status, 0, r.stderr);
    counted += Number(/queue: (\d+) jobs/.exec(r.stderr)![1]);
  }
  assert.equal(counted, N_IMAGES, 'the three shards cover the split once');
  const mergedJson = path.join(tmp, 'merged.json');
  const merged = cli(['eval', '--merge', ...shards, '--json', mergedJson]);
  assert.equal(merged.status, 0, merged.stderr);
  assert.equal(merged.stdout, local.stdout);
  assert.deepEqual(JSON.parse(fs.readFileSync(mergedJson, 'utf8')), JSON.parse(fs.readFileSync(localJson, 'utf8')));
  // unreadable inputs through the queue: each named on its own line, the rest written, exit 1
  const junk = path.join(tmp, 'junk.jpg');
  fs.writeFileSync(junk, 'not an image');
  const badOut = path.join(tmp, 'bad-inputs');
  const mixed = await cliAsync(['predict', '--queue', queueUrl, '--model', model, '--out', badOut, images[0]!, junk, path.join(tmp, 'missing.jpg')]);
  assert.equal(mixed.status, 1, mixed.stderr);
  assert.match(mixed.stderr, /junk\.jpg: not a readable image/);
  assert.match(mixed.stderr, /missing\.jpg: cannot read the image \(no such file\)/);
  assert.deepEqual(fs.readdirSync(badOut), ['img_0000.png']);
  const scored = cli(['score', '--merge', ...shards]);
  assert.equal(scored.status, 0, scored.stderr);
  assert.equal(scored.stdout.trimEnd(), local.stdout.trimEnd());
});

test('bounded queue: a producer with no worker keeps at most maxWaiting jobs in Redis, and finishes once a worker comes', { skip: !haveRedis && 'redis-server not installed' }, async () => {
  const name = 'bounded';
  const out = path.join(tmp, 'bounded');
  let done = 0;
  const run = predictQueued(images.slice(0, 12), { queue: queueUrl, name, model, outDir: out, maxWaiting: 4, onProgress: (n) => { done = n; } });
  const redisClient = new Redis(queueUrl, { maxRetriesPerRequest: 1 });
  try {
    // sample until the window is full (the producer first reads and hashes the model), then 1 s more
    const seen: number[] = [];
    for (let t = 0, after = 0; t < 600 && after < 10; t++) {
      await new Promise((r) => setTimeout(r, 100));
      seen.push(await redisClient.llen(`bull:${name}:wait`));
      if (seen.includes(4)) after++;
    }
    assert.equal(done, 0);
    assert.equal(Math.max(...seen), 4, `waiting jobs over time: ${seen.join(' ')}`);
  } finally {
    redisClient.disconnect();
  }
  const worker = await startQueueWorker({ queue: queueUrl, name, model, threads: 1 });
  try {
    const r = await run;
    assert.equal(r.jobs, 12);
    assert.equal(r.failed.length, 0);
    assert.equal(fs.readdirSync(out).length, 12);
    assert.equal(done, 12);
  } finally {
    await worker.close();
  }
});

test('a worker serving another model fails the run with one clear line; a bad queue address is a usage error', { skip: !haveRedis && 'redis-server not installed' }, async () => {
  await stopWorkers();
  await startWorker(otherModel);
  const r = await cliAsync(['predict', '--queue', queueUrl, '--model', model, '--out', path.join(tmp, 'mismatch'), ...images.slice(0, 5)]);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /serves model [0-9a-f]{12} \(.*other\.safetensors\), not model [0-9a-f]{12}/);
  assert.ok(!fs.existsSync(path.join(tmp, 'mismatch')) || fs.readdirSync(path.join(tmp, 'mismatch')).length === 0, 'no mask written');

  const bad = cli(['predict', '--queue', 'http://127.0.0.1:6379', '--model', model, images[0]!]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^fcn: --queue: .*expected redis\[s\]:\/\/\[USER:PASSWORD@\]HOST:PORT\[\/DB\]\n$/);
  const down = cli(['predict', '--queue', `redis://127.0.0.1:${await freePort()}`, '--model', model, images[0]!]);
  assert.equal(down.status, 1);
  assert.match(down.stderr, /^fcn: queue redis:\/\/127\.0\.0\.1:\d+: cannot use Redis \(connect ECONNREFUSED/);
});

test('SIGTERM: a worker finishes and exits 0', { skip: !haveRedis && 'redis-server not installed' }, async () => {
  const w = workers.find((c) => c.exitCode === null && c.signalCode === null) ?? await startWorker(otherModel);
  let err = '';
  w.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<number | null>((r) => w.once('exit', (code) => r(code)));
  w.kill('SIGTERM');
  assert.equal(await exited, 0, err);
  assert.match(err, /stopped after \d+ jobs/);
});
