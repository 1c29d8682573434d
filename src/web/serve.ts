// serve(): load a model (a checkpoint, a state_dict, or an ONNX file fcn wrote), start the HTTP server on a loopback address (unless told otherwise)
// and hand back its URL and a close() that drains: stops accepting, lets the requests in flight
// finish (up to a drain timeout, then cuts them off), and frees the model. The library face of
// `fcn serve`.
import type { FastifyInstance } from 'fastify';
import { loadModel, type SegmentationModel } from '../infer/model.js';
import { isOnnxPath } from '../infer/onnx-file.js';
import { loadCheckpoint, type Checkpoint } from '../weights/checkpoint.js';
import { FcnError, errorMessage } from '../util/errors.js';
import { createServer, serverState, type ServerOptions } from './server.js';

export interface ServeOptions extends Omit<ServerOptions, 'weights' | 'onnx'> {
  /**
   * A model file (our .safetensors, a PyTorch .pth, or an .onnx file that `fcn export` or
   * `fcn quantize` wrote) or a checkpoint already read.
   */
  model: string | Checkpoint;
  /** The network a model file must hold (e.g. 'fcn_resnet50'); recognised from the file when absent. */
  arch?: string;
  /** Address to bind (default 127.0.0.1: reachable from this machine only). */
  host?: string;
  /** Port (default 8080; 0 picks a free one). */
  port?: number;
  /** ORT threads for inference (default: all cores). */
  threads?: number;
  /** Side above which images go through overlapping tiles (default: the model's, 1024). */
  tileSize?: number;
  /** Seconds close() waits for the requests in flight before cutting them off (default 25). */
  drainTimeoutS?: number;
}

/** What close() did: whether every request in flight was answered before the drain timeout. */
export interface DrainResult {
  /** Requests still unanswered when the drain timeout passed (their connections were closed). */
  cutOff: number;
}

export interface RunningServer {
  app: FastifyInstance;
  model: SegmentationModel;
  /** e.g. http://127.0.0.1:8080/ */
  url: string;
  /** Requests received and not yet answered. */
  inFlight(): number;
  /**
   * Drains: stops listening (/readyz answers 503, idle connections close), waits for the requests
   * in flight up to the drain timeout, then closes what is left and disposes the model.
   */
  close(): Promise<DrainResult>;
}

const DEFAULT_PORT = 8080;
const DEFAULT_DRAIN_S = 25;

export function serverUrl(host: string, port: number): string {
  const shown = host === '0.0.0.0' || host === '::' ? 'localhost' : host;
  return `http://${shown.includes(':') ? `[${shown}]` : shown}:${port}/`;
}

/** Checks what can be checked before the model is loaded (a bad value is a usage error). */
function checkServeOptions(opts: ServeOptions): void {
  const port = opts.port ?? DEFAULT_PORT;
  if (!(Number.isInteger(port) && port >= 0 && port <= 65535)) throw new FcnError(`port must be an integer from 0 to 65535, got ${port}`, 2);
  const drain = opts.drainTimeoutS ?? DEFAULT_DRAIN_S;
  if (!(drain >= 0 && drain <= 86400)) throw new FcnError(`drain timeout must be between 0 and 86400 seconds, got ${drain}`, 2);
}

/**
 * Loads the model and keeps what the page's graph is made from: a model loaded from an ONNX file
 * keeps the file's bytes itself (the page runs exactly what the server runs); a checkpoint's
 * weights are kept here.
 */
async function loadServedModel(opts: ServeOptions): Promise<{ model: SegmentationModel; source: Pick<ServerOptions, 'weights'> }> {
  const modelOpts = { threads: opts.threads, tileSize: opts.tileSize, arch: opts.arch };
  if (typeof opts.model === 'string' && isOnnxPath(opts.model)) return { model: await loadModel(opts.model, modelOpts), source: {} };
  const ckpt = typeof opts.model === 'string' ? await loadCheckpoint(opts.model, { arch: opts.arch }) : opts.model;
  return { model: await loadModel(ckpt, modelOpts), source: { weights: ckpt.weights } };
}

export async function serve(opts: ServeOptions): Promise<RunningServer> {
  checkServeOptions(opts);
  const host = opts.host ?? '127.0.0.1';
  const wantedPort = opts.port ?? DEFAULT_PORT;
  const { model, source } = await loadServedModel(opts);
  let app: FastifyInstance;
  try {
    app = createServer(model, { ...opts, ...source });
    await app.listen({ host, port: wantedPort });
  } catch (err) {
    await model.dispose();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new FcnError(`cannot listen on ${host}:${wantedPort}: address already in use (pick another --port)`);
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') throw new FcnError(`cannot listen on ${host}: not an address of this machine (--host)`);
    if (code === 'EACCES') throw new FcnError(`cannot listen on ${host}:${wantedPort}: permission denied (ports below 1024 need privileges)`);
    if (err instanceof FcnError) throw err;
    throw new FcnError(`cannot start the server on ${host}:${wantedPort}: ${errorMessage(err)}`);
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : wantedPort;
  const state = serverState(app);
  const drainMs = (opts.drainTimeoutS ?? DEFAULT_DRAIN_S) * 1000;
  let closing: Promise<DrainResult> | undefined;

  const drain = async (): Promise<DrainResult> => {
    let cutOff = 0;
    // past the drain timeout, close every connection: their handlers fail fast (a waiting job
    // sees its socket gone), and the one inference running finishes before the model goes
    const timer = setTimeout(() => {
      cutOff = state.inFlight;
      app.server.closeAllConnections();
    }, drainMs);
    try {
      await app.close();
    } finally {
      clearTimeout(timer);
      await model.dispose();
    }
    return { cutOff };
  };

  return {
    app,
    model,
    url: serverUrl(host, port),
    inFlight: () => state.inFlight,
    close: () => (closing ??= drain()),
  };
}
