// ONNX files that fcn wrote (`fcn export`: float32; `fcn quantize`: int8): their metadata read back
// into a model card and an architecture, checked, so such a file loads like a checkpoint. A file
// without fcn's metadata is refused with what it lacks.
import { readFile } from 'node:fs/promises';
import { readOnnxFloatInitializers, readOnnxSummary } from '../graph/onnx.js';
import { fcnResNet18, inferenceLayers, parseArchitectureName, type FcnArchitecture } from '../model/fcn.js';
import { fcnParameters, layerParams, numel, type TensorMap } from '../model/params.js';
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
  // class ids past the metadata's classes would have no name or colour
  const channels = summary.outputShapes[arch.output]?.[1];
  if (typeof channels === 'number' && channels !== n) {
    throw new FcnError(`${file}: the graph's '${arch.output}' has ${channels} channels, but its metadata names ${n} classes`);
  }
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

/**
 * The parameters of a float32 file that `fcn export` wrote, under their canonical names, read back
 * from its initializers: the graph stores each parameter of the layers the main output needs under
 * its own name, except a block-form transposed convolution, stored as its GEMM's weights
 * `<layer>.blocks` [m²·Cin (+1), Cout·s²] (rows (di, dj, ci), then the bias row; columns (co, u, v),
 * where W[ci, co, di·s + u, dj·s + v] sits), which is put back into [Cin, Cout, k, k] and the bias.
 * Parameters no inference layer reads (an auxiliary head) are absent. FcnError naming the file when
 * a parameter is missing or has the wrong size.
 */
export function floatExportWeights(file: FcnOnnxFile, name: string): TensorMap {
  if (file.precision !== 'float32') throw new FcnError(`${name}: precision ${file.precision}, not a float32 export: its float32 parameters are not in it`);
  const inits = readOnnxFloatInitializers(file.bytes);
  const specs = new Map(fcnParameters(file.arch).map((s) => [s.name, s.shape]));
  const weights: TensorMap = new Map();
  const take = (param: string): void => {
    const t = inits.get(param);
    const shape = specs.get(param)!;
    if (!t) throw new FcnError(`${name}: the graph has no initializer '${param}' (expected a file written by fcn export)`);
    if (t.data.length !== numel(shape)) throw new FcnError(`${name}: initializer '${param}' has ${t.data.length} values, expected [${shape.join(', ')}]`);
    weights.set(param, t.data);
  };
  for (const layer of inferenceLayers(file.arch)) {
    if (layer.op === 'convtranspose' && !inits.has(`${layer.name}.weight`) && inits.has(`${layer.name}.blocks`)) {
      const { kernel: k, stride: s, inChannels: Cin, outChannels: Cout } = layer;
      const m = k / s;
      const blocks = inits.get(`${layer.name}.blocks`)!;
      const rows = m * m * Cin + (layer.bias ? 1 : 0);
      const cols = Cout * s * s;
      if (blocks.data.length !== rows * cols) throw new FcnError(`${name}: initializer '${layer.name}.blocks' has ${blocks.data.length} values, expected [${rows}, ${cols}]`);
      const W = new Float32Array(Cin * Cout * k * k);
      for (let di = 0; di < m; di++) for (let dj = 0; dj < m; dj++) for (let ci = 0; ci < Cin; ci++) {
        const row = ((di * m + dj) * Cin + ci) * cols;
        for (let co = 0; co < Cout; co++) for (let u = 0; u < s; u++) {
          const dst = ((ci * Cout + co) * k + di * s + u) * k + dj * s;
          W.set(blocks.data.subarray(row + (co * s + u) * s, row + (co * s + u) * s + s), dst);
        }
      }
      weights.set(`${layer.name}.weight`, W);
      if (layer.bias) weights.set(`${layer.name}.bias`, Float32Array.from({ length: Cout }, (_, co) => blocks.data[(rows - 1) * cols + co * s * s]!));
      continue;
    }
    if ('name' in layer) for (const d of layerParams(layer)) take(`${layer.name}.${d.suffix}`);
  }
  return weights;
}
