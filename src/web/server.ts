// fcn serve's HTTP side: the segmentation API (POST /api/segment, GET /api/model, /api/model.onnx,
// /healthz for liveness, /readyz for readiness) and the page in src/web/static/, cross-origin
// isolated so that onnxruntime-web runs it multi-threaded in the browser. Inference goes
// through SegmentationModel.segment, the same code as `fcn predict`, one request at a time
// (InferenceQueue). Every failure is answered as JSON `{error}` with a 4xx/5xx status; nothing a
// client sends can take the process down, and slow clients are bounded in time (the body timeout)
// and in number (the concurrent upload cap).
import { existsSync } from 'node:fs';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import fastifyMultipart from '@fastify/multipart';
import fastifyStatic from '@fastify/static';
import type Sharp from 'sharp';
import { requireCjs } from '../util/cjs.js';
import { decodeImage, encodeMask } from '../data/image.js';
import type { ClassShare, SegmentationModel } from '../infer/model.js';
import type { TensorMap } from '../model/params.js';
import { FcnError, errorMessage } from '../util/errors.js';
import { ORT_WEB_FILES, ORT_WEB_INSTALL, resolveOrtWeb, type OrtWebResolver } from './ort-web.js';
import { pageGraph, type PageGraph, type PageGraphOrigin } from './page-graph.js';
import { InferenceQueue, QueueFullError, type QueueStats } from './queue.js';
import { HttpError, UploadGate, bodyTooLargeMessage, uploadedImage } from './uploads.js';

const sharp = requireCjs('sharp') as typeof Sharp;

export interface ServerOptions {
  /** Largest request body, in MB (default 20). */
  maxBodyMb?: number;
  /** Largest image side accepted, in pixels (default 4096); larger images are refused with 413. */
  maxSide?: number;
  /** Requests allowed to wait behind the running inference before new ones get 503 (default 32). */
  maxWaiting?: number;
  /**
   * Seconds a client has to send its whole request, headers and body (default 60); a slower one
   * gets 408 and its connection closed.
   */
  bodyTimeoutS?: number;
  /**
   * Request bodies received at once (default 16); past it a new upload gets 503 at once and its
   * connection is closed, so its body is never read into memory.
   */
  maxUploads?: number;
  /** Finds onnxruntime-web for the page's in-browser mode (default: the installed package, if any). */
  resolveOrtWeb?: OrtWebResolver;
  /**
   * The weights `model` was built from. With them the server offers GET /api/model.onnx (the
   * exported graph, compiled once on first request) and the page's "run in this browser" mode.
   */
  weights?: TensorMap;
  /**
   * The ONNX file `model` was loaded from (`fcn export`, `fcn quantize`): GET /api/model.onnx hands
   * the page these very bytes. Takes precedence over `weights`.
   */
  onnx?: Uint8Array;
  /** Called with one line per API request (method, path, status, size, time); default: silent. */
  log?: (line: string) => void;
}

/** What GET /api/model answers: enough for a client to pre- and post-process on its own. */
export interface ModelInfo {
  architecture: string;
  numClasses: number;
  /** 'float32', or 'int8' for a model fcn quantize wrote. */
  precision: 'float32' | 'int8';
  classes: string[];
  colors: [number, number, number][];
  normalization: { mean: number[]; std: number[] };
  stride: number;
  /** Graph input name, and the sliding-window settings `predict` uses for large images. */
  input: string;
  tileSize: number;
  tileMargin: number;
  /** Whether GET /api/model.onnx is available (the page's "run in this browser" mode). */
  onnx: boolean;
  /** Where that graph comes from: the ONNX file the server loaded, or an export of its weights. */
  onnxOrigin?: PageGraphOrigin;
  /** Whether the server has onnxruntime-web to hand the page; when not, `ortWebHint` says how to get it. */
  ortWeb: boolean;
  ortWebHint?: string;
  maxSide: number;
  maxBodyMb: number;
}

/** What POST /api/segment answers (as JSON; with `Accept: image/png` the mask PNG alone). */
export interface SegmentResponse {
  width: number;
  height: number;
  /** Classes present, most pixels first; fractions sum to 1. */
  classes: ClassShare[];
  /** The mask as a base64 VOC palette PNG: pixel value = class id, the model's colours. */
  maskPng: string;
  /** Decoding + inference time, not counting the wait in the queue. */
  elapsedMs: number;
}

const MB = 1024 * 1024;

/** The headers that make the page cross-origin isolated (on every response). */
export const ISOLATION_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
});

// Compiled files live in dist/src/web/; the page is served from the source tree (tsc copies no
// non-TS files), the browser's tile loop and preprocessing from the compiled infer/tiled.js and
// infer/preprocess.js (the same code `predict` runs), and onnxruntime-web from its installed
// package when there is one, so the page needs no network.
const PACKAGE_ROOT = new URL('../../../', import.meta.url);
export const STATIC_ROOT = fileURLToPath(new URL('src/web/static/', PACKAGE_ROOT));
const DIST_SRC = fileURLToPath(new URL('../', import.meta.url));
/** The compiled modules the page imports from /lib/: browser-safe (no Node built-ins, no packages). */
const BROWSER_MODULES = new Set(['infer/tiled.js', 'infer/preprocess.js']);

const DEFAULTS = { maxBodyMb: 20, maxSide: 4096, maxWaiting: 32, bodyTimeoutS: 60, maxUploads: 16 };

/** What /healthz and /readyz read: the queue, the uploads, whether the server is draining. */
export interface ServerState {
  queue: InferenceQueue;
  uploads: UploadGate;
  /** Requests received and not yet answered. */
  inFlight: number;
  /** Set once close() has begun: /readyz answers 503 from then on. */
  draining: boolean;
}
const STATES = new WeakMap<FastifyInstance, ServerState>();

/** The live state of a server made by createServer. */
export function serverState(app: FastifyInstance): ServerState {
  const state = STATES.get(app);
  if (!state) throw new Error('not a server made by createServer');
  return state;
}

/** Whether the server takes segmentation requests now: model loaded, queue not full, not draining. */
export function readiness(state: ServerState): { ready: boolean; reason?: string } {
  if (state.draining) return { ready: false, reason: 'shutting down' };
  const q: QueueStats = state.queue.snapshot();
  if (q.waiting >= state.queue.maxWaiting) return { ready: false, reason: `queue full (${q.waiting} requests waiting)` };
  return { ready: true };
}

export function modelInfo(model: SegmentationModel, opts: ServerOptions = {}, ortWeb = false, graph = pageGraph(model, opts)): ModelInfo {
  return {
    architecture: model.arch.name,
    numClasses: model.arch.numClasses,
    precision: model.precision,
    // one entry per class id, as the class shares name and colour them
    classes: model.classNames(),
    colors: model.classColors().map((c) => [c[0], c[1], c[2]] as [number, number, number]),
    normalization: { mean: [...model.meta.normalization.mean], std: [...model.meta.normalization.std] },
    stride: model.arch.stride,
    input: model.arch.input,
    tileSize: model.tileSize,
    tileMargin: model.tileMargin,
    onnx: graph !== undefined,
    ...(graph ? { onnxOrigin: graph.origin } : {}),
    ortWeb,
    ...(ortWeb ? {} : { ortWebHint: `to run the model in this browser, install onnxruntime-web next to fcn (${ORT_WEB_INSTALL}) and restart fcn serve` }),
    maxSide: opts.maxSide ?? DEFAULTS.maxSide,
    maxBodyMb: opts.maxBodyMb ?? DEFAULTS.maxBodyMb,
  };
}

/** Reads the image's size from its header (no decoding) and refuses non-images and oversized ones. */
async function checkImageHeader(bytes: Uint8Array, name: string, maxSide: number): Promise<{ width: number; height: number }> {
  let width: number | undefined;
  let height: number | undefined;
  try {
    // the header alone is read: sharp's own pixel limit would turn a huge side into "unreadable" (400)
    ({ width, height } = await sharp(bytes, { limitInputPixels: false }).metadata());
  } catch (err) {
    throw new HttpError(400, `${name}: not a readable image (JPEG/PNG/WebP expected): ${errorMessage(err)}`);
  }
  if (!width || !height) throw new HttpError(400, `${name}: not a readable image (no width/height in its header)`);
  if (width > maxSide || height > maxSide) {
    throw new HttpError(413, `${name}: image is ${width}x${height}; the largest side accepted is ${maxSide} pixels (--max-side)`);
  }
  return { width, height };
}

function wantsPng(request: FastifyRequest): boolean {
  const accept = request.headers.accept ?? '';
  return /\bimage\/png\b/i.test(accept) && !/\bapplication\/json\b/i.test(accept);
}

/** Checks the numeric options (a bad value is a usage error, exit code 2). */
function checkOptions(opts: ServerOptions): Required<Pick<ServerOptions, 'maxBodyMb' | 'maxSide' | 'maxWaiting' | 'bodyTimeoutS' | 'maxUploads'>> {
  const o = {
    maxBodyMb: opts.maxBodyMb ?? DEFAULTS.maxBodyMb,
    maxSide: opts.maxSide ?? DEFAULTS.maxSide,
    maxWaiting: opts.maxWaiting ?? DEFAULTS.maxWaiting,
    bodyTimeoutS: opts.bodyTimeoutS ?? DEFAULTS.bodyTimeoutS,
    maxUploads: opts.maxUploads ?? DEFAULTS.maxUploads,
  };
  if (!(o.maxBodyMb > 0)) throw new FcnError(`max body size must be positive, got ${o.maxBodyMb} MB`, 2);
  if (!(o.maxSide >= 1)) throw new FcnError(`max image side must be at least 1 pixel, got ${o.maxSide}`, 2);
  if (!(Number.isInteger(o.maxWaiting) && o.maxWaiting >= 0)) throw new FcnError(`the waiting line must be an integer >= 0, got ${o.maxWaiting}`, 2);
  // Node keeps timeouts in 32-bit milliseconds; a day is more than any upload needs
  if (!(o.bodyTimeoutS > 0 && o.bodyTimeoutS <= 86400)) throw new FcnError(`body timeout must be between 0 and 86400 seconds, got ${o.bodyTimeoutS}`, 2);
  if (!(Number.isInteger(o.maxUploads) && o.maxUploads >= 1)) throw new FcnError(`the concurrent upload limit must be an integer >= 1, got ${o.maxUploads}`, 2);
  return o;
}

/**
 * Answers a request Node gave up on before fastify saw it whole (the body timeout, malformed
 * HTTP) with JSON and closes the connection, unless a response has started on it already.
 */
function clientErrorHandler(bodyTimeoutS: number) {
  return (err: NodeJS.ErrnoException, socket: Socket): void => {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    const [status, text, message] = err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'Request Timeout', `request not received within ${bodyTimeoutS} s (body timeout): the connection is closed`]
      : err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'Request Header Fields Too Large', 'request headers too large']
        : [400, 'Bad Request', 'malformed HTTP request'];
    // Node's own default handler makes the same check through the socket's current response
    const started = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true;
    if (socket.writable && !started) {
      const body = JSON.stringify({ error: message });
      socket.write(`HTTP/1.1 ${status} ${text}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    }
    socket.destroy();
  };
}

type Limits = ReturnType<typeof checkOptions>;

/** The fastify instance: body limit, and Node's request timeout as the body timeout. */
function newFastify(limits: Limits): FastifyInstance {
  const requestTimeout = Math.round(limits.bodyTimeoutS * 1000);
  return Fastify({
    bodyLimit: Math.floor(limits.maxBodyMb * MB),
    logger: false,
    forceCloseConnections: 'idle',
    // Node times out a request whose headers and body have not all arrived within requestTimeout;
    // it checks every connectionsCheckingInterval, so the interval is a fraction of the timeout
    requestTimeout,
    http: {
      requestTimeout,
      headersTimeout: Math.min(60_000, requestTimeout),
      connectionsCheckingInterval: Math.min(1000, Math.max(50, Math.round(requestTimeout / 4))),
    },
    clientErrorHandler: clientErrorHandler(limits.bodyTimeoutS),
  });
}

/** Body parsing, the upload cap, the in-flight count and what closing does. */
function installBodyHandling(app: FastifyInstance, state: ServerState, maxBodyMb: number): void {
  const { uploads, queue } = state;
  // Bodies are read as bytes whatever their type; the handler decides what they hold. Multipart
  // forms are left to @fastify/multipart, which streams them to the handler.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  void app.register(fastifyMultipart, { limits: { fileSize: Math.floor(maxBodyMb * MB) } });

  // Count bodies being received; past the cap answer 503 before reading any of it and close the
  // connection (Node then discards the socket instead of draining the body).
  app.addHook('onRequest', async (request, reply) => {
    state.inFlight++;
    // 'close' comes once per response, finished or cut off
    reply.raw.once('close', () => { state.inFlight--; });
    if (!UploadGate.hasBody(request.raw) || uploads.enter(request.raw)) return;
    return reply.code(503).header('connection', 'close').header('retry-after', '1')
      .send({ error: `server busy: ${uploads.limit} uploads already being received, try again shortly` });
  });
  app.addHook('onResponse', async (request) => {
    uploads.leave(request.raw);
  });
  app.addHook('onRequestAbort', async (request) => {
    uploads.leave(request.raw);
  });
  app.addHook('preClose', async () => {
    state.draining = true;
  });
  // close() resolves only once the inference in progress is over, so the model can be disposed
  app.addHook('onClose', async () => {
    await queue.drain();
  });
}

/** Isolation headers on every response, one log line per API request, JSON errors. */
function installResponses(app: FastifyInstance, maxBodyMb: number, log: ServerOptions['log']): void {
  // Cross-origin isolation (the page in a browsing context group of its own, COOP, that loads only
  // resources which consent to it, COEP) gives the page SharedArrayBuffer, which onnxruntime-web
  // needs for more than one WebAssembly thread. Every response carries the headers: the page, its
  // scripts and onnxruntime-web's worker scripts (a worker is isolated only if its own script says
  // so). CORP marks every resource as same-origin-only, which require-corp accepts and which keeps
  // other sites from embedding the API's answers.
  app.addHook('onSend', async (_request, reply, payload) => {
    for (const [name, value] of Object.entries(ISOLATION_HEADERS)) reply.header(name, value);
    return payload;
  });

  if (log) {
    app.addHook('onResponse', async (request, reply) => {
      if (!request.url.startsWith('/api/')) return;
      const size = reply.getHeader('x-image-size');
      log(`${request.method} ${request.url} ${reply.statusCode}${size ? ` ${size}` : ''} ${reply.elapsedTime.toFixed(0)} ms`);
    });
  }

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _request: FastifyRequest, reply: FastifyReply) => {
    let status = err instanceof HttpError ? err.statusCode
      : err instanceof QueueFullError ? 503
        : err instanceof FcnError ? 400
          : err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    let message = err.message;
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      status = 413;
      message = bodyTooLargeMessage(maxBodyMb);
    }
    if (status >= 500 && !(err instanceof QueueFullError)) log?.(`internal error: ${err.stack ?? err.message}`);
    void reply.code(status).type('application/json').send({ error: message });
  });
  app.setNotFoundHandler((request, reply) => {
    // the API path asked with another method: 405 says how to use it
    if (request.url.split('?')[0] === '/api/segment') {
      void reply.code(405).header('allow', 'POST').send({ error: `${request.method} /api/segment: use POST with an image body (JPEG, PNG or WebP)` });
      return;
    }
    void reply.code(404).send({ error: `no such page: ${request.method} ${request.url}` });
  });
}

/** /healthz, /readyz, /api/model, /api/model.onnx and POST /api/segment. */
function registerApi(app: FastifyInstance, model: SegmentationModel, state: ServerState, info: ModelInfo, graph: PageGraph | undefined, limits: Limits): void {
  const { queue, uploads } = state;

  app.get('/healthz', async () => ({ status: 'ok', architecture: info.architecture, queue: queue.snapshot(), uploads: uploads.snapshot() }));

  app.get('/readyz', async (_request, reply) => {
    const r = readiness(state);
    return reply.code(r.ready ? 200 : 503).send(r);
  });

  app.get('/api/model', async () => info);

  app.get('/api/model.onnx', async (_request, reply) => {
    if (!graph) throw new HttpError(404, 'this server was started without the model\'s weights or ONNX file; the ONNX graph is not available');
    const bytes = await graph.bytes();
    return reply.type('application/octet-stream').header('cache-control', 'no-cache').send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length));
  });

  app.post('/api/segment', async (request, reply) => {
    const { bytes, name } = await uploadedImage(request, limits.maxBodyMb);
    // the body is in memory now: it no longer counts as an upload being received
    uploads.leave(request.raw);
    const { width, height } = await checkImageHeader(bytes, name, limits.maxSide);
    reply.header('x-image-size', `${width}x${height}`);
    const result = await queue.run(async () => {
      // a client that gave up while waiting costs nothing more
      if (request.raw.socket?.destroyed) throw new HttpError(499, 'client closed the request');
      const started = performance.now();
      const image = await decodeImage(bytes, name);
      const seg = await model.segment(image);
      const png = encodeMask({ width: seg.width, height: seg.height, data: seg.mask }, model.meta.colors);
      return { seg, png, elapsedMs: Math.round(performance.now() - started) };
    });
    const png = Buffer.from(result.png.buffer, result.png.byteOffset, result.png.length);
    if (wantsPng(request)) {
      return reply.type('image/png').header('content-disposition', 'inline; filename="mask.png"').send(png);
    }
    const answer: SegmentResponse = {
      width: result.seg.width,
      height: result.seg.height,
      classes: result.seg.classes,
      maskPng: png.toString('base64'),
      elapsedMs: result.elapsedMs,
    };
    return answer;
  });
}

/** The page, the browser-safe modules it imports, and onnxruntime-web's files when installed. */
function registerPage(app: FastifyInstance, ortDir: string | undefined): void {
  // The browser's tile loop and preprocessing are the compiled modules `predict` itself runs
  // (/lib/infer/tiled.js, /lib/infer/preprocess.js); only those, so nothing else leaves dist/.
  void app.register(fastifyStatic, {
    root: DIST_SRC, prefix: '/lib/', decorateReply: false, index: false,
    allowedPath: (pathName) => BROWSER_MODULES.has(pathName.replace(/^\/+/, '')),
  });

  void app.register(fastifyStatic, { root: STATIC_ROOT, prefix: '/', index: 'index.html', wildcard: false });
  app.get('/ort/:file', async (request, reply) => {
    const { file } = request.params as { file: string };
    if (!ortDir) throw new HttpError(404, `onnxruntime-web is not installed on this server (${ORT_WEB_INSTALL}, then restart fcn serve)`);
    if (!ORT_WEB_FILES.has(file)) throw new HttpError(404, `no such file: /ort/${file}`);
    return reply.sendFile(file, ortDir, { maxAge: '1d' });
  });
}

/**
 * The server for `model`: routes registered, not yet listening (call `listen`, or `inject` in tests).
 * The caller keeps ownership of the model (dispose it after `app.close()`, which waits for the
 * inference in progress).
 */
export function createServer(model: SegmentationModel, opts: ServerOptions = {}): FastifyInstance {
  const limits = checkOptions(opts);
  if (!existsSync(STATIC_ROOT)) throw new FcnError(`${STATIC_ROOT}: the page's files are missing (the server serves them from the package's source tree)`);
  const ortDir = (opts.resolveOrtWeb ?? resolveOrtWeb)();
  const state: ServerState = { queue: new InferenceQueue(limits.maxWaiting), uploads: new UploadGate(limits.maxUploads), inFlight: 0, draining: false };
  const app = newFastify(limits);
  STATES.set(app, state);
  installBodyHandling(app, state, limits.maxBodyMb);
  installResponses(app, limits.maxBodyMb, opts.log);
  const graph = pageGraph(model, opts);
  registerApi(app, model, state, modelInfo(model, opts, ortDir !== undefined, graph), graph, limits);
  registerPage(app, ortDir);
  return app;
}
