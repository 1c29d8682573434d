// A dataset's label space: its class names and colours (index i is class i), and how its mask
// files map to those indices. The class files people have: CVAT's labelmap.txt ("Segmentation
// mask" export), mmsegmentation-style classes.json, a list of names; VOC's 21 classes and ADE20K's
// 150 are built in. Masks decode through it: colour (RGB) masks by the class colours, index masks
// (palette or grayscale PNGs) as they are, ADE20K's with reduce_zero_label; every value is checked,
// and one outside the label space is an error naming the file, the pixel and the value.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FcnError, errorMessage } from '../util/errors.js';
import { hasControl, printable } from '../util/text.js';
import { IGNORE_INDEX, VOC_CLASSES, VOC_COLORMAP, VOC_PALETTE, type Rgb } from './voc.js';
import { ADE20K_CLASSES, ADE20K_PALETTE } from './ade20k.js';
import { decodeMaskSamples, mapColours, type DecodeLimits, type LabelMap } from './image.js';

export interface LabelSpace {
  classes: string[];
  colors: Rgb[];
  /** Where the classes came from ('labelmap.txt' path, 'VOC', ...), for messages. */
  source: string;
  /** ADE20K's annotations: value 0 is 'other' (ignored) and value v is class v-1 (mmsegmentation's reduce_zero_label). */
  reduceZeroLabel: boolean;
}

/** The most classes a label space may have: 255 is the ignore label, so class ids are 0..254. */
export const MAX_CLASSES = 255;

/** VOC's void colour: colour masks drawn with the VOC palette mark boundaries with it. */
const VOID_COLOR: Rgb = VOC_PALETTE[IGNORE_INDEX]!;

export const LABELMAP_FILE = 'labelmap.txt';
export const CLASSES_FILE = 'classes.json';

export function vocLabels(): LabelSpace {
  return { classes: [...VOC_CLASSES], colors: VOC_COLORMAP.map((c) => [...c] as unknown as Rgb), source: 'VOC', reduceZeroLabel: false };
}

export function ade20kLabels(): LabelSpace {
  return { classes: [...ADE20K_CLASSES], colors: ADE20K_PALETTE.map((c) => [...c] as unknown as Rgb), source: 'ADE20K', reduceZeroLabel: true };
}

function checkSpace(classes: string[], colors: Rgb[], source: string, strictColors: boolean): LabelSpace {
  if (classes.length === 0) throw new FcnError(`${source}: no classes (expected at least one, index 0 first)`);
  if (classes.length > MAX_CLASSES) throw new FcnError(`${source}: ${classes.length} classes, at most ${MAX_CLASSES} fit (label ${IGNORE_INDEX} is void)`);
  const names = new Map<string, number>();
  const seen = new Map<number, number>();
  classes.forEach((name, i) => {
    // names are printed in tables, logs and legends: a terminal would obey an escape sequence in one
    if (hasControl(name)) throw new FcnError(`${source}: class ${i} ('${printable(name)}') holds control characters; expected a plain name`);
    const j = names.get(name);
    if (j !== undefined) throw new FcnError(`${source}: class '${name}' is listed twice (at ${j} and ${i}); names must be unique`);
    names.set(name, i);
    if (!strictColors) return;
    const key = colourKey(colors[i]!);
    const k = seen.get(key);
    if (k !== undefined) {
      throw new FcnError(`${source}: classes '${classes[k]}' and '${name}' share the colour (${colors[i]!.join(',')}); colour masks need one colour per class`);
    }
    seen.set(key, i);
  });
  return { classes, colors, source, reduceZeroLabel: false };
}

/** Class names (index 0 first) with VOC palette colours in order, as `--classes road,car,tree` gives them. */
export function labelsFromNames(names: string[], source = 'the class list'): LabelSpace {
  const classes = names.map((n) => n.trim());
  const empty = classes.findIndex((n) => n.length === 0);
  if (empty >= 0) throw new FcnError(`${source}: class ${empty} has an empty name (expected names separated by commas, e.g. background,road,car)`);
  if (classes.length > MAX_CLASSES) throw new FcnError(`${source}: ${classes.length} classes, at most ${MAX_CLASSES} fit (label ${IGNORE_INDEX} is void)`);
  return checkSpace(classes, classes.map((_, i) => [...VOC_PALETTE[i]!] as unknown as Rgb), source, true);
}

function parseColour(text: string, where: string): Rgb {
  const parts = text.split(',').map((s) => s.trim());
  const values = parts.map(Number);
  if (parts.length !== 3 || parts.some((p) => !/^\d{1,3}$/.test(p)) || values.some((v) => v > 255)) {
    throw new FcnError(`${where}: colour '${text}' is not r,g,b with values 0..255`);
  }
  return values as unknown as Rgb;
}

/**
 * CVAT's labelmap.txt: a `# label:color_rgb:parts:actions` header, then `name:r,g,b:parts:actions`
 * per class, background first. The colour, parts and actions are the last three fields, so a
 * name may itself hold ':'.
 */
export function parseLabelmap(text: string, path: string): LabelSpace {
  const classes: string[] = [];
  const colors: Rgb[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line.length === 0 || line.startsWith('#')) return;
    const where = `${path}:${i + 1}`;
    const fields = line.split(':');
    if (fields.length < 4) throw new FcnError(`${where}: '${line}' is not a labelmap line (expected name:r,g,b:parts:actions, e.g. road:128,64,128::)`);
    const name = fields.slice(0, -3).join(':').trim();
    if (name.length === 0) throw new FcnError(`${where}: the label name is empty (expected name:r,g,b:parts:actions)`);
    classes.push(name);
    colors.push(parseColour(fields[fields.length - 3]!, where));
  });
  if (classes.length === 0) throw new FcnError(`${path}: no labels (expected name:r,g,b:: lines, background first)`);
  return checkSpace(classes, colors, path, true);
}

/**
 * classes.json: `[{"name": "road", "color": [128, 64, 128]}, ...]` (a missing colour takes the VOC
 * palette's at that index), or mmsegmentation's `{"classes": [...], "palette": [[r,g,b], ...]}`.
 */
export function parseClassesJson(text: string, path: string): LabelSpace {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new FcnError(`${path}: not valid JSON (${errorMessage(err)})`);
  }
  const expected = 'expected [{"name": "road", "color": [128, 64, 128]}, ...] or {"classes": [...], "palette": [...]}';
  let entries: { name: unknown; color: unknown }[];
  if (Array.isArray(doc)) {
    entries = doc.map((e: unknown, i) => {
      if (typeof e === 'string') return { name: e, color: undefined };
      if (e === null || typeof e !== 'object') throw new FcnError(`${path}: entry ${i} is not an object (${expected})`);
      const o = e as Record<string, unknown>;
      return { name: o.name, color: o.color ?? o.colour };
    });
  } else if (doc !== null && typeof doc === 'object' && Array.isArray((doc as Record<string, unknown>).classes)) {
    const o = doc as { classes: unknown[]; palette?: unknown };
    const palette = Array.isArray(o.palette) ? o.palette : [];
    if (o.palette !== undefined && palette.length !== o.classes.length) {
      throw new FcnError(`${path}: ${o.classes.length} classes but ${Array.isArray(o.palette) ? palette.length : 'no'} palette colours; they must pair up`);
    }
    entries = o.classes.map((name, i) => ({ name, color: palette[i] }));
  } else {
    throw new FcnError(`${path}: ${expected}`);
  }
  if (entries.length > MAX_CLASSES) throw new FcnError(`${path}: ${entries.length} classes, at most ${MAX_CLASSES} fit (label ${IGNORE_INDEX} is void)`);
  const classes: string[] = [];
  const colors: Rgb[] = [];
  entries.forEach((e, i) => {
    if (typeof e.name !== 'string' || e.name.trim().length === 0) throw new FcnError(`${path}: entry ${i} has no name (${expected})`);
    classes.push(e.name.trim());
    if (e.color === undefined) {
      if (i >= 256) throw new FcnError(`${path}: entry ${i} has no colour`);
      colors.push([...VOC_PALETTE[i]!] as unknown as Rgb);
      return;
    }
    const c = e.color;
    if (!Array.isArray(c) || c.length !== 3 || !c.every((v) => Number.isInteger(v) && v >= 0 && v <= 255)) {
      throw new FcnError(`${path}: entry ${i} ('${e.name}') has colour ${JSON.stringify(c)}, expected [r, g, b] with values 0..255`);
    }
    colors.push([c[0], c[1], c[2]] as unknown as Rgb);
  });
  return checkSpace(classes, colors, path, true);
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw new FcnError(`${path}: cannot read the class list (${code === 'EISDIR' ? 'is a directory' : errorMessage(err)})`);
  }
}

/** The class file at a dataset's root, if any: labelmap.txt (CVAT), else classes.json. */
export async function readLabelFile(root: string): Promise<LabelSpace | undefined> {
  const labelmap = join(root, LABELMAP_FILE);
  const lm = await readText(labelmap);
  if (lm !== undefined) return parseLabelmap(lm, labelmap);
  const classes = join(root, CLASSES_FILE);
  const cj = await readText(classes);
  if (cj !== undefined) return parseClassesJson(cj, classes);
  return undefined;
}

/** CVAT's labelmap.txt for a label space (what readLabelFile reads back). */
export function formatLabelmap(labels: Pick<LabelSpace, 'classes' | 'colors'>): string {
  const lines = labels.classes.map((name, i) => `${name}:${labels.colors[i]!.join(',')}::`);
  return ['# label:color_rgb:parts:actions', ...lines].join('\n') + '\n';
}

function colourKey(c: Rgb): number {
  return (c[0] << 16) | (c[1] << 8) | c[2];
}

function pixelAt(i: number, width: number): string {
  return `x=${i % width} y=${Math.floor(i / width)}`;
}

function rangeText(labels: LabelSpace): string {
  const n = labels.classes.length;
  return labels.reduceZeroLabel
    ? `expected 0 (ignored) or 1..${n} for the ${n} classes of ${labels.source}, or ${IGNORE_INDEX} for void`
    : `expected 0..${n - 1} for the ${n} classes of ${labels.source}, or ${IGNORE_INDEX} for void`;
}

/**
 * Decodes a mask PNG into class indices of `labels` (255 = ignore). Palette and grayscale PNGs are
 * index masks: the stored value is the class (ADE20K: value-1, 0 ignored). RGB(A) PNGs are colour
 * masks: each colour must be a class colour (VOC's void colour (224,224,192) maps to 255 unless a
 * class uses it). A value or colour outside the label space names the file, the pixel and the value.
 */
export function decodeLabelMask(bytes: Uint8Array, name: string, labels: LabelSpace, limits: DecodeLimits = {}): LabelMap {
  const { width, height, channels, palette, src } = decodeMaskSamples(bytes, name, limits);
  const n = width * height;
  const out = new Uint8Array(n);
  const numClasses = labels.classes.length;
  if (channels === 1 || (channels === 2 && !palette)) {
    for (let i = 0; i < n; i++) {
      const v = src[i * channels]!;
      let label: number;
      if (labels.reduceZeroLabel) label = v === 0 || v === IGNORE_INDEX ? IGNORE_INDEX : v - 1;
      else label = v;
      if (label >= numClasses && label !== IGNORE_INDEX) {
        throw new FcnError(`${name}: label ${v} at ${pixelAt(i, width)} is outside the label space (${rangeText(labels)})`);
      }
      out[i] = label;
    }
    return { width, height, data: out };
  }
  if (channels === 3 || channels === 4) {
    const map = new Map<number, number>();
    map.set(colourKey(VOID_COLOR), IGNORE_INDEX);
    // first class wins where a built-in palette repeats a colour (ADE20K's road and skyscraper)
    for (let c = numClasses - 1; c >= 0; c--) map.set(colourKey(labels.colors[c]!), c);
    const data = mapColours({ width, height, channels, palette, src }, map, (rgb, x, y) =>
      new FcnError(`${name}: colour (${rgb.join(',')}) at ${pixelAt(y * width + x, width)} is not a class colour of ${labels.source} (${numClasses} classes; add it there or fix the mask)`));
    return { width, height, data };
  }
  throw new FcnError(`${name}: mask has ${channels} channels, expected a palette, grayscale or RGB PNG`);
}

/** Checks already-decoded class indices (e.g. from a .mat file) against the label space. */
export function checkLabels(mask: LabelMap, name: string, labels: LabelSpace): LabelMap {
  const n = labels.classes.length;
  const d = mask.data;
  for (let i = 0; i < d.length; i++) {
    const v = d[i]!;
    if (v >= n && v !== IGNORE_INDEX) throw new FcnError(`${name}: label ${v} at ${pixelAt(i, mask.width)} is outside the label space (${rangeText({ ...labels, reduceZeroLabel: false })})`);
  }
  return mask;
}

/** Reads a mask file and decodes it through the label space (see decodeLabelMask). */
export async function readLabelMask(path: string, labels: LabelSpace, limits: DecodeLimits = {}): Promise<LabelMap> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new FcnError(`${path}: cannot read a PNG mask (${code === 'ENOENT' ? 'no such file' : errorMessage(err)})`);
  }
  return decodeLabelMask(bytes, path, labels, limits);
}
