// Queue throughput and cost: images per second through `fcn worker` processes (1 and 2) next to a
// local predict of the same images in one process, so the queue's overhead per image shows; and
// Redis memory per queued job (INFO memory, used_memory, before and after enqueueing jobs no worker
// takes). Starts its own redis-server on a free loopback port. Run by hand on a quiet machine:
//   node dist/bench/queue.js [--n 48] [--size 160x240] [--threads 1] [--queued 200]
// Each worker and the local run get --threads ONNX Runtime threads (default 1: one core each).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { fcnResNet18, initParameters, seededRandom } from '../src/model/index.js';
import { defaultCard } from '../src/model/card.js';
import { saveCheckpoint, loadCheckpoint } from '../src/weights/checkpoint.js';
import { loadModel } from '../src/infer/model.js';
import { predictFiles } from '../src/infer/predict.js';
import { predictQueued } from '../src/queue/producer.js';
import { modelIdentity } from '../src/queue/identity.js';
import { toBase64 } from '../src/queue/jobs.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const argv = process.argv.slice(2);
const flag = (name: string, dflt: string) => {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : dflt;
};
const N = Number(flag('--n', '48'));
const [H, W] = flag('--size', '160x240').split('x').map(Number) as [number, number];
const THREADS = flag('--threads', '1');
const QUEUED = Number(flag('--queued', '200'));

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

function startWorker(queue: string, model: string): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/fcn.js', 'worker', '--queue', queue, '--model', model, '--threads', THREADS, '--quiet'],
      { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => { err += d.toString(); if (err.includes('serving')) resolve(child); });
    child.on('exit', (code) => reject(new Error(`worker exited ${code}: ${err}`)));
  });
}

async function stop(children: ChildProcess[]): Promise<void> {
  for (const c of children) {
    c.removeAllListeners('exit');
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    await gone;
  }
}

async function main(): Promise<void> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fcn-bench-queue-'));
  const port = await freePort();
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tmp], { stdio: 'ignore' });
  const queue = `redis://127.0.0.1:${port}/0`;
  let client!: Redis;
  for (let t = 0; ; t++) {
    client = new Redis({ host: '127.0.0.1', port, lazyConnect: true, retryStrategy: () => null });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.ping();
      break;
    } catch {
      client.disconnect();
      if (t > 100) throw new Error('redis-server did not start in 10 s');
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  try {
    const arch = fcnResNet18({ numClasses: 21 });
    const model = path.join(tmp, 'model.safetensors');
    await saveCheckpoint(model, { arch, weights: initParameters(arch, seededRandom(0)), ...defaultCard(21), metadata: {}, extra: new Map() });
    const images: string[] = [];
    for (let i = 0; i < N; i++) {
      const file = path.join(tmp, `img_${i}.jpg`);
      const px = Buffer.alloc(W * H * 3);
      for (let k = 0; k < px.length; k++) px[k] = (k * 31 + i * 97 + ((k / (W * 3)) | 0)) % 256;
      await sharp(px, { raw: { width: W, height: H, channels: 3 } }).jpeg({ quality: 90 }).toFile(file);
      images.push(file);
    }
    const rows: string[] = [];
    const row = (what: string, seconds: number) => rows.push(`| ${what} | ${(N / seconds).toFixed(2)} | ${((seconds / N) * 1000).toFixed(0)} |`);

    const m = await loadModel(model, { threads: Number(THREADS) });
    await predictFiles(m, images.slice(0, 2), { outDir: path.join(tmp, 'warm') });
    let t0 = performance.now();
    await predictFiles(m, images, { outDir: path.join(tmp, 'local') });
    row(`local predict, one process, ${THREADS} thread(s)`, (performance.now() - t0) / 1000);
    await m.dispose();

    for (const count of [1, 2]) {
      const workers = await Promise.all(Array.from({ length: count }, () => startWorker(queue, model)));
      await predictQueued(images.slice(0, 2 * count), { queue, model, outDir: path.join(tmp, 'warm') });
      t0 = performance.now();
      const r = await predictQueued(images, { queue, model, outDir: path.join(tmp, `queue${count}`) });
      row(`queue, ${count} worker(s) x ${THREADS} thread(s)`, (performance.now() - t0) / 1000);
      if (r.failed.length > 0) throw new Error(`queue run failed for ${r.failed.length} images`);
      await stop(workers);
    }

    // memory per queued job: jobs as predictQueued makes them, with no worker to take them
    const identity = modelIdentity(await loadCheckpoint(model));
    const q = new Queue('fcn-memory', { connection: { host: '127.0.0.1', port }, streams: { events: { maxLen: 1000 } } });
    const used = async () => Number(/used_memory:(\d+)/.exec(await client.info('memory'))![1]);
    const before = await used();
    const bytes = fs.readFileSync(images[0]!);
    for (let i = 0; i < QUEUED; i++) {
      await q.add('segment', { model: identity, source: images[0]!, image: toBase64(bytes) }, { attempts: 3, backoff: { type: 'exponential', delay: 1000 } });
    }
    const after = await used();
    await q.obliterate({ force: true });
    await q.close();

    console.log(`queue bench: ${N} images ${H}x${W} (JPEG ${(bytes.length / 1024).toFixed(1)} KiB each), FCN-32s ResNet-18, ${os.cpus().length} cores, load average ${os.loadavg()[0]!.toFixed(1)}`);
    console.log('| run | images/s | ms/image |');
    console.log('| --- | --- | --- |');
    for (const r of rows) console.log(r);
    console.log(`Redis memory per queued job: ${((after - before) / QUEUED / 1024).toFixed(1)} KiB (${QUEUED} jobs of one ${(bytes.length / 1024).toFixed(1)} KiB JPEG; base64 makes it ${(toBase64(bytes).length / 1024).toFixed(1)} KiB)`);
  } finally {
    client.disconnect();
    redis.kill('SIGTERM');
    await new Promise((r) => redis.once('exit', r));
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
