// The only module that touches onnxruntime: sessions from ONNX bytes, typed tensors in and out,
// thread settings and disposal. Callers see plain typed arrays and shapes.
import type * as Ort from 'onnxruntime-node';
import { availableParallelism } from 'node:os';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { FcnError, errorMessage } from '../util/errors.js';
import { dropCachedGraph, graphCacheKey, readCachedGraph, storeCachedGraph } from './graphcache.js';
import { requireCjs } from '../util/cjs.js';

const ort = requireCjs('onnxruntime-node') as typeof Ort;

export type EngineDType = 'float32' | 'float64' | 'int64' | 'int32' | 'uint8' | 'int8' | 'bool';
export type EngineData = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array | Int8Array;

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
  /**
   * Whether ORT's intra-op worker threads spin while waiting for work (ORT's default, true): spinning
   * saves the wake-up between kernels, and costs the CPU time it burns when others share the cores.
   */
  spinning?: boolean;
  /** ORT's CPU memory arena (default true); off returns freed blocks to the system. */
  memArena?: boolean;
  /** Where the graph runs (default: the process default, see setDefaultDevice; 'cpu' unless changed). */
  device?: Device;
  /**
   * Keep ORT's optimised graph in this folder (see graphcache.ts) and start from it next time, skipping
   * graph optimisation: CPU sessions from bytes only (others ignore it). A write failure only skips the cache.
   */
  graphCache?: string;
}

// ---------------------------------------------------------------------------------------------
// devices: ONNX Runtime execution providers

export type DeviceName = 'cpu' | 'cuda' | 'dml' | 'coreml' | 'webgpu';
export const DEVICE_NAMES: readonly DeviceName[] = ['cpu', 'cuda', 'dml', 'coreml', 'webgpu'];

/** An execution provider and, for cuda and dml, the GPU's index. */
export interface Device {
  name: DeviceName;
  deviceId?: number;
}

/** Parses 'cpu', 'cuda', 'cuda:1', 'dml', 'dml:0', 'coreml', 'webgpu'; throws a usage error (exit 2) otherwise. */
export function parseDevice(text: string): Device {
  const m = /^(cpu|cuda|dml|coreml|webgpu)(?::(\d+))?$/.exec(text.trim().toLowerCase());
  if (!m || (m[2] !== undefined && m[1] !== 'cuda' && m[1] !== 'dml')) {
    throw new FcnError(`device '${text}': expected cpu, cuda[:N], dml[:N], coreml or webgpu`, 2);
  }
  return m[2] !== undefined ? { name: m[1] as DeviceName, deviceId: Number(m[2]) } : { name: m[1] as DeviceName };
}

export function formatDevice(d: Device): string {
  return d.deviceId !== undefined ? `${d.name}:${d.deviceId}` : d.name;
}

/** The execution providers this onnxruntime-node build knows, and whether each one's library is present here. */
export function availableDevices(): { name: string; bundled: boolean; installed: boolean }[] {
  const binDir = bindingDir();
  return ort.listSupportedBackends().map((b) => ({
    name: b.name,
    bundled: b.bundled,
    // providers that are not bundled (CUDA, TensorRT) are shared libraries the package's install step fetches
    installed: b.bundled || (binDir !== undefined && existsSync(join(binDir, `libonnxruntime_providers_${b.name}.so`))),
  }));
}

/** The folder holding onnxruntime-node's native binding (bin/napi-v*\/<platform>/<arch>). */
function bindingDir(): string | undefined {
  try {
    const root = dirname(dirname(createRequire(import.meta.url).resolve('onnxruntime-node')));
    const bin = join(root, 'bin');
    for (const napi of readdirSync(bin)) {
      const dir = join(bin, napi, process.platform, process.arch);
      if (existsSync(dir)) return dir;
    }
  } catch {
    // no binding folder found: treat non-bundled providers as absent
  }
  return undefined;
}

const INSTALL_HINT: Partial<Record<DeviceName, string>> = {
  cuda: 'onnxruntime-node fetches its CUDA provider at install time: npm install onnxruntime-node --onnxruntime-node-install=cuda12 '
    + '(this project\'s .npmrc sets onnxruntime-node-install=skip; override it on the command line), with CUDA 12 and cuDNN 9 on the machine',
  dml: 'onnxruntime-node has DirectML only on Windows (x64/arm64)',
  coreml: 'onnxruntime-node has CoreML only on macOS',
  webgpu: 'onnxruntime-node has WebGPU in its Windows and macOS builds (and Linux where it lists webgpu); it needs a GPU the WebGPU runtime can open',
};

/**
 * Throws a one-line error (exit 1) unless this onnxruntime-node can run on `device`: the provider is in
 * the build and its library is installed. Never falls back to the CPU silently.
 */
export function checkDevice(device: Device): void {
  if (device.name === 'cpu') return;
  const found = availableDevices().find((b) => b.name === device.name);
  const have = availableDevices().filter((b) => b.installed).map((b) => b.name).join(', ');
  if (!found || !found.installed) {
    const why = !found ? `not in onnxruntime-node's build for ${process.platform}-${process.arch}` : 'its provider library is not installed';
    throw new FcnError(`device ${formatDevice(device)}: ${why} (providers in this install: ${have}); ${INSTALL_HINT[device.name] ?? ''}`);
  }
  const failure = probeDevice(device);
  if (failure !== undefined) {
    throw new FcnError(`device ${formatDevice(device)}: ONNX Runtime cannot start its ${device.name} provider here (${failure}); ${START_HINT[device.name] ?? ''}`);
  }
}

const START_HINT: Partial<Record<DeviceName, string>> = {
  cuda: 'it needs an NVIDIA GPU with its driver, CUDA 12 and cuDNN 9 on the library path; or run on the cpu device',
  dml: 'it needs a DirectX 12 GPU; or run on the cpu device',
  coreml: 'or run on the cpu device',
  webgpu: 'it needs a GPU with Vulkan (Linux), Metal (macOS) or Direct3D 12 (Windows) drivers; or run on the cpu device',
};

/** A one-input Relu graph (opset 16), the smallest thing a provider can be asked to load. */
const PROBE_GRAPH = 'CAgSA2ZjbjozCgwKAXgSAXkiBFJlbHUSAXBaDwoBeBIKCggIARIECgIIAWIPCgF5EgoKCAgBEgQKAggBQgQKABAQ';
const probed = new Map<string, string | undefined>();

/**
 * Starts `device`'s provider on a tiny graph in a child process, once per process and device: a
 * provider that is present but finds no usable hardware (no GPU adapter, no driver) fails there, and
 * the native libraries' own diagnostics (several lines on stderr) stay in the child. Returns why it
 * failed, in one line, or undefined when it works.
 */
function probeDevice(device: Device): string | undefined {
  const key = formatDevice(device);
  if (probed.has(key)) return probed.get(key);
  const script = `
    const ort = require(process.argv[1]);
    const [, , name, id, graph] = process.argv;
    const ep = id === '' ? name : { name, deviceId: Number(id) };
    ort.InferenceSession.create(Buffer.from(graph, 'base64'), { executionProviders: [ep] })
      .then((s) => s.release()).then(() => process.exit(0))
      .catch((e) => { process.stdout.write(String(e && e.message || e)); process.exit(3); });`;
  const child = spawnSync(process.execPath, ['-e', script, createRequire(import.meta.url).resolve('onnxruntime-node'),
    device.name, device.deviceId === undefined ? '' : String(device.deviceId), PROBE_GRAPH], { encoding: 'utf8', timeout: 120_000 });
  let failure: string | undefined;
  if (child.status !== 0) {
    failure = child.error ? errorMessage(child.error)
      : child.status === 3 ? providerMessage(child.stdout)
      : `the test process ended with ${child.signal ?? `exit code ${child.status}`}`;
  }
  probed.set(key, failure);
  return failure;
}

/** ORT's message without its source location and assertion text: '... was false. Failed to get ...' → 'Failed to get ...'. */
function providerMessage(text: string): string {
  const line = text.split('\n').map((l) => l.trim()).find((l) => l !== '') ?? 'no message';
  const m = /\bwas false\.\s*(.+)$/.exec(line);
  return (m ? m[1]! : line.replace(/^\S*\.(cc|cpp|h):\d+\s+/, '')).slice(0, 300);
}

let defaultDevice: Device = { name: 'cpu' };

/** Sets the device every later session uses unless its options name one (the CLI's --device). Checked first. */
export function setDefaultDevice(device: Device): void {
  checkDevice(device);
  defaultDevice = device;
}

export function getDefaultDevice(): Device {
  return defaultDevice;
}

function executionProviders(device: Device): Ort.InferenceSession.ExecutionProviderConfig[] {
  switch (device.name) {
    case 'cpu': return ['cpu'];
    case 'cuda': return [{ name: 'cuda', deviceId: device.deviceId ?? 0 }];
    case 'dml': return [{ name: 'dml', deviceId: device.deviceId ?? 0 }];
    case 'coreml': return ['coreml'];
    case 'webgpu': return ['webgpu'];
  }
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
  private constructor(private readonly session: Ort.InferenceSession) {}

  static async create(model: Uint8Array | string, opts: SessionOptions = {}): Promise<Session> {
    const device = opts.device ?? defaultDevice;
    if (opts.device) checkDevice(opts.device);
    const options: Ort.InferenceSession.SessionOptions = {
      executionProviders: executionProviders(device),
      intraOpNumThreads: clampThreads(opts.threads),
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: opts.optimization ?? 'all',
      enableMemPattern: opts.memPattern ?? true,
      enableCpuMemArena: opts.memArena ?? true,
    };
    if (opts.spinning === false) options.extra = { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } };
    if (opts.profilePrefix) {
      options.enableProfiling = true;
      options.profileFilePrefix = opts.profilePrefix;
    }
    if (opts.graphCache !== undefined && device.name === 'cpu' && typeof model !== 'string') {
      return new Session(await createCached(model, options, opts.graphCache));
    }
    let session: Ort.InferenceSession;
    try {
      session = typeof model === 'string'
        ? await ort.InferenceSession.create(model, options)
        : await ort.InferenceSession.create(model, options);
    } catch (err) {
      // on the CPU a failure is a bug (keep its stack); elsewhere it is usually the provider's runtime
      if (device.name === 'cpu') throw err;
      throw new FcnError(`device ${formatDevice(device)}: ONNX Runtime could not start the ${device.name} provider: ${errorMessage(err).split('\n')[0]}`);
    }
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
    const ortFeeds: Record<string, Ort.Tensor> = {};
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

/**
 * A CPU session through the graph cache: the cached optimised graph loaded with optimisation off when
 * its file checks out and the runtime accepts it; else optimised from `model` as usual, ORT writing
 * the optimised graph on the side, and that stored for next time.
 */
async function createCached(model: Uint8Array, options: Ort.InferenceSession.SessionOptions, dir: string): Promise<Ort.InferenceSession> {
  const key = graphCacheKey(model, {
    runtime: ort.env.versions.common, provider: 'cpu', level: options.graphOptimizationLevel, threads: options.intraOpNumThreads,
  });
  const cached = await readCachedGraph(dir, key);
  if (cached) {
    try {
      return await ort.InferenceSession.create(cached, { ...options, graphOptimizationLevel: 'disabled' });
    } catch {
      dropCachedGraph(dir, key); // the runtime refused it: rebuild below
    }
  }
  let tmp: string | undefined;
  try {
    mkdirSync(dir, { recursive: true });
    tmp = join(dir, `.${key}.${process.pid}.${Date.now()}.onnx`);
  } catch {
    tmp = undefined; // no cache folder: optimise without storing
  }
  // ORT warns that an NCHWc graph is specific to this machine: the key has the CPU's features
  const session = await ort.InferenceSession.create(model, tmp ? { ...options, optimizedModelFilePath: tmp, logSeverityLevel: 3 } : options);
  if (tmp) {
    try {
      await storeCachedGraph(dir, key, tmp);
    } catch {
      // a cache that cannot be written costs the next process the optimisation, nothing else
    } finally {
      await rm(tmp, { force: true });
    }
  }
  return session;
}
