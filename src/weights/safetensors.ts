// The safetensors format (huggingface/safetensors): an 8-byte little-endian header length N, N
// bytes of JSON ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}),
// then the raw little-endian tensor bytes, offsets relative to the end of the header. No code, no
// pickle: the format our checkpoints use.
import { FcnError } from '../util/errors.js';
import { DTYPE_SIZE, formatShape, isDType, shapeNumel, type Tensor } from './tensor.js';

/** The reference implementation refuses headers above 100 MB; so do we (a corrupt length would allocate it). */
const MAX_HEADER_BYTES = 100_000_000;

export interface Safetensors {
  /** In file order (by data offset). Each `data` is a view into the file's bytes. */
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

function isIndex(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

/** Parses a .safetensors file; every inconsistency is an FcnError naming `name`. */
export function readSafetensors(bytes: Uint8Array, name: string): Safetensors {
  const bad = (what: string) => new FcnError(`${name}: not a valid safetensors file: ${what}`);
  if (bytes.byteLength < 8) throw bad(`${bytes.byteLength} bytes is too short for the 8-byte header length`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = dv.getBigUint64(0, true);
  if (headerLen > BigInt(MAX_HEADER_BYTES)) throw bad(`header length ${headerLen} exceeds ${MAX_HEADER_BYTES} bytes`);
  const n = Number(headerLen);
  if (8 + n > bytes.byteLength) throw bad(`header of ${n} bytes runs past the end of the file (${bytes.byteLength} bytes): truncated?`);
  if (n < 2 || bytes[8] !== 0x7b /* { */) throw bad('header does not start with a JSON object');
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (err) {
    throw bad(`header is not JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw bad('header is not a JSON object');
  const dataStart = 8 + n;
  const dataLen = bytes.byteLength - dataStart;
  const metadata: Record<string, string> = {};
  const entries: { key: string; begin: number; tensor: Tensor }[] = [];
  for (const [key, info] of Object.entries(header as Record<string, unknown>)) {
    if (key === '__metadata__') {
      if (typeof info !== 'object' || info === null || Array.isArray(info)) throw bad('__metadata__ is not an object');
      for (const [k, v] of Object.entries(info as Record<string, unknown>)) {
        if (typeof v !== 'string') throw bad(`__metadata__ value '${k}' is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    if (typeof info !== 'object' || info === null) throw bad(`entry '${key}' is not an object`);
    const { dtype, shape, data_offsets: offsets } = info as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!isDType(dtype)) throw bad(`tensor '${key}' has unsupported dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every(isIndex)) throw bad(`tensor '${key}' has an invalid shape ${JSON.stringify(shape)}`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !isIndex(offsets[0]) || !isIndex(offsets[1]) || offsets[1] < offsets[0]) {
      throw bad(`tensor '${key}' has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (end > dataLen) throw bad(`tensor '${key}' ends at byte ${end} of a ${dataLen}-byte data section: truncated?`);
    const expected = shapeNumel(shape) * DTYPE_SIZE[dtype];
    if (end - begin !== expected) {
      throw bad(`tensor '${key}' (${dtype} ${formatShape(shape)}) needs ${expected} bytes, its offsets give ${end - begin}`);
    }
    entries.push({ key, begin, tensor: { dtype, shape: [...shape], data: bytes.subarray(dataStart + begin, dataStart + end) } });
  }
  // JSON objects list integer-like keys first; the data offsets give the order the writer used
  entries.sort((a, b) => a.begin - b.begin);
  return { tensors: new Map(entries.map((e) => [e.key, e.tensor])), metadata };
}

export interface Float32Entry {
  shape: readonly number[];
  data: Float32Array;
}

/**
 * Writes float32 tensors (in the map's order) and string metadata. The header is padded with
 * spaces to a multiple of 8 bytes so every tensor's data is 8-byte aligned, as the spec asks.
 */
export function encodeSafetensors(tensors: ReadonlyMap<string, Float32Entry>, metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') throw new Error(`safetensors metadata '${k}' must be a string`);
    header['__metadata__'] = metadata;
  }
  let offset = 0;
  for (const [key, t] of tensors) {
    if (key === '__metadata__') throw new Error("a tensor cannot be named '__metadata__'");
    if (t.data.length !== shapeNumel(t.shape)) throw new Error(`tensor '${key}': ${t.data.length} values for shape ${formatShape(t.shape)}`);
    header[key] = { dtype: 'F32', shape: [...t.shape], data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const out = new Uint8Array(8 + padded + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.byteLength, 8 + padded);
  let pos = 8 + padded;
  for (const t of tensors.values()) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), pos);
    pos += t.data.byteLength;
  }
  return out;
}
