// A minimal ZIP reader for the archives `torch.save` writes (since PyTorch 1.6): entries found
// through the central directory (zip64 records and extra fields included), stored or deflated
// data, CRC-32 checked. Reads from bytes in memory; never writes or extracts anything. Inflation is
// bounded before it starts: never past the size the entry declares, nor past what the caller needs,
// so a few kilobytes that inflate to gigabytes are refused after at most the declared size.
import { inflateRawSync } from 'node:zlib';
import { crc32 } from '../util/crc32.js';
import { FcnError } from '../util/errors.js';

export interface ZipEntry {
  name: string;
  /** 0 stored, 8 deflate. */
  method: number;
  compressedSize: number;
  size: number;
  crc32: number;
  localHeaderOffset: number;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_ZIP64_EOCD = 0x06064b50;

/** The default bound on one entry (a state_dict's pickle is kilobytes; storages pass their own size). */
export const MAX_ENTRY_BYTES = 2 ** 31;

export { crc32, crc32Table } from '../util/crc32.js';

export class ZipArchive {
  /** Entries by name, in central-directory order. */
  readonly entries = new Map<string, ZipEntry>();

  constructor(private readonly bytes: Uint8Array, readonly fileName: string) {
    this.readCentralDirectory();
  }

  private fail(what: string): FcnError {
    return new FcnError(`${this.fileName}: not a valid ZIP archive (a PyTorch .pth is one): ${what}`);
  }

  private view(): DataView {
    return new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
  }

  private u64(dv: DataView, at: number): number {
    const v = dv.getBigUint64(at, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw this.fail(`64-bit field at byte ${at} is out of range`);
    return Number(v);
  }

  private readCentralDirectory(): void {
    const b = this.bytes;
    const dv = this.view();
    // The end-of-central-directory record is 22 bytes plus a comment of at most 65535 bytes.
    let eocd = -1;
    for (let i = b.length - 22; i >= Math.max(0, b.length - 22 - 65535); i--) {
      if (dv.getUint32(i, true) === SIG_EOCD) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) throw this.fail('no end-of-central-directory record (the file is truncated or not a ZIP)');
    let count = dv.getUint16(eocd + 10, true);
    let cdSize = dv.getUint32(eocd + 12, true);
    let cdOffset = dv.getUint32(eocd + 16, true);
    const locator = eocd - 20;
    if (locator >= 0 && dv.getUint32(locator, true) === SIG_ZIP64_LOCATOR) {
      const rec = this.u64(dv, locator + 8);
      if (rec + 56 > b.length || dv.getUint32(rec, true) !== SIG_ZIP64_EOCD) throw this.fail('zip64 end-of-central-directory record is missing');
      count = this.u64(dv, rec + 32);
      cdSize = this.u64(dv, rec + 40);
      cdOffset = this.u64(dv, rec + 48);
    }
    if (cdOffset + cdSize > b.length) throw this.fail('the central directory lies past the end of the file (truncated)');
    let p = cdOffset;
    for (let i = 0; i < count; i++) {
      if (p + 46 > b.length || dv.getUint32(p, true) !== SIG_CENTRAL) throw this.fail(`central directory entry ${i} is corrupt`);
      const method = dv.getUint16(p + 10, true);
      const crc = dv.getUint32(p + 16, true);
      let compressedSize = dv.getUint32(p + 20, true);
      let size = dv.getUint32(p + 24, true);
      const nameLen = dv.getUint16(p + 28, true);
      const extraLen = dv.getUint16(p + 30, true);
      const commentLen = dv.getUint16(p + 32, true);
      let localHeaderOffset = dv.getUint32(p + 42, true);
      if (p + 46 + nameLen + extraLen + commentLen > b.length) throw this.fail(`central directory entry ${i} is truncated`);
      const name = new TextDecoder().decode(b.subarray(p + 46, p + 46 + nameLen));
      // zip64 extended information: the 64-bit values of the fields saturated at 0xffffffff, in this order
      let q = p + 46 + nameLen;
      const extraEnd = q + extraLen;
      while (q + 4 <= extraEnd) {
        const id = dv.getUint16(q, true);
        const len = dv.getUint16(q + 2, true);
        if (id === 0x0001) {
          let r = q + 4;
          const take = (): number => {
            if (r + 8 > q + 4 + len) throw this.fail(`zip64 extra field of '${name}' is too short`);
            const v = this.u64(dv, r);
            r += 8;
            return v;
          };
          if (size === 0xffffffff) size = take();
          if (compressedSize === 0xffffffff) compressedSize = take();
          if (localHeaderOffset === 0xffffffff) localHeaderOffset = take();
        }
        q += 4 + len;
      }
      this.entries.set(name, { name, method, compressedSize, size, crc32: crc, localHeaderOffset });
      p += 46 + nameLen + extraLen + commentLen;
    }
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /**
   * The entry's uncompressed bytes (a view into the archive for stored entries). `maxBytes`: the
   * most the caller can use (e.g. the bytes a pickle's storage needs); a larger entry is refused
   * from its header, before anything is inflated.
   */
  read(name: string, maxBytes = MAX_ENTRY_BYTES): Uint8Array {
    const e = this.entries.get(name);
    if (!e) throw new FcnError(`${this.fileName}: the archive has no entry '${name}'`);
    if (e.size > maxBytes) throw this.fail(`'${name}' declares ${e.size} bytes, more than the ${maxBytes} expected`);
    const dv = this.view();
    const h = e.localHeaderOffset;
    if (h + 30 > this.bytes.length || dv.getUint32(h, true) !== SIG_LOCAL) throw this.fail(`local header of '${name}' is missing (truncated?)`);
    // the local header's extra field can differ from the central one (torch pads it to align the data)
    const start = h + 30 + dv.getUint16(h + 26, true) + dv.getUint16(h + 28, true);
    const end = start + e.compressedSize;
    if (end > this.bytes.length) throw this.fail(`data of '${name}' runs past the end of the file (truncated)`);
    let data: Uint8Array;
    const raw = this.bytes.subarray(start, end);
    if (e.method === 0) data = raw;
    else if (e.method === 8) {
      try {
        // zlib stops (and throws) once the output would pass the declared size: a lying header
        // costs at most that much memory, never what the stream would inflate to
        data = new Uint8Array(inflateRawSync(raw, { maxOutputLength: Math.max(1, e.size) }));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
          throw this.fail(`'${name}' inflates to more than the ${e.size} bytes its header declares`);
        }
        throw this.fail(`cannot inflate '${name}' (${err instanceof Error ? err.message : String(err)})`);
      }
    } else throw this.fail(`'${name}' uses compression method ${e.method}; only stored (0) and deflate (8) are supported`);
    if (data.length !== e.size) throw this.fail(`'${name}' has ${data.length} bytes, its header says ${e.size}`);
    if (crc32(data) !== e.crc32) throw this.fail(`CRC-32 of '${name}' does not match (the file is corrupt)`);
    return data;
  }
}

export function readZip(bytes: Uint8Array, fileName: string): ZipArchive {
  return new ZipArchive(bytes, fileName);
}
