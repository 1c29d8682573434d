// serve(): load a checkpoint, start the HTTP server on a loopback address (unless told otherwise)
// and hand back its URL and a close() that stops accepting, lets the running request finish and
// frees the model. The library face of `fcn serve`.
import type { FastifyInstance } from 'fastify';
import { loadModel, type SegmentationModel } from '../infer/model.js';
import { loadCheckpoint, type Checkpoint } from '../weights/checkpoint.js';
import { FcnError, errorMessage } from '../util/errors.js';
import { createServer, type ServerOptions } from './server.js';

export interface ServeOptions extends Omit<ServerOptions, 'weights'> {
  /** A checkpoint path (.safetensors or the book's .pth) or a checkpoint already read. */
  model: string | Checkpoint;
  /** Address to bind (default 127.0.0.1: reachable from this machine only). */
  host?: string;
  /** Port (default 8080; 0 picks a free one). */
  port?: number;
  /** ORT threads for inference (default: all cores). */
  threads?: number;
  /** Side above which images go through overlapping tiles (default: the model's, 1024). */
  tileSize?: number;
}

export interface RunningServer {
  app: FastifyInstance;
  model: SegmentationModel;
  /** e.g. http://127.0.0.1:8080/ */
  url: string;
  /** Stops listening, waits for the request in progress, disposes the model. */
  close(): Promise<void>;
}

export function serverUrl(host: string, port: number): string {
  const shown = host === '0.0.0.0' || host === '::' ? 'localhost' : host;
  return `http://${shown.includes(':') ? `[${shown}]` : shown}:${port}/`;
}

export async function serve(opts: ServeOptions): Promise<RunningServer> {
  const host = opts.host ?? '127.0.0.1';
  const ckpt = typeof opts.model === 'string' ? await loadCheckpoint(opts.model) : opts.model;
  const model = await loadModel(ckpt, { threads: opts.threads, tileSize: opts.tileSize });
  let app: FastifyInstance;
  try {
    app = createServer(model, { ...opts, weights: ckpt.weights });
    await app.listen({ host, port: opts.port ?? 8080 });
  } catch (err) {
    await model.dispose();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new FcnError(`cannot listen on ${host}:${opts.port ?? 8080}: address already in use (pick another --port)`);
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') throw new FcnError(`cannot listen on ${host}: not an address of this machine (--host)`);
    if (code === 'EACCES') throw new FcnError(`cannot listen on ${host}:${opts.port ?? 8080}: permission denied (ports below 1024 need privileges)`);
    if (err instanceof FcnError) throw err;
    throw new FcnError(`cannot start the server on ${host}:${opts.port ?? 8080}: ${errorMessage(err)}`);
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : (opts.port ?? 8080);
  let closing: Promise<void> | undefined;
  return {
    app,
    model,
    url: serverUrl(host, port),
    close: () => (closing ??= app.close().then(() => model.dispose())),
  };
}
