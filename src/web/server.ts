// fcn serve's HTTP side: the segmentation API (POST /api/segment, GET /api/model, /api/model.onnx,
// /healthz) and the page in src/web/static/. Inference goes through SegmentationModel.segment, the
// same code as `fcn predict`, one request at a time (InferenceQueue). Every failure is answered as
// JSON `{error}` with a 4xx/5xx status; nothing a client sends can take the process down.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import fastifyStatic from '@fastify/static';
import sharp from 'sharp';
import { decodeImage, encodeMask } from '../data/image.js';
import { compileExport } from '../graph/inference.js';
import type { ClassShare, SegmentationModel } from '../infer/model.js';
import type { TensorMap } from '../model/params.js';
import { FcnError, errorMessage } from '../util/errors.js';
import { firstFilePart, multipartBoundary } from './multipart.js';
import { InferenceQueue, QueueFullError } from './queue.js';

export interface ServerOptions {
  /** Largest request body, in MB (default 20). */
  maxBodyMb?: number;
  /** Largest image side accepted, in pixels (default 4096); larger images are refused with 413. */
  maxSide?: number;
  /** Requests allowed to wait behind the running inference before new ones get 503 (default 32). */
  maxWaiting?: number;
  /**
   * The weights `model` was built from. With them the server offers GET /api/model.onnx (the
   * exported graph, compiled once on first request) and the page's "run in browser" mode.
   */
  weights?: TensorMap;
  /** Called with one line per API request (method, path, status, size, time); default: silent. */
  log?: (line: string) => void;
}

/** What GET /api/model answers: enough for a client to pre- and post-process on its own. */
export interface ModelInfo {
  architecture: string;
  numClasses: number;
  classes: string[];
  colors: [number, number, number][];
  normalization: { mean: number[]; std: number[] };
  stride: number;
  /** Graph input name, and the sliding-window settings `predict` uses for large images. */
  input: string;
  tileSize: number;
  tileMargin: number;
  /** Whether GET /api/model.onnx is available (the page's "run in browser" mode). */
  onnx: boolean;
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

// Compiled files live in dist/src/web/; the page is served from the source tree (tsc copies no
// non-TS files), the browser's preprocessing from the compiled infer/preprocess.js (the same code
// `predict` runs), and onnxruntime-web from its installed package, so the page needs no network.
const PACKAGE_ROOT = new URL('../../../', import.meta.url);
export const STATIC_ROOT = fileURLToPath(new URL('src/web/static/', PACKAGE_ROOT));
const DIST_SRC = fileURLToPath(new URL('../', import.meta.url));
/** The onnxruntime-web files the page loads: the wasm-only build and its single wasm binary. */
const ORT_FILES = new Set(['ort.wasm.min.mjs', 'ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm']);

function ortDistDir(): string {
  return dirname(createRequire(import.meta.url).resolve('onnxruntime-web'));
}

/** An error with the HTTP status to answer; its message goes to the client as `{error}`. */
class HttpError extends FcnError {
  constructor(readonly statusCode: number, message: string) {
    super(message);
  }
}

export function modelInfo(model: SegmentationModel, opts: ServerOptions = {}): ModelInfo {
  return {
    architecture: model.arch.name,
    numClasses: model.arch.numClasses,
    classes: [...model.meta.classes],
    colors: model.meta.colors.map((c) => [c[0], c[1], c[2]] as [number, number, number]),
    normalization: { mean: [...model.meta.normalization.mean], std: [...model.meta.normalization.std] },
    stride: model.arch.stride,
    input: model.arch.input,
    tileSize: model.tileSize,
    tileMargin: model.tileMargin,
    onnx: opts.weights !== undefined,
    maxSide: opts.maxSide ?? 4096,
    maxBodyMb: opts.maxBodyMb ?? 20,
  };
}

/** The image bytes of a request: a raw body (image/*, application/octet-stream, anything) or a multipart file. */
function uploadedImage(request: FastifyRequest): { bytes: Uint8Array; name: string } {
  const body = request.body;
  if (!Buffer.isBuffer(body) || body.length === 0) {
    throw new HttpError(400, 'empty request body: send the image bytes (JPEG/PNG/WebP) as the body or as a multipart file');
  }
  const boundary = multipartBoundary(request.headers['content-type'] ?? '');
  if (boundary) {
    const file = firstFilePart(body, boundary);
    if (file.bytes.length === 0) throw new HttpError(400, `multipart file '${file.filename ?? file.field}' is empty`);
    return { bytes: file.bytes, name: file.filename || 'uploaded file' };
  }
  return { bytes: body, name: 'request body' };
}

/** Reads the image's size from its header (no decoding) and refuses non-images and oversized ones. */
async function checkImageHeader(bytes: Uint8Array, name: string, maxSide: number): Promise<{ width: number; height: number }> {
  let width: number | undefined;
  let height: number | undefined;
  try {
    ({ width, height } = await sharp(bytes).metadata());
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

/**
 * The server for `model`: routes registered, not yet listening (call `listen`, or `inject` in tests).
 * The caller keeps ownership of the model (dispose it after `app.close()`).
 */
export function createServer(model: SegmentationModel, opts: ServerOptions = {}): FastifyInstance {
  const maxBodyMb = opts.maxBodyMb ?? 20;
  const maxSide = opts.maxSide ?? 4096;
  if (!(maxBodyMb > 0)) throw new FcnError(`max body size must be positive, got ${maxBodyMb} MB`, 2);
  if (!(maxSide >= 1)) throw new FcnError(`max image side must be at least 1 pixel, got ${maxSide}`, 2);
  if (!existsSync(STATIC_ROOT)) throw new FcnError(`${STATIC_ROOT}: the page's files are missing (the server serves them from the package's source tree)`);

  const queue = new InferenceQueue(opts.maxWaiting ?? 32);
  const info = modelInfo(model, opts);
  const log = opts.log;
  let onnx: Promise<Uint8Array> | undefined;

  const app = Fastify({ bodyLimit: Math.floor(maxBodyMb * MB), logger: false, forceCloseConnections: 'idle' });

  // Bodies are read as bytes whatever their type; the handler decides what they hold.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  // Cross-origin isolation lets onnxruntime-web use SharedArrayBuffer, i.e. several wasm threads.
  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('Cross-Origin-Opener-Policy', 'same-origin');
    reply.header('Cross-Origin-Embedder-Policy', 'require-corp');
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
      message = `request body too large: the limit is ${maxBodyMb} MB (--max-body-mb)`;
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

  app.get('/healthz', async () => ({ status: 'ok', architecture: info.architecture, queue: queue.snapshot() }));

  app.get('/api/model', async () => info);

  app.get('/api/model.onnx', async (_request, reply) => {
    const weights = opts.weights;
    if (!weights) throw new HttpError(404, 'this server was started without the model\'s weights; the ONNX graph is not available');
    onnx ??= Promise.resolve().then(() => compileExport(model.arch, weights, info));
    const bytes = await onnx;
    return reply.type('application/octet-stream').header('cache-control', 'no-cache').send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length));
  });

  app.post('/api/segment', async (request, reply) => {
    const { bytes, name } = uploadedImage(request);
    const { width, height } = await checkImageHeader(bytes, name, maxSide);
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

  // The browser's preprocessing is the compiled module `predict` itself uses (/lib/infer/preprocess.js);
  // only compiled .js files, so its relative imports resolve too.
  void app.register(fastifyStatic, {
    root: DIST_SRC, prefix: '/lib/', decorateReply: false, index: false,
    allowedPath: (pathName) => pathName.endsWith('.js'),
  });

  void app.register(fastifyStatic, { root: STATIC_ROOT, prefix: '/', index: 'index.html', wildcard: false });
  const ortDir = ortDistDir();
  app.get('/ort/:file', async (request, reply) => {
    const { file } = request.params as { file: string };
    if (!ORT_FILES.has(file)) throw new HttpError(404, `no such file: /ort/${file}`);
    return reply.sendFile(file, ortDir, { maxAge: '1d' });
  });

  return app;
}
