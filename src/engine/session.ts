// The only module that touches onnxruntime: sessions from ONNX bytes, typed tensors in and out,
// thread settings and disposal. Callers see plain typed arrays and shapes.
import * as ort from 'onnxruntime-node';
import { availableParallelism } from 'node:os';

export type EngineDType = 'float32' | 'float64' | 'int64' | 'int32' | 'uint8' | 'bool';
export type EngineData = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;

export interface EngineTensor {
  dtype: EngineDType;
  dims: number[];
  data: EngineData;
}

export interface SessionOptions {
  /** Intra-op threads for one run; default: all cores. */
  threads?: number;
  /** ORT graph optimisation: default 'all'. */
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /** Write ORT's profile (JSON) with this file prefix. */
  profilePrefix?: string;
  /** Let ORT reuse memory patterns between runs of the same shapes (default true). */
  memPattern?: boolean;
  /** ORT's CPU memory arena (default true); off returns freed blocks to the system. */
  memArena?: boolean;
}

export function defaultThreads(): number {
  return Math.max(1, availableParallelism());
}

/**
 * The intra-op thread count actually used: `threads` clamped to 1..cores. Asking for more threads
 * than cores oversubscribes them (ORT's workers spin, and a 1 s run takes minutes), so the engine
 * never does, whatever a library caller passes; the CLI refuses such values outright.
 */
export function clampThreads(threads: number | undefined): number {
  const cores = defaultThreads();
  if (threads === undefined || !Number.isFinite(threads)) return cores;
  return Math.min(cores, Math.max(1, Math.floor(threads)));
}

export function tensor(dtype: EngineDType, dims: number[], data: EngineData): EngineTensor {
  return { dtype, dims, data };
}

/** A loaded ONNX graph, ready to run. */
export class Session {
  private constructor(private readonly session: ort.InferenceSession) {}

  static async create(model: Uint8Array | string, opts: SessionOptions = {}): Promise<Session> {
    const options: ort.InferenceSession.SessionOptions = {
      executionProviders: ['cpu'],
      intraOpNumThreads: clampThreads(opts.threads),
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: opts.optimization ?? 'all',
      enableMemPattern: opts.memPattern ?? true,
      enableCpuMemArena: opts.memArena ?? true,
    };
    if (opts.profilePrefix) {
      options.enableProfiling = true;
      options.profileFilePrefix = opts.profilePrefix;
    }
    const session = typeof model === 'string'
      ? await ort.InferenceSession.create(model, options)
      : await ort.InferenceSession.create(model, options);
    return new Session(session);
  }

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  /** Runs the graph; `fetches` limits the outputs computed (default: all). */
  async run(feeds: Record<string, EngineTensor>, fetches?: string[]): Promise<Record<string, EngineTensor>> {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = new ort.Tensor(t.dtype, t.data, t.dims);
    const results = fetches ? await this.session.run(ortFeeds, fetches) : await this.session.run(ortFeeds);
    const out: Record<string, EngineTensor> = {};
    for (const [name, t] of Object.entries(results)) {
      out[name] = { dtype: t.type as EngineDType, dims: [...t.dims], data: t.data as EngineData };
    }
    return out;
  }

  endProfiling(): void {
    this.session.endProfiling();
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}
