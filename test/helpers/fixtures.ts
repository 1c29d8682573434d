// Loads the PyTorch-made reference fixtures in test/fixtures/ (written by scripts/make_fixtures.py:
// raw little-endian tensors, several may share one file, named by each fixture's manifest.json) and
// the small numeric helpers parity tests compare with.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findRepoRoot(start: string): string {
  // Tests run from dist/test/..., sources live in test/...: walk up to the package.json either way.
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'test', 'fixtures'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`test/helpers/fixtures: no package.json with test/fixtures/ above ${start}`);
  }
}

export const repoRoot: string = findRepoRoot(path.dirname(fileURLToPath(import.meta.url)));
export const fixturesRoot: string = path.join(repoRoot, 'test', 'fixtures');

export type FixtureDtype = 'float32' | 'uint8';

/** One tensor's entry in manifest.json. Sampled tensors also carry fullShape, stride, l2 and sum. */
export interface TensorEntry {
  file: string;
  /** Byte offset in `file`. */
  offset: number;
  dtype: FixtureDtype;
  shape: number[];
  /** The shape of the tensor the stored values were sampled from (flat[::stride]). */
  fullShape?: number[];
  stride?: number;
  /** L2 norm and sum of the full tensor (float64). */
  l2?: number;
  sum?: number;
}

export interface FixtureManifest {
  fixture: string;
  description: string;
  settings: Record<string, unknown>;
  // Scalars as the script wrote them; each test knows the layout of the fixture it reads.
  results: Record<string, any>;
  tensors: Record<string, TensorEntry>;
  /** PNG files in the fixture folder, by name. */
  images?: Record<string, string>;
}

export interface FixtureTensor<T extends Float32Array | Uint8Array = Float32Array | Uint8Array> {
  shape: number[];
  data: T;
  entry: TensorEntry;
}

export interface Fixture {
  dir: string;
  meta: FixtureManifest;
  names: string[];
  has(name: string): boolean;
  tensor(name: string): FixtureTensor;
  /** The tensor, which must be float32. */
  f32(name: string): FixtureTensor<Float32Array>;
  /** The tensor, which must be uint8. */
  u8(name: string): FixtureTensor<Uint8Array>;
  /** Absolute path of a PNG listed in the manifest's `images`. */
  imagePath(name: string): string;
}

/** Opens a fixture: `dir` is a folder under test/fixtures/ ('infer', 'upsample', 'train_step') or any path. */
export function loadFixture(dir: string): Fixture {
  const root = path.isAbsolute(dir) ? dir : path.join(fixturesRoot, dir);
  const manifestPath = path.join(root, 'manifest.json');
  if (!fs.existsSync(manifestPath)) throw new Error(`${manifestPath}: missing (run /usr/bin/python3 scripts/make_fixtures.py)`);
  const meta = JSON.parse(fs.readFileSync(manifestPath, 'utf8')) as FixtureManifest;
  const files = new Map<string, Buffer>();
  const bytesOf = (file: string): Buffer => {
    let b = files.get(file);
    if (!b) {
      b = fs.readFileSync(path.join(root, file));
      files.set(file, b);
    }
    return b;
  };
  const tensor = (name: string): FixtureTensor => {
    const entry = meta.tensors[name];
    if (!entry) throw new Error(`${manifestPath}: no tensor '${name}'`);
    const n = entry.shape.reduce((a, b) => a * b, 1);
    const itemSize = entry.dtype === 'float32' ? 4 : 1;
    const bytes = bytesOf(entry.file);
    if (entry.offset + n * itemSize > bytes.length) {
      throw new Error(`${path.join(root, entry.file)}: too short for tensor '${name}' (${entry.offset + n * itemSize} bytes needed)`);
    }
    // Copy out: Buffers from readFileSync may sit at an unaligned offset of a shared pool.
    const slice = bytes.buffer.slice(bytes.byteOffset + entry.offset, bytes.byteOffset + entry.offset + n * itemSize);
    let data: Float32Array | Uint8Array;
    if (entry.dtype === 'uint8') data = new Uint8Array(slice);
    else if (os.endianness() === 'LE') data = new Float32Array(slice);
    else {
      const view = new DataView(slice);
      data = Float32Array.from({ length: n }, (_, i) => view.getFloat32(i * 4, true));
    }
    return { shape: entry.shape, data, entry };
  };
  return {
    dir: root,
    meta,
    names: Object.keys(meta.tensors),
    has: (name) => name in meta.tensors,
    tensor,
    f32(name) {
      const t = tensor(name);
      if (!(t.data instanceof Float32Array)) throw new Error(`${manifestPath}: tensor '${name}' is ${t.entry.dtype}, expected float32`);
      return t as FixtureTensor<Float32Array>;
    },
    u8(name) {
      const t = tensor(name);
      if (!(t.data instanceof Uint8Array)) throw new Error(`${manifestPath}: tensor '${name}' is ${t.entry.dtype}, expected uint8`);
      return t as FixtureTensor<Uint8Array>;
    },
    imagePath(name) {
      const file = meta.images?.[name];
      if (!file) throw new Error(`${manifestPath}: no image '${name}'`);
      return path.join(root, file);
    },
  };
}

function checkLengths(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  if (a.length !== b.length) throw new Error(`${what}: lengths differ (${a.length} vs ${b.length})`);
}

/** ‖a − b‖₂ / ‖b‖₂ in float64 (b is the reference). */
export function relL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  checkLengths(a, b, 'relL2');
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    num += d * d;
    den += b[i]! * b[i]!;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/** max_i |a_i − b_i|. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  checkLengths(a, b, 'maxAbsDiff');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** max_i |a_i − b_i| over max_i |b_i| (b is the reference): for values whose scale a test does not fix. */
export function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  checkLengths(a, b, 'maxRelDiff');
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / m;
}

export function l2Norm(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * a[i]!;
  return Math.sqrt(s);
}

export function sum(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]!;
  return s;
}

/** Every k-th element from the first: how the script stores tensors with more than 4096 elements
 * (k = the entry's `stride`, the smallest integer ≥ n/4096 coprime to n). */
export function sampled(data: ArrayLike<number>, k: number): Float32Array {
  if (!Number.isInteger(k) || k < 1) throw new Error(`sampled: stride must be a positive integer, got ${k}`);
  const out = new Float32Array(Math.ceil(data.length / k));
  for (let i = 0, j = 0; i < data.length; i += k, j++) out[j] = data[i]!;
  return out;
}

export interface SampledComparison {
  /** relL2 of the sampled values. */
  relL2: number;
  /** |‖actual‖ − l2| / l2 over the full tensor (0 when the fixture stored it whole). */
  normRelErr: number;
  /** |Σ actual − sum| / ‖reference‖₂ · √n: the sum's error relative to the size a sum of n such values can have. */
  sumErr: number;
}

/**
 * Compares a full tensor computed by the engine with a (possibly sampled) fixture tensor: the
 * sampled values, and the full tensor's L2 norm and sum recorded by the script.
 */
export function compareSampled(actualFull: ArrayLike<number>, ref: FixtureTensor<Float32Array>): SampledComparison {
  const { entry } = ref;
  const k = entry.stride ?? 1;
  const fullN = (entry.fullShape ?? entry.shape).reduce((a, b) => a * b, 1);
  if (actualFull.length !== fullN) throw new Error(`compareSampled: ${actualFull.length} values, the fixture's tensor has ${fullN}`);
  const r = relL2(sampled(actualFull, k), ref.data);
  const refL2 = entry.l2 ?? l2Norm(ref.data);
  const refSum = entry.sum ?? sum(ref.data);
  const normRelErr = refL2 === 0 ? l2Norm(actualFull) : Math.abs(l2Norm(actualFull) - refL2) / refL2;
  const scale = refL2 === 0 ? 1 : refL2 * Math.sqrt(fullN);
  return { relL2: r, normRelErr, sumErr: Math.abs(sum(actualFull) - refSum) / scale };
}

export interface RoundedImageComparison {
  /** Bytes that differ from the reference. */
  mismatches: number;
  /** Differing bytes not explained by a float value within `eps` of a .5 rounding tie (should be 0). */
  unexplained: number;
  maxDiff: number;
}

/**
 * Compares an 8-bit HWC image with the fixture's, forgiving ±1 where the reference float (CHW, before
 * clamping, in [0, 1] scale) lies within `eps` of a rounding tie: bilinear weights like 1/4, 3/4 make
 * exact .5 ties common, and there float noise decides which way each engine rounds.
 */
export function compareRoundedImage(actualHwc: Uint8Array, expectedHwc: Uint8Array, referenceChw: Float32Array,
  eps = 1e-3): RoundedImageComparison {
  checkLengths(actualHwc, expectedHwc, 'compareRoundedImage');
  checkLengths(actualHwc, referenceChw, 'compareRoundedImage');
  const channels = 3;
  const pixels = actualHwc.length / channels;
  let mismatches = 0;
  let unexplained = 0;
  let maxDiff = 0;
  for (let p = 0; p < pixels; p++) {
    for (let c = 0; c < channels; c++) {
      const d = Math.abs(actualHwc[p * channels + c]! - expectedHwc[p * channels + c]!);
      if (d === 0) continue;
      mismatches++;
      maxDiff = Math.max(maxDiff, d);
      const v = Math.min(1, Math.max(0, referenceChw[c * pixels + p]!)) * 255;
      const nearTie = Math.abs(v - Math.floor(v) - 0.5) < eps;
      if (d > 1 || !nearTie) unexplained++;
    }
  }
  return { mismatches, unexplained, maxDiff };
}

/** Pixels where two label maps disagree. */
export function countDifferent(a: Uint8Array, b: Uint8Array): number {
  checkLengths(a, b, 'countDifferent');
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}
