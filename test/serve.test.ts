// fcn serve's HTTP API: a good image gives a mask of the image's size whose PNG (VOC palette) and
// class shares agree with the model run directly; broken, non-image, oversized uploads get 4xx JSON;
// twenty concurrent requests are all answered with one inference at a time; the exported ONNX graph
// the page runs gives the same mask; multipart forms, /readyz, the server without onnxruntime-web;
// slow clients meet the body timeout and the upload cap, and their memory is freed when they go;
// serve() drains on close. (`fcn serve` as a process: serve-cli.slow.test.ts.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import sharp from 'sharp';
import { decode as decodePng } from 'fast-png';
import type { FastifyInstance } from 'fastify';
import { fcnResNet18, initParameters, seededRandom, type TensorMap } from '../src/model/index.js';
import { SegmentationModel } from '../src/infer/model.js';
import { decodeImage, decodeMask } from '../src/data/image.js';
import { VOC_CLASSES, VOC_COLORMAP } from '../src/data/voc.js';
import { Session } from '../src/engine/session.js';
import { normalizeWindow } from '../src/infer/preprocess.js';
import { saveCheckpoint } from '../src/weights/checkpoint.js';
import { createServer, serve } from '../src/index.js';
import { InferenceQueue } from '../src/web/queue.js';
import { readiness, serverState } from '../src/web/server.js';
import { FcnError } from '../src/util/errors.js';
import { repoRoot } from './helpers/fixtures.js';
import { encode, picture, rawClient, slowHead } from './helpers/web.js';

const arch = fcnResNet18({ numClasses: 21 });
let weights: TensorMap;
let model: SegmentationModel;
let app: FastifyInstance;
let tmp: string;
let ckptPath: string;

function counts(mask: Uint8Array): Map<number, number> {
  const m = new Map<number, number>();
  for (const v of mask) m.set(v, (m.get(v) ?? 0) + 1);
  return m;
}

interface SegmentJson {
  width: number;
  height: number;
  classes: { id: number; name: string; color: number[]; pixels: number; fraction: number }[];
  maskPng: string;
  error?: string;
}

before(async () => {
  weights = initParameters(arch, seededRandom(1));
  model = await SegmentationModel.fromWeights(arch, weights, undefined, { threads: 2 });
  app = createServer(model, { weights });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fcn-serve-'));
  ckptPath = path.join(tmp, 'model.safetensors');
  await saveCheckpoint(ckptPath, {
    arch, weights, classes: [...VOC_CLASSES], colors: VOC_COLORMAP.map((c) => [c[0], c[1], c[2]] as [number, number, number]),
    normalization: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] }, metadata: {}, extra: new Map(),
  });
});

after(async () => {
  await app?.close();
  await model?.dispose();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('POST /api/segment: mask of the image size, palette PNG, shares summing to 1, same as the model run directly', async () => {
  const img = picture(150, 97);
  const png = await encode(img, 'png');
  const res = await app.inject({ method: 'POST', url: '/api/segment', payload: png, headers: { 'content-type': 'image/png' } });
  assert.equal(res.statusCode, 200, res.body);
  const body = res.json<SegmentJson>();
  assert.equal(body.width, 150);
  assert.equal(body.height, 97);

  const maskBytes = Buffer.from(body.maskPng, 'base64');
  const decoded = decodePng(maskBytes);
  assert.equal(decoded.width, 150);
  assert.equal(decoded.height, 97);
  assert.equal(decoded.channels, 1, 'one index per pixel');
  assert.ok(decoded.palette, 'a palette PNG');
  for (let i = 0; i < 21; i++) assert.deepEqual(decoded.palette[i]!.slice(0, 3), [...VOC_COLORMAP[i]!], `palette entry ${i}`);

  const mask = decodeMask(maskBytes);
  const direct = await model.predict(await decodeImage(png));
  assert.deepEqual(mask.data, direct.data, 'the API mask is the model\'s mask');
  assert.ok(counts(mask.data).size >= 2, 'the test picture should give more than one class');

  const hist = counts(mask.data);
  let fractionSum = 0;
  let pixelSum = 0;
  for (const c of body.classes) {
    assert.equal(c.pixels, hist.get(c.id), `pixels of class ${c.id}`);
    assert.equal(c.fraction, c.pixels / (150 * 97));
    assert.equal(c.name, VOC_CLASSES[c.id]);
    assert.deepEqual(c.color, [...VOC_COLORMAP[c.id]!]);
    fractionSum += c.fraction;
    pixelSum += c.pixels;
  }
  assert.equal(body.classes.length, hist.size, 'every class present is listed once');
  assert.equal(pixelSum, 150 * 97);
  assert.ok(Math.abs(fractionSum - 1) < 1e-12, `fractions sum to ${fractionSum}`);
  for (let i = 1; i < body.classes.length; i++) assert.ok(body.classes[i - 1]!.pixels >= body.classes[i]!.pixels, 'most pixels first');
});

test('POST /api/segment with Accept: image/png answers the palette PNG itself; JPEG, octet-stream and multipart bodies work', async () => {
  const img = picture(120, 80, 3);
  const jpeg = await encode(img, 'jpeg');
  const expected = (await model.predict(await decodeImage(jpeg))).data;

  const asPng = await app.inject({ method: 'POST', url: '/api/segment', payload: jpeg, headers: { 'content-type': 'image/jpeg', accept: 'image/png' } });
  assert.equal(asPng.statusCode, 200, asPng.body);
  assert.equal(asPng.headers['content-type'], 'image/png');
  const mask = decodeMask(asPng.rawPayload);
  assert.equal(mask.width, 120);
  assert.equal(mask.height, 80);
  assert.deepEqual(mask.data, expected);

  const raw = await app.inject({ method: 'POST', url: '/api/segment', payload: jpeg, headers: { 'content-type': 'application/octet-stream' } });
  assert.equal(raw.statusCode, 200, raw.body);
  assert.deepEqual(decodeMask(Buffer.from(raw.json<SegmentJson>().maskPng, 'base64')).data, expected);

  const boundary = '----fcn-test-boundary';
  const multipart = Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n`),
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="photo.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`),
    jpeg,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  const form = await app.inject({ method: 'POST', url: '/api/segment', payload: multipart, headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } });
  assert.equal(form.statusCode, 200, form.body);
  assert.deepEqual(decodeMask(Buffer.from(form.json<SegmentJson>().maskPng, 'base64')).data, expected);
});

/** A multipart/form-data body from raw part headers and contents. */
function form(boundary: string, parts: [string, Buffer | string][], close = true): Buffer {
  const chunks: Buffer[] = [];
  for (const [headers, content] of parts) {
    chunks.push(Buffer.from(`--${boundary}\r\n${headers}\r\n\r\n`), Buffer.from(content), Buffer.from('\r\n'));
  }
  if (close) chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(chunks);
}

test('multipart uploads (@fastify/multipart): quoted, unquoted and RFC 5987 filenames, a field named image, a part limit, clear errors', async () => {
  const jpeg = await encode(picture(64, 40, 2), 'jpeg');
  const expected = (await model.predict(await decodeImage(jpeg))).data;
  const post = (payload: Buffer, boundary: string) => app.inject({
    method: 'POST', url: '/api/segment', payload, headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
  });
  const accepted: [string, Buffer, string][] = [
    ['quoted boundary and filename', form('a b', [['Content-Disposition: form-data; name="f"; filename="a.jpg"', jpeg]]), '"a b"'],
    ['unquoted filename, charset before the boundary', form('xyz', [['Content-Disposition: form-data; name=f; filename=photo.jpg', jpeg]]), 'xyz'],
    ['RFC 5987 filename*=', form('q', [[`Content-Disposition: form-data; name="f"; filename*=UTF-8''%C3%A9t%C3%A9.jpg`, jpeg]]), 'q'],
    ['a field named image without a filename', form('q', [['Content-Disposition: form-data; name="note"', 'hello'], ['Content-Disposition: form-data; name="image"', jpeg]]), 'q'],
  ];
  for (const [what, body, boundary] of accepted) {
    const res = await post(body, boundary);
    assert.equal(res.statusCode, 200, `${what}: ${res.body}`);
    assert.deepEqual(decodeMask(Buffer.from(res.json<SegmentJson>().maskPng, 'base64')).data, expected, what);
  }
  const charset = await app.inject({ method: 'POST', url: '/api/segment', payload: accepted[1]![1], headers: { 'content-type': 'multipart/form-data; charset=utf-8; boundary=xyz' } });
  assert.equal(charset.statusCode, 200, charset.body);

  // the filename is what messages name the upload by, decoded from filename*=
  const text = Buffer.from('not an image at all');
  const named = await post(form('q', [[`Content-Disposition: form-data; name="f"; filename*=UTF-8''%C3%A9t%C3%A9.jpg`, text]]), 'q');
  assert.equal(named.statusCode, 400);
  assert.match(named.json<{ error: string }>().error, /^été\.jpg: not a readable image/);

  const refused: [string, Buffer, string, number, RegExp][] = [
    ['no file part', form('q', [['Content-Disposition: form-data; name="a"', '1']]), 'q', 400, /no file part/],
    ['truncated', form('q', [['Content-Disposition: form-data; name="image"; filename="a"', jpeg.subarray(0, 100)]], false), 'q', 400, /truncated/],
    ['empty file', form('q', [['Content-Disposition: form-data; name="image"; filename="a.png"', '']]), 'q', 400, /multipart file 'a\.png' is empty/],
    ['too many parts', form('q', [...Array.from({ length: 20 }, (_, i): [string, string] => [`Content-Disposition: form-data; name="x${i}"`, 'v']), ['Content-Disposition: form-data; name="image"; filename="a.jpg"', jpeg]]), 'q', 413, /more than \d+ (parts|fields)/],
  ];
  for (const [what, body, boundary, status, message] of refused) {
    const res = await post(body, boundary);
    assert.equal(res.statusCode, status, `${what}: ${res.body}`);
    const { error } = res.json<{ error: string }>();
    assert.match(error, message, what);
    assert.ok(!error.includes('\n'), `${what}: one-line message`);
  }
  const noBoundary = await app.inject({ method: 'POST', url: '/api/segment', payload: accepted[0]![1], headers: { 'content-type': 'multipart/form-data' } });
  assert.equal(noBoundary.statusCode, 400, noBoundary.body);
  assert.match(noBoundary.json<{ error: string }>().error, /^multipart body: /);

  // a file over the body limit is refused by the parser while it streams
  const small = createServer(model, { maxBodyMb: 0.01 });
  try {
    const big = await small.inject({ method: 'POST', url: '/api/segment', payload: form('q', [['Content-Disposition: form-data; name="image"; filename="a.jpg"', Buffer.alloc(20_000, 1)]]), headers: { 'content-type': 'multipart/form-data; boundary=q' } });
    assert.equal(big.statusCode, 413, big.body);
    assert.match(big.json<{ error: string }>().error, /request body too large: the limit is 0\.01 MB/);
  } finally {
    await small.close();
  }
});

test('broken uploads get 400 JSON {error}: truncated JPEG, text file, empty body, multipart without a file', async () => {
  const jpeg = await encode(picture(200, 150), 'jpeg');
  const truncated = jpeg.subarray(0, Math.floor(jpeg.length / 2));
  const cases: [string, Buffer | undefined, string, RegExp][] = [
    ['truncated JPEG', truncated, 'image/jpeg', /not a readable image/],
    ['text file', Buffer.from('just some text, not an image\n'), 'text/plain', /not a readable image/],
    ['JSON', Buffer.from('{"image": "x"}'), 'application/json', /not a readable image/],
    ['empty body', undefined, 'image/png', /empty request body/],
    ['multipart without a file', Buffer.from('--b\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n--b--\r\n'), 'multipart/form-data; boundary=b', /no file part/],
  ];
  for (const [what, payload, type, message] of cases) {
    const res = await app.inject({ method: 'POST', url: '/api/segment', payload, headers: { 'content-type': type } });
    assert.equal(res.statusCode, 400, `${what}: ${res.body}`);
    assert.match(res.headers['content-type'] as string, /application\/json/);
    const { error } = res.json<{ error: string }>();
    assert.match(error, message, what);
    assert.ok(!error.includes('\n'), `${what}: one-line message`);
  }
  // the server is still fine afterwards
  const ok = await app.inject({ method: 'GET', url: '/healthz' });
  assert.equal(ok.statusCode, 200);
});

test('oversized uploads get 413 JSON: body over 20 MB by default or --max-body-mb, a side over --max-side (4096 by default)', async () => {
  const big = Buffer.alloc(21 * 1024 * 1024, 7);
  const res = await app.inject({ method: 'POST', url: '/api/segment', payload: big, headers: { 'content-type': 'image/jpeg' } });
  assert.equal(res.statusCode, 413, res.body);
  assert.match(res.json<{ error: string }>().error, /request body too large: the limit is 20 MB \(--max-body-mb\)/);

  const small = createServer(model, { maxBodyMb: 0.05, maxSide: 100 });
  try {
    const png = await encode(picture(90, 60), 'png');
    assert.ok(png.length < 0.05 * 1024 * 1024, 'the small image fits the body limit');
    assert.equal((await small.inject({ method: 'POST', url: '/api/segment', payload: png, headers: { 'content-type': 'image/png' } })).statusCode, 200);
    const over = await small.inject({ method: 'POST', url: '/api/segment', payload: Buffer.alloc(60 * 1024, 1), headers: { 'content-type': 'image/png' } });
    assert.equal(over.statusCode, 413);
    assert.match(over.json<{ error: string }>().error, /limit is 0\.05 MB/);
    const wide = await encode(picture(101, 20), 'png');
    const side = await small.inject({ method: 'POST', url: '/api/segment', payload: wide, headers: { 'content-type': 'image/png' } });
    assert.equal(side.statusCode, 413);
    assert.match(side.json<{ error: string }>().error, /image is 101x20; the largest side accepted is 100 pixels \(--max-side\)/);
  } finally {
    await small.close();
  }

  // default side limit: a 4097-pixel-wide strip is refused from its header, before any decoding
  const strip = await sharp({ create: { width: 4097, height: 8, channels: 3, background: { r: 1, g: 2, b: 3 } } }).png().toBuffer();
  const tall = await app.inject({ method: 'POST', url: '/api/segment', payload: strip, headers: { 'content-type': 'image/png' } });
  assert.equal(tall.statusCode, 413);
  assert.match(tall.json<{ error: string }>().error, /4097x8; the largest side accepted is 4096/);
});

test('20 concurrent requests on a loopback port: all answered, one inference at a time, memory bounded', async () => {
  const server = createServer(model, {});
  await server.listen({ host: '127.0.0.1', port: 0 });
  try {
    const address = server.server.address();
    assert.ok(address && typeof address === 'object');
    const url = `http://127.0.0.1:${address.port}`;
    const images = await Promise.all([0, 1, 2, 3].map((s) => encode(picture(256, 192, s), 'png')));
    const expected = await Promise.all(images.map(async (b) => (await model.predict(await decodeImage(b))).data));
    // warm-up: ORT's arena grows to this size once
    assert.equal((await fetch(`${url}/api/segment`, { method: 'POST', body: images[0], headers: { 'content-type': 'image/png' } })).status, 200);
    const rssBefore = process.memoryUsage().rss;
    let rssPeak = rssBefore;
    const sampler = setInterval(() => { rssPeak = Math.max(rssPeak, process.memoryUsage().rss); }, 20);
    const started = Date.now();
    const responses = await Promise.all(Array.from({ length: 20 }, async (_, i) => {
      const r = await fetch(`${url}/api/segment`, { method: 'POST', body: images[i % 4], headers: { 'content-type': 'image/png', accept: 'image/png' } });
      return { status: r.status, bytes: new Uint8Array(await r.arrayBuffer()) };
    }));
    clearInterval(sampler);
    responses.forEach((r, i) => {
      assert.equal(r.status, 200, `request ${i}`);
      assert.deepEqual(decodeMask(r.bytes).data, expected[i % 4], `request ${i} got its own image's mask`);
    });
    const health = await (await fetch(`${url}/healthz`)).json() as { queue: { peakRunning: number; peakWaiting: number; done: number; running: number; waiting: number } };
    assert.equal(health.queue.peakRunning, 1, 'never more than one inference in flight');
    assert.ok(health.queue.peakWaiting >= 5, `requests really overlapped (peak waiting ${health.queue.peakWaiting})`);
    assert.equal(health.queue.done, 21);
    assert.equal(health.queue.running + health.queue.waiting, 0);
    const growthMb = (rssPeak - rssBefore) / 1e6;
    console.log(`20 concurrent 256x192 requests: ${Date.now() - started} ms, RSS growth ${growthMb.toFixed(0)} MB`);
    assert.ok(growthMb < 400, `RSS grew by ${growthMb.toFixed(0)} MB`);
  } finally {
    await server.close();
  }
});

test('InferenceQueue: runs jobs one after another in order, passes errors through, refuses when the line is full', async () => {
  const q = new InferenceQueue(3);
  const order: string[] = [];
  let running = 0;
  const job = (name: string, fail = false) => async () => {
    running++;
    assert.equal(running, 1);
    order.push(`start ${name}`);
    await new Promise((r) => setTimeout(r, 5));
    order.push(`end ${name}`);
    running--;
    if (fail) throw new Error(`${name} failed`);
    return name;
  };
  const a = q.run(job('a'));
  const b = q.run(job('b', true));
  const c = q.run(job('c'));
  await assert.rejects(q.run(job('d')), /3 requests already waiting/);
  assert.equal(await a, 'a');
  await assert.rejects(b, /b failed/);
  assert.equal(await c, 'c');
  assert.deepEqual(order, ['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
  assert.deepEqual(q.snapshot(), { running: 0, waiting: 0, peakRunning: 1, peakWaiting: 3, done: 3 });
});

test('GET /api/model, /healthz, the page, its scripts, onnxruntime-web files; unknown paths are 404 JSON, GET /api/segment 405', async () => {
  const info = (await app.inject({ method: 'GET', url: '/api/model' })).json<Record<string, unknown>>();
  assert.equal(info['architecture'], 'fcn32s-resnet18');
  assert.equal(info['numClasses'], 21);
  assert.deepEqual(info['classes'], [...VOC_CLASSES]);
  assert.deepEqual((info['colors'] as number[][])[15], [192, 128, 128]);
  assert.deepEqual(info['normalization'], { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });
  assert.equal(info['stride'], 32);
  assert.equal(info['onnx'], true);
  assert.equal(info['ortWeb'], true, 'onnxruntime-web is installed here (a dev dependency)');

  const health = await app.inject({ method: 'GET', url: '/healthz' });
  assert.equal(health.statusCode, 200);
  assert.equal(health.json<{ status: string }>().status, 'ok');

  const page = await app.inject({ method: 'GET', url: '/' });
  assert.equal(page.statusCode, 200);
  assert.match(page.headers['content-type'] as string, /text\/html/);
  assert.match(page.body, /<input type="file" id="file"/);
  assert.equal(page.headers['cross-origin-embedder-policy'], 'require-corp');
  for (const file of ['/app.js', '/app.css', '/png.js']) assert.equal((await app.inject({ method: 'GET', url: file })).statusCode, 200, file);

  const pre = await app.inject({ method: 'GET', url: '/lib/infer/preprocess.js' });
  assert.equal(pre.statusCode, 200);
  assert.match(pre.body, /export function normalizeWindow/);
  assert.match(pre.body, /export function tileRanges/);
  const tiled = await app.inject({ method: 'GET', url: '/lib/infer/tiled.js' });
  assert.equal(tiled.statusCode, 200);
  assert.match(tiled.body, /export async function predictInTiles/);
  assert.match(tiled.body, /export function classShares/);
  // the browser cannot resolve bare imports (node:…, packages): the shared modules must have none
  for (const body of [pre.body, tiled.body]) assert.doesNotMatch(body, /^\s*import\s[^'"]*['"](?!\.)/m);

  const ortJs = await app.inject({ method: 'GET', url: '/ort/ort.wasm.min.mjs' });
  assert.equal(ortJs.statusCode, 200);
  assert.match(ortJs.headers['content-type'] as string, /javascript/);
  const wasm = await app.inject({ method: 'GET', url: '/ort/ort-wasm-simd-threaded.wasm' });
  assert.equal(wasm.statusCode, 200);
  assert.equal(wasm.headers['content-type'], 'application/wasm');
  assert.deepEqual([...wasm.rawPayload.subarray(0, 4)], [0, 0x61, 0x73, 0x6d]);

  // the WebGPU build and its binary, for the page's WebGPU backend
  for (const file of ['ort.webgpu.min.mjs', 'ort-wasm-simd-threaded.asyncify.mjs', 'ort-wasm-simd-threaded.asyncify.wasm']) {
    assert.equal((await app.inject({ method: 'GET', url: `/ort/${file}` })).statusCode, 200, file);
  }

  for (const url of ['/nope', '/ort/ort.node.min.js', '/ort/../package.json', '/lib/infer/preprocess.d.ts', '/lib/../../package.json', '/lib/web/server.js', '/lib/infer/model.js']) {
    const res = await app.inject({ method: 'GET', url });
    assert.equal(res.statusCode, 404, url);
    assert.ok(typeof res.json<{ error: string }>().error === 'string', url);
  }
  const get = await app.inject({ method: 'GET', url: '/api/segment' });
  assert.equal(get.statusCode, 405);
  assert.equal(get.headers['allow'], 'POST');
  assert.match(get.json<{ error: string }>().error, /use POST/);
});

test('GET /api/model.onnx: the exported graph gives the same mask as the server (what the page runs in the browser)', async () => {
  const res = await app.inject({ method: 'GET', url: '/api/model.onnx' });
  assert.equal(res.statusCode, 200);
  const session = await Session.create(res.rawPayload, { threads: 2 });
  try {
    const img = picture(100, 70, 5);
    const x = normalizeWindow(img, { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] }, 0, 0, 70, 100, 32);
    assert.deepEqual([x.height, x.width], [96, 128]);
    const out = await session.run({ image: { dtype: 'float32', dims: [1, 3, 96, 128], data: x.data } }, ['mask']);
    const m = out['mask']!.data as BigInt64Array;
    const cropped = new Uint8Array(100 * 70);
    for (let y = 0; y < 70; y++) for (let xx = 0; xx < 100; xx++) cropped[y * 100 + xx] = Number(m[y * 128 + xx]);
    assert.deepEqual(cropped, (await model.predict(img)).data);
  } finally {
    await session.dispose();
  }
  // compiled once, then cached
  const again = await app.inject({ method: 'GET', url: '/api/model.onnx' });
  assert.equal(again.rawPayload.length, res.rawPayload.length);
  // a server without the weights has no ONNX to offer, and says so
  const bare = createServer(model);
  try {
    const none = await bare.inject({ method: 'GET', url: '/api/model.onnx' });
    assert.equal(none.statusCode, 404);
    assert.match(none.json<{ error: string }>().error, /without the model's weights/);
    assert.equal((await bare.inject({ method: 'GET', url: '/api/model' })).json<{ onnx: boolean }>().onnx, false);
  } finally {
    await bare.close();
  }
});

test('a model loaded from an ONNX file: GET /api/model.onnx hands the page that very file, byte for byte (given to the server, or kept by the model as `onnx`)', async () => {
  const file = new Uint8Array([8, 7, 18, 3, 102, 99, 110, 1, 2, 3]);
  // the file wins over the weights: the page runs what the server loaded
  const fromFile = createServer(model, { weights, onnx: file });
  try {
    const res = await fromFile.inject({ method: 'GET', url: '/api/model.onnx' });
    assert.equal(res.statusCode, 200);
    assert.deepEqual([...res.rawPayload], [...file]);
    const info = (await fromFile.inject({ method: 'GET', url: '/api/model' })).json<{ onnx: boolean; onnxOrigin: string }>();
    assert.deepEqual([info.onnx, info.onnxOrigin], [true, 'onnx-file']);
  } finally {
    await fromFile.close();
  }
  assert.equal((await app.inject({ method: 'GET', url: '/api/model' })).json<{ onnxOrigin: string }>().onnxOrigin, 'export');
  // a model that keeps its file's bytes (what infer's ONNX loader gives): the server needs nothing else
  const keeper = Object.create(model, { onnx: { value: file } }) as SegmentationModel;
  const kept = createServer(keeper);
  try {
    assert.deepEqual([...(await kept.inject({ method: 'GET', url: '/api/model.onnx' })).rawPayload], [...file]);
  } finally {
    await kept.close();
  }
});

test('cross-origin isolation: COOP, COEP and CORP on the page, its assets, onnxruntime-web\'s files, the API and errors', async () => {
  for (const url of ['/', '/app.js', '/app.css', '/png.js', '/lib/infer/tiled.js', '/ort/ort.wasm.min.mjs', '/ort/ort-wasm-simd-threaded.mjs',
    '/ort/ort-wasm-simd-threaded.wasm', '/ort/ort.webgpu.min.mjs', '/api/model', '/api/model.onnx', '/healthz', '/nope']) {
    const res = await app.inject({ method: 'GET', url });
    assert.equal(res.headers['cross-origin-opener-policy'], 'same-origin', url);
    assert.equal(res.headers['cross-origin-embedder-policy'], 'require-corp', url);
    assert.equal(res.headers['cross-origin-resource-policy'], 'same-origin', url);
  }
});

test('GET /readyz: 200 {ready:true} with the model loaded and room in the queue, 503 when the queue is full or the server closing; /healthz stays 200', async () => {
  const server = createServer(model, { maxWaiting: 1 });
  try {
    const ready = await server.inject({ method: 'GET', url: '/readyz' });
    assert.equal(ready.statusCode, 200);
    assert.deepEqual(ready.json(), { ready: true });

    const { queue } = serverState(server);
    let release!: () => void;
    const blocker = new Promise<void>((resolve) => { release = resolve; });
    const running = queue.run(() => blocker);
    await new Promise((r) => setImmediate(r));
    const waiting = queue.run(async () => undefined);
    const full = await server.inject({ method: 'GET', url: '/readyz' });
    assert.equal(full.statusCode, 503);
    assert.deepEqual(full.json(), { ready: false, reason: 'queue full (1 requests waiting)' });
    assert.equal((await server.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'liveness is not readiness');
    release();
    await Promise.all([running, waiting]);
    assert.equal((await server.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);
  } finally {
    await server.close();
  }
  assert.deepEqual(readiness(serverState(server)), { ready: false, reason: 'shutting down' });
});

test('without onnxruntime-web (resolver finds none): the server starts, serves the page and the API, /api/model says how to enable the in-browser mode', async () => {
  const server = createServer(model, { weights, resolveOrtWeb: () => undefined });
  try {
    const info = (await server.inject({ method: 'GET', url: '/api/model' })).json<{ ortWeb: boolean; ortWebHint: string; onnx: boolean }>();
    assert.equal(info.ortWeb, false);
    assert.equal(info.onnx, true);
    assert.match(info.ortWebHint, /npm install onnxruntime-web/);
    assert.equal((await server.inject({ method: 'GET', url: '/' })).statusCode, 200);
    const ort = await server.inject({ method: 'GET', url: '/ort/ort.wasm.min.mjs' });
    assert.equal(ort.statusCode, 404);
    assert.match(ort.json<{ error: string }>().error, /onnxruntime-web is not installed on this server \(npm install onnxruntime-web/);
    const png = await encode(picture(40, 30), 'png');
    assert.equal((await server.inject({ method: 'POST', url: '/api/segment', payload: png, headers: { 'content-type': 'image/png' } })).statusCode, 200);
  } finally {
    await server.close();
  }
  // and no module under src/ imports the package itself (only the resolver looks for it)
  const offenders: string[] = [];
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (p.endsWith('.ts') && /from\s+['"]onnxruntime-web['"]|import\(\s*['"]onnxruntime-web['"]/.test(fs.readFileSync(p, 'utf8'))) offenders.push(p);
    }
  };
  walk(path.join(repoRoot, 'src'));
  assert.deepEqual(offenders, []);
});

async function listening(server: FastifyInstance): Promise<number> {
  await server.listen({ host: '127.0.0.1', port: 0 });
  const address = server.server.address();
  assert.ok(address && typeof address === 'object');
  return address.port;
}

test('slow request bodies: a client sending a few bytes at a time gets 408 and a closed connection after the body timeout', async () => {
  const server = createServer(model, { bodyTimeoutS: 0.5 });
  try {
    const port = await listening(server);
    const { socket, closed } = rawClient(port, slowHead(1_000_000));
    const drip = setInterval(() => { if (!socket.destroyed) socket.write('0123456789'); }, 100);
    const { text, ms } = await closed;
    clearInterval(drip);
    assert.match(text, /^HTTP\/1\.1 408 /, text);
    assert.match(text, /request not received within 0\.5 s \(body timeout\)/);
    assert.ok(ms >= 400 && ms < 5000, `closed after ${ms} ms`);
    // a client that stalls inside the headers is cut off too
    const stalled = rawClient(port, 'POST /api/segment HTTP/1.1\r\nHost: localhost\r\nContent-Le');
    assert.ok((await stalled.closed).ms < 5000);
    // the server is fine, and the upload no longer counts
    const png = await encode(picture(48, 32), 'png');
    const ok = await fetch(`http://127.0.0.1:${port}/api/segment`, { method: 'POST', body: png, headers: { 'content-type': 'image/png' } });
    assert.equal(ok.status, 200);
    assert.equal(serverState(server).uploads.snapshot().receiving, 0);
  } finally {
    await server.close();
  }
});

test('many concurrent slow uploads against a small cap: the extra ones get 503 and a closed connection, GETs still answer, a valid upload succeeds once they go', async () => {
  const server = createServer(model, { maxUploads: 2, bodyTimeoutS: 2 });
  try {
    const port = await listening(server);
    const clients = Array.from({ length: 8 }, () => rawClient(port, `${slowHead(100_000)}0123456789`));
    // the six past the cap are answered at once; the two counted ones are still open after 1.2 s
    const early = await Promise.all(clients.map((c) => Promise.race([c.closed, new Promise<null>((r) => setTimeout(() => r(null), 1200))])));
    const refused = early.filter((o): o is { text: string; ms: number } => o !== null);
    assert.equal(refused.length, 6, `${refused.length} of 8 were turned away early`);
    for (const r of refused) {
      assert.match(r.text, /^HTTP\/1\.1 503 /, r.text);
      assert.match(r.text, /server busy: 2 uploads already being received/);
      assert.match(r.text, /connection: close/i);
    }
    const gate = serverState(server).uploads.snapshot();
    assert.equal(gate.receiving, 2);
    assert.equal(gate.refused, 6);
    // requests without a body are not held back by the cap
    assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
    // the two held ones run into the body timeout; then uploads are accepted again
    const held = await Promise.all(clients.map((c) => c.closed));
    assert.equal(held.filter((h) => /^HTTP\/1\.1 408 /.test(h.text)).length, 2);
    const png = await encode(picture(48, 32), 'png');
    const ok = await fetch(`http://127.0.0.1:${port}/api/segment`, { method: 'POST', body: png, headers: { 'content-type': 'image/png' } });
    assert.equal(ok.status, 200, await ok.text());
    assert.equal(serverState(server).uploads.snapshot().receiving, 0);
  } finally {
    await server.close();
  }
});

test('memory held by half-received uploads returns once their connections close', async () => {
  v8.setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const server = createServer(model, { maxUploads: 64, bodyTimeoutS: 30 });
  try {
    const port = await listening(server);
    const settle = async (): Promise<number> => {
      for (let i = 0; i < 3; i++) { gc(); await new Promise((r) => setTimeout(r, 20)); }
      return process.memoryUsage().arrayBuffers;
    };
    const before = await settle();
    const chunk = Buffer.alloc(256 * 1024, 7);
    const clients = Array.from({ length: 40 }, () => rawClient(port, slowHead(1_000_000)));
    await Promise.all(clients.map((c) => new Promise<void>((r) => c.socket.write(chunk, () => r()))));
    // wait until the server holds the 40 x 256 KB received so far
    const deadline = Date.now() + 5000;
    let during = 0;
    while (Date.now() < deadline) {
      during = await settle();
      if (during - before > 8e6 && serverState(server).uploads.snapshot().receiving === 40) break;
    }
    assert.equal(serverState(server).uploads.snapshot().receiving, 40);
    for (const c of clients) c.socket.destroy();
    await Promise.all(clients.map((c) => c.closed));
    await new Promise((r) => setTimeout(r, 100));
    const after = await settle();
    console.log(`# 40 half-received uploads: array buffers ${((during - before) / 1e6).toFixed(1)} MB held, ${((after - before) / 1e6).toFixed(1)} MB after they closed`);
    assert.ok(during - before > 8e6, `the uploads were held (${during - before} bytes)`);
    assert.ok(after - before < 2e6, `${after - before} bytes still held after the connections closed`);
    assert.equal(serverState(server).uploads.snapshot().receiving, 0);
  } finally {
    await server.close();
  }
});

test('serve(): loads the checkpoint, binds 127.0.0.1, a taken port is a one-line FcnError', async () => {
  const running = await serve({ model: ckptPath, port: 0, threads: 1 });
  try {
    assert.match(running.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    const info = await (await fetch(`${running.url}api/model`)).json() as { architecture: string };
    assert.equal(info.architecture, 'fcn32s-resnet18');
    const port = Number(new URL(running.url).port);
    await assert.rejects(serve({ model: ckptPath, port, threads: 1 }), /cannot listen on 127\.0\.0\.1:\d+: address already in use/);
    await assert.rejects(serve({ model: ckptPath, port: 99999 }), /port must be an integer from 0 to 65535, got 99999/);
    // an ONNX model goes to the model loader, not the checkpoint reader: a missing one is a one-line error naming it
    await assert.rejects(serve({ model: '/nonexistent/model.int8.onnx', port: 0 }), (err: Error) => err instanceof FcnError && /^\/nonexistent\/model\.int8\.onnx: /.test(err.message) && !err.message.includes('\n'));
  } finally {
    await running.close();
  }
});

test('serve(): close() drains, but a request still unfinished after the drain timeout is cut off', async () => {
  const running = await serve({ model: ckptPath, port: 0, threads: 1, drainTimeoutS: 0.3 });
  const stalled = rawClient(Number(new URL(running.url).port), `${slowHead(10_000)}0123456789`);
  for (let i = 0; i < 100 && running.inFlight() === 0; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(running.inFlight(), 1);
  const started = Date.now();
  const { cutOff } = await running.close();
  assert.equal(cutOff, 1);
  assert.ok(Date.now() - started < 3000, `closed after ${Date.now() - started} ms`);
  await stalled.closed;
});
