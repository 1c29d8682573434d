// Hostile files made on the spot, small on disk: PNGs that declare huge sizes (and really inflate
// to them), a PyTorch .pth whose storage inflates far past what its pickle declares, and the few
// builders they need (a ZIP writer, a pickle of one tensor, long runs of deflated zeros).
import zlib from 'node:zlib';
import { crc32 } from '../../src/weights/zip.js';

/**
 * A raw deflate stream of `total` zero bytes, made by repeating one independently compressed
 * block: after a full flush a deflate block refers to nothing before it, so copies concatenate.
 * About 1 KB per MB: 1.6 GB of zeros is 1.6 MB.
 */
export function deflatedZeros(total: number, chunk = 1 << 20): Buffer {
  const parts: Buffer[] = [];
  const one = zlib.deflateRawSync(Buffer.alloc(chunk), { finishFlush: zlib.constants.Z_FULL_FLUSH });
  let left = total;
  for (; left >= chunk; left -= chunk) parts.push(one);
  if (left > 0) parts.push(zlib.deflateRawSync(Buffer.alloc(left), { finishFlush: zlib.constants.Z_FULL_FLUSH }));
  parts.push(zlib.deflateRawSync(Buffer.alloc(0))); // the final (empty) block
  return Buffer.concat(parts);
}

function pngChunk(type: string, data: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const body = Buffer.concat([head.subarray(4), Buffer.from(data)]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body), 0);
  return Buffer.concat([head.subarray(0, 4), body, crc]);
}

/**
 * A valid 8-bit grayscale PNG of width x height zeros (every scanline: filter 0, then zeros),
 * whose pixel data really inflates to height*(width+1) bytes. `truncate`: stop the data after
 * that many compressed bytes (a header that promises more than the file holds). `inflated`: make
 * the data inflate to that many bytes instead (more than the header implies: a decompression bomb).
 */
export function zeroGrayPng(width: number, height: number, truncate?: number, inflated?: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // grayscale
  const rawLen = inflated ?? height * (width + 1);
  const deflated = deflatedZeros(rawLen);
  // zlib wrapper: header 78 9c, then Adler-32 of the data: A = 1 (zeros add nothing), B = n·A mod 65521
  const adler = Buffer.alloc(4);
  adler.writeUInt32BE((((rawLen % 65521) << 16) | 1) >>> 0, 0);
  let idat = Buffer.concat([Buffer.from([0x78, 0x9c]), deflated, adler]);
  if (truncate !== undefined) idat = idat.subarray(0, truncate);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr), pngChunk('IDAT', idat), pngChunk('IEND', new Uint8Array(0)),
  ]);
}

export interface ZipInput {
  name: string;
  /** Bytes as stored in the archive (already deflated when method is 8). */
  data: Uint8Array;
  method?: 0 | 8;
  /** The uncompressed size the headers declare (default data.length). */
  size?: number;
  crc?: number;
}

/** A ZIP archive of the given entries (no zip64, no data descriptors), as torch.save lays it out. */
export function writeZip(entries: ZipInput[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    const method = e.method ?? 0;
    const size = e.size ?? e.data.length;
    const crc = e.crc ?? (method === 0 ? crc32(e.data) : 0);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(e.data.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(method, 10);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(e.data.length, 20);
    central.writeUInt32LE(size, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, Buffer.from(e.data));
    centrals.push(central, name);
    offset += 30 + name.length + e.data.length;
  }
  const cd = Buffer.concat(centrals);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(entries.length, 8);
  eocd.writeUInt16LE(entries.length, 10);
  eocd.writeUInt32LE(cd.length, 12);
  eocd.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, eocd]);
}

/** The pickle torch.save writes for {name: FloatTensor of `numel` elements in storage '0'} (protocol 2). */
export function oneTensorPickle(name: string, numel: number): Buffer {
  const parts: Buffer[] = [];
  const op = (...bytes: number[]) => parts.push(Buffer.from(bytes));
  const str = (s: string) => {
    const b = Buffer.from(s, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32LE(b.length, 0);
    parts.push(Buffer.from('X'), len, b);
  };
  const int = (n: number) => {
    const b = Buffer.alloc(5);
    b[0] = 0x4a; // BININT
    b.writeInt32LE(n, 1);
    parts.push(b);
  };
  const global = (module: string, attr: string) => parts.push(Buffer.from(`c${module}\n${attr}\n`, 'latin1'));
  op(0x80, 2); // PROTO 2
  op(0x7d, 0x28); // EMPTY_DICT, MARK
  str(name);
  global('torch._utils', '_rebuild_tensor_v2');
  op(0x28); // MARK (the rebuild arguments)
  op(0x28); // MARK (the persistent id)
  str('storage');
  global('torch', 'FloatStorage');
  str('0');
  str('cpu');
  int(numel);
  op(0x74, 0x51); // TUPLE, BINPERSID
  int(0); // storage offset
  int(numel);
  op(0x85); // size (numel,)
  int(1);
  op(0x85); // stride (1,)
  op(0x89); // requires_grad False
  global('collections', 'OrderedDict');
  op(0x29, 0x52); // EMPTY_TUPLE, REDUCE: OrderedDict()
  op(0x74, 0x52); // TUPLE, REDUCE: _rebuild_tensor_v2(...)
  op(0x75, 0x2e); // SETITEMS, STOP
  return Buffer.concat(parts);
}

/**
 * A torch.save-style archive {name: tensor of `numel` floats}; `storage` replaces the storage
 * entry (e.g. an inflation bomb) and `declaredSize` what its headers claim.
 */
export function onePth(name: string, numel: number, storage?: { data: Uint8Array; method: 0 | 8; declaredSize?: number }): Buffer {
  const values = storage ?? { data: new Uint8Array(new Float32Array(numel).fill(0.5).buffer), method: 0 as const };
  return writeZip([
    { name: 'archive/data.pkl', data: oneTensorPickle(name, numel) },
    { name: 'archive/data/0', data: values.data, method: values.method, size: storage?.declaredSize },
    { name: 'archive/version', data: Buffer.from('3\n') },
  ]);
}

/**
 * The inflating .pth: the pickle declares a 37 KB storage (9472 floats) while the entry
 * inflates to `inflated` bytes (1.5 GB by default); its headers declare `declaredSize`.
 */
export function inflatingPth(inflated = 1_500_000_000, declaredSize = 9472 * 4): Buffer {
  return onePth('final_conv.bias', 9472, { data: deflatedZeros(inflated), method: 8, declaredSize });
}
