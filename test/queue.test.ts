// Scale-out pieces without Redis: queue addresses, shard assignment, merging metrics JSON, the
// model identity, device names. The multi-process queue runs are in queue.slow.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseQueueUrl, redact } from '../src/queue/url.js';
import { parseShard, selectShard, shardOf, fnv1a32, MAX_SHARDS } from '../src/queue/shard.js';
import { checkQueueName } from '../src/queue/jobs.js';
import { mergeMetrics, mergeMetricsFiles } from '../src/queue/merge.js';
import { modelIdentity } from '../src/queue/identity.js';
import { ConfusionMatrix, metricsReport } from '../src/eval/confusion.js';
import { fcnResNet18, initParameters, seededRandom, fcnParameters } from '../src/model/index.js';
import { loadCheckpoint, saveCheckpoint } from '../src/weights/checkpoint.js';
import { encodeSafetensors } from '../src/weights/safetensors.js';
import { sequentialName } from '../src/weights/names.js';
import { defaultCard } from '../src/model/card.js';
import { parseDevice, checkDevice, availableDevices } from '../src/engine/session.js';
import { FcnError } from '../src/util/errors.js';

test('queue URL: redis and rediss with user, password, port and database; password never shown', () => {
  assert.deepEqual(parseQueueUrl('redis://127.0.0.1:6380/2'), { host: '127.0.0.1', port: 6380, username: undefined, password: undefined, db: 2, tls: false, display: 'redis://127.0.0.1:6380/2' });
  const c = parseQueueUrl('rediss://worker:s%3Acret@redis.example.org:6390');
  assert.equal(c.tls, true);
  assert.equal(c.username, 'worker');
  assert.equal(c.password, 's:cret');
  assert.equal(c.db, 0);
  assert.equal(c.display, 'rediss://worker:***@redis.example.org:6390');
  assert.equal(parseQueueUrl('redis://:only-password@localhost').port, 6379);
  assert.equal(parseQueueUrl('redis://:only-password@localhost').password, 'only-password');
  assert.equal(parseQueueUrl('redis://[::1]:7000').host, '::1');
  assert.equal(redact('redis://u:p@h:1/0'), 'redis://u:***@h:1/0');
});

test('queue URL: a bad address is a usage error (exit 2) saying what is expected, without the password', () => {
  for (const bad of ['http://localhost:6379', 'localhost:6379', 'redis://host:99999', 'redis://host:1/x', 'redis://', 'redis://h:1/0?x=1', 'not a url']) {
    assert.throws(() => parseQueueUrl(bad), (e: unknown) => e instanceof FcnError && e.exitCode === 2 && /expected redis\[s\]:\/\//.test(e.message), bad);
  }
  assert.throws(() => parseQueueUrl('redis://u:secret@h:1/x'), (e: unknown) => e instanceof FcnError && !e.message.includes('secret'));
});

test('shards: K/N parsing; every input in exactly one shard; stable under reordering and filtering', () => {
  assert.deepEqual(parseShard('2/8'), { index: 2, count: 8 });
  for (const bad of ['0/3', '4/3', '1/0', '1', 'a/b', '-1/3', '1/3/4']) {
    assert.throws(() => parseShard(bad), (e: unknown) => e instanceof FcnError && e.exitCode === 2, bad);
  }
  // FNV-1a 32 reference values (the published test vectors)
  assert.equal(fnv1a32(''), 0x811c9dc5);
  assert.equal(fnv1a32('a'), 0xe40c292c);
  assert.equal(fnv1a32('foobar'), 0xbf9cf968);
  const ids = Array.from({ length: 3000 }, (_, i) => `2008_${String(i).padStart(6, '0')}`);
  const parts = [1, 2, 3].map((k) => selectShard(ids, { index: k, count: 3 }, (id) => id));
  assert.equal(parts.reduce((a, p) => a + p.length, 0), ids.length);
  assert.equal(new Set(parts.flat()).size, ids.length);
  for (const p of parts) assert.ok(Math.abs(p.length - 1000) < 100, `balanced: ${parts.map((q) => q.length)}`);
  const shuffled = [...ids].reverse().filter((_, i) => i % 7 !== 0);
  const again = selectShard(shuffled, { index: 2, count: 3 }, (id) => id);
  assert.deepEqual(new Set(again), new Set(parts[1]!.filter((id) => shuffled.includes(id))));
  assert.equal(shardOf('2007_000032', 1), 1);
});

function cmOf(pairs: [number, number][], n = 3): ConfusionMatrix {
  const cm = new ConfusionMatrix(n);
  cm.add(Uint8Array.from(pairs.map((p) => p[1])), Uint8Array.from(pairs.map((p) => p[0])));
  return cm;
}

test('merge: the sum of the parts\' matrices gives exactly the whole\'s report', () => {
  const classes = ['background', 'cat', 'dog'];
  const a: [number, number][] = [[0, 0], [0, 1], [1, 1], [2, 2], [2, 0]];
  const b: [number, number][] = [[1, 1], [1, 2], [0, 0], [255, 2]];
  const whole = metricsReport(cmOf([...a, ...b]), classes);
  const merged = mergeMetrics([
    { file: 'a.json', text: JSON.stringify(metricsReport(cmOf(a), classes)) },
    { file: 'b.json', text: JSON.stringify(metricsReport(cmOf(b), classes)) },
  ]);
  assert.deepEqual(metricsReport(merged.matrix, merged.classes), whole);
});

test('merge: different classes, a broken matrix or not JSON is one line naming the file', () => {
  const r = (classes: string[]) => JSON.stringify(metricsReport(new ConfusionMatrix(classes.length), classes));
  assert.throws(() => mergeMetrics([{ file: 'a.json', text: r(['x', 'y']) }, { file: 'b.json', text: r(['x', 'z']) }]), /b\.json: its classes/);
  assert.throws(() => mergeMetrics([{ file: 'c.json', text: '{"classes":["x"],"confusionMatrix":[[1.5]]}' }]), /c\.json: 'confusionMatrix' is not/);
  assert.throws(() => mergeMetrics([{ file: 'd.json', text: '{"pixelAccuracy":1}' }]), /d\.json: 'confusionMatrix' is missing/);
  assert.throws(() => mergeMetrics([{ file: 'e.json', text: 'nope' }]), /e\.json: not JSON/);
  assert.throws(() => mergeMetrics([]), (e: unknown) => e instanceof FcnError && e.exitCode === 2);
});

test('model identity: the same weights read the same from our checkpoint and from the book-layout tensors; any change differs', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fcn-identity-'));
  try {
    const arch = fcnResNet18({ numClasses: 2 });
    const weights = initParameters(arch, seededRandom(3));
    const card = defaultCard(2);
    const ours = path.join(tmp, 'ours.safetensors');
    await saveCheckpoint(ours, { arch, weights, ...card, classes: ['bg', 'fg'], metadata: {}, extra: new Map() });
    // the book's nn.Sequential names ('0.weight', '4.0.conv1.weight', ...) as plain safetensors, as `fcn import` reads a .pth
    const book = path.join(tmp, 'book.safetensors');
    const specs = fcnParameters(arch);
    fs.writeFileSync(book, encodeSafetensors(new Map(specs.map((s) => [sequentialName(s.name), { shape: s.shape, data: weights.get(s.name)! }]))));
    const id = modelIdentity({ arch, weights });
    assert.match(id, /^[0-9a-f]{64}$/);
    assert.equal(modelIdentity(await loadCheckpoint(ours)), id);
    assert.equal(modelIdentity(await loadCheckpoint(book)), id);
    const changed = new Map(weights);
    const w = Float32Array.from(changed.get('final_conv.bias')!);
    w[0] = Math.fround(w[0]! + 1e-6);
    changed.set('final_conv.bias', w);
    assert.notEqual(modelIdentity({ arch, weights: changed }), id);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('devices: names parsed; cpu always there; a provider this build lacks is one line saying how to get it', () => {
  assert.deepEqual(parseDevice('cuda:1'), { name: 'cuda', deviceId: 1 });
  assert.deepEqual(parseDevice('cpu'), { name: 'cpu' });
  for (const bad of ['gpu', 'cpu:0', 'cuda:x', 'coreml:1', '']) {
    assert.throws(() => parseDevice(bad), (e: unknown) => e instanceof FcnError && e.exitCode === 2, bad);
  }
  assert.ok(availableDevices().some((d) => d.name === 'cpu' && d.installed));
  checkDevice({ name: 'cpu' });
  const cuda = availableDevices().find((d) => d.name === 'cuda');
  if (!cuda?.installed) {
    assert.throws(() => checkDevice({ name: 'cuda', deviceId: 0 }), (e: unknown) => e instanceof FcnError && e.exitCode === 1
      && /--onnxruntime-node-install=cuda12/.test(e.message) && !e.message.includes('\n'));
  }
  if (process.platform !== 'win32') assert.throws(() => checkDevice({ name: 'dml' }), /DirectML only on Windows/);
});

test('queue URL: a password that is not percent-encoded is never shown, and the message says to encode it', () => {
  for (const url of ['redis://:s3cr/t@x@127.0.0.1:6379/3', 'redis://u:pa?ss@h:1', 'redis://u:pa#ss@h:1', 'redis://tok/en@127.0.0.1:6379/3', 'redis://u:a@b@h:1/x']) {
    assert.throws(() => parseQueueUrl(url), (e: unknown) => e instanceof FcnError && e.exitCode === 2
      && !/s3cr|t@x|pa\?ss|pa#ss|tok|en@|a@b/.test(e.message) && e.message.includes('***'), url);
  }
  assert.throws(() => parseQueueUrl('redis://:s3cr/t@x@127.0.0.1:6379/3'), /percent-encoded/);
  assert.equal(redact('redis://:s3cr/t@x@127.0.0.1:6379/3'), 'redis://:***@127.0.0.1:6379/3');
  assert.equal(redact('redis://TOKEN@h:1'), 'redis://***@h:1');
  assert.equal(redact('redis://h:1/2'), 'redis://h:1/2');
  // percent-encoded, the same password is accepted and decoded
  assert.equal(parseQueueUrl('redis://:s3cr%2Ft%40x@127.0.0.1:6379/3').password, 's3cr/t@x');
});

test('shards: a count past the 32-bit hash is a usage error, not an empty shard', () => {
  assert.deepEqual(parseShard(`${MAX_SHARDS}/${MAX_SHARDS}`), { index: MAX_SHARDS, count: MAX_SHARDS });
  for (const bad of ['1/99999999999999999999', `1/${MAX_SHARDS + 1}`, '1e3/2000']) {
    assert.throws(() => parseShard(bad), (e: unknown) => e instanceof FcnError && e.exitCode === 2, bad);
  }
});

test('queue names: empty, with a colon or control characters is a usage error before BullMQ sees it', () => {
  assert.equal(checkQueueName('fcn-voc'), 'fcn-voc');
  for (const bad of ['', 'a:b', 'x\ny', 'n'.repeat(201)]) {
    assert.throws(() => checkQueueName(bad), (e: unknown) => e instanceof FcnError && e.exitCode === 2 && !e.message.includes('\n'), JSON.stringify(bad));
  }
});

test('devices: a provider in the build that cannot start here (webgpu without a GPU adapter) is one line, exit 1', () => {
  const webgpu = availableDevices().find((d) => d.name === 'webgpu');
  if (!webgpu?.installed) return;
  let err: unknown;
  try {
    checkDevice({ name: 'webgpu' });
  } catch (e) {
    err = e;
  }
  if (err === undefined) return; // a machine with a WebGPU adapter: nothing to check
  assert.ok(err instanceof FcnError && err.exitCode === 1, String(err));
  assert.match(err.message, /^device webgpu: ONNX Runtime cannot start its webgpu provider here \(.+\); it needs a GPU/);
  assert.ok(!err.message.includes('\n') && !err.message.includes('onnxruntime_src'), err.message);
});

test('merge: the same file given twice (under any spelling) is a usage error, not twice its pixels', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcn-merge-'));
  try {
    const cm = new ConfusionMatrix(2);
    cm.add(Uint8Array.of(0, 1, 1), Uint8Array.of(0, 1, 0));
    const file = path.join(dir, 'a.json');
    fs.writeFileSync(file, JSON.stringify({ ...metricsReport(cm, ['bg', 'fg']), classes: ['bg', 'fg'], confusionMatrix: [[1, 1], [0, 1]] }));
    await assert.rejects(mergeMetricsFiles([file, path.join(dir, '.', 'a.json')]), (e: unknown) => e instanceof FcnError && e.exitCode === 2 && /given twice/.test(e.message));
    assert.deepEqual(Array.from((await mergeMetricsFiles([file])).matrix.counts), [1, 1, 0, 1]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
