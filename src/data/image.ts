// Pixels in and out: RGB images (decoded by sharp) and class-index masks (PNG read keeping the raw
// palette index, since sharp expands palettes to RGB; grayscale index PNGs too; RGB colour masks
// through the exact inverse palette). Writing a mask produces a VOC palette PNG.
// Every decoder reads the declared width and height from the file's header first and refuses more
// pixels than the limit (DEFAULT_MAX_PIXELS, FCN_MAX_PIXELS, or the caller's maxPixels) before it
// allocates anything for the pixels: a 1.5 MB PNG can declare 40000 x 40000.
import { access, constants as fsConstants, open, readFile, stat } from 'node:fs/promises';
import { constants as zlibConstants, deflateSync, inflateSync } from 'node:zlib';
import type Sharp from 'sharp';
import { requireCjs } from '../util/cjs.js';
import { decode as decodePng } from 'fast-png';
import { crc32 } from '../util/crc32.js';
import { FcnError, errorMessage, readFailure } from '../util/errors.js';
import { writeFileAtomic } from '../util/fs.js';
import { VOC_PALETTE, IGNORE_INDEX, type Rgb } from './voc.js';

const sharp = requireCjs('sharp') as typeof Sharp;

/** An 8-bit RGB image, pixels interleaved row by row (HWC). */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** A class-index mask: one byte per pixel, row-major; 255 = ignore. */
export interface LabelMap {
  width: number;
  height: number;
  data: Uint8Array;
}

/** The largest image or mask decoded by default: 100 megapixels (10000 x 10000). */
export const DEFAULT_MAX_PIXELS = 100_000_000;

/** Environment variable that raises (or lowers) the pixel limit for every decoder in the process. */
export const MAX_PIXELS_ENV = 'FCN_MAX_PIXELS';

export interface DecodeLimits {
  /** Refuse images and masks that declare more pixels than this (default: FCN_MAX_PIXELS, else DEFAULT_MAX_PIXELS). */
  maxPixels?: number;
}

/** The pixel limit in force: the caller's, else FCN_MAX_PIXELS, else DEFAULT_MAX_PIXELS. */
export function maxPixelsLimit(limits: DecodeLimits = {}): number {
  if (limits.maxPixels !== undefined) {
    if (!Number.isSafeInteger(limits.maxPixels) || limits.maxPixels < 1) throw new FcnError(`maxPixels must be a positive integer, got ${limits.maxPixels}`, 2);
    return limits.maxPixels;
  }
  const env = process.env[MAX_PIXELS_ENV];
  if (env !== undefined && env !== '') {
    const n = Number(env);
    if (!Number.isSafeInteger(n) || n < 1) throw new FcnError(`${MAX_PIXELS_ENV}='${env}': expected a positive integer number of pixels`, 2);
    return n;
  }
  return DEFAULT_MAX_PIXELS;
}

/** The one-line refusal of an image whose declared size is over the limit. */
export function checkPixelCount(name: string, width: number, height: number, limits: DecodeLimits = {}): void {
  const max = maxPixelsLimit(limits);
  if (width * height > max) {
    throw new FcnError(`${name}: ${width}x${height} is ${(width * height / 1e6).toFixed(1)} megapixels, more than the limit of ` +
      `${(max / 1e6).toFixed(1)} (raise it with --max-pixels or ${MAX_PIXELS_ENV})`);
  }
}

/**
 * An image's declared size, from its header alone (sharp reads it without decoding a pixel),
 * checked against the pixel limit. `input`: the encoded bytes, or a path.
 */
async function declaredSize(input: Uint8Array | string, name: string, maxPixels: number): Promise<{ width: number; height: number; space?: string; icc: boolean }> {
  let meta: { width?: number; height?: number; space?: string; icc?: unknown };
  try {
    meta = await sharp(input, { limitInputPixels: false }).metadata();
  } catch (err) {
    // for a path, say why it cannot be read (sharp's own words for a missing file are "Input file is missing")
    if (typeof input === 'string') {
      let size: number;
      try {
        const st = await stat(input);
        if (st.isDirectory()) throw new FcnError(`${name}: a folder, not an image file (JPEG/PNG/WebP expected)`);
        size = st.size;
        await access(input, fsConstants.R_OK);
      } catch (e) {
        if (e instanceof FcnError) throw e;
        throw new FcnError(`${name}: cannot read an image (${readFailure(e)})`);
      }
      if (size === 0) throw new FcnError(`${name}: the file is empty (JPEG/PNG/WebP expected)`);
    }
    throw new FcnError(`${name}: not a readable image (JPEG/PNG/WebP expected): ${errorMessage(err)}`);
  }
  if (!meta.width || !meta.height) throw new FcnError(`${name}: not a readable image (JPEG/PNG/WebP expected): no size in its header`);
  checkPixelCount(name, meta.width, meta.height, { maxPixels });
  return { width: meta.width, height: meta.height, space: meta.space, icc: meta.icc !== undefined };
}

/**
 * A CMYK JPEG without an ICC profile, converted as browsers and PIL (hence torchvision's loaders) do:
 * R = (255 − C)(255 − K)/255, likewise G from M and B from Y, rounded. libvips would convert it
 * through a stand-in press profile instead, which shifts colours by tens of levels (over 100 where K
 * is high).
 * Undefined when the image is not plain 4-channel CMYK.
 */
async function decodeProfilelessCmyk(bytes: Uint8Array, max: number): Promise<RgbImage | undefined> {
  const { data, info } = await sharp(bytes, { failOn: 'error', limitInputPixels: max })
    .rotate()
    .pipelineColourspace('cmyk')
    .toColourspace('cmyk')
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 4) return undefined;
  const n = info.width * info.height;
  const rgb = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const k = 255 - data[4 * i + 3]!;
    for (let c = 0; c < 3; c++) {
      // (a·b)/255 rounded, exactly (PIL's MULDIV255)
      const t = (255 - data[4 * i + c]!) * k + 128;
      rgb[3 * i + c] = (t + (t >> 8)) >> 8;
    }
  }
  return { width: info.width, height: info.height, data: rgb };
}

/** Decodes any image sharp reads (JPEG, PNG, WebP, ...) to 8-bit RGB. `name` is used in errors. */
export async function decodeImage(bytes: Uint8Array, name = 'image', limits: DecodeLimits = {}): Promise<RgbImage> {
  const max = maxPixelsLimit(limits);
  const meta = await declaredSize(bytes, name, max);
  try {
    if (meta.space === 'cmyk' && !meta.icc) {
      const cmyk = await decodeProfilelessCmyk(bytes, max);
      if (cmyk) return cmyk;
    }
    // rotate(): apply the EXIF orientation, as browsers and viewers do, so masks line up with what people see
    const { data, info } = await sharp(bytes, { failOn: 'error', limitInputPixels: max })
      .rotate()
      .removeAlpha()
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`expected 3 channels, got ${info.channels}`);
    return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
  } catch (err) {
    throw new FcnError(`${name}: not a readable image (JPEG/PNG/WebP expected): ${errorMessage(err)}`);
  }
}

/**
 * Checks an image file without decoding its pixels: it exists, its header is one sharp reads, and
 * its declared size is within the limit. Cheap (the header only), so a batch can be checked before
 * a model is loaded; a file can still fail later if its pixel data is cut short.
 */
export async function probeImage(path: string, limits: DecodeLimits = {}): Promise<{ width: number; height: number }> {
  return declaredSize(path, path, maxPixelsLimit(limits));
}

/** Checks a mask file's PNG header (its first 24 bytes) against the pixel limit, without reading the rest. */
export async function probeMask(path: string, limits: DecodeLimits = {}): Promise<void> {
  let head: Uint8Array;
  try {
    const fh = await open(path, 'r');
    try {
      head = new Uint8Array(24);
      const { bytesRead } = await fh.read(head, 0, 24, 0);
      head = head.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw new FcnError(`${path}: cannot read a PNG mask (${readFailure(err)})`);
  }
  const header = pngHeader(head);
  if (!header) throw new FcnError(`${path}: not a readable PNG mask (palette, grayscale or RGB PNG expected): no PNG header`);
  checkPixelCount(path, header.width, header.height, limits);
}

export async function readImage(path: string, limits: DecodeLimits = {}): Promise<RgbImage> {
  return decodeImage(await readFileOrFail(path, 'an image'), path, limits);
}

/** Encodes an RGB image as PNG (or JPEG when `format` says so). */
export async function encodeImage(img: RgbImage, format: 'png' | 'jpeg' = 'png', quality = 90): Promise<Buffer> {
  const s = sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } });
  return format === 'png' ? s.png().toBuffer() : s.jpeg({ quality }).toBuffer();
}

export async function writeImage(path: string, img: RgbImage): Promise<void> {
  const format = /\.jpe?g$/i.test(path) ? 'jpeg' : 'png';
  await writeFileAtomic(path, await encodeImage(img, format));
}

async function readFileOrFail(path: string, what: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new FcnError(`${path}: cannot read ${what} (${readFailure(err)})`);
  }
}

let inversePalette: Map<number, number> | undefined;
function colourToIndex(): Map<number, number> {
  if (!inversePalette) {
    inversePalette = new Map();
    // First 21 classes and the void colour are the ones that occur; map every palette entry so
    // that masks drawn with any VOC index round-trip, the class colours winning on duplicates.
    for (let i = VOC_PALETTE.length - 1; i >= 0; i--) {
      const [r, g, b] = VOC_PALETTE[i]!;
      inversePalette.set((r << 16) | (g << 8) | b, i);
    }
  }
  return inversePalette;
}

/**
 * Decodes a segmentation mask to class indices. Palette PNGs: the raw index is the class id.
 * Grayscale PNGs: the value is the class id. RGB(A) PNGs: each colour must be a VOC palette colour.
 */
/** The checks a mask's bytes pass before decoding: its declared size within the pixel limit, its data not inflating past that size. */
export function checkMaskBytes(bytes: Uint8Array, name: string, limits: DecodeLimits = {}): void {
  const header = pngHeader(bytes);
  if (header) {
    checkPixelCount(name, header.width, header.height, limits);
    checkPngData(bytes, name);
  }
}

/** A mask PNG's 8-bit samples (after the pixel-count and inflation checks), for the readers that map
 *  them to labels: palette indices or gray values (1-2 channels) or colours (3-4 channels). */
export interface MaskSamples {
  width: number;
  height: number;
  channels: number;
  /** Whether the samples are palette indices. */
  palette: boolean;
  src: Uint8Array;
}

export function decodeMaskSamples(bytes: Uint8Array, name: string, limits: DecodeLimits = {}): MaskSamples {
  checkMaskBytes(bytes, name, limits);
  let png;
  try {
    png = decodePng(bytes);
  } catch (err) {
    throw new FcnError(`${name}: not a readable PNG mask (palette, grayscale or RGB PNG expected): ${errorMessage(err)}`);
  }
  if (png.depth !== 8) throw new FcnError(`${name}: mask has bit depth ${png.depth}, expected an 8-bit palette, grayscale or RGB PNG`);
  return { width: png.width, height: png.height, channels: png.channels, palette: Boolean(png.palette), src: png.data as Uint8Array };
}

/** Labels of a colour mask's pixels through `map` (0xRRGGBB → label); `unknown` makes the error for
 *  the first colour that is not in it. */
export function mapColours(m: MaskSamples, map: ReadonlyMap<number, number>, unknown: (rgb: [number, number, number], x: number, y: number) => Error): Uint8Array {
  const { width, height, channels, src } = m;
  const out = new Uint8Array(width * height);
  for (let i = 0; i < out.length; i++) {
    const r = src[i * channels]!;
    const g = src[i * channels + 1]!;
    const b = src[i * channels + 2]!;
    const idx = map.get((r << 16) | (g << 8) | b);
    if (idx === undefined) throw unknown([r, g, b], i % width, Math.floor(i / width));
    out[i] = idx;
  }
  return out;
}

export function decodeMask(bytes: Uint8Array, name = 'mask', limits: DecodeLimits = {}): LabelMap {
  const { width, height, channels, palette, src } = decodeMaskSamples(bytes, name, limits);
  const n = width * height;
  const out = new Uint8Array(n);
  if (channels === 1 || (channels === 2 && !palette)) {
    // palette indices or gray values (gray+alpha: the alpha is dropped)
    for (let i = 0; i < n; i++) out[i] = src[i * channels]!;
    return { width, height, data: out };
  }
  if (channels === 3 || channels === 4) {
    const data = mapColours({ width, height, channels, palette, src }, colourToIndex(),
      (rgb, x, y) => new FcnError(`${name}: colour (${rgb.join(',')}) at x=${x} y=${y} is not a VOC palette colour`));
    return { width, height, data };
  }
  throw new FcnError(`${name}: mask has ${channels} channels, expected a palette, grayscale or RGB PNG`);
}

/**
 * A PNG's declared size from its IHDR chunk (the first, right after the 8-byte signature), or
 * undefined when the bytes do not start like a PNG (the decoder then says what is wrong).
 */
export function pngHeader(bytes: Uint8Array): { width: number; height: number } | undefined {
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (bytes.length < 24 || !sig.every((b, i) => bytes[i] === b)) return undefined;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dv.getUint32(12) !== 0x49484452 /* IHDR */) return undefined;
  return { width: dv.getUint32(16), height: dv.getUint32(20) };
}

/** Samples per pixel of each PNG colour type (0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA). */
const PNG_CHANNELS: Readonly<Record<number, number>> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

/**
 * Checks that a PNG's pixel data does not inflate past what its header implies. The decoder
 * inflates every IDAT byte it is given, so a 100x100 mask whose 300 KB of data inflates to 300 MB
 * would take a gigabyte: here zlib stops at the bound and the file is refused.
 */
function checkPngData(bytes: Uint8Array, name: string): void {
  if (bytes.length < 33) return; // too short: the decoder says what is wrong
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const width = dv.getUint32(16);
  const height = dv.getUint32(20);
  const depth = bytes[24]!;
  const channels = PNG_CHANNELS[bytes[25]!];
  if (channels === undefined) return;
  // each row: a filter byte and its samples; Adam7 interlacing adds at most 15 rows' worth of
  // filter bytes and partial bytes per 8 rows, bounded by 16 bytes per row
  const rowBytes = Math.ceil((width * channels * depth) / 8);
  const bound = height * (rowBytes + 16) + 64;
  const idat: Uint8Array[] = [];
  for (let at = 8; at + 12 <= bytes.length;) {
    const len = dv.getUint32(at);
    const type = dv.getUint32(at + 4);
    if (at + 12 + len > bytes.length) break;
    if (type === 0x49444154 /* IDAT */) idat.push(bytes.subarray(at + 8, at + 8 + len));
    if (type === 0x49454e44 /* IEND */) break;
    at += 12 + len;
  }
  try {
    inflateSync(Buffer.concat(idat), { maxOutputLength: bound, finishFlush: zlibConstants.Z_SYNC_FLUSH });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new FcnError(`${name}: its pixel data inflates past the ${bound} bytes a ${width}x${height} PNG holds (a corrupt or malicious file)`);
    }
    // corrupt data: the decoder reports it in its own words
  }
}

export async function readMask(path: string, limits: DecodeLimits = {}): Promise<LabelMap> {
  return decodeMask(await readFileOrFail(path, 'a PNG mask'), path, limits);
}

const PNG_SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);

/** One PNG chunk: big-endian length, type, data, and the CRC-32 of type and data. */
function pngChunk(type: string, data: Uint8Array): Uint8Array {
  const chunk = new Uint8Array(12 + data.length);
  const view = new DataView(chunk.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) chunk[4 + i] = type.charCodeAt(i);
  chunk.set(data, 8);
  view.setUint32(8 + data.length, crc32(chunk.subarray(4, 8 + data.length)));
  return chunk;
}

/**
 * Encodes a class-index mask as an 8-bit palette PNG (pixel value = class id), the VOC format: IHDR
 * (colour type 3), PLTE with 256 entries (the palette's, black past its end), IDAT (the rows, each
 * behind filter byte 0, deflated by zlib: masks are long runs, which deflate takes as they are), IEND.
 */
export function encodeMask(mask: LabelMap, palette: readonly Rgb[] = VOC_PALETTE): Uint8Array {
  const { width, height, data } = mask;
  if (data.length !== width * height) {
    throw new Error(`mask data has ${data.length} values for ${width}x${height}`);
  }
  const header = new Uint8Array(13);
  const hv = new DataView(header.buffer);
  hv.setUint32(0, width);
  hv.setUint32(4, height);
  header.set([8, 3, 0, 0, 0], 8); // bit depth 8, palette colour, deflate, adaptive filtering, no interlace
  const pal = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) pal.set(palette[i] ?? [0, 0, 0], i * 3);
  const rows = new Uint8Array((width + 1) * height);
  for (let y = 0; y < height; y++) rows.set(data.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
  const chunks = [PNG_SIGNATURE, pngChunk('IHDR', header), pngChunk('PLTE', pal), pngChunk('IDAT', deflateSync(rows)), pngChunk('IEND', new Uint8Array(0))];
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

export async function writeMask(path: string, mask: LabelMap, palette?: readonly Rgb[]): Promise<void> {
  await writeFileAtomic(path, encodeMask(mask, palette));
}

export { IGNORE_INDEX };
