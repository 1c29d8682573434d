// The page in a real browser (Debian's headless Chromium driven by playwright-core, no download):
// upload an image, wait for the overlay, check the legend against the API's classes and the drawn
// overlay against the API's mask, run the same model in the tab with onnxruntime-web and check the
// mask is the same (the page runs predict's own tile loop, infer/tiled.js), check the layout at
// phone width, and take the screenshot the README shows; then, with onnxruntime-web absent (the
// resolver seam finds none), check the page works and its in-browser switch says how to enable it.
// Then every kind of network fcn serves (the book's net, each width-reduced torchvision network
// with a committed fixture) runs in the browser on WebAssembly threads and, where Chromium has a
// WebGPU adapter (SwiftShader's, with --enable-unsafe-webgpu), on WebGPU, with the server's mask;
// the page is cross-origin isolated and its threads are the cores the browser reports; a WebGPU
// that fails is reported, never replaced. An int8 file (fcn quantize's graph, a width-reduced
// fcn_resnet50) served as it is runs on WebAssembly with the server's mask. Times and backends go to
// the test output (# lines).
// FCN_BROWSER_FULL=1 adds the README's timing: every full-size network light enough for a page
// (under 20 M parameters) at 520x520, in the browser and on the server (minutes on 2 cores).
// Skips when /usr/bin/chromium is missing. FCN_UPDATE_SCREENSHOT=1 writes docs/screenshot.png
// (FCN_SCREENSHOT_MODEL=ckpt.safetensors: with a trained model instead of random weights).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { chromium, type Browser } from 'playwright-core';
import { fcnResNet18, initParameters, seededRandom } from '../src/model/index.js';
import { SegmentationModel, loadModel } from '../src/infer/model.js';
import { loadCheckpoint } from '../src/weights/checkpoint.js';
import { tileRanges } from '../src/infer/preprocess.js';
import { renderSynthExample } from '../src/data/synth.js';
import { Rng } from '../src/data/rng.js';
import { decodeMask } from '../src/data/image.js';
import { createServer, type ServerOptions } from '../src/web/server.js';
import { TORCHVISION_NETWORKS, torchvisionNetwork } from '../src/model/torchvision.js';
import { fcnParameters } from '../src/model/params.js';
import { compileExport } from '../src/graph/inference.js';
import { fixturesRoot, repoRoot } from './helpers/fixtures.js';
import { calibratedValues, compileCalibration, compileQuantized, planQuantization } from '../src/graph/quant.js';
import { GrowingHistogram } from '../src/quantize/ranges.js';
import { Session } from '../src/engine/session.js';
import { normalizeWindow } from '../src/infer/preprocess.js';
import { decodeFcnOnnx } from '../src/infer/onnx-file.js';
import { exportMetadata } from '../src/graph/inference.js';
import { defaultColors, defaultNormalization } from '../src/model/card.js';

// The page's globals, for the callbacks run inside the browser (the project compiles without the DOM lib).
declare const document: any;
declare function getComputedStyle(el: unknown): { opacity: string };
declare const MutationObserver: new (callback: () => void) => { observe(target: unknown, options: Record<string, boolean>): void };

const CHROMIUM = process.env['FCN_CHROMIUM'] ?? '/usr/bin/chromium';
const skip = fs.existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM}`;
// --enable-unsafe-webgpu gives headless Chromium a WebGPU adapter (SwiftShader, on the CPU) where it has no GPU
const CHROMIUM_ARGS = ['--no-sandbox', '--enable-unsafe-webgpu', '--disable-dev-shm-usage'];
const ISOLATION = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp', 'cross-origin-resource-policy': 'same-origin' };

interface ApiResult {
  width: number;
  height: number;
  classes: { id: number; name: string; color: number[]; fraction: number }[];
  maskPng: string;
  elapsedMs: number;
}

/** A synthetic scene (shapes on texture, as `fcn synth` makes) as PNG, so the browser and sharp decode the same pixels. */
async function testImage(width = 480, height = 360): Promise<Buffer> {
  const { image } = renderSynthExample(new Rng(7), width, height);
  return sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } }).png().toBuffer();
}

test('the page: upload, overlay, legend, opacity, run in browser gives the same mask, phone width, screenshot', { skip, timeout: 150_000 }, async () => {
  // a small random-weight network unless FCN_SCREENSHOT_MODEL names a trained checkpoint (for a nicer picture)
  const ckpt = process.env['FCN_SCREENSHOT_MODEL'] ? await loadCheckpoint(process.env['FCN_SCREENSHOT_MODEL']) : undefined;
  const arch = ckpt?.arch ?? fcnResNet18({ numClasses: 21 });
  const weights = ckpt?.weights ?? initParameters(arch, seededRandom(1));
  // tiles of 384 (margin 96): the 480-pixel-wide picture goes through overlapping windows on
  // both paths, so the tile loop the page loads from the server is checked in the browser too
  const opts = { threads: 2, tileSize: 384 };
  const model = ckpt ? await loadModel(ckpt, opts) : await SegmentationModel.fromWeights(arch, weights, undefined, opts);
  const app = createServer(model, { weights });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fcn-browser-'));
  let browser: Browser | undefined;
  try {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    assert.ok(address && typeof address === 'object');
    const url = `http://127.0.0.1:${address.port}/`;

    const png = await testImage();
    const imagePath = path.join(tmp, 'shapes.png');
    fs.writeFileSync(imagePath, png);
    const api = (await app.inject({ method: 'POST', url: '/api/segment', payload: png, headers: { 'content-type': 'image/png' } })).json<ApiResult>();
    const apiMask = decodeMask(Buffer.from(api.maskPng, 'base64'));

    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    const page = await browser.newPage({ viewport: { width: 1100, height: 760 }, deviceScaleFactor: 1 });
    const problems: string[] = [];
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('console', (msg) => { if (msg.type() === 'error') problems.push(`console: ${msg.text()}`); });
    // everything the page loads comes from this server (it must work offline), cross-origin isolated
    page.on('request', (req) => { if (!req.url().startsWith(url) && !req.url().startsWith('blob:') && !req.url().startsWith('data:')) problems.push(`off-site request: ${req.url()}`); });
    const isolationSeen = new Set<string>();
    page.on('response', (res) => {
      if (!res.url().startsWith(url)) return;
      const headers = res.headers();
      const pathName = new URL(res.url()).pathname;
      for (const [name, value] of Object.entries(ISOLATION)) if (headers[name] !== value) problems.push(`${pathName}: ${name} is ${headers[name]}`);
      isolationSeen.add(pathName);
    });

    await page.goto(url);
    await page.waitForSelector('body[data-ready="true"]');
    assert.equal((await page.textContent('#model-info'))?.trim(), `${arch.name} · ${arch.numClasses} classes`);

    // record what the progress indicator says while work is under way
    await page.evaluate(() => {
      const seen: string[] = [];
      (globalThis as unknown as { progressSeen: string[] }).progressSeen = seen;
      const progress = document.querySelector('#progress');
      new MutationObserver(() => {
        const text = document.querySelector('#status').textContent;
        if (!progress.hidden && seen[seen.length - 1] !== text) seen.push(text);
      }).observe(progress, { attributes: true, subtree: true, childList: true, characterData: true });
    });
    const progressSeen = async (): Promise<string[]> => page.evaluate(() => (globalThis as unknown as { progressSeen: string[] }).progressSeen.splice(0));

    // --- server path ---
    await page.setInputFiles('#file', imagePath);
    await page.waitForSelector('#result[data-state="done"][data-source="server"]', { timeout: 30_000 });
    const legend = await page.$$eval('#legend li', (items) => items.map((li) => ({
      id: Number((li as { dataset: Record<string, string> }).dataset['classId']),
      name: (li as { querySelector(s: string): { textContent: string } }).querySelector('.name').textContent,
      share: (li as { querySelector(s: string): { textContent: string } }).querySelector('.share').textContent,
    })));
    assert.deepEqual(legend, api.classes.map((c) => ({ id: c.id, name: c.name, share: c.fraction > 0 && c.fraction < 0.0005 ? '<0.1%' : `${(c.fraction * 100).toFixed(1)}%` })));
    assert.ok(legend.length >= 2, 'the picture gives more than one class');
    assert.ok((await progressSeen()).includes('Segmenting on the server…'), 'progress shown while the server works');

    const maskFromLink = async (): Promise<Buffer> => Buffer.from(await page.evaluate(async () => {
      const link = document.querySelector('#download');
      return [...new Uint8Array(await (await fetch(link.href)).arrayBuffer())];
    }));
    const serverDownload = decodeMask(await maskFromLink());
    assert.deepEqual([serverDownload.width, serverDownload.height], [api.width, api.height]);
    assert.deepEqual(serverDownload.data, apiMask.data, 'the download is the API\'s mask');
    assert.match(await page.getAttribute('#download', 'download') ?? '', /^shapes\.mask\.png$/);

    // the overlay is drawn from that mask: class colours, background left clear
    const probes = Array.from({ length: 40 }, (_, k) => Math.floor(((k + 0.5) / 40) * api.width * api.height));
    const overlay = await page.evaluate((points) => {
      const canvas = document.querySelector('#overlay');
      const px = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
      return { width: canvas.width, height: canvas.height, pixels: points.map((p) => [px[4 * p], px[4 * p + 1], px[4 * p + 2], px[4 * p + 3]]) };
    }, probes);
    assert.deepEqual([overlay.width, overlay.height], [api.width, api.height]);
    const colors = new Map(api.classes.map((c) => [c.id, c.color]));
    probes.forEach((p, k) => {
      const id = apiMask.data[p]!;
      const expected = id === 0 ? [0, 0, 0, 0] : [...colors.get(id)!, 255];
      if (id === 0) assert.equal(overlay.pixels[k]![3], 0, `probe ${p}: background is clear`);
      else assert.deepEqual(overlay.pixels[k], expected, `probe ${p}: class ${id}`);
    });

    await page.fill('#opacity', '30');
    assert.equal(await page.$eval('#overlay', (el) => getComputedStyle(el).opacity), '0.3');
    await page.fill('#opacity', '65');
    await page.locator('#opacity').blur();
    assert.equal(await page.isHidden('#progress'), true, 'the progress indicator is gone once the result is shown');

    const screenshot = process.env['FCN_UPDATE_SCREENSHOT'] ? path.join(repoRoot, 'docs', 'screenshot.png') : path.join(tmp, 'screenshot.png');
    fs.mkdirSync(path.dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot, fullPage: true });
    const shot = await sharp(screenshot).metadata();
    assert.equal(shot.width, 1100);

    // --- in-browser path: the exported graph under onnxruntime-web ---
    await page.check('#in-browser');
    await page.waitForSelector('#result[data-state="done"][data-source="browser"]', { timeout: 75_000 });
    const browserSteps = await progressSeen();
    assert.ok(browserSteps.some((t) => /^Downloading the model [\d.]+ MB of [\d.]+ MB…$/.test(t)), browserSteps.join(' | '));
    const tiles = tileRanges(api.height, model.tileSize, model.tileMargin).length * tileRanges(api.width, model.tileSize, model.tileMargin).length;
    assert.ok(tiles > 1, 'the test picture is tiled');
    assert.ok(browserSteps.includes(`Segmenting in the browser with WebAssembly (tile ${tiles} of ${tiles})…`), browserSteps.join(' | '));
    const browserMask = decodeMask(await maskFromLink());
    assert.deepEqual([browserMask.width, browserMask.height], [api.width, api.height]);
    let differing = 0;
    for (let i = 0; i < apiMask.data.length; i++) if (browserMask.data[i] !== apiMask.data[i]) differing++;
    assert.equal(differing, 0, `${differing} of ${apiMask.data.length} pixels differ between the server and the browser`);
    const browserLegend = await page.$$eval('#legend li', (items) => items.map((li) => Number((li as { dataset: Record<string, string> }).dataset['classId'])));
    assert.deepEqual(browserLegend, api.classes.map((c) => c.id));
    const meta = await page.textContent('#meta') ?? '';
    // cross-origin isolated, so WebAssembly runs on as many threads as the browser reports cores
    const { isolated, cores } = await page.evaluate(() => ({ isolated: (globalThis as unknown as { crossOriginIsolated: boolean }).crossOriginIsolated, cores: (globalThis as unknown as { navigator: { hardwareConcurrency: number } }).navigator.hardwareConcurrency }));
    assert.equal(isolated, true, 'the page is cross-origin isolated');
    assert.match(meta, new RegExp(`in the browser \\(onnxruntime-web, WebAssembly, ${cores} threads?\\) in \\d+ ms`));
    assert.equal(await page.getAttribute('#result', 'data-backend'), 'wasm');
    assert.match(await page.textContent('#backend-note') ?? '', new RegExp(`^This page is cross-origin isolated: WebAssembly runs on ${cores} threads?`));
    for (const p of ['/', '/app.js', '/api/model.onnx', '/ort/ort.wasm.min.mjs', '/ort/ort-wasm-simd-threaded.mjs', '/ort/ort-wasm-simd-threaded.wasm']) assert.ok(isolationSeen.has(p), `${p} loaded with its headers checked`);
    console.log(`# book's net (${arch.name}), random weights, tiles of ${model.tileSize}: ${meta} On the server (onnxruntime-node, 2 threads): ${api.elapsedMs} ms.`);

    // --- phone width: nothing wider than the screen, the image scaled to fit ---
    await page.setViewportSize({ width: 390, height: 844 });
    const layout = await page.evaluate(() => ({
      scrollWidth: document.documentElement.scrollWidth,
      photo: document.querySelector('#photo').getBoundingClientRect().width,
      drop: document.querySelector('#drop').getBoundingClientRect().width,
    }));
    assert.ok(layout.scrollWidth <= 390, `page is ${layout.scrollWidth}px wide at 390px`);
    assert.ok(layout.photo <= 390 - 2 * 16 && layout.photo > 250, `image is ${layout.photo}px wide`);
    assert.ok(layout.drop > 250, `drop zone is ${layout.drop}px wide`);
    await page.screenshot({ path: path.join(tmp, 'phone.png'), fullPage: true });
    if (process.env['FCN_KEEP_SCREENSHOTS']) {
      for (const f of ['screenshot.png', 'phone.png']) if (fs.existsSync(path.join(tmp, f))) fs.copyFileSync(path.join(tmp, f), path.join(process.env['FCN_KEEP_SCREENSHOTS'], f));
    }

    assert.deepEqual(problems, []);

    // --- a file that is not an image: a readable error, no crash ---
    await page.uncheck('#in-browser');
    await page.waitForSelector('#result[data-source="server"][data-state="done"]');
    const textPath = path.join(tmp, 'notes.txt');
    fs.writeFileSync(textPath, 'not an image');
    await page.setInputFiles('#file', textPath);
    await page.waitForSelector('#error:not([hidden])');
    assert.match(await page.textContent('#error') ?? '', /not a readable image/);
    assert.equal(await page.isHidden('#in-browser-note'), true, 'no note while the in-browser mode is available');

    // --- without onnxruntime-web: the server path works, the switch is off and says how to enable it ---
    const bare = createServer(model, { weights, resolveOrtWeb: () => undefined });
    try {
      await bare.listen({ host: '127.0.0.1', port: 0 });
      const bareAddress = bare.server.address();
      assert.ok(bareAddress && typeof bareAddress === 'object');
      const bareUrl = `http://127.0.0.1:${bareAddress.port}/`;
      const page2 = await browser.newPage({ viewport: { width: 1100, height: 760 } });
      const problems2: string[] = [];
      page2.on('pageerror', (err) => problems2.push(`page error: ${err.message}`));
      page2.on('console', (msg) => { if (msg.type() === 'error') problems2.push(`console: ${msg.text()}`); });
      page2.on('request', (req) => { if (new URL(req.url()).pathname.startsWith('/ort/')) problems2.push(`asked for ${req.url()}`); });
      await page2.goto(bareUrl);
      await page2.waitForSelector('body[data-ready="true"]');
      assert.equal(await page2.isDisabled('#in-browser'), true);
      assert.match(await page2.textContent('#in-browser-note') ?? '', /^In-browser mode is off: .*npm install onnxruntime-web/);
      assert.equal(await page2.isVisible('#in-browser-note'), true);
      await page2.setInputFiles('#file', imagePath);
      await page2.waitForSelector('#result[data-state="done"][data-source="server"]', { timeout: 30_000 });
      assert.deepEqual(await page2.$$eval('#legend li', (items) => items.map((li) => Number((li as { dataset: Record<string, string> }).dataset['classId']))), api.classes.map((c) => c.id));
      assert.deepEqual(problems2, []);
    } finally {
      await bare.close();
    }
  } finally {
    await browser?.close();
    await app.close();
    await model.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

/**
 * Where two masks of the same network differ, and which of those differences are not ties: the
 * browser's engine sums in another order than the server's (other kernels, other threads), so a
 * pixel whose two best classes are within float32 rounding of each other may flip; any other
 * difference is a real disagreement. `logits` is the server's, 1xCxHxW.
 */
function compareMasks(browser: Uint8Array, server: Uint8Array, logits: Float32Array): { differing: number; unexplained: string[] } {
  const plane = server.length;
  let differing = 0;
  const unexplained: string[] = [];
  for (let i = 0; i < plane; i++) {
    const a = server[i]!;
    const b = browser[i]!;
    if (a === b) continue;
    differing++;
    const la = logits[a * plane + i]!;
    const lb = logits[b * plane + i]!;
    if (Math.abs(la - lb) > 1e-4 * (1 + Math.abs(la))) unexplained.push(`pixel ${i}: class ${a} (${la}) on the server, ${b} (${lb}) in the browser`);
  }
  return { differing, unexplained: unexplained.slice(0, 5) };
}

/** Listens on a free loopback port; the server's URL. */
async function listen(app: ReturnType<typeof createServer>): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  assert.ok(address && typeof address === 'object');
  return `http://127.0.0.1:${address.port}/`;
}

/** A served network: its model and where the page's graph comes from. */
interface ServedCase {
  label: string;
  model: SegmentationModel;
  source: Pick<ServerOptions, 'weights' | 'onnx'>;
  /**
   * Whether to run it on WebGPU too: SwiftShader emulates the GPU on the CPU, where a first run
   * (every kernel's pipeline compiled) takes 25-40 s even for a tiny network, so one network does.
   */
  gpu: boolean;
}

/**
 * The book's net (graph exported from its weights) and each torchvision network with a fixture
 * (served from ONNX bytes, as an `fcn export` file), less the ResNet-101 builds (ResNet-50's with
 * more blocks: nothing new for the page); the first of those runs on WebGPU as well.
 */
async function servedCases(): Promise<ServedCase[]> {
  const arch = fcnResNet18({ numClasses: 21 });
  const weights = initParameters(arch, seededRandom(3));
  const cases: ServedCase[] = [{ label: `${arch.name} (book's net, graph exported from its weights)`, model: await SegmentationModel.fromWeights(arch, weights, undefined, { threads: 2 }), source: { weights }, gpu: false }];
  for (const name of TORCHVISION_NETWORKS) {
    const file = path.join(fixturesRoot, 'torchvision', `${name}.pth`);
    if (!fs.existsSync(file) || name.endsWith('_resnet101')) continue;
    const ckpt = await loadCheckpoint(file);
    const onnx = compileExport(ckpt.arch, ckpt.weights, ckpt);
    cases.push({ label: `${name} (width-reduced, served from its ONNX file)`, model: await loadModel(ckpt, { threads: 2 }), source: { onnx }, gpu: cases.length === 1 });
  }
  return cases;
}

test('every network fcn serves runs in this browser: WebAssembly threads and WebGPU give the server\'s mask; a failing WebGPU is reported, never replaced', { skip, timeout: 360_000 }, async () => {
  const cases = await servedCases();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fcn-browser-nets-'));
  const imagePath = path.join(tmp, 'scene.png');
  const [W, H] = [120, 88];
  fs.writeFileSync(imagePath, await testImage(W, H));
  const image = renderSynthExample(new Rng(7), W, H).image;
  let browser: Browser | undefined;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    // onnxruntime-web's WebGPU build warns (on the error console) that it keeps shape ops on the CPU, as it always does
    page.on('console', (msg) => { if (msg.type() === 'error' && !/VerifyEachNodeIsAssignedToAnEp/.test(msg.text())) problems.push(`console: ${msg.text()}`); });
    const downloaded = async (): Promise<Uint8Array> => decodeMask(Buffer.from(await page.evaluate(async () => {
      const link = document.querySelector('#download');
      return [...new Uint8Array(await (await fetch(link.href)).arrayBuffer())];
    }))).data;
    /** Runs on `backend` (after the page switched to it) and waits for its result, or fails with the page's error. */
    const finished = async (backend: string, timeout = 60_000): Promise<{ ms: number; threads?: string }> => {
      await page.waitForSelector(`#result[data-state="done"][data-backend="${backend}"], #result[data-state="error"]`, { timeout });
      if (await page.getAttribute('#result', 'data-state') === 'error') assert.fail(`${backend}: ${await page.textContent('#error')}`);
      return { ms: Number(await page.getAttribute('#result', 'data-elapsed-ms')), threads: await page.getAttribute('#result', 'data-threads') ?? undefined };
    };

    let gpuAvailable = false;
    for (const c of cases) {
      const app = createServer(c.model, c.source);
      try {
        const url = await listen(app);
        const graph = await app.inject({ method: 'GET', url: '/api/model.onnx' });
        if (c.source.onnx) assert.ok(graph.rawPayload.equals(Buffer.from(c.source.onnx)), 'the page gets the ONNX file itself');
        await page.goto(url);
        await page.waitForSelector('body[data-ready="true"]');
        assert.equal(await page.evaluate(() => (globalThis as unknown as { crossOriginIsolated: boolean }).crossOriginIsolated), true);
        gpuAvailable = await page.getAttribute('body', 'data-webgpu') === 'true';
        await page.setInputFiles('#file', imagePath);
        const server = await finished('server');
        const serverMask = await downloaded();
        const logits = await c.model.logits(image);
        await page.check('#in-browser');
        const wasm = await finished('wasm');
        const wasmDiff = compareMasks(await downloaded(), serverMask, logits);
        let line = `${c.label} ${W}x${H}: server ${server.ms} ms; browser WebAssembly ${wasm.threads} threads ${wasm.ms} ms (${wasmDiff.differing} pixels differ, all ties)`;
        assert.deepEqual(wasmDiff.unexplained, [], `${c.label}: pixels differ between the server and WebAssembly in the browser where the server's logits do not tie`);
        if (gpuAvailable && c.gpu) {
          await page.selectOption('#backend', 'webgpu');
          // SwiftShader's first run compiles every kernel on the CPU: 25-40 s on 2 quiet cores, more under load
          const gpu = await finished('webgpu', 180_000);
          const gpuDiff = compareMasks(await downloaded(), serverMask, logits);
          line += `; WebGPU ${gpu.ms} ms (${gpuDiff.differing} pixels differ, all ties)`;
          assert.match(await page.textContent('#meta') ?? '', /in the browser \(onnxruntime-web, WebGPU( \(.*\))?\) in \d+ ms/);
          assert.deepEqual(gpuDiff.unexplained, [], `${c.label}: pixels differ between the server and WebGPU in the browser where the server's logits do not tie`);
          await page.selectOption('#backend', 'wasm');
          await finished('wasm');
        } else if (!gpuAvailable) {
          line += `; WebGPU not offered (${await page.textContent('#backend-note')})`;
        }
        console.log(`# ${line}`);
        await page.uncheck('#in-browser');
        await finished('server');
      } finally {
        await app.close();
      }
    }
    assert.deepEqual(problems, []);

    // WebGPU that fails (its device refused): the page says so and runs nothing in its place
    if (gpuAvailable) {
      const book = cases[0]!;
      const app = createServer(book.model, book.source);
      try {
        const url = await listen(app);
        const page2 = await browser.newPage();
        await page2.addInitScript(() => {
          (globalThis as unknown as { GPUAdapter: { prototype: { requestDevice: () => Promise<never> } } }).GPUAdapter.prototype.requestDevice = () => Promise.reject(new Error('device lost (test)'));
        });
        const asked: string[] = [];
        page2.on('request', (req) => asked.push(new URL(req.url()).pathname));
        await page2.goto(url);
        await page2.waitForSelector('body[data-ready="true"]');
        await page2.check('#in-browser');
        await page2.selectOption('#backend', 'webgpu');
        await page2.setInputFiles('#file', imagePath);
        await page2.waitForSelector('#result[data-state="error"][data-failed-backend="webgpu"]', { state: 'attached', timeout: 60_000 });
        const error = await page2.textContent('#error') ?? '';
        assert.match(error, /^WebGPU failed: the GPU refused a device: device lost \(test\) \(pick WebAssembly to run on the CPU\)$/);
        assert.match(await page2.textContent('#meta') ?? '', /^WebGPU failed in this browser; nothing was run in its place\.$/);
        assert.equal(await page2.isVisible('#error'), true);
        assert.ok(!asked.includes('/ort/ort.wasm.min.mjs'), 'nothing was run on WebAssembly instead');
        console.log(`# WebGPU made to fail: the page says "${error.slice(0, 120)}"`);
      } finally {
        await app.close();
      }
    }
  } finally {
    await browser?.close();
    for (const c of cases) await c.model.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('full-size networks light enough for a page, 520x520: time per image in the browser (WebAssembly) and on the server, same mask', { skip: skip || (process.env['FCN_BROWSER_FULL'] ? false : 'set FCN_BROWSER_FULL=1 to time full-size networks'), timeout: 900_000 }, async () => {
  const candidates = [fcnResNet18({ numClasses: 21 }), ...TORCHVISION_NETWORKS.map((name) => torchvisionNetwork(name))];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fcn-browser-full-'));
  const imagePath = path.join(tmp, 'scene.png');
  fs.writeFileSync(imagePath, await testImage(520, 520));
  const image = renderSynthExample(new Rng(7), 520, 520).image;
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  try {
    for (const arch of candidates) {
      const params = fcnParameters(arch).reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);
      if (params > 20e6) {
        console.log(`# ${arch.name}: ${(params / 1e6).toFixed(1)} M parameters, not timed (over 20 M)`);
        continue;
      }
      const weights = initParameters(arch, seededRandom(5));
      const model = await SegmentationModel.fromWeights(arch, weights, undefined, { threads: 2 });
      const app = createServer(model, { weights });
      const page = await browser.newPage();
      try {
        await page.goto(await listen(app));
        await page.waitForSelector('body[data-ready="true"]');
        await page.setInputFiles('#file', imagePath);
        await page.waitForSelector('#result[data-state="done"][data-backend="server"]', { timeout: 300_000 });
        const serverMs = await page.getAttribute('#result', 'data-elapsed-ms');
        const mask = async (): Promise<Uint8Array> => decodeMask(Buffer.from(await page.evaluate(async () => [...new Uint8Array(await (await fetch(document.querySelector('#download').href)).arrayBuffer())]))).data;
        const serverMask = await mask();
        await page.check('#in-browser');
        await page.waitForSelector('#result[data-state="done"][data-backend="wasm"]', { timeout: 300_000 });
        const first = await page.getAttribute('#result', 'data-elapsed-ms');
        const cmp = compareMasks(await mask(), serverMask, await model.logits(image));
        assert.deepEqual(cmp.unexplained, [], arch.name);
        // the same image again (back to the server and in the browser once more): the session is
        // made by now, so this is the steady time per image
        await page.uncheck('#in-browser');
        await page.waitForSelector('#result[data-state="done"][data-backend="server"]', { timeout: 300_000 });
        await page.check('#in-browser');
        await page.waitForSelector('#result[data-state="done"][data-backend="wasm"]', { timeout: 300_000 });
        const again = await page.getAttribute('#result', 'data-elapsed-ms');
        const threads = await page.getAttribute('#result', 'data-threads');
        console.log(`# ${arch.name} (${(params / 1e6).toFixed(1)} M parameters) 520x520: server ${serverMs} ms; browser WebAssembly ${threads} threads ${first} ms first, ${again} ms again (${cmp.differing} pixels differ, all ties)`);
      } finally {
        await page.close();
        await app.close();
        await model.dispose();
      }
    }
  } finally {
    await browser.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('an int8 file (fcn quantize\'s) runs in the browser on WebAssembly with the server\'s mask', { skip, timeout: 240_000 }, async () => {
  // a width-reduced fcn_resnet50 with random weights, ranges calibrated (min/max) on the test scene
  const arch = torchvisionNetwork('fcn_resnet50', { numClasses: 21, width: 4, aux: false });
  const weights = initParameters(arch, seededRandom(5));
  const [W, H] = [120, 88];
  const image = renderSynthExample(new Rng(7), W, H).image;
  const card = { classes: Array.from({ length: 21 }, (_, i) => `c${i}`), colors: defaultColors(21), normalization: defaultNormalization() };
  const plan = planQuantization(arch, weights);
  const values = calibratedValues(plan);
  const x = normalizeWindow(image, card.normalization, 0, 0, H, W, arch.stride);
  const cal = await Session.create(compileCalibration(plan), { threads: 2 });
  const out = await cal.run({ [arch.input]: { dtype: 'float32', dims: [1, 3, x.height, x.width], data: x.data } }, values.filter((v) => v !== arch.input));
  await cal.dispose();
  const ranges = new Map(values.map((v) => {
    const h = new GrowingHistogram();
    h.add(v === arch.input ? x.data : out[v]!.data as Float32Array);
    return [v, h.range({ method: 'minmax', percentile: 100 })] as const;
  }));
  const bytes = compileQuantized(plan, ranges, { metadata: { ...exportMetadata(arch, card), precision: 'int8' } });
  const model = await SegmentationModel.fromOnnx(decodeFcnOnnx(bytes, 'net.int8.onnx'), { threads: 2 });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fcn-browser-int8-'));
  const imagePath = path.join(tmp, 'scene.png');
  fs.writeFileSync(imagePath, await testImage(W, H));
  const app = createServer(model, { onnx: bytes });
  let browser: Browser | undefined;
  try {
    const url = await listen(app);
    const graph = await app.inject({ method: 'GET', url: '/api/model.onnx' });
    assert.ok(graph.rawPayload.equals(Buffer.from(bytes)), 'the page gets the int8 file itself');
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('console', (msg) => { if (msg.type() === 'error') problems.push(`console: ${msg.text()}`); });
    const downloaded = async (): Promise<Uint8Array> => decodeMask(Buffer.from(await page.evaluate(async () => {
      const link = document.querySelector('#download');
      return [...new Uint8Array(await (await fetch(link.href)).arrayBuffer())];
    }))).data;
    const finished = async (backend: string): Promise<number> => {
      await page.waitForSelector(`#result[data-state="done"][data-backend="${backend}"], #result[data-state="error"]`, { timeout: 120_000 });
      if (await page.getAttribute('#result', 'data-state') === 'error') assert.fail(`${backend}: ${await page.textContent('#error')}`);
      return Number(await page.getAttribute('#result', 'data-elapsed-ms'));
    };
    await page.goto(url);
    await page.waitForSelector('body[data-ready="true"]');
    await page.setInputFiles('#file', imagePath);
    const serverMs = await finished('server');
    const serverMask = await downloaded();
    const classes = new Set(serverMask).size;
    assert.ok(classes > 1, 'the mask has more than one class (a comparison worth making)');
    await page.check('#in-browser');
    const wasmMs = await finished('wasm');
    const diff = compareMasks(await downloaded(), serverMask, await model.logits(image));
    assert.deepEqual(diff.unexplained, [], 'pixels differ between the server and WebAssembly in the browser where the server\'s logits do not tie');
    assert.deepEqual(problems, []);
    console.log(`# int8 fcn_resnet50 (width-reduced, ${classes} classes in the mask) ${W}x${H}: server ${serverMs} ms; browser WebAssembly ${wasmMs} ms (${diff.differing} pixels differ, all ties)`);
  } finally {
    await browser?.close();
    await app.close();
    await model.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
