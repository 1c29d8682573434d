// ONNX files that fcn wrote (`fcn export`: float32; `fcn quantize`: int8): their metadata read back
// into a model card and an architecture, checked, so such a file loads like a checkpoint. A file
// without fcn's metadata is refused with what it lacks.
import { readFile } from 'node:fs/promises';
import { readOnnxSummary } from '../graph/onnx.js';
import { fcnResNet18, parseArchitectureName, type FcnArchitecture } from '../model/fcn.js';
import { TORCHVISION_NETWORKS, isTorchvisionNetwork, torchvisionNetwork, type TorchvisionOptions } from '../model/torchvision.js';
import type { Color, ModelCard } from '../model/card.js';
import { FcnError, errorMessage } from '../util/errors.js';

export type Precision = 'float32' | 'int8';

export interface FcnOnnxFile {
  /** The file's bytes, as read (what a browser runtime loads). */
  bytes: Uint8Array;
  /** The declaration the graph was compiled from (rebuilt from its name, classes and options). */
  arch: FcnArchitecture;
  card: ModelCard;
  precision: Precision;
  /** All metadata_props (e.g. the calibration settings of an int8 file). */
  metadata: Record<string, string>;
}

/** The metadata keys fcn writes and needs back. */
export const ONNX_REQUIRED_KEYS: readonly string[] = ['architecture', 'classes', 'colors', 'normalization'];

/** Whether a model path names an ONNX file (by its extension). */
export function isOnnxPath(path: string): boolean {
  return /\.onnx$/i.test(path);
}

function json(file: string, md: Record<string, string>, key: string): unknown {
  try {
    return JSON.parse(md[key]!);
  } catch {
    throw new FcnError(`${file}: ONNX metadata '${key}' is not valid JSON`);
  }
}

/** Reads an ONNX file fcn wrote; FcnError naming the file and what is missing otherwise. */
export async function readFcnOnnx(file: string): Promise<FcnOnnxFile> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new FcnError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : errorMessage(err)})`);
  }
  return decodeFcnOnnx(bytes, file);
}

export function decodeFcnOnnx(bytes: Uint8Array, file: string): FcnOnnxFile {
  let summary;
  try {
    summary = readOnnxSummary(bytes);
  } catch (err) {
    throw new FcnError(`${file}: not an ONNX model (${errorMessage(err).split('\n')[0]})`);
  }
  const md = summary.metadata;
  const missing = ONNX_REQUIRED_KEYS.filter((k) => md[k] === undefined);
  if (missing.length > 0) {
    throw new FcnError(`${file}: an ONNX model without fcn's metadata (missing ${missing.map((k) => `'${k}'`).join(', ')}; ` +
      'expected a file written by fcn export or fcn quantize)');
  }
  const classes = json(file, md, 'classes');
  const colors = json(file, md, 'colors');
  const normalization = json(file, md, 'normalization') as { mean?: unknown; std?: unknown };
  if (!Array.isArray(classes) || classes.length < 1 || classes.length > 255 || !classes.every((c) => typeof c === 'string')) {
    throw new FcnError(`${file}: ONNX metadata 'classes' must be 1..255 class names`);
  }
  const n = classes.length;
  const triple = (c: unknown): boolean => Array.isArray(c) && c.length === 3 && c.every((v) => Number.isInteger(v) && v >= 0 && v <= 255);
  if (!Array.isArray(colors) || colors.length !== n || !colors.every(triple)) {
    throw new FcnError(`${file}: ONNX metadata 'colors' must be ${n} [r, g, b] triples of integers 0..255`);
  }
  const three = (x: unknown): x is number[] => Array.isArray(x) && x.length === 3 && x.every((v) => typeof v === 'number' && Number.isFinite(v));
  if (typeof normalization !== 'object' || normalization === null || !three(normalization.mean) || !three(normalization.std) ||
    !normalization.std.every((s) => s > 0)) {
    throw new FcnError(`${file}: ONNX metadata 'normalization' must be {"mean": [3 numbers], "std": [3 positive numbers]}`);
  }
  const arch = architectureOf(file, md, n);
  const precision = md['precision'] ?? 'float32';
  if (precision !== 'float32' && precision !== 'int8') throw new FcnError(`${file}: ONNX metadata 'precision' is '${precision}' (expected float32 or int8)`);
  if (md['stride'] !== undefined && Number(md['stride']) !== arch.stride) {
    throw new FcnError(`${file}: ONNX metadata 'stride' is ${md['stride']}, but ${arch.name} has stride ${arch.stride}`);
  }
  for (const name of [arch.input]) if (!summary.inputs.includes(name)) throw new FcnError(`${file}: the graph has no input '${name}'`);
  for (const name of [arch.output, 'mask']) if (!summary.outputs.includes(name)) throw new FcnError(`${file}: the graph has no output '${name}'`);
  return {
    bytes, arch, precision, metadata: md,
    card: {
      classes: classes as string[],
      colors: (colors as number[][]).map((c) => [c[0], c[1], c[2]] as Color),
      normalization: { mean: [...normalization.mean], std: [...normalization.std] },
    },
  };
}

function architectureOf(file: string, md: Record<string, string>, numClasses: number): FcnArchitecture {
  const name = md['architecture']!;
  const book = parseArchitectureName(name);
  if (book) return fcnResNet18({ numClasses, variant: book.variant, upsampler: book.upsampler });
  if (isTorchvisionNetwork(name)) {
    const options = md['architectureOptions'] !== undefined ? json(file, md, 'architectureOptions') as TorchvisionOptions : {};
    try {
      return torchvisionNetwork(name, { ...options, numClasses });
    } catch (err) {
      throw new FcnError(`${file}: ONNX metadata 'architectureOptions' does not describe ${name} (${errorMessage(err)})`);
    }
  }
  throw new FcnError(`${file}: ONNX metadata names an unknown architecture '${name}' (expected fcn32s-resnet18, fcn16s-resnet18, fcn8s-resnet18 ` +
    `or one of torchvision's ${TORCHVISION_NETWORKS.join(', ')})`);
}
