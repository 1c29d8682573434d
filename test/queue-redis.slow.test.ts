// The queue against a real Redis that wants a password (Debian's redis-server on a free loopback
// port, requirepass set): a password with '/' and '@' percent-encoded and a database number carry
// the jobs (and only that database holds them); a wrong password, a missing one, a database the
// server lacks and a closed port are each one line naming the cause, within seconds (a database
// that does not exist used to hang the producer for ever).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { Worker } from 'bullmq';
import { repoRoot } from './helpers/fixtures.js';
import { fcnResNet18, initParameters, seededRandom } from '../src/model/index.js';
import { defaultCard } from '../src/model/card.js';
import { saveCheckpoint } from '../src/weights/checkpoint.js';
import { readMask, writeImage } from '../src/data/image.js';
import { loadModel } from '../src/infer/model.js';
import { predictQueued } from '../src/queue/producer.js';
import { startQueueWorker } from '../src/queue/worker.js';
import { checkRedis } from '../src/queue/redis.js';
import { parseQueueUrl } from '../src/queue/url.js';
import { FcnError } from '../src/util/errors.js';

const REDIS = fs.existsSync('/usr/bin/redis-server') ? '/usr/bin/redis-server' : 'redis-server';
const haveRedis = fs.existsSync(REDIS) || spawnSync('redis-server', ['--version']).status === 0;
const skip = !haveRedis && 'redis-server not installed';
const PASSWORD = 's3cr/t@x';
const ENCODED = encodeURIComponent(PASSWORD);

let tmp: string;
let redis: ChildProcess | undefined;
let port: number;
let closedPort: number;
let model: string;
let image: string;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const p = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(p));
    });
    srv.on('error', reject);
  });
}

before(async () => {
  if (!haveRedis) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fcn-queue-redis-'));
  port = await freePort();
  closedPort = await freePort();
  redis = spawn(REDIS, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tmp, '--requirepass', PASSWORD], { stdio: 'ignore' });
  const arch = fcnResNet18({ numClasses: 3 });
  model = path.join(tmp, 'model.safetensors');
  await saveCheckpoint(model, { arch, weights: initParameters(arch, seededRandom(5)), ...defaultCard(3), metadata: {}, extra: new Map() });
  image = path.join(tmp, 'photo.png');
  await writeImage(image, { width: 40, height: 32, data: new Uint8Array(40 * 32 * 3).map((_, i) => (i * 29) % 256) });
  for (let t = 0; ; t++) {
    const client = new Redis({ port, host: '127.0.0.1', password: PASSWORD, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    client.on('error', () => undefined);
    const ok = await client.connect().then(() => client.ping()).then((r) => r === 'PONG', () => false);
    client.disconnect();
    if (ok) break;
    if (t > 100) throw new Error('redis-server did not answer in 10 s');
    await new Promise((r) => setTimeout(r, 100));
  }
});

after(async () => {
  if (redis && redis.exitCode === null) {
    redis.kill('SIGTERM');
    await new Promise((r) => redis!.once('exit', r));
  }
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('a percent-encoded password and a database number: the job runs there and nowhere else', { skip, timeout: 120_000 }, async () => {
  const url = `redis://:${ENCODED}@127.0.0.1:${port}/3`;
  const worker = await startQueueWorker({ queue: url, name: 'fcn-auth', model, threads: 1 });
  try {
    const out = path.join(tmp, 'pred');
    const r = await predictQueued([image], { queue: url, name: 'fcn-auth', model, outDir: out });
    assert.deepEqual(r.failed, []);
    assert.deepEqual(fs.readdirSync(out), ['photo.png']);
  } finally {
    await worker.close();
  }
  const client = new Redis({ port, host: '127.0.0.1', password: PASSWORD });
  try {
    assert.ok((await client.keys('bull:fcn-auth:*')).length === 0, 'database 0 holds none of the queue');
    await client.select(3);
    assert.ok((await client.keys('bull:fcn-auth:*')).length > 0, 'database 3 holds the queue');
  } finally {
    client.disconnect();
  }
});

test('wrong password, no password, a missing database, a closed port: one line naming the cause, in seconds', { skip, timeout: 120_000 }, async () => {
  const cases: [string, RegExp][] = [
    [`redis://:wrong@127.0.0.1:${port}/3`, /WRONGPASS.*wrong user name or password/],
    [`redis://127.0.0.1:${port}/3`, /NOAUTH.*the server wants a password/],
    [`redis://:${ENCODED}@127.0.0.1:${port}/16`, /the server has no database 16/],
    [`redis://127.0.0.1:${closedPort}`, /ECONNREFUSED.*nothing listens there/],
  ];
  for (const [url, cause] of cases) {
    const t0 = Date.now();
    await assert.rejects(checkRedis(parseQueueUrl(url)), (e: unknown) => e instanceof FcnError && e.exitCode === 1
      && cause.test(e.message) && !e.message.includes('\n') && !e.message.includes(PASSWORD) && !e.message.includes(ENCODED), url);
    assert.ok(Date.now() - t0 < 8000, `${url}: answered in ${Date.now() - t0} ms`);
  }
  // the producer and the worker check first: a missing database fails the run instead of hanging it
  const missingDb = `redis://:${ENCODED}@127.0.0.1:${port}/16`;
  await assert.rejects(predictQueued([image], { queue: missingDb, model, outDir: path.join(tmp, 'none') }), /no database 16/);
  assert.ok(!fs.existsSync(path.join(tmp, 'none')));
  await assert.rejects(startQueueWorker({ queue: missingDb, model, threads: 1 }), /no database 16/);
});

test('fcn worker: a missing database exits 1 with one line; a queue name with a colon is a usage error', { skip, timeout: 120_000 }, () => {
  const run = (args: string[]) => spawnSync(process.execPath, ['bin/fcn.js', 'worker', ...args], { cwd: repoRoot, encoding: 'utf8', timeout: 60_000 });
  const db = run(['--queue', `redis://:${ENCODED}@127.0.0.1:${port}/16`, '--model', model, '--threads', '1']);
  assert.equal(db.status, 1, db.stderr);
  assert.match(db.stderr, /^fcn: queue redis:\/\/:\*\*\*@127\.0\.0\.1:\d+\/16: cannot use Redis \(ERR DB index is out of range\): the server has no database 16/);
  assert.equal(db.stderr.trim().split('\n').length, 1, db.stderr);
  const name = run(['--queue', `redis://127.0.0.1:${port}`, '--model', model, '--name', 'a:b']);
  assert.equal(name.status, 2, name.stderr);
  assert.match(name.stderr, /^fcn: --name: queue name 'a:b': expected .* without ':'/);
  const unencoded = run(['--queue', `redis://:${PASSWORD}@127.0.0.1:${port}/3`, '--model', model]);
  assert.equal(unencoded.status, 2, unencoded.stderr);
  assert.ok(!unencoded.stderr.includes('s3cr'), unencoded.stderr);
  assert.match(unencoded.stderr, /percent-encoded/);
});

test('fcn predict --queue --tile / --max-pixels: the workers tile each image with the producer\'s size, as a local --tile run does; too large an image fails at the producer', { skip, timeout: 120_000 }, async () => {
  // 64x480: one side longer than the 224-pixel tile, so it runs as overlapping windows
  const wide = path.join(tmp, 'wide.png');
  await writeImage(wide, { width: 480, height: 64, data: new Uint8Array(480 * 64 * 3).map((_, i) => (i * 37 + (i >> 7)) % 256) });
  const url = `redis://:${ENCODED}@127.0.0.1:${port}/6`;
  const worker = await startQueueWorker({ queue: url, name: 'fcn-tile', model, threads: 1 });
  const out = path.join(tmp, 'pred-tile');
  try {
    const r = await predictQueued([wide], { queue: url, name: 'fcn-tile', model, outDir: out, tileSize: 224 });
    assert.deepEqual(r.failed, []);
    // --max-pixels is the producer's too: the image is refused by its header, in order, without a job
    const failures: string[] = [];
    const small = await predictQueued([wide, image], { queue: url, name: 'fcn-tile', model, outDir: path.join(tmp, 'pred-small'), maxPixels: 10_000,
      onFailure: (_file, message) => failures.push(message) });
    assert.deepEqual([small.failed, small.jobs], [[wide], 1]);
    assert.match(failures[0]!, /wide\.png: 480x64 .*more than the limit/);
    // a size the network cannot tile with is refused before any job is sent
    await assert.rejects(predictQueued([wide], { queue: url, name: 'fcn-tile', model, outDir: path.join(tmp, 'pred-tile-bad'), tileSize: 200 }),
      (e: unknown) => e instanceof FcnError && /tile size 200 must be a multiple of .*stride 32/.test(e.message));
  } finally {
    await worker.close();
  }
  const tiled = await loadModel(model, { threads: 1, graphCache: false, tileSize: 224 });
  const whole = await loadModel(model, { threads: 1, graphCache: false });
  try {
    const want = (await tiled.segment(wide)).mask;
    assert.notDeepEqual((await whole.segment(wide)).mask, want, 'this image\'s tiled and whole-image masks differ (so the check below means something)');
    assert.deepEqual((await readMask(path.join(out, 'wide.png'))).data, want);
  } finally {
    await tiled.dispose();
    await whole.dispose();
  }
});

test('an ONNX file fcn export wrote runs on the queue as locally (worker and producer both take it)', { skip, timeout: 120_000 }, async () => {
  const onnx = path.join(tmp, 'model.onnx');
  const exp = spawnSync(process.execPath, ['bin/fcn.js', 'export', '--model', model, '--onnx', onnx], { cwd: repoRoot, encoding: 'utf8', timeout: 60_000 });
  assert.equal(exp.status, 0, exp.stderr);
  const url = `redis://:${ENCODED}@127.0.0.1:${port}/4`;
  const worker = await startQueueWorker({ queue: url, name: 'fcn-onnx', model: onnx, threads: 1 });
  const out = path.join(tmp, 'pred-onnx');
  try {
    const r = await predictQueued([image], { queue: url, name: 'fcn-onnx', model: onnx, outDir: out });
    assert.deepEqual(r.failed, []);
    // a producer holding the checkpoint the file came from is told the worker serves another model
    await assert.rejects(predictQueued([image], { queue: url, name: 'fcn-onnx', model, outDir: path.join(tmp, 'other') }), /serves model [0-9a-f]{12} \(.*model\.onnx\)/);
  } finally {
    await worker.close();
  }
  const local = await loadModel(onnx, { threads: 1, graphCache: false });
  try {
    const want = await local.segment(image);
    assert.deepEqual((await readMask(path.join(out, 'photo.png'))).data, want.mask);
  } finally {
    await local.dispose();
  }
});

test('fcn worker while Redis is away: one line for the outage, not one per reconnection; it serves again when Redis is back', { skip, timeout: 120_000 }, async () => {
  const p = await freePort();
  const start = () => spawn(REDIS, ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tmp], { stdio: 'ignore' });
  const waitFor = async (cond: () => boolean, what: string, ms: number) => {
    for (const t0 = Date.now(); !cond(); await new Promise((r) => setTimeout(r, 100))) {
      if (Date.now() - t0 > ms) throw new Error(`${what} not seen in ${ms} ms`);
    }
  };
  let server = start();
  const worker = spawn(process.execPath, ['bin/fcn.js', 'worker', '--queue', `redis://127.0.0.1:${p}`, '--model', model, '--threads', '1'], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  worker.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  try {
    await waitFor(() => err.includes('serving'), 'serving', 60_000);
    server.kill('SIGKILL');
    await new Promise((r) => server.once('exit', r));
    await new Promise((r) => setTimeout(r, 6000)); // ioredis retries about once a second
    const refused = err.split('\n').filter((l) => l.includes('ECONNREFUSED'));
    assert.ok(refused.length >= 1 && refused.length <= 2, `lines while Redis was away:\n${err}`);
    server = start();
    let up = false;
    for (const t0 = Date.now(); !up && Date.now() - t0 < 10_000;) {
      up = await checkRedis(parseQueueUrl(`redis://127.0.0.1:${p}`), 1000).then(() => true, () => false);
      if (!up) await new Promise((r) => setTimeout(r, 100));
    }
    const out = path.join(tmp, 'pred-back');
    const r = await predictQueued([image], { queue: `redis://127.0.0.1:${p}`, model, outDir: out });
    assert.deepEqual(r.failed, []);
  } finally {
    worker.kill('SIGKILL');
    server.kill('SIGKILL');
    await Promise.all([worker, server].map((c) => c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((r) => c.once('exit', r))));
  }
});

test('rediss:// to a TLS-only redis-server: an untrusted certificate and plain redis:// are one line each; trusted, the queue runs', { skip, timeout: 120_000 }, async (t) => {
  const tls = path.join(repoRoot, 'test', 'fixtures', 'tls');
  const p = await freePort();
  const server = spawn(REDIS, ['--port', '0', '--tls-port', String(p), '--tls-cert-file', path.join(tls, 'cert.pem'), '--tls-key-file', path.join(tls, 'key.pem'),
    '--tls-ca-cert-file', path.join(tls, 'cert.pem'), '--tls-auth-clients', 'no', '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tmp], { stdio: 'ignore' });
  const serverExit = new Promise((r) => server.once('exit', r));
  try {
    const url = `rediss://127.0.0.1:${p}`;
    let reply = '';
    for (const t0 = Date.now(); Date.now() - t0 < 10_000 && server.exitCode === null; await new Promise((r) => setTimeout(r, 100))) {
      reply = await checkRedis(parseQueueUrl(url), 1000).then(() => 'ok', (e: Error) => e.message);
      if (/not trusted/.test(reply)) break;
    }
    if (server.exitCode !== null) return t.skip('this redis-server has no TLS');
    assert.match(reply, /^queue rediss:\/\/127\.0\.0\.1:\d+: cannot use Redis \(self-signed certificate\): the server's certificate is not trusted here: NODE_EXTRA_CA_CERTS/);
    await assert.rejects(checkRedis(parseQueueUrl(`redis://127.0.0.1:${p}`)), /does it speak TLS only \(rediss:\/\/\)\?/);
    // trusted through NODE_EXTRA_CA_CERTS (read at start-up, so in the CLI's processes)
    const env = { ...process.env, NODE_EXTRA_CA_CERTS: path.join(tls, 'cert.pem') };
    const worker = spawn(process.execPath, ['bin/fcn.js', 'worker', '--queue', url, '--model', model, '--threads', '1'], { cwd: repoRoot, env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    worker.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    try {
      for (const t0 = Date.now(); !err.includes('serving'); await new Promise((r) => setTimeout(r, 100))) {
        if (Date.now() - t0 > 60_000 || worker.exitCode !== null) throw new Error(`worker did not start: ${err}`);
      }
      const out = path.join(tmp, 'pred-tls');
      const r = spawnSync(process.execPath, ['bin/fcn.js', 'predict', '--queue', url, '--model', model, '--out', out, image], { cwd: repoRoot, env, encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(fs.readdirSync(out), ['photo.png']);
      assert.ok(!/DeprecationWarning/.test(r.stderr + err), 'no SNI warning for an IP address');
    } finally {
      worker.kill('SIGKILL');
    }
  } finally {
    server.kill('SIGKILL');
    await serverExit;
  }
});

test('an input the producer cannot read fails in order without a job (workers never see it); the rest are written', { skip, timeout: 120_000 }, async () => {
  const url = `redis://:${ENCODED}@127.0.0.1:${port}/5`;
  const seen: string[] = [];
  const worker = await startQueueWorker({ queue: url, model, threads: 1, onJob: (e) => seen.push(e.source) });
  try {
    const missing = path.join(tmp, 'missing.png');
    const out = path.join(tmp, 'pred-missing');
    const lines: string[] = [];
    const r = await predictQueued([missing, image], {
      queue: url, model, outDir: out,
      onFailure: (file, message) => lines.push(`fail ${path.basename(file)}: ${message}`),
      onImage: (file) => lines.push(`ok ${path.basename(file)}`),
    });
    assert.equal(r.jobs, 1);
    assert.deepEqual(r.failed, [missing]);
    assert.deepEqual(lines, [`fail missing.png: ${missing}: cannot read the image (no such file)`, 'ok photo.png']);
    assert.deepEqual(seen, [image]);
    assert.deepEqual(fs.readdirSync(out), ['photo.png']);
  } finally {
    await worker.close();
  }
});

test('a producer with no worker on its queue says so (onNoWorkers) and finishes once one starts', { skip, timeout: 120_000 }, async () => {
  const url = `redis://:${ENCODED}@127.0.0.1:${port}/6`;
  const said: number[] = [];
  let worker: Awaited<ReturnType<typeof startQueueWorker>> | undefined;
  const run = predictQueued([image], {
    queue: url, name: 'fcn-lonely', model, outDir: path.join(tmp, 'pred-lonely'), noWorkerMs: 200,
    onNoWorkers: (s) => {
      said.push(s);
      if (said.length === 1) void startQueueWorker({ queue: url, name: 'fcn-lonely', model, threads: 1 }).then((w) => { worker = w; });
    },
  });
  try {
    const r = await run;
    assert.deepEqual(r.failed, []);
    assert.ok(said.length >= 1 && said[0]! < 2, `said: ${said}`);
  } finally {
    for (let t = 0; !worker && t < 600; t++) await new Promise((res) => setTimeout(res, 100));
    await worker?.close();
  }
});

test('a queue name shared with another BullMQ application: its worker\'s answer stops the run with one line, not a crash', { skip, timeout: 120_000 }, async () => {
  const url = `redis://:${ENCODED}@127.0.0.1:${port}/7`;
  const foreign = new Worker('shared', async () => ({ hello: 'world' }), { connection: { host: '127.0.0.1', port, password: PASSWORD, db: 7, maxRetriesPerRequest: null } });
  try {
    await foreign.waitUntilReady();
    await assert.rejects(predictQueued([image], { queue: url, name: 'shared', model, outDir: path.join(tmp, 'pred-shared') }),
      (e: unknown) => e instanceof FcnError && /came back without an fcn result \(another application's worker shares the queue name\?/.test(e.message));
    assert.ok(!fs.existsSync(path.join(tmp, 'pred-shared')));
  } finally {
    await foreign.close();
  }
});
