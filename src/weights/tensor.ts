// A stored tensor as weight files hold it: a dtype, a shape and its raw little-endian bytes in
// row-major (contiguous) order. Both readers (safetensors, PyTorch .pth) produce this; the
// conversions to typed arrays live here so every dtype is converted in one place.
import { FcnError } from '../util/errors.js';

/** safetensors' dtype names; PyTorch storages map onto them. */
export type DType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL';

export const DTYPE_SIZE: Readonly<Record<DType, number>> = Object.freeze({
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1,
});

export function isDType(s: unknown): s is DType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_SIZE, s);
}

export interface Tensor {
  dtype: DType;
  shape: number[];
  /** numel(shape) * DTYPE_SIZE[dtype] bytes, little-endian, row-major. May be a view into the file's bytes. */
  data: Uint8Array;
}

export function shapeNumel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** A DataView over the tensor's bytes (no copy, any alignment). */
function view(t: Tensor): DataView {
  return new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/** IEEE half → float; exact (every half is a float). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // zero and subnormals
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** The tensor's values as float32 (a fresh array the caller owns); integers and doubles are rounded to float32. */
export function toFloat32(t: Tensor, source = 'tensor'): Float32Array {
  const n = shapeNumel(t.shape);
  const size = DTYPE_SIZE[t.dtype];
  if (t.data.byteLength !== n * size) {
    throw new FcnError(`${source}: ${t.dtype} tensor of shape ${formatShape(t.shape)} needs ${n * size} bytes, has ${t.data.byteLength}`);
  }
  const out = new Float32Array(n);
  if (t.dtype === 'F32') {
    new Uint8Array(out.buffer).set(t.data);
    return out;
  }
  const v = view(t);
  switch (t.dtype) {
    case 'F64': for (let i = 0; i < n; i++) out[i] = v.getFloat64(i * 8, true); break;
    case 'F16': for (let i = 0; i < n; i++) out[i] = halfToFloat(v.getUint16(i * 2, true)); break;
    // bfloat16 is the top half of a float32
    case 'BF16': {
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = v.getUint16(i * 2, true) << 16;
      break;
    }
    case 'I64': for (let i = 0; i < n; i++) out[i] = Number(v.getBigInt64(i * 8, true)); break;
    case 'U64': for (let i = 0; i < n; i++) out[i] = Number(v.getBigUint64(i * 8, true)); break;
    case 'I32': for (let i = 0; i < n; i++) out[i] = v.getInt32(i * 4, true); break;
    case 'U32': for (let i = 0; i < n; i++) out[i] = v.getUint32(i * 4, true); break;
    case 'I16': for (let i = 0; i < n; i++) out[i] = v.getInt16(i * 2, true); break;
    case 'U16': for (let i = 0; i < n; i++) out[i] = v.getUint16(i * 2, true); break;
    case 'I8': for (let i = 0; i < n; i++) out[i] = v.getInt8(i); break;
    case 'U8': case 'BOOL': for (let i = 0; i < n; i++) out[i] = v.getUint8(i); break;
  }
  return out;
}

/** The values in their own type: bigint for 64-bit integers, number otherwise (halves widened exactly). */
export function tensorValues(t: Tensor): (number | bigint)[] {
  const n = shapeNumel(t.shape);
  const v = view(t);
  const out: (number | bigint)[] = new Array(n);
  for (let i = 0; i < n; i++) {
    switch (t.dtype) {
      case 'I64': out[i] = v.getBigInt64(i * 8, true); break;
      case 'U64': out[i] = v.getBigUint64(i * 8, true); break;
      case 'F64': out[i] = v.getFloat64(i * 8, true); break;
      case 'F32': out[i] = v.getFloat32(i * 4, true); break;
      case 'F16': out[i] = halfToFloat(v.getUint16(i * 2, true)); break;
      case 'BF16': out[i] = new Float32Array(new Uint32Array([v.getUint16(i * 2, true) << 16]).buffer)[0]!; break;
      case 'I32': out[i] = v.getInt32(i * 4, true); break;
      case 'U32': out[i] = v.getUint32(i * 4, true); break;
      case 'I16': out[i] = v.getInt16(i * 2, true); break;
      case 'U16': out[i] = v.getUint16(i * 2, true); break;
      case 'I8': out[i] = v.getInt8(i); break;
      case 'U8': case 'BOOL': out[i] = v.getUint8(i); break;
    }
  }
  return out;
}

/** A float32 tensor over `values` (no copy of the values' bytes). */
export function float32Tensor(shape: readonly number[], values: Float32Array): Tensor {
  if (values.length !== shapeNumel(shape)) throw new Error(`float32Tensor: ${values.length} values for shape ${formatShape(shape)}`);
  return { dtype: 'F32', shape: [...shape], data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
}
