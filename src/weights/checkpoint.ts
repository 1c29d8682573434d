// Our checkpoint: a .safetensors file whose `__metadata__` says what the tensors are (format,
// architecture, classes, colours, normalisation, plus whatever the trainer adds). Loading also
// takes the book's PyTorch FCN (.pth state_dict, or the same tensors as .safetensors) and, for the
// backbone, torchvision's ResNet-18; names are mapped to the declaration's and every shape is
// checked against it, so a bad file fails here with the tensor named, never inside the runtime.
import { readFile } from 'node:fs/promises';
import { fcnResNet18, parseArchitectureName, type FcnArchitecture, type FcnVariant, type Upsampler } from '../model/fcn.js';
import { TORCHVISION_NETWORKS } from '../model/torchvision.js';
import { fcnParameters, numel, type ParamSpec, type TensorMap } from '../model/params.js';
import { defaultClasses, defaultColors, defaultNormalization, type Color, type Normalization } from '../model/card.js';
import { FcnError, errorMessage } from '../util/errors.js';
import { writeFileAtomic } from '../util/fs.js';
import { detectLayout, LAYOUT_DESCRIPTIONS, sequentialName, toCanonical, type WeightLayout } from './names.js';
import { isLegacyTorch, isZip, readPth } from './pth.js';
import { encodeSafetensors, readSafetensors, type Float32Entry } from './safetensors.js';
import { formatShape, toFloat32, type Tensor } from './tensor.js';
import { describeResNet, resnetKind } from './resnet.js';
import { asTorchvision, checkArchitectureName, torchvisionBodyTensors, torchvisionFromCheckpoint, torchvisionFromStateDict } from './torchvision.js';

export const CHECKPOINT_FORMAT = 'fcn-checkpoint';
export const CHECKPOINT_FORMAT_VERSION = '1';
/** Metadata keys the format itself owns; everything else in `metadata` is the caller's. */
export const RESERVED_METADATA_KEYS: readonly string[] = Object.freeze([
  'format', 'formatVersion', 'architecture', 'numClasses', 'classes', 'colors', 'normalization',
]);

export interface Checkpoint {
  arch: FcnArchitecture;
  /** Every parameter of `arch` under canonical names. */
  weights: TensorMap;
  classes: string[];
  colors: Color[];
  normalization: Normalization;
  /** The caller's string metadata (epoch, optimizer, rng state …); the reserved keys are not in here. */
  metadata: Record<string, string>;
  /** Further tensors saved with the weights (e.g. `momentum.<name>` buffers). */
  extra: TensorMap;
}

/** Where a loaded checkpoint came from: the file format and the name layout of its tensors. */
export interface CheckpointSource {
  format: 'fcn-checkpoint' | 'safetensors' | 'pth';
  layout: WeightLayout;
}

// ---------------------------------------------------------------------------------------------
// reading any supported weight file

export interface WeightFile {
  format: 'safetensors' | 'pth';
  tensors: Map<string, Tensor>;
  /** safetensors `__metadata__` (empty for .pth). */
  metadata: Record<string, string>;
}

/** Reads a .safetensors or PyTorch file, told apart by content, not by extension. */
export function decodeWeightFile(bytes: Uint8Array, file: string): WeightFile {
  if (bytes.byteLength === 0) throw new FcnError(`${file}: the file is empty (expected a .safetensors checkpoint or a PyTorch .pth state_dict)`);
  if (isZip(bytes) || isLegacyTorch(bytes)) return { format: 'pth', tensors: readPth(bytes, file), metadata: {} };
  // safetensors: an 8-byte length, then the JSON header
  if (bytes.byteLength >= 9 && bytes[8] === 0x7b && bytes[6] === 0 && bytes[7] === 0) {
    const st = readSafetensors(bytes, file);
    return { format: 'safetensors', tensors: st.tensors, metadata: st.metadata };
  }
  throw new FcnError(`${file}: not a checkpoint (expected a .safetensors file or a PyTorch .pth state_dict)`);
}

export async function readWeightFile(path: string): Promise<WeightFile> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new FcnError(`${path}: no such file (expected a .safetensors checkpoint or a PyTorch .pth state_dict)`);
    if (code === 'EISDIR') throw new FcnError(`${path}: is a directory (expected a .safetensors checkpoint or a PyTorch .pth state_dict)`);
    throw new FcnError(`${path}: cannot read (${errorMessage(err)})`);
  }
  return decodeWeightFile(bytes, path);
}

// ---------------------------------------------------------------------------------------------
// checks against the declaration

/**
 * The tensor as float32, refusing NaN and ±Inf: a diverged run's weights predict one class
 * everywhere (or NaN logits) without any error, so they are stopped at load, naming the tensor.
 */
export function finiteFloat32(t: Tensor, file: string, name: string): Float32Array {
  const v = toFloat32(t, `${file}: '${name}'`);
  for (let i = 0; i < v.length; i++) {
    const x = v[i]!;
    // x - x is 0 for every finite x and NaN for NaN and ±Inf: one test per value
    if (x - x !== 0) {
      throw new FcnError(`${file}: tensor '${name}' holds ${x} at index ${i}; weights must be finite (the file is corrupt or from a diverged run)`);
    }
  }
  return v;
}

function listNames(names: string[], max = 3): string {
  const shown = names.slice(0, max).map((n) => `'${n}'`).join(', ');
  return names.length > max ? `${shown} and ${names.length - max} more` : shown;
}

/**
 * Checks `tensors` (canonical names) against `specs`: shapes of the tensors present first (so a
 * small file with a wrong tensor names it), then missing ones, then (unless allowed) unexpected ones.
 */
export function checkTensors(specs: readonly ParamSpec[], tensors: ReadonlyMap<string, Tensor>, file: string, what: string,
  opts: { allowUnexpected?: boolean; display?: (canonical: string) => string } = {}): void {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const show = opts.display ?? ((n: string) => n);
  for (const [name, t] of tensors) {
    const spec = byName.get(name);
    if (spec && (spec.shape.length !== t.shape.length || spec.shape.some((d, i) => d !== t.shape[i]))) {
      throw new FcnError(`${file}: tensor '${show(name)}' has shape ${formatShape(t.shape)}, expected ${formatShape(spec.shape)} for ${what}`);
    }
  }
  const missing = specs.filter((s) => !tensors.has(s.name)).map((s) => show(s.name));
  if (missing.length > 0) {
    throw new FcnError(`${file}: missing ${missing.length} of ${specs.length} tensors for ${what}: ${listNames(missing)}`);
  }
  if (!opts.allowUnexpected) {
    const unexpected = [...tensors.keys()].filter((n) => !byName.has(n)).map(show);
    if (unexpected.length > 0) throw new FcnError(`${file}: ${unexpected.length} unexpected tensors for ${what}: ${listNames(unexpected)}`);
  }
}

/** Words for a torchvision ResNet that is not ResNet-18 (e.g. a ResNet-50), or undefined for a ResNet-18. */
function otherResNet(keys: Iterable<string>): string | undefined {
  const all = [...keys];
  const bare = all.length > 0 && all.every((k) => k.startsWith('module.')) ? all.map((k) => k.slice(7)) : all;
  const kind = resnetKind(bare);
  // a basic-block net with odd block counts is a ResNet-18 with extra tensors: the name check says which
  if (!kind || kind.name === 'ResNet-18' || (!kind.bottleneck && !kind.name.startsWith('ResNet'))) return undefined;
  return describeResNet(kind);
}

/** Errors name tensors as the file does (the book's '0.weight' rather than 'conv1.weight'). */
function displayName(layout: WeightLayout): (canonical: string) => string {
  return layout === 'fcn-sequential' ? sequentialName : (n) => n;
}

function architecture(variant: FcnVariant, numClasses: number, file: string, upsampler: Upsampler): FcnArchitecture {
  try {
    return fcnResNet18({ variant, numClasses, upsampler });
  } catch (err) {
    throw new FcnError(`${file}: ${errorMessage(err)}`);
  }
}

/** The architecture a set of canonical FCN tensors implies: skip layers tell the variant, final_conv the classes. */
export function inferArchitecture(tensors: ReadonlyMap<string, Tensor>, file: string): FcnArchitecture {
  const variant: FcnVariant = tensors.has('upscore4.weight') ? 'fcn8s' : tensors.has('upscore2.weight') ? 'fcn16s' : 'fcn32s';
  const head = tensors.get('final_conv.weight') ?? tensors.get('final_conv.bias');
  if (!head || head.shape.length === 0) {
    throw new FcnError(`${file}: missing tensor 'final_conv.weight', so the number of classes is unknown (expected an FCN state_dict)`);
  }
  // a per-class (grouped) upsampler's weight is [C, 1, k, k]; the book's full one [C, C, k, k]
  const up = tensors.get('transpose_conv.weight');
  const upsampler: Upsampler = head.shape[0]! > 1 && up?.shape.length === 4 && up.shape[1] === 1 ? 'grouped' : 'full';
  return architecture(variant, head.shape[0]!, file, upsampler);
}

// ---------------------------------------------------------------------------------------------
// metadata

function parseJson(file: string, key: string, text: string | undefined): unknown {
  if (text === undefined) throw new FcnError(`${file}: checkpoint metadata lacks '${key}'`);
  try {
    return JSON.parse(text);
  } catch {
    throw new FcnError(`${file}: checkpoint metadata '${key}' is not valid JSON`);
  }
}

function isNumberArray(x: unknown, n: number): x is number[] {
  return Array.isArray(x) && x.length === n && x.every((v) => typeof v === 'number' && Number.isFinite(v));
}

function validateLabels(file: string, numClasses: number, classes: unknown, colors: unknown, normalization: unknown): void {
  if (!Array.isArray(classes) || classes.length !== numClasses || !classes.every((c) => typeof c === 'string')) {
    throw new FcnError(`${file}: 'classes' must be ${numClasses} class names`);
  }
  if (!Array.isArray(colors) || colors.length !== numClasses ||
    !colors.every((c) => isNumberArray(c, 3) && c.every((v) => Number.isInteger(v) && v >= 0 && v <= 255))) {
    throw new FcnError(`${file}: 'colors' must be ${numClasses} [r, g, b] triples of integers 0..255`);
  }
  const norm = normalization as Partial<Normalization> | null;
  if (typeof norm !== 'object' || norm === null || !isNumberArray(norm.mean, 3) || !isNumberArray(norm.std, 3) || !norm.std.every((s) => s > 0)) {
    throw new FcnError(`${file}: 'normalization' must be {"mean": [3 numbers], "std": [3 positive numbers]}`);
  }
}

/** The `__metadata__` a checkpoint is saved with. */
export function checkpointMetadata(ckpt: Checkpoint): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(ckpt.metadata)) {
    if (RESERVED_METADATA_KEYS.includes(k)) throw new Error(`checkpoint metadata key '${k}' is reserved for the format`);
    out[k] = v;
  }
  return {
    format: CHECKPOINT_FORMAT,
    formatVersion: CHECKPOINT_FORMAT_VERSION,
    architecture: ckpt.arch.name,
    numClasses: String(ckpt.arch.numClasses),
    classes: JSON.stringify(ckpt.classes),
    colors: JSON.stringify(ckpt.colors),
    normalization: JSON.stringify({ mean: ckpt.normalization.mean, std: ckpt.normalization.std }),
    ...out,
  };
}

// ---------------------------------------------------------------------------------------------
// save / load

/** Encodes a checkpoint: the parameters in state_dict order, then the extra tensors, all float32. */
export function encodeCheckpoint(ckpt: Checkpoint): Uint8Array {
  const specs = fcnParameters(ckpt.arch);
  const byName = new Map(specs.map((s) => [s.name, s]));
  validateLabels('checkpoint', ckpt.arch.numClasses, ckpt.classes, ckpt.colors, ckpt.normalization);
  const entries = new Map<string, Float32Entry>();
  for (const spec of specs) {
    const w = ckpt.weights.get(spec.name);
    if (!w) throw new Error(`checkpoint: weights lack '${spec.name}'`);
    if (w.length !== numel(spec.shape)) throw new Error(`checkpoint: '${spec.name}' has ${w.length} values, expected ${formatShape(spec.shape)}`);
    entries.set(spec.name, { shape: spec.shape, data: w });
  }
  for (const name of ckpt.weights.keys()) if (!byName.has(name)) throw new Error(`checkpoint: '${name}' is not a parameter of ${ckpt.arch.name}`);
  for (const [name, t] of ckpt.extra) {
    if (entries.has(name)) throw new Error(`checkpoint: extra tensor '${name}' has a parameter's name`);
    // a buffer that shadows a parameter (momentum.<param>) keeps that parameter's shape
    const shadowed = specs.find((s) => name.endsWith(`.${s.name}`) && numel(s.shape) === t.length);
    entries.set(name, { shape: shadowed ? shadowed.shape : [t.length], data: t });
  }
  return encodeSafetensors(entries, checkpointMetadata(ckpt));
}

/** Writes the checkpoint atomically (a temp file renamed into place). */
export async function saveCheckpoint(path: string, ckpt: Checkpoint): Promise<void> {
  await writeFileAtomic(path, encodeCheckpoint(ckpt));
}

function fromOurFormat(file: string, st: WeightFile): Checkpoint {
  const md = st.metadata;
  if (md['formatVersion'] !== CHECKPOINT_FORMAT_VERSION) {
    throw new FcnError(`${file}: checkpoint format version ${md['formatVersion'] ?? '(none)'} is not supported (this fcn reads version ${CHECKPOINT_FORMAT_VERSION})`);
  }
  const parsed = parseArchitectureName(md['architecture'] ?? '');
  const variant = parsed?.variant;
  const numClasses = Number(md['numClasses']);
  if (!Number.isInteger(numClasses)) throw new FcnError(`${file}: metadata 'numClasses' is not an integer`);
  // torchvision's networks: the widths come from the tensors' shapes, the name must agree
  const tv = variant ? undefined : torchvisionFromCheckpoint(md['architecture'] ?? '', numClasses, st.tensors, file);
  if (!variant && !tv) {
    throw new FcnError(`${file}: unknown architecture '${md['architecture'] ?? ''}' (expected fcn32s-resnet18, fcn16s-resnet18, fcn8s-resnet18 ` +
      `or one of torchvision's ${TORCHVISION_NETWORKS.join(', ')})`);
  }
  const arch = tv ?? architecture(variant!, numClasses, file, parsed!.upsampler);
  const classes = parseJson(file, 'classes', md['classes']);
  const colors = parseJson(file, 'colors', md['colors']);
  const normalization = parseJson(file, 'normalization', md['normalization']) as Normalization;
  validateLabels(file, numClasses, classes, colors, normalization);
  const specs = fcnParameters(arch);
  checkTensors(specs, st.tensors, file, arch.name, { allowUnexpected: true });
  const weights: TensorMap = new Map();
  const extra: TensorMap = new Map();
  const params = new Set(specs.map((s) => s.name));
  for (const spec of specs) weights.set(spec.name, finiteFloat32(st.tensors.get(spec.name)!, file, spec.name));
  for (const [name, t] of st.tensors) if (!params.has(name)) extra.set(name, finiteFloat32(t, file, name));
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(md)) if (!RESERVED_METADATA_KEYS.includes(k)) metadata[k] = v;
  return {
    arch, weights, extra, metadata,
    classes: classes as string[],
    colors: (colors as number[][]).map((c) => [c[0], c[1], c[2]] as Color),
    normalization: { mean: [...normalization.mean], std: [...normalization.std] },
  };
}

export interface LoadOptions {
  /** The network the file must hold (torchvision's name, or the book's fcn32s/fcn16s/fcn8s); a file
   *  holding another one is an FcnError. Recognised from the file when absent. */
  arch?: string;
}

/** A checkpoint from decoded file contents (see loadCheckpoint). */
export function decodeCheckpoint(wf: WeightFile, file: string, opts: LoadOptions = {}): { checkpoint: Checkpoint; source: CheckpointSource } {
  // other safetensors metadata (e.g. {"format": "pt"}) is no claim to be ours: such files are read by their names
  if (wf.metadata['format'] === CHECKPOINT_FORMAT) {
    const checkpoint = fromOurFormat(file, wf);
    if (opts.arch !== undefined) checkArchitectureName(checkpoint.arch.name, opts.arch, file);
    return { checkpoint, source: { format: CHECKPOINT_FORMAT, layout: 'fcn' } };
  }
  const layout = detectLayout(wf.tensors.keys(), file);
  if (layout === 'mobilenet-v3-torchvision') {
    throw new FcnError(`${file}: holds ${LAYOUT_DESCRIPTIONS[layout]} ImageNet weights, not a segmentation network: use it as the body of ` +
      `lraspp_mobilenet_v3_large or deeplabv3_mobilenet_v3_large (fcn train --arch NAME --backbone ${file})`);
  }
  if (layout === 'resnet18-torchvision' || layout === 'resnet-bottleneck-torchvision') {
    const other = otherResNet(wf.tensors.keys());
    if (other) throw new FcnError(`${file}: holds ${other} ImageNet weights, not an FCN (and not the ResNet-18 an FCN backbone is)`);
    throw new FcnError(`${file}: holds ${LAYOUT_DESCRIPTIONS[layout]} ImageNet weights, not an FCN: use it as a backbone (fcn train --backbone ${file})`);
  }
  if (layout === 'torchvision-segmentation') {
    const { arch, tensors } = torchvisionFromStateDict(wf.tensors, file, opts.arch);
    const weights: TensorMap = new Map();
    for (const spec of fcnParameters(arch)) weights.set(spec.name, finiteFloat32(tensors.get(spec.name)!, file, spec.name));
    return {
      checkpoint: {
        arch, weights, extra: new Map(), metadata: {},
        classes: defaultClasses(arch.numClasses), colors: defaultColors(arch.numClasses), normalization: defaultNormalization(),
      },
      source: { format: wf.format, layout },
    };
  }
  const tensors = toCanonical(wf.tensors, layout, file);
  const arch = inferArchitecture(tensors, file);
  if (opts.arch !== undefined) checkArchitectureName(arch.name, opts.arch, file);
  checkTensors(fcnParameters(arch), tensors, file, `${arch.name} with ${arch.numClasses} classes`, { display: displayName(layout) });
  const weights: TensorMap = new Map();
  const show = displayName(layout);
  for (const spec of fcnParameters(arch)) weights.set(spec.name, finiteFloat32(tensors.get(spec.name)!, file, show(spec.name)));
  return {
    checkpoint: {
      arch, weights, extra: new Map(), metadata: {},
      classes: defaultClasses(arch.numClasses), colors: defaultColors(arch.numClasses), normalization: defaultNormalization(),
    },
    source: { format: wf.format, layout },
  };
}

/** loadCheckpoint, also telling the file's format and name layout. */
export async function loadCheckpointWithSource(path: string, opts: LoadOptions = {}): Promise<{ checkpoint: Checkpoint; source: CheckpointSource }> {
  return decodeCheckpoint(await readWeightFile(path), path, opts);
}

/**
 * Reads our .safetensors checkpoint, a book-FCN .pth state_dict, or the same tensors as .safetensors
 * without our metadata. Architecture/numClasses are inferred from tensor shapes when there is no
 * metadata (21 classes → VOC names/colours, else class_<i> and palette colours). Shape-checked
 * against the declaration: errors name the tensor, expected and actual shape.
 */
export async function loadCheckpoint(path: string, opts: LoadOptions = {}): Promise<Checkpoint> {
  return (await loadCheckpointWithSource(path, opts)).checkpoint;
}

/**
 * torchvision ResNet-18 ImageNet state_dict (.pth or .safetensors) → backbone tensors under
 * canonical names (fc.* dropped), shape-checked. An FCN file (book or ours) also gives its backbone.
 */
export async function loadBackbone(path: string, arch: FcnArchitecture): Promise<TensorMap> {
  const wf = await readWeightFile(path);
  const tv = asTorchvision(arch);
  if (tv) {
    const body = torchvisionBodyTensors(wf.tensors, path, tv);
    const out: TensorMap = new Map();
    for (const [name, t] of body) out.set(name, finiteFloat32(t, path, name));
    return out;
  }
  const layout = detectLayout(wf.tensors.keys(), path);
  if (layout === 'mobilenet-v3-torchvision') {
    throw new FcnError(`${path}: holds ${LAYOUT_DESCRIPTIONS[layout]} ImageNet weights; the FCN's backbone is torchvision's ResNet-18 (resnet18-f37072fd.pth)`);
  }
  if (layout === 'resnet18-torchvision' || layout === 'resnet-bottleneck-torchvision') {
    const other = otherResNet(wf.tensors.keys());
    if (other) throw new FcnError(`${path}: holds ${other} ImageNet weights; the FCN's backbone is torchvision's ResNet-18 (resnet18-f37072fd.pth)`);
  }
  const tensors = toCanonical(wf.tensors, layout, path);
  const specs = fcnParameters(arch).filter((s) => s.backbone);
  // an FCN file carries a head as well: only a ResNet file must hold nothing but the body
  checkTensors(specs, tensors, path, 'a ResNet-18 backbone', { allowUnexpected: layout !== 'resnet18-torchvision', display: displayName(layout) });
  const out: TensorMap = new Map();
  const show = displayName(layout);
  for (const spec of specs) out.set(spec.name, finiteFloat32(tensors.get(spec.name)!, path, show(spec.name)));
  return out;
}

/** `fcn import`: any supported weight file → our checkpoint at `out` (written atomically). */
export async function importCheckpoint(input: string, out: string, opts: LoadOptions = {}): Promise<{ checkpoint: Checkpoint; source: CheckpointSource; tensors: number }> {
  const { checkpoint, source } = await loadCheckpointWithSource(input, opts);
  await saveCheckpoint(out, checkpoint);
  return { checkpoint, source, tensors: checkpoint.weights.size + checkpoint.extra.size };
}
