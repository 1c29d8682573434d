// The page: pick or drop an image, segment it on the server (POST /api/segment) or in this tab
// (the model's ONNX graph under onnxruntime-web, on WebAssembly threads or WebGPU, run through the
// very tile loop and class shares `fcn predict` uses: the compiled infer/tiled.js the server hands
// out), and show the image with its colour mask, the legend, the time taken and where it ran, and
// a download of the mask PNG.
import { decodeIndexedPng, encodeIndexedPng } from './png.js';

const $ = (id) => document.getElementById(id);
const ui = {
  file: $('file'), drop: $('drop'), limits: $('limits'), inBrowser: $('in-browser'),
  progress: $('progress'), bar: $('bar'), status: $('status'), error: $('error'),
  result: $('result'), stage: $('stage'), photo: $('photo'), overlay: $('overlay'), hover: $('hover'),
  opacity: $('opacity'), legend: $('legend'), meta: $('meta'), download: $('download'), modelInfo: $('model-info'),
  inBrowserNote: $('in-browser-note'), backend: $('backend'), backendNote: $('backend-note'),
};

/** GET /api/model: classes, colours, normalisation, stride, tile settings, limits. */
let info = null;
/** The image on show: { file, bitmap }. */
let current = null;
/** The result on show: { source, backend, threads, width, height, ids, classes, png, elapsedMs }. */
let shown = null;
let runCounter = 0;
let downloadUrl = null;

// ---- progress and errors ----

function setProgress(text, fraction) {
  ui.progress.hidden = false;
  ui.status.textContent = text;
  if (fraction === undefined) ui.bar.removeAttribute('value');
  else ui.bar.value = fraction;
}
function clearProgress() { ui.progress.hidden = true; }
function showError(message) { ui.error.textContent = message; ui.error.hidden = false; }
function clearError() { ui.error.hidden = true; ui.error.textContent = ''; }

const formatMb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;

// ---- the server path ----

/** POSTs the file as the raw body; XHR rather than fetch for upload progress on slow links. */
function segmentOnServer(file) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/api/segment');
    xhr.setRequestHeader('Content-Type', file.type || 'application/octet-stream');
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.responseType = 'json';
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable && e.loaded < e.total) setProgress(`Uploading ${formatMb(e.loaded)} of ${formatMb(e.total)}…`, e.loaded / e.total);
      else setProgress('Segmenting on the server…');
    };
    xhr.upload.onload = () => setProgress('Segmenting on the server…');
    xhr.onload = () => {
      if (xhr.status === 200 && xhr.response) resolve(xhr.response);
      else reject(new Error(xhr.response?.error ?? `the server answered ${xhr.status} ${xhr.statusText}`));
    };
    xhr.onerror = () => reject(new Error('could not reach the server (is `fcn serve` still running?)'));
    xhr.send(file);
  });
}

async function runOnServer(file) {
  setProgress('Segmenting on the server…');
  const r = await segmentOnServer(file);
  const png = Uint8Array.from(atob(r.maskPng), (ch) => ch.charCodeAt(0));
  const mask = await decodeIndexedPng(png);
  return { source: 'server', width: r.width, height: r.height, ids: mask.data, classes: r.classes, png, elapsedMs: r.elapsedMs };
}

// ---- the in-browser path ----

// Two onnxruntime-web builds, loaded on first use: WebAssembly on the CPU, and WebGPU (whose build
// is larger). Several WebAssembly threads need SharedArrayBuffer, which only a cross-origin isolated
// page has (fcn serve sends the headers); without it onnxruntime-web runs on one thread.
const BACKENDS = {
  wasm: { label: 'WebAssembly', module: '/ort/ort.wasm.min.mjs' },
  webgpu: { label: 'WebGPU', module: '/ort/ort.webgpu.min.mjs' },
};
const isolated = self.crossOriginIsolated === true;
const wasmThreads = isolated ? Math.max(1, navigator.hardwareConcurrency || 1) : 1;
/** What WebGPU offers here: { available, reason } (filled by probeWebGpu). */
let webgpu = { available: false, reason: 'not probed yet' };
/** backend -> { ort, session: Promise<InferenceSession> } */
const runtimes = {};
let browserQueue = Promise.resolve();

/** Whether this browser has a WebGPU adapter (headless browsers and some GPUs have none). */
async function probeWebGpu() {
  if (!navigator.gpu) return { available: false, reason: 'this browser has no WebGPU (navigator.gpu is missing)' };
  try {
    const adapter = await Promise.race([
      navigator.gpu.requestAdapter(),
      new Promise((resolve) => setTimeout(() => resolve(null), 5000)),
    ]);
    if (!adapter) return { available: false, reason: 'WebGPU found no adapter (no usable GPU)' };
    const i = adapter.info ?? {};
    const name = [i.vendor, i.architecture, i.description].filter(Boolean).join(' ');
    return { available: true, reason: '', adapter: name || 'unnamed adapter' };
  } catch (err) {
    return { available: false, reason: `WebGPU adapter request failed: ${err.message ?? err}` };
  }
}

/** Asks for a WebGPU device once before onnxruntime-web does, whose own failure is only an error code. */
async function checkWebGpuDevice() {
  const adapter = await navigator.gpu?.requestAdapter();
  if (!adapter) throw new Error('no WebGPU adapter');
  let device;
  try {
    device = await adapter.requestDevice();
  } catch (err) {
    throw new Error(`the GPU refused a device: ${err.message ?? err}`);
  }
  device.destroy();
}

/** A thrown value in words (onnxruntime-web's WebAssembly can throw bare numbers). */
function errorText(err) {
  if (err instanceof Error) return err.message;
  if (typeof err === 'number') return `onnxruntime-web stopped with internal error ${err} (the browser console has its log)`;
  return String(err);
}

async function loadOrt(backend) {
  setProgress(`Loading onnxruntime-web (${BACKENDS[backend].label})…`);
  const ort = await import(BACKENDS[backend].module);
  ort.env.wasm.wasmPaths = '/ort/';
  ort.env.wasm.numThreads = wasmThreads;
  return ort;
}

async function fetchWithProgress(url, label) {
  const response = await fetch(url);
  if (!response.ok) {
    const body = await response.json().catch(() => null);
    throw new Error(body?.error ?? `${url}: the server answered ${response.status}`);
  }
  const total = Number(response.headers.get('content-length')) || 0;
  const reader = response.body.getReader();
  const chunks = [];
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    received += value.length;
    setProgress(`${label} ${formatMb(received)}${total ? ` of ${formatMb(total)}` : ''}…`, total ? received / total : undefined);
  }
  const out = new Uint8Array(received);
  let pos = 0;
  for (const c of chunks) { out.set(c, pos); pos += c.length; }
  return out;
}

/** The model's graph, downloaded once for every backend. */
let graphPromise = null;
function modelGraph() {
  graphPromise ??= fetchWithProgress('/api/model.onnx', 'Downloading the model').catch((err) => { graphPromise = null; throw err; });
  return graphPromise;
}

/**
 * The session for `backend`, created once. Only that backend is listed: if it cannot run the
 * model the creation fails and the page says so, rather than running somewhere else unannounced.
 */
function runtime(backend) {
  runtimes[backend] ??= (async () => {
    if (backend === 'webgpu') await checkWebGpuDevice();
    const ort = await loadOrt(backend);
    const bytes = await modelGraph();
    setProgress(`Preparing the model for ${BACKENDS[backend].label}…`);
    const session = await ort.InferenceSession.create(bytes, { executionProviders: [backend], graphOptimizationLevel: 'all' });
    return { ort, session };
  })().catch((err) => { delete runtimes[backend]; throw err; });
  return runtimes[backend];
}

/** Class ids from a graph's output: its `mask` (argmax) when it has one, else the argmax of its 1xCxHxW logits. */
function classIds(output, height, width) {
  if (output.type !== 'float32') return output.data;
  const [, C] = output.dims;
  const plane = height * width;
  const ids = new Uint8Array(plane);
  const best = Float32Array.from(output.data.subarray(0, plane));
  for (let c = 1; c < C; c++) {
    const channel = output.data.subarray(c * plane, (c + 1) * plane);
    for (let i = 0; i < plane; i++) if (channel[i] > best[i]) { best[i] = channel[i]; ids[i] = c; }
  }
  return ids;
}

/** What ran, in words: "WebAssembly, 4 threads" or "WebGPU (adapter)". */
function backendWords(backend, threads) {
  if (backend === 'webgpu') return `WebGPU${webgpu.adapter ? ` (${webgpu.adapter})` : ''}`;
  return `WebAssembly, ${threads} thread${threads === 1 ? '' : 's'}`;
}

/** predict's tile loop in this tab: each window through onnxruntime-web, the same cores kept, the same class shares. */
async function runInBrowser(bitmap, backend) {
  const [{ ort, session }, tiled] = await Promise.all([runtime(backend), import('/lib/infer/tiled.js')]);
  const image = rgbPixels(bitmap);
  const settings = { normalization: info.normalization, stride: info.stride, tileSize: info.tileSize, tileMargin: info.tileMargin };
  const output = session.outputNames.includes('mask') ? 'mask' : session.outputNames[0];
  const started = performance.now();
  const ids = await tiled.predictInTiles(image, settings, async (x) => {
    const out = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x.data, [1, 3, x.height, x.width]) }, [output]);
    return classIds(out[output], x.height, x.width);
  }, (index, count) => setProgress(`Segmenting in the browser with ${BACKENDS[backend].label}${count > 1 ? ` (tile ${index + 1} of ${count})` : ''}…`));
  const elapsedMs = Math.round(performance.now() - started);
  const { width, height } = image;
  const png = await encodeIndexedPng(width, height, ids, info.colors);
  const threads = backend === 'wasm' ? ort.env.wasm.numThreads : undefined;
  return { source: 'browser', backend, threads, width, height, ids, classes: tiled.classShares(ids, info.classes, info.colors), png, elapsedMs };
}

/** The bitmap's pixels as 8-bit RGB, row by row (the RgbImage layout the preprocessing takes). */
function rgbPixels(bitmap) {
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  const rgba = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
  const rgb = new Uint8Array(bitmap.width * bitmap.height * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) { rgb[j] = rgba[i]; rgb[j + 1] = rgba[i + 1]; rgb[j + 2] = rgba[i + 2]; }
  return { width: bitmap.width, height: bitmap.height, data: rgb };
}

// ---- showing a result ----

function render(result) {
  const { bitmap, file } = current;
  shown = result;
  ui.photo.width = bitmap.width;
  ui.photo.height = bitmap.height;
  ui.photo.getContext('2d').drawImage(bitmap, 0, 0);

  // the mask in class colours; background left clear so the photo shows through
  ui.overlay.width = result.width;
  ui.overlay.height = result.height;
  const ctx = ui.overlay.getContext('2d');
  const rgba = ctx.createImageData(result.width, result.height);
  const background = info.classes.indexOf('background');
  for (let i = 0; i < result.ids.length; i++) {
    const id = result.ids[i];
    const [r, g, b] = info.colors[id] ?? [224, 224, 192];
    rgba.data.set([r, g, b, id === background ? 0 : 255], 4 * i);
  }
  ctx.putImageData(rgba, 0, 0);

  ui.legend.replaceChildren(...result.classes.map((c) => {
    const li = document.createElement('li');
    li.dataset.classId = String(c.id);
    const swatch = document.createElement('span');
    swatch.className = 'swatch';
    swatch.style.background = `rgb(${c.color.join(',')})`;
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = c.name;
    const share = document.createElement('span');
    share.className = 'share';
    share.textContent = c.fraction > 0 && c.fraction < 0.0005 ? '<0.1%' : `${(c.fraction * 100).toFixed(1)}%`;
    li.append(swatch, name, share);
    return li;
  }));

  const where = result.source === 'server'
    ? 'on the server'
    : `in the browser (onnxruntime-web, ${backendWords(result.backend, result.threads)})`;
  ui.meta.textContent = `${result.width}×${result.height} pixels, segmented ${where} in ${result.elapsedMs} ms.`;
  if (result.width !== bitmap.width || result.height !== bitmap.height) {
    ui.meta.textContent += ` The server read the image as ${result.width}×${result.height} but the browser shows ${bitmap.width}×${bitmap.height} (EXIF rotation?), so the overlay does not line up.`;
  }

  if (downloadUrl) URL.revokeObjectURL(downloadUrl);
  downloadUrl = URL.createObjectURL(new Blob([result.png], { type: 'image/png' }));
  ui.download.href = downloadUrl;
  ui.download.download = `${file.name.replace(/\.[^.]*$/, '') || 'image'}.mask.png`;

  ui.result.hidden = false;
  ui.result.dataset.source = result.source;
  ui.result.dataset.backend = result.source === 'server' ? 'server' : result.backend;
  if (result.threads) ui.result.dataset.threads = String(result.threads);
  else delete ui.result.dataset.threads;
  ui.result.dataset.elapsedMs = String(result.elapsedMs);
  ui.result.dataset.state = 'done';
}

function showPixelClass(event) {
  if (!shown) return;
  const rect = ui.stage.getBoundingClientRect();
  const x = Math.floor(((event.clientX - rect.left) / rect.width) * shown.width);
  const y = Math.floor(((event.clientY - rect.top) / rect.height) * shown.height);
  if (x < 0 || y < 0 || x >= shown.width || y >= shown.height) return;
  const id = shown.ids[y * shown.width + x];
  ui.hover.textContent = `(${x}, ${y}): ${info.classes[id] ?? `class ${id}`}`;
  for (const li of ui.legend.children) li.classList.toggle('active', li.dataset.classId === String(id));
}

// ---- wiring ----

async function run() {
  if (!current || !info) return;
  const id = ++runCounter;
  const inBrowser = ui.inBrowser.checked;
  const backend = ui.backend.value;
  clearError();
  ui.result.dataset.state = 'working';
  try {
    // one in-browser run at a time: a session cannot run twice at once
    const result = inBrowser
      ? await (browserQueue = browserQueue.catch(() => {}).then(() => runInBrowser(current.bitmap, backend)))
      : await runOnServer(current.file);
    if (id !== runCounter) return; // a newer image or mode took over
    render(result);
  } catch (err) {
    if (id !== runCounter) return;
    const message = errorText(err);
    ui.result.dataset.state = 'error';
    if (inBrowser) {
      // never a silent fallback: the picked backend failed, nothing ran in its place
      ui.result.dataset.failedBackend = backend;
      ui.meta.textContent = `${BACKENDS[backend].label} failed in this browser; nothing was run in its place.${shown ? ' The mask shown is the earlier result.' : ''}`;
      showError(`${BACKENDS[backend].label} failed: ${message}${backend === 'webgpu' ? ' (pick WebAssembly to run on the CPU)' : ''}`);
    } else {
      showError(message);
    }
  } finally {
    if (id === runCounter) clearProgress();
  }
}

async function openFile(file) {
  if (!file) return;
  clearError();
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  } catch {
    // let the server explain what is wrong with it when it can
    if (!ui.inBrowser.checked) {
      try { await segmentOnServer(file); } catch (err) { showError(err.message); return; }
    }
    showError(`${file.name}: this browser cannot read it as an image (JPEG, PNG or WebP expected)`);
    return;
  }
  current = { file, bitmap };
  await run();
}

async function init() {
  try {
    const r = await fetch('/api/model');
    if (!r.ok) throw new Error(`GET /api/model answered ${r.status}`);
    info = await r.json();
  } catch (err) {
    ui.modelInfo.textContent = `cannot read the model's description: ${err.message}`;
    return;
  }
  ui.modelInfo.textContent = `${info.architecture} · ${info.numClasses} classes`;
  ui.limits.textContent = `JPEG, PNG or WebP · up to ${info.maxBodyMb} MB and ${info.maxSide} pixels a side`;
  // the in-browser mode needs the model's graph and onnxruntime-web (an optional package): say why it is off
  const off = !info.onnx ? 'In-browser mode is off: this server was started without the model\'s weights or ONNX file.'
    : !info.ortWeb ? `In-browser mode is off: ${info.ortWebHint}.` : null;
  if (off) {
    ui.inBrowser.disabled = true;
    ui.inBrowser.parentElement.title = off;
    ui.inBrowserNote.textContent = off;
    ui.inBrowserNote.hidden = false;
  }
  describeBackends();
  webgpu = await probeWebGpu();
  describeBackends();
  document.body.dataset.ready = 'true';
}

/** The backend menu and the line under it: threads and whether the page is isolated, WebGPU's availability. */
function describeBackends() {
  const wasmOption = ui.backend.querySelector('option[value="wasm"]');
  const gpuOption = ui.backend.querySelector('option[value="webgpu"]');
  wasmOption.textContent = `WebAssembly (${wasmThreads} thread${wasmThreads === 1 ? '' : 's'})`;
  gpuOption.disabled = !webgpu.available;
  gpuOption.textContent = webgpu.available ? 'WebGPU' : 'WebGPU (not available)';
  if (!webgpu.available && ui.backend.value === 'webgpu') ui.backend.value = 'wasm';
  ui.backend.disabled = ui.inBrowser.disabled;
  const threadsLine = isolated
    ? `This page is cross-origin isolated: WebAssembly runs on ${wasmThreads} thread${wasmThreads === 1 ? '' : 's'} (one per core the browser reports).`
    : 'This page is not cross-origin isolated (no SharedArrayBuffer): WebAssembly runs on 1 thread.';
  const gpuLine = webgpu.available ? `WebGPU is available (${webgpu.adapter}).` : `WebGPU: ${webgpu.reason}.`;
  ui.backendNote.textContent = `${threadsLine} ${gpuLine}`;
  document.body.dataset.isolated = String(isolated);
  document.body.dataset.wasmThreads = String(wasmThreads);
  document.body.dataset.webgpu = String(webgpu.available);
}

ui.file.addEventListener('change', () => openFile(ui.file.files[0]));
ui.inBrowser.addEventListener('change', () => run());
ui.backend.addEventListener('change', () => { if (ui.inBrowser.checked) run(); });
ui.opacity.addEventListener('input', () => { ui.overlay.style.opacity = String(ui.opacity.value / 100); });
ui.stage.addEventListener('pointermove', showPixelClass);
ui.stage.addEventListener('pointerdown', showPixelClass);
for (const type of ['dragenter', 'dragover']) {
  ui.drop.addEventListener(type, (e) => { e.preventDefault(); ui.drop.classList.add('over'); });
}
for (const type of ['dragleave', 'drop']) {
  ui.drop.addEventListener(type, () => ui.drop.classList.remove('over'));
}
ui.drop.addEventListener('drop', (e) => { e.preventDefault(); openFile(e.dataTransfer.files[0]); });
document.addEventListener('paste', (e) => {
  const item = [...(e.clipboardData?.files ?? [])].find((f) => f.type.startsWith('image/'));
  if (item) openFile(item);
});

init();
