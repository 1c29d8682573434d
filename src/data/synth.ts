// A synthetic dataset in the PASCAL VOC layout, for training and testing without the real archive:
// textured backgrounds with 1-3 objects each, where an object's CLASS IS DECIDED BY ITS SHAPE
// (circle, square, triangle, cross, ring) and its colour is random and shared by all classes, so a
// model must learn shape, not colour. With colours 'class' (the demo's task) each class also has its
// own hue and the backgrounds are muted (low saturation), so colour and shape both tell the classes
// apart and a network trained from scratch for a few minutes can find them. Masks carry a thin void (255) band on object boundaries, as
// VOC's do. Image sizes vary around a base size, so the small-image filter and padding get used.
// The dataset carries its own label space (labelmap.txt, CVAT's format: background and the five
// shapes, in VOC palette colours), so training on it goes through the own-classes path.
// Everything follows from the seed: the same options give the same bytes.
import { mkdir, readdir, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type Sharp from 'sharp';
import { requireCjs } from '../util/cjs.js';
import { FcnError, errorMessage } from '../util/errors.js';
import { makeFolder } from '../util/fs.js';
import { writeMask, type LabelMap, type RgbImage } from './image.js';
import { IGNORE_INDEX, VOC_PALETTE } from './voc.js';
import { formatLabelmap, LABELMAP_FILE } from './labels.js';
import { Rng } from './rng.js';

const sharp = requireCjs('sharp') as typeof Sharp;

export type SynthShape = 'circle' | 'square' | 'triangle' | 'cross' | 'ring';

/** Shape -> class id (1-5; 0 is the background). The masks draw them in the VOC palette's first colours. */
export const SYNTH_CLASSES: readonly { shape: SynthShape; classId: number; name: string }[] = Object.freeze(
  (['circle', 'square', 'triangle', 'cross', 'ring'] as const).map((shape, i) =>
    Object.freeze({ shape, classId: i + 1, name: shape }),
  ),
);

/** The synthetic dataset's label space as its labelmap.txt states it: background, then the shapes. */
export const SYNTH_LABELS: Readonly<{ classes: readonly string[]; colors: readonly (readonly [number, number, number])[] }> = Object.freeze({
  classes: Object.freeze(['background', ...SYNTH_CLASSES.map((c) => c.name)]),
  colors: Object.freeze(Array.from({ length: SYNTH_CLASSES.length + 1 }, (_, i) => VOC_PALETTE[i]!)),
});

export interface SynthOptions {
  /** Number of training images (default 120). */
  train?: number;
  /** Number of validation images (default 30). */
  val?: number;
  /** Base [height, width]; each image's sides are drawn within ±spread of it (default 384x512). */
  size?: [number, number];
  /** How far image sides vary around the base size, as a fraction (default 0.4: ±40%; at most 0.5). */
  spread?: number;
  seed?: number;
  /**
   * 'random' (default): object colours are random and shared by all classes (shape alone decides);
   * 'class': each class has its own hue (SYNTH_HUES, ±10°), backgrounds are muted.
   */
  colours?: SynthColours;
}

export type SynthColours = 'random' | 'class';
export const SYNTH_COLOURS: readonly SynthColours[] = ['random', 'class'];

/** Each shape class's hue in degrees under colours 'class': spread round the colour wheel (class id - 1 indexes it). */
export const SYNTH_HUES: readonly number[] = Object.freeze([0, 72, 144, 216, 288]);

export interface SynthResult {
  /** The VOC root that was written (the output folder itself). */
  root: string;
  train: number;
  val: number;
  /** The smallest and largest height and width that occur. */
  sizeRange: { height: [number, number]; width: [number, number] };
}

// Defaults: base 384x512 with ±40% gives sides 230..538 x 307..717, so with the book's 320x480 crop
// about half the images are kept and the rest are dropped (as VOC drops 350 of 1464); with a small
// base such as 96x128 every image is smaller than 320x480.
export const SYNTH_DEFAULTS = Object.freeze({ train: 120, val: 30, size: [384, 512] as [number, number], spread: 0.4, seed: 0, colours: 'random' as SynthColours });

/** Sides below this cannot hold an object that is large against the FCN's 32-pixel stride. */
export const SYNTH_MIN_SIDE = 48;
/** The smallest object diameter in pixels. */
const SYNTH_MIN_OBJECT = 48;
const SYNTH_MAX_SIDE = 4096;
const MAX_IMAGES = 1 << 20;
const JPEG_QUALITY = 90;
/** Writes kept in flight while the next image is drawn (sharp encodes in its own threads). */
const WRITES_IN_FLIGHT = 4;

function clamp(x: number, lo: number, hi: number): number {
  return x < lo ? lo : x > hi ? hi : x;
}

type Colour = [number, number, number];

function randomColour(rng: Rng): Colour {
  return [rng.int(256), rng.int(256), rng.int(256)];
}

/** HSV (hue in degrees, s and v in 0..1) to RGB 0..255. */
function hsv(h: number, sat: number, v: number): Colour {
  const f = (n: number): number => {
    const k = (n + h / 60) % 6;
    return Math.round(255 * (v - v * sat * Math.max(0, Math.min(k, 4 - k, 1))));
  };
  return [f(5), f(3), f(1)];
}

/** A muted colour: any hue, saturation at most 0.2 (greys, beiges, slates). */
function mutedColour(rng: Rng): Colour {
  return hsv(rng.uniform(0, 360), rng.uniform(0, 0.2), rng.uniform(0.15, 0.95));
}

/** A colour of the class's hue family: its hue ±10°, saturated, bright enough to show the hue. */
function classColour(rng: Rng, classId: number): Colour {
  const hue = (SYNTH_HUES[(classId - 1) % SYNTH_HUES.length]! + rng.uniform(-10, 10) + 360) % 360;
  return hsv(hue, rng.uniform(0.65, 1), rng.uniform(0.6, 1));
}

function colourDistance(a: Colour, b: Colour): number {
  return Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
}

/** A background texture: smooth value noise, a linear gradient, or stripes between two colours, plus grain. */
function drawBackground(rng: Rng, width: number, height: number, muted: boolean): { data: Uint8Array; mean: Colour } {
  const n = width * height;
  const kind = rng.int(3);
  const pick = muted ? mutedColour : randomColour;
  const c1 = pick(rng);
  const c2 = pick(rng);
  const noiseAmp = rng.uniform(4, 24);
  const mix = new Float32Array(n); // 0 -> c1, 1 -> c2
  if (kind === 0) {
    // value noise: random mixes on a coarse grid, bilinearly interpolated
    const cell = rng.uniform(24, 72);
    const gw = Math.ceil(width / cell) + 2;
    const gh = Math.ceil(height / cell) + 2;
    const grid = Float32Array.from({ length: gw * gh }, () => rng.next());
    for (let y = 0; y < height; y++) {
      const gy = y / cell;
      const iy = Math.floor(gy);
      const fy = gy - iy;
      for (let x = 0; x < width; x++) {
        const gx = x / cell;
        const ix = Math.floor(gx);
        const fx = gx - ix;
        const g0 = iy * gw + ix;
        const top = grid[g0]! + (grid[g0 + 1]! - grid[g0]!) * fx;
        const bottom = grid[g0 + gw]! + (grid[g0 + gw + 1]! - grid[g0 + gw]!) * fx;
        mix[y * width + x] = top + (bottom - top) * fy;
      }
    }
  } else {
    const angle = rng.uniform(0, Math.PI);
    const cos = Math.cos(angle);
    const sin = Math.sin(angle);
    if (kind === 1) {
      const span = Math.abs(cos) * width + Math.abs(sin) * height;
      const off = Math.min(0, cos * width) + Math.min(0, sin * height);
      for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) mix[y * width + x] = (x * cos + y * sin - off) / span;
    } else {
      // stripes, soft (a sine) or hard, through a one-period table
      const period = rng.uniform(8, 40);
      const hard = rng.next() < 0.5;
      const phase = rng.next();
      const wave = Float32Array.from({ length: 1024 }, (_, i) => {
        const v = Math.sin((i / 1024) * 2 * Math.PI);
        return hard ? (v > 0 ? 1 : 0) : 0.5 + 0.5 * v;
      });
      for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
          const ph = (x * cos + y * sin) / period + phase;
          mix[y * width + x] = wave[Math.floor((ph - Math.floor(ph)) * 1024) & 1023]!;
        }
      }
    }
  }
  const data = new Uint8Array(n * 3);
  const clamped = new Uint8ClampedArray(data.buffer);
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  const d0 = c2[0] - c1[0];
  const d1 = c2[1] - c1[1];
  const d2 = c2[2] - c1[2];
  let bits = 0;
  for (let p = 0; p < n; p++) {
    // one 32-bit draw gives the grain of four pixels
    if ((p & 3) === 0) bits = rng.nextUint32();
    const grain = (((bits >>> ((p & 3) * 8)) & 255) / 255 - 0.5) * 2 * noiseAmp;
    const t = mix[p]!;
    // the clamped view rounds and clamps to 0..255 as it stores
    clamped[p * 3] = c1[0] + d0 * t + grain;
    clamped[p * 3 + 1] = c1[1] + d1 * t + grain;
    clamped[p * 3 + 2] = c1[2] + d2 * t + grain;
    s0 += clamped[p * 3]!;
    s1 += clamped[p * 3 + 1]!;
    s2 += clamped[p * 3 + 2]!;
  }
  return { data, mean: [s0 / n, s1 / n, s2 / n] };
}

/** Inside test in the object's own frame (u, v) for radius R (the object's half-extent). */
function insideShape(shape: SynthShape, u: number, v: number, R: number): boolean {
  switch (shape) {
    case 'circle':
      return u * u + v * v <= R * R;
    case 'square':
      return Math.abs(u) <= 0.8 * R && Math.abs(v) <= 0.8 * R;
    case 'triangle': {
      // equilateral, circumradius R: inside all three edges at distance R/2 from the centre
      const h = R / 2;
      return v <= h && -0.8660254 * u - 0.5 * v <= h && 0.8660254 * u - 0.5 * v <= h;
    }
    case 'cross': {
      const a = 0.34 * R;
      const au = Math.abs(u);
      const av = Math.abs(v);
      return (au <= a && av <= R) || (av <= a && au <= R);
    }
    case 'ring': {
      const d2 = u * u + v * v;
      return d2 <= R * R && d2 >= 0.3 * R * R; // inner radius ~0.55 R
    }
  }
}

interface Placed {
  cx: number;
  cy: number;
  R: number;
}

/** Draws 1-3 shapes onto the image (in place) and returns the class-index mask with its void band. */
function drawObjects(rng: Rng, img: Uint8Array, bgMean: Colour, width: number, height: number, colours: SynthColours): Uint8Array {
  const label = new Uint8Array(width * height);
  const minSide = Math.min(width, height);
  const count = 1 + rng.int(3);
  const placed: Placed[] = [];
  for (let k = 0; k < count; k++) {
    const { shape, classId } = SYNTH_CLASSES[rng.int(SYNTH_CLASSES.length)]!;
    // Diameter 35-60% of the short side, at least 48 px (1.5 cells of the FCN's 32-px stride) and at
    // most 90% of the short side.
    const d = clamp(Math.max(minSide * rng.uniform(0.35, 0.6), SYNTH_MIN_OBJECT), 0, 0.9 * minSide);
    const R = d / 2;
    let spot: Placed | undefined;
    for (let attempt = 0; attempt < 30 && !spot; attempt++) {
      // up to 15% of an object may leave the frame, as objects in photos are cut by the border
      const cx = rng.uniform(0.7 * R, width - 0.7 * R);
      const cy = rng.uniform(0.7 * R, height - 0.7 * R);
      // objects may touch and slightly occlude each other, never hide one another
      if (placed.every((p) => Math.hypot(p.cx - cx, p.cy - cy) >= 0.85 * (p.R + R))) spot = { cx, cy, R };
    }
    if (!spot) continue;
    placed.push(spot);
    const pick = colours === 'class' ? (r: Rng) => classColour(r, classId) : randomColour;
    let colour = pick(rng);
    for (let tries = 0; tries < 20 && colourDistance(colour, bgMean) < 110; tries++) colour = pick(rng);
    const angle = rng.uniform(0, 2 * Math.PI);
    const cos = Math.cos(angle);
    const sin = Math.sin(angle);
    // gentle shading across the object and grain, so that no object is a flat colour
    const shadeAngle = rng.uniform(0, 2 * Math.PI);
    const shadeX = (Math.cos(shadeAngle) * rng.uniform(0, 40)) / R;
    const shadeY = (Math.sin(shadeAngle) * rng.uniform(0, 40)) / R;
    const grain = rng.uniform(2, 14);
    const x0 = Math.max(0, Math.floor(spot.cx - R - 1));
    const x1 = Math.min(width - 1, Math.ceil(spot.cx + R + 1));
    const y0 = Math.max(0, Math.floor(spot.cy - R - 1));
    const y1 = Math.min(height - 1, Math.ceil(spot.cy + R + 1));
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        const dx = x + 0.5 - spot.cx;
        const dy = y + 0.5 - spot.cy;
        const u = dx * cos + dy * sin;
        const v = -dx * sin + dy * cos;
        if (!insideShape(shape, u, v, R)) continue;
        const p = y * width + x;
        label[p] = classId;
        const s = dx * shadeX + dy * shadeY + (rng.next() - 0.5) * 2 * grain;
        img[p * 3] = clamp(Math.round(colour[0] + s), 0, 255);
        img[p * 3 + 1] = clamp(Math.round(colour[1] + s), 0, 255);
        img[p * 3 + 2] = clamp(Math.round(colour[2] + s), 0, 255);
      }
    }
  }
  // VOC-like void band on every boundary between different labels: 1 px (the pixel before the
  // change, looking right and down) or 2 px (both sides), chosen per image.
  const wide = rng.next() < 0.5;
  const mask = label.slice();
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = y * width + x;
      const l = label[p]!;
      if (x + 1 < width && label[p + 1] !== l) {
        mask[p] = IGNORE_INDEX;
        if (wide) mask[p + 1] = IGNORE_INDEX;
      }
      if (y + 1 < height && label[p + width] !== l) {
        mask[p] = IGNORE_INDEX;
        if (wide) mask[p + width] = IGNORE_INDEX;
      }
    }
  }
  return mask;
}

/** Renders one synthetic example; a pure function of (width, height, colours, rng). */
export function renderSynthExample(rng: Rng, width: number, height: number, colours: SynthColours = 'random'): { image: RgbImage; mask: LabelMap } {
  const bg = drawBackground(rng, width, height, colours === 'class');
  const mask = drawObjects(rng, bg.data, bg.mean, width, height, colours);
  return { image: { width, height, data: bg.data }, mask: { width, height, data: mask } };
}

/** An image's side: the base side times a per-image scale (shared by both sides) and a little aspect jitter, kept within ±spread. */
function drawSize(rng: Rng, base: [number, number], spread: number): [number, number] {
  const scale = rng.uniform(1 - spread, 1 + spread);
  const h = Math.round(base[0] * clamp(scale * rng.uniform(0.88, 1.12), 1 - spread, 1 + spread));
  const w = Math.round(base[1] * clamp(scale * rng.uniform(0.88, 1.12), 1 - spread, 1 + spread));
  return [Math.max(h, SYNTH_MIN_SIDE), Math.max(w, SYNTH_MIN_SIDE)];
}

function checkOptions(opts: SynthOptions): Required<SynthOptions> {
  const o = { ...SYNTH_DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) } as Required<SynthOptions>;
  for (const key of ['train', 'val'] as const) {
    if (!Number.isInteger(o[key]) || o[key] < 0 || o[key] > MAX_IMAGES) {
      throw new FcnError(`synth: ${key} must be an integer from 0 to ${MAX_IMAGES}, got ${o[key]}`, 2);
    }
  }
  if (o.train + o.val === 0) throw new FcnError('synth: nothing to write (train and val are both 0)', 2);
  if (typeof o.spread !== 'number' || !(o.spread >= 0 && o.spread <= 0.5)) throw new FcnError(`synth: spread must be a number from 0 to 0.5, got ${o.spread}`, 2);
  const [h, w] = o.size;
  const scaledMin = Math.round(Math.min(h, w) * (1 - o.spread));
  if (!Number.isInteger(h) || !Number.isInteger(w) || scaledMin < SYNTH_MIN_SIDE || Math.max(h, w) > SYNTH_MAX_SIDE) {
    throw new FcnError(
      `synth: size ${h}x${w} must have sides from ${Math.ceil(SYNTH_MIN_SIDE / (1 - o.spread))} to ${SYNTH_MAX_SIDE} (images vary by ±${Math.round(o.spread * 100)}% and objects need room)`,
      2,
    );
  }
  if (!SYNTH_COLOURS.includes(o.colours)) throw new FcnError(`synth: colours must be one of ${SYNTH_COLOURS.join(', ')}, got ${String(o.colours)}`, 2);
  if (!Number.isInteger(o.seed) || o.seed < 0 || o.seed >= 2 ** 32) {
    throw new FcnError(`synth: seed must be an integer from 0 to 4294967295, got ${o.seed}`, 2);
  }
  return o;
}

async function checkOutDir(outDir: string): Promise<boolean> {
  let info;
  try {
    info = await stat(outDir);
  } catch {
    return false;
  }
  if (!info.isDirectory()) throw new FcnError(`${outDir}: exists and is not a directory (expected a new or empty directory)`);
  if ((await readdir(outDir)).length > 0) throw new FcnError(`${outDir}: directory is not empty (expected a new or empty directory for the dataset)`);
  return true;
}

/**
 * Writes a synthetic VOC dataset: `outDir` itself becomes the VOC root (JPEGImages/*.jpg,
 * SegmentationClass/*.png palette masks, ImageSets/Segmentation/{train,val,trainval}.txt (a split
 * of no images has no list),
 * labelmap.txt naming the 6 classes).
 * Built in a temporary sibling folder and renamed into place, so a failure leaves nothing behind.
 * Refuses an existing non-empty `outDir`.
 */
export async function generateSynthVoc(outDir: string, opts: SynthOptions = {}): Promise<SynthResult> {
  const o = checkOptions(opts);
  const root = resolve(outDir);
  const existed = await checkOutDir(root);
  const parent = dirname(root);
  await makeFolder(parent);
  const tmp = join(parent, `.${basename(root)}.synth-${process.pid}-${Date.now()}.tmp`);
  const sizeRange = { height: [Infinity, 0] as [number, number], width: [Infinity, 0] as [number, number] };
  const inFlight: Promise<void>[] = [];
  let failure: unknown;
  try {
    await mkdir(join(tmp, 'JPEGImages'), { recursive: true });
    await mkdir(join(tmp, 'SegmentationClass'), { recursive: true });
    await mkdir(join(tmp, 'ImageSets', 'Segmentation'), { recursive: true });
    const lists: Record<'train' | 'val', string[]> = { train: [], val: [] };
    for (const [tag, split] of [[0, 'train'], [1, 'val']] as const) {
      for (let i = 0; i < o[split]; i++) {
        const id = `${split}_${String(i).padStart(6, '0')}`;
        // Each image depends on (seed, split, index) only, so changing --val leaves train as it was.
        const rng = new Rng(o.seed * 2 ** 21 + tag * 2 ** 20 + i);
        const [h, w] = drawSize(rng, o.size, o.spread);
        sizeRange.height = [Math.min(sizeRange.height[0], h), Math.max(sizeRange.height[1], h)];
        sizeRange.width = [Math.min(sizeRange.width[0], w), Math.max(sizeRange.width[1], w)];
        const { image, mask } = renderSynthExample(rng, w, h, o.colours);
        lists[split].push(id);
        const write = async (): Promise<void> => {
          const jpeg = await sharp(image.data, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: JPEG_QUALITY }).toBuffer();
          await writeFile(join(tmp, 'JPEGImages', `${id}.jpg`), jpeg);
          await writeMask(join(tmp, 'SegmentationClass', `${id}.png`), mask);
        };
        // A write that fails while an older one is awaited is remembered, not left unhandled.
        inFlight.push(write().catch((err: unknown) => void (failure ??= err)));
        if (inFlight.length >= WRITES_IN_FLIGHT) await inFlight.shift();
        if (failure !== undefined) throw failure;
      }
    }
    await Promise.all(inFlight);
    if (failure !== undefined) throw failure;
    const listText = (ids: string[]) => ids.map((id) => `${id}\n`).join('');
    const listDir = join(tmp, 'ImageSets', 'Segmentation');
    // a split of no images gets no list: an empty list is a broken dataset to every reader (fcn's too)
    if (lists.train.length > 0) await writeFile(join(listDir, 'train.txt'), listText(lists.train));
    if (lists.val.length > 0) await writeFile(join(listDir, 'val.txt'), listText(lists.val));
    await writeFile(join(listDir, 'trainval.txt'), listText([...lists.train, ...lists.val]));
    await writeFile(join(tmp, LABELMAP_FILE), formatLabelmap({ classes: [...SYNTH_LABELS.classes], colors: SYNTH_LABELS.colors.map((c) => c) }));
    if (existed) await rmdir(root); // empty (checked above); rename cannot replace it on every platform
    await rename(tmp, root);
  } catch (err) {
    await Promise.all(inFlight); // never rejects: failures are caught into `failure`
    await rm(tmp, { recursive: true, force: true });
    if (err instanceof FcnError) throw err;
    throw new FcnError(`${root}: cannot write the synthetic dataset: ${errorMessage(err)}`);
  }
  return { root, train: o.train, val: o.val, sizeRange };
}
