// Text for pictures (legends, row titles): rendered as a coverage mask and drawn onto RgbImages.
// The system's fonts are used through sharp (librsvg + fontconfig) when they work. On a machine
// without fonts librsvg draws every character as the same box, which is unreadable; that is
// detected once (a proportional font draws "iiii" much narrower than "WWWW", boxes do not) and text
// then falls back to the built-in bitmap glyphs of glyphs.ts, so a picture's labels always read.
import type Sharp from 'sharp';
import { requireCjs } from '../util/cjs.js';
import type { RgbImage } from '../data/image.js';
import type { Rgb } from '../data/voc.js';
import {
  GLYPH_BASELINE, GLYPH_DATA_BASE64, GLYPH_FIRST, GLYPH_HEIGHT, GLYPH_LAST, GLYPH_SIZE, GLYPH_WIDTH,
} from './glyphs.js';

const sharp = requireCjs('sharp') as typeof Sharp;

/** A line of text as coverage (0 = none, 255 = full ink), `height` = the line height for its size. */
export interface TextMask {
  width: number;
  height: number;
  /** Row of the baseline. */
  baseline: number;
  alpha: Uint8Array;
}

/** 'auto' uses system fonts when they render, the bitmap glyphs otherwise. */
export type TextMode = 'auto' | 'font' | 'bitmap';

const FONT_FAMILY = 'DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif';

/** Line metrics shared by both renderers (those of the 16 px glyph cell, scaled). */
function lineMetrics(size: number): { height: number; baseline: number } {
  return { height: Math.round((size * GLYPH_HEIGHT) / GLYPH_SIZE), baseline: Math.round((size * GLYPH_BASELINE) / GLYPH_SIZE) };
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

async function renderWithFont(text: string, size: number): Promise<TextMask> {
  const { height, baseline } = lineMetrics(size);
  // Wide enough for any glyph run (the widest Latin glyphs are ~1 em); trimmed to the ink below.
  const canvas = Math.ceil(size * (text.length + 1)) + 4;
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${canvas}" height="${height}">` +
    `<text x="1" y="${baseline}" font-family="${FONT_FAMILY}" font-size="${size}" fill="#000" xml:space="preserve">${escapeXml(text)}</text></svg>`;
  const { data } = await sharp(Buffer.from(svg)).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  let right = 0;
  for (let y = 0; y < height; y++) {
    for (let x = canvas - 1; x >= right; x--) {
      if (data[(y * canvas + x) * 4 + 3]! > 0) {
        right = x + 1;
        break;
      }
    }
  }
  const width = Math.max(right + 1, text.length > 0 && right === 0 ? Math.round(size * 0.3 * text.length) : 0);
  const alpha = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < Math.min(width, canvas); x++) alpha[y * width + x] = data[(y * canvas + x) * 4 + 3]!;
  }
  return { width, height, baseline, alpha };
}

let glyphs: Uint8Array | undefined;
function glyphCoverage(): Uint8Array {
  if (!glyphs) {
    const packed = Buffer.from(GLYPH_DATA_BASE64, 'base64');
    glyphs = new Uint8Array(packed.length * 2);
    for (let i = 0; i < packed.length; i++) {
      glyphs[2 * i] = (packed[i]! >> 4) * 17;
      glyphs[2 * i + 1] = (packed[i]! & 15) * 17;
    }
  }
  return glyphs;
}

/** Monospaced bitmap text: the 16 px glyph cells, resampled bilinearly to `size`. */
export function renderWithGlyphs(text: string, size: number): TextMask {
  const cov = glyphCoverage();
  const { height, baseline } = lineMetrics(size);
  const scale = size / GLYPH_SIZE;
  const chars = [...text].map((c) => {
    const code = c.codePointAt(0)!;
    return code >= GLYPH_FIRST && code <= GLYPH_LAST ? code : '?'.charCodeAt(0);
  });
  const srcW = GLYPH_WIDTH * chars.length;
  const width = Math.max(1, Math.round(srcW * scale));
  const alpha = new Uint8Array(width * height);
  const cell = GLYPH_WIDTH * GLYPH_HEIGHT;
  const sample = (sx: number, sy: number): number => {
    if (sx < 0 || sy < 0 || sx >= srcW || sy >= GLYPH_HEIGHT) return 0;
    const ch = chars[Math.floor(sx / GLYPH_WIDTH)]! - GLYPH_FIRST;
    return cov[ch * cell + sy * GLYPH_WIDTH + (sx % GLYPH_WIDTH)]!;
  };
  for (let y = 0; y < height; y++) {
    const fy = (y + 0.5) / scale - 0.5;
    const y0 = Math.floor(fy);
    const wy = fy - y0;
    for (let x = 0; x < width; x++) {
      const fx = (x + 0.5) / scale - 0.5;
      const x0 = Math.floor(fx);
      const wx = fx - x0;
      const v =
        (1 - wy) * ((1 - wx) * sample(x0, y0) + wx * sample(x0 + 1, y0)) +
        wy * ((1 - wx) * sample(x0, y0 + 1) + wx * sample(x0 + 1, y0 + 1));
      alpha[y * width + x] = Math.round(v);
    }
  }
  return { width, height, baseline, alpha };
}

let fontsWork: Promise<boolean> | undefined;
/** Whether system fonts render real glyphs (checked once per process). */
export function systemFontsWork(): Promise<boolean> {
  fontsWork ??= (async () => {
    try {
      const narrow = await renderWithFont('iiiiiiii', 20);
      const wide = await renderWithFont('WWWWWWWW', 20);
      return narrow.alpha.some((v) => v > 0) && wide.width > 1.5 * narrow.width;
    } catch {
      return false;
    }
  })();
  return fontsWork;
}

/** Renders one line of text at `size` px (the em size; the line is about 1.2 × size tall). */
export async function renderText(text: string, size: number, mode: TextMode = 'auto'): Promise<TextMask> {
  const useFont = mode === 'font' || (mode === 'auto' && (await systemFontsWork()));
  return useFont ? renderWithFont(text, size) : renderWithGlyphs(text, size);
}

/** Draws a text mask in `color` with its top-left corner at (x, y), clipped to the image. */
export function drawText(img: RgbImage, text: TextMask, x: number, y: number, color: Rgb): void {
  for (let ty = 0; ty < text.height; ty++) {
    const iy = y + ty;
    if (iy < 0 || iy >= img.height) continue;
    for (let tx = 0; tx < text.width; tx++) {
      const ix = x + tx;
      const a = text.alpha[ty * text.width + tx]!;
      if (a === 0 || ix < 0 || ix >= img.width) continue;
      const o = (iy * img.width + ix) * 3;
      for (let c = 0; c < 3; c++) img.data[o + c] = Math.round(img.data[o + c]! + ((color[c]! - img.data[o + c]!) * a) / 255);
    }
  }
}
