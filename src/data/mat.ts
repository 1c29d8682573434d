// A small, strict reader for MATLAB level-5 MAT-files, enough for SBD's class masks (cls/*.mat):
// the file holds one variable GTcls, a 1x1 struct whose field Segmentation is a uint8 HxW class
// map (column-major, as MATLAB stores arrays); its other fields (Boundaries: a cell array of
// sparse matrices; CategoriesPresent) are skipped by their byte counts without being decoded.
// Every length read from the file is checked against the bytes that hold it, and compressed
// elements are inflated with a bound on their output, so a damaged or hostile file is one error.
//
// Format (MathWorks, "MAT-File Format", level 5): a 128-byte header (text, subsystem offset,
// version 0x0100, endian indicator 'IM' for little-endian), then data elements. Each element is an
// 8-byte tag (type, byte count) and its data padded to 8 bytes, or a "small element" whose 4-byte
// tag holds the byte count in its upper half and up to 4 data bytes after it. miCOMPRESSED (15)
// elements are zlib streams holding one element; miMATRIX (14) is an array: array flags (class in
// the low byte), dimensions, name, then the class's parts (numeric: real data; struct: field-name
// length, field names, then one miMATRIX per field; cell: one miMATRIX per element).
import { inflateSync } from 'node:zlib';
import { FcnError, errorMessage } from '../util/errors.js';
import type { LabelMap } from './image.js';

const MI_INT8 = 1;
const MI_UINT8 = 2;
const MI_INT16 = 3;
const MI_UINT16 = 4;
const MI_INT32 = 5;
const MI_UINT32 = 6;
const MI_SINGLE = 7;
const MI_DOUBLE = 9;
const MI_INT64 = 12;
const MI_UINT64 = 13;
const MI_MATRIX = 14;
const MI_COMPRESSED = 15;
const MI_UTF8 = 16;

export const MX_CELL = 1;
export const MX_STRUCT = 2;
export const MX_SPARSE = 5;
const MX_DOUBLE = 6;
const MX_UINT8 = 9;

/** Bytes per value of each numeric storage type. */
const TYPE_SIZE: Record<number, number> = {
  [MI_INT8]: 1, [MI_UINT8]: 1, [MI_INT16]: 2, [MI_UINT16]: 2, [MI_INT32]: 4, [MI_UINT32]: 4,
  [MI_SINGLE]: 4, [MI_DOUBLE]: 8, [MI_INT64]: 8, [MI_UINT64]: 8, [MI_UTF8]: 1,
};

/** The most bytes one compressed variable may inflate to (a 4096x4096 mask is 16 MiB; SBD's are ~0.2 MiB). */
const MAX_INFLATED = 64 * 1024 * 1024;
/** Nesting of arrays inside arrays (struct -> cell -> sparse is 3 deep in SBD). */
const MAX_DEPTH = 16;

class MatError extends Error {}

interface Element {
  type: number;
  /** The element's data. */
  data: Uint8Array;
  /** Offset of the next element in the enclosing buffer. */
  next: number;
}

function readElement(buf: Uint8Array, offset: number, view: DataView): Element {
  if (offset + 8 > buf.length) throw new MatError(`truncated element tag at byte ${offset}`);
  const first = view.getUint32(offset, true);
  const small = first >>> 16;
  if (small !== 0) {
    // small data element: 2-byte count, 2-byte type, up to 4 bytes of data in the same 8 bytes
    if (small > 4) throw new MatError(`small element at byte ${offset} claims ${small} bytes (at most 4)`);
    return { type: first & 0xffff, data: buf.subarray(offset + 4, offset + 4 + small), next: offset + 8 };
  }
  const type = first;
  const nbytes = view.getUint32(offset + 4, true);
  const start = offset + 8;
  if (nbytes > buf.length - start) throw new MatError(`element of type ${type} at byte ${offset} claims ${nbytes} bytes, only ${buf.length - start} remain`);
  // compressed elements are not padded; all others are padded to a multiple of 8 bytes
  const padded = type === MI_COMPRESSED ? nbytes : Math.ceil(nbytes / 8) * 8;
  return { type, data: buf.subarray(start, start + nbytes), next: Math.min(start + padded, buf.length) };
}

/** A decoded MATLAB array; numeric data is kept as raw bytes with its storage type. */
export interface MatArray {
  name: string;
  mxClass: number;
  dims: number[];
  /** Numeric arrays: the real part's storage type and bytes (column-major). */
  dataType?: number;
  data?: Uint8Array;
  /** Struct arrays (1x1 only): field name -> value; fields not asked for are left out. */
  fields?: Map<string, MatArray>;
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function int32s(el: Element, what: string): number[] {
  if (el.type !== MI_INT32 || el.data.length % 4 !== 0) throw new MatError(`${what}: expected int32 values, got type ${el.type} with ${el.data.length} bytes`);
  const v = view(el.data);
  return Array.from({ length: el.data.length / 4 }, (_, i) => v.getInt32(i * 4, true));
}

function text(el: Element, what: string): string {
  if (el.type !== MI_INT8 && el.type !== MI_UINT8 && el.type !== MI_UTF8) throw new MatError(`${what}: expected characters, got type ${el.type}`);
  return String.fromCharCode(...el.data);
}

/**
 * Parses one miMATRIX element's data. `want(path)` says which struct fields to decode: the others
 * are skipped by their byte count.
 */
function parseMatrix(data: Uint8Array, depth: number, want: (field: string) => boolean, path: string): MatArray {
  if (depth > MAX_DEPTH) throw new MatError(`arrays nested more than ${MAX_DEPTH} deep`);
  const v = view(data);
  const flagsEl = readElement(data, 0, v);
  if (flagsEl.type !== MI_UINT32 || flagsEl.data.length !== 8) throw new MatError(`${path}: array flags are not 2 uint32 values`);
  const mxClass = flagsEl.data[0]!;
  const complex = (flagsEl.data[1]! & 0x08) !== 0;
  const dimsEl = readElement(data, flagsEl.next, v);
  const dims = int32s(dimsEl, `${path} dimensions`);
  if (dims.length < 2 || dims.some((d) => d < 0)) throw new MatError(`${path}: bad dimensions [${dims.join(', ')}]`);
  const nameEl = readElement(data, dimsEl.next, v);
  const name = text(nameEl, `${path} name`);
  const count = dims.reduce((a, b) => a * b, 1);
  let at = nameEl.next;
  if (mxClass === MX_STRUCT) {
    const lenEl = readElement(data, at, v);
    const [fieldLen] = int32s(lenEl, `${path} field name length`);
    if (fieldLen === undefined || fieldLen < 1 || fieldLen > 64) throw new MatError(`${path}: field name length ${fieldLen}`);
    const namesEl = readElement(data, lenEl.next, v);
    if (namesEl.data.length % fieldLen !== 0) throw new MatError(`${path}: field names are ${namesEl.data.length} bytes, not a multiple of ${fieldLen}`);
    const names: string[] = [];
    for (let i = 0; i < namesEl.data.length; i += fieldLen) {
      const raw = namesEl.data.subarray(i, i + fieldLen);
      const end = raw.indexOf(0);
      names.push(String.fromCharCode(...(end >= 0 ? raw.subarray(0, end) : raw)));
    }
    if (count !== 1) throw new MatError(`${path}: a ${dims.join('x')} struct array (only 1x1 structs are read)`);
    at = namesEl.next;
    const fields = new Map<string, MatArray>();
    for (const field of names) {
      const el = readElement(data, at, v);
      if (el.type !== MI_MATRIX) throw new MatError(`${path}.${field}: expected an array element, got type ${el.type}`);
      if (want(field) && el.data.length > 0) fields.set(field, parseMatrix(el.data, depth + 1, () => false, `${path}.${field}`));
      at = el.next;
    }
    return { name, mxClass, dims, fields };
  }
  if (mxClass === MX_CELL || mxClass === MX_SPARSE || mxClass > 16 || mxClass === 3 || mxClass === 4) {
    // cells, sparse matrices, objects, characters: not needed here; their bytes were bounded by the enclosing tag
    return { name, mxClass, dims };
  }
  const realEl = readElement(data, at, v);
  const size = TYPE_SIZE[realEl.type];
  if (size === undefined) throw new MatError(`${path}: numeric data of unknown storage type ${realEl.type}`);
  if (realEl.data.length !== count * size) {
    throw new MatError(`${path}: ${dims.join('x')} values need ${count * size} bytes of type ${realEl.type}, the file has ${realEl.data.length}`);
  }
  if (complex) throw new MatError(`${path}: complex data`);
  return { name, mxClass, dims, dataType: realEl.type, data: realEl.data };
}

/**
 * Reads the named variable of a level-5 MAT-file (top-level elements, compressed or not), decoding
 * only the struct fields `fields` lists. Throws FcnError naming `file` for anything malformed.
 */
export function readMatVariable(bytes: Uint8Array, file: string, variable: string, fields: string[] = []): MatArray {
  try {
    if (bytes.length < 128) throw new MatError(`${bytes.length} bytes, shorter than the 128-byte header`);
    const header = String.fromCharCode(...bytes.subarray(0, 10));
    if (!header.startsWith('MATLAB 5.0')) {
      throw new MatError(header.startsWith('\x89HDF') || bytes[0] === 0 ? 'not a level-5 MAT-file (MATLAB 7.3/HDF5 and v4 files are not read)' : 'not a MATLAB 5.0 MAT-file');
    }
    const endian = String.fromCharCode(bytes[126]!, bytes[127]!);
    if (endian !== 'IM') throw new MatError(endian === 'MI' ? 'big-endian MAT-files are not read' : `bad endian indicator '${endian}'`);
    const v = view(bytes);
    let at = 128;
    while (at < bytes.length) {
      if (bytes.length - at < 8) break; // trailing padding
      let el = readElement(bytes, at, v);
      at = el.next;
      if (el.type === MI_COMPRESSED) {
        let inflated: Uint8Array;
        try {
          inflated = inflateSync(el.data, { maxOutputLength: MAX_INFLATED });
        } catch (err) {
          throw new MatError(`a compressed element does not inflate (${errorMessage(err)})`);
        }
        el = readElement(inflated, 0, view(inflated));
      }
      if (el.type !== MI_MATRIX) continue;
      // peek at the name before decoding the whole array
      const top = parseName(el.data);
      if (top !== variable) continue;
      return parseMatrix(el.data, 0, (f) => fields.includes(f), variable);
    }
    throw new MatError(`no variable '${variable}'`);
  } catch (err) {
    if (err instanceof MatError) throw new FcnError(`${file}: not a readable MAT-file: ${err.message}`);
    if (err instanceof RangeError) throw new FcnError(`${file}: not a readable MAT-file: truncated (${err.message})`);
    throw err;
  }
}

function parseName(data: Uint8Array): string {
  const v = view(data);
  const flags = readElement(data, 0, v);
  const dims = readElement(data, flags.next, v);
  return text(readElement(data, dims.next, v), 'array name');
}

/** Sides beyond this are not a segmentation mask (SBD's are at most 500). */
const MAX_SIDE = 16384;

/**
 * SBD's class mask: GTcls.Segmentation of a cls/<id>.mat file, as a row-major label map (0 =
 * background, 1..20 the VOC classes; SBD has no void band).
 */
export function decodeSbdMask(bytes: Uint8Array, file: string): LabelMap {
  const gt = readMatVariable(bytes, file, 'GTcls', ['Segmentation']);
  if (gt.mxClass !== MX_STRUCT) throw new FcnError(`${file}: GTcls is not a struct (expected SBD's cls/*.mat)`);
  const seg = gt.fields?.get('Segmentation');
  if (!seg) throw new FcnError(`${file}: GTcls has no Segmentation field (expected SBD's cls/*.mat)`);
  if (seg.dims.length !== 2 || seg.data === undefined) throw new FcnError(`${file}: GTcls.Segmentation is not a 2-D numeric array`);
  const [height, width] = seg.dims as [number, number];
  if (height < 1 || width < 1 || height > MAX_SIDE || width > MAX_SIDE) throw new FcnError(`${file}: GTcls.Segmentation is ${height}x${width}, not a mask size`);
  const n = height * width;
  const out = new Uint8Array(n);
  const src = seg.data;
  const read = valueReader(seg.dataType!, src, file);
  if (seg.mxClass !== MX_UINT8 && seg.mxClass !== MX_DOUBLE) {
    // MATLAB may store a class in a narrower type; the class itself must be uint8 or double
    throw new FcnError(`${file}: GTcls.Segmentation has MATLAB class ${seg.mxClass}, expected uint8`);
  }
  // column-major (MATLAB) -> row-major
  for (let x = 0; x < width; x++) {
    for (let y = 0; y < height; y++) {
      const value = read(x * height + y);
      if (!Number.isInteger(value) || value < 0 || value > 255) {
        throw new FcnError(`${file}: GTcls.Segmentation holds ${value} at x=${x} y=${y}, expected class ids 0..255`);
      }
      out[y * width + x] = value;
    }
  }
  return { width, height, data: out };
}

function valueReader(type: number, data: Uint8Array, file: string): (i: number) => number {
  const v = view(data);
  switch (type) {
    case MI_UINT8: return (i) => data[i]!;
    case MI_INT8: return (i) => v.getInt8(i);
    case MI_UINT16: return (i) => v.getUint16(i * 2, true);
    case MI_INT16: return (i) => v.getInt16(i * 2, true);
    case MI_UINT32: return (i) => v.getUint32(i * 4, true);
    case MI_INT32: return (i) => v.getInt32(i * 4, true);
    case MI_SINGLE: return (i) => v.getFloat32(i * 4, true);
    case MI_DOUBLE: return (i) => v.getFloat64(i * 8, true);
    default: throw new FcnError(`${file}: GTcls.Segmentation is stored as type ${type}, expected a numeric type`);
  }
}
