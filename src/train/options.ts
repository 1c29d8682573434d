// The options of a training run, declared once. Each entry of TRAIN_OPTIONS holds a setting's
// kind (which also checks it), its default, what it means, and its role in a resumed run: 'run'
// settings define the run (saved in every checkpoint; a resume must repeat them), 'extendable' ones
// are saved but may change on resume, 'invocation' ones belong to this process only. The library
// (train), the saved run state (state.ts), the CLI's flags (cli/train.ts) and the demo all read this
// table, so a new option is one entry here. Messages name options by their key (`batchSize expects
// ...`); a caller with other names for them (the CLI's flags) passes `optionName`.
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { FCN_VARIANTS, GROUPED_ABOVE_CLASSES, UPSAMPLERS, type FcnVariant, type Upsampler } from '../model/fcn.js';
import { KNOWN_NETWORKS } from '../weights/torchvision.js';
import type { SmallImages } from '../data/batches.js';
import { LAYOUTS, type LayoutName } from '../data/dataset.js';
import { UsageError } from '../util/errors.js';
import { hasControl, printable } from '../util/text.js';
import { LR_SCHEDULES, type LrSchedule } from './schedule.js';
import { ADAMW, OPTIMIZERS, type Optimizer } from '../graph/train.js';
import type { EpochMetrics } from './state.js';

/** What a value must be; `check` below turns a kind into the one-line complaint. */
export type OptionKind =
  | { type: 'int'; min: number; max?: number; nullable?: boolean; /** What the max is, when it is not arbitrary. */ maxIs?: string }
  | { type: 'number'; min: number; below?: number }
  | { type: 'size'; multipleOf: number }
  | { type: 'choice'; values: readonly string[]; nullable?: boolean; optional?: boolean }
  | { type: 'names' }
  | { type: 'split' }
  | { type: 'range'; min: number; max: number }
  | { type: 'fraction' }
  | { type: 'boolean' }
  | { type: 'path'; required?: boolean; absolute?: boolean };

export type OptionRole = 'run' | 'extendable' | 'invocation';

export interface OptionSpec<T> {
  kind: OptionKind;
  /** The value when the option is not given (a function: computed when the run starts). */
  default: T | (() => T);
  role: OptionRole;
  /** What the setting does, in the user's words (the CLI shows it as the flag's help). */
  doc: string;
}

/** An entry of the table: `option<ValueType>()({...})` (curried so that the role keeps its literal type). */
function option<T>() {
  return <R extends OptionRole>(s: OptionSpec<T> & { role: R }): OptionSpec<T> & { role: R } => s;
}

/** The cores this process may use: the most threads worth asking for. */
const CORES = Math.max(1, availableParallelism());

/** The network's stride: crops must be multiples of it, so no padding is needed inside a batch. */
const STRIDE = 32;

export const TRAIN_OPTIONS = {
  data: option<string>()({ kind: { type: 'path', required: true, absolute: true }, default: '', role: 'run',
    doc: 'a dataset (VOC, CVAT export, mmsegmentation, ADE20K) or the folder holding it; trains on the split, scores on the val split' }),
  out: option<string>()({ kind: { type: 'path', absolute: true }, default: join('runs', 'train'), role: 'invocation', doc: 'output folder' }),
  epochs: option<number>()({ kind: { type: 'int', min: 1 }, default: 5, role: 'extendable',
    doc: 'epochs (when resuming: the total to reach)' }),
  batchSize: option<number>()({ kind: { type: 'int', min: 1 }, default: 32, role: 'run',
    doc: 'images per SGD step (the last incomplete batch of an epoch is dropped)' }),
  crop: option<[number, number]>()({ kind: { type: 'size', multipleOf: STRIDE }, default: [320, 480], role: 'run',
    doc: `random crop size HxW, multiples of ${STRIDE}; smaller images are dropped or padded (the small-image setting)` }),
  lr: option<number>()({ kind: { type: 'number', min: 0 }, default: 0.001, role: 'run',
    doc: 'learning rate (the loss is summed over the batch, as the book)' }),
  lrSchedule: option<LrSchedule>()({ kind: { type: 'choice', values: LR_SCHEDULES }, default: 'constant', role: 'run',
    doc: "constant (the book's) or poly: lr·(1 - step/steps)^0.9 over the planned epochs" }),
  weightDecay: option<number>()({ kind: { type: 'number', min: 0 }, default: 1e-3, role: 'run',
    doc: 'weight decay (sgd: added to the gradient, as the book; adamw: decoupled, w -= lr·wd·w each step)' }),
  momentum: option<number>()({ kind: { type: 'number', min: 0, below: 1 }, default: 0, role: 'run', doc: 'SGD momentum, 0 <= x < 1' }),
  optimizer: option<Optimizer>()({ kind: { type: 'choice', values: OPTIMIZERS }, default: 'sgd', role: 'run',
    doc: `sgd (the book's) or adamw (torch.optim.AdamW: betas ${ADAMW.beta1}/${ADAMW.beta2}, eps ${ADAMW.eps}, decoupled weight decay; try lr 1e-3)` }),
  freezeBackbone: option<boolean>()({ kind: { type: 'boolean' }, default: false, role: 'run',
    doc: 'train only the head (1x1 conv and transposed conv); the ResNet body keeps its weights and BN statistics' }),
  backbone: option<string | undefined>()({ kind: { type: 'path' }, default: undefined, role: 'invocation',
    doc: "torchvision's ImageNet weights for the body: ResNet-18 for the book's net (resnet18-f37072fd.pth; default: the cached copy if downloaded), " +
      "ResNet-50/101 for torchvision's networks" }),
  init: option<string | undefined>()({ kind: { type: 'path' }, default: undefined, role: 'invocation',
    doc: "start from a full checkpoint (ours, the book's or torchvision's PyTorch state_dict; the network is recognised from it)" }),
  scratch: option<boolean>()({ kind: { type: 'boolean' }, default: false, role: 'invocation',
    doc: 'start from random weights even when ImageNet weights are cached' }),
  resume: option<boolean>()({ kind: { type: 'boolean' }, default: false, role: 'invocation',
    doc: 'continue the run saved in OUT/last.safetensors (same options; epochs may be raised)' }),
  seed: option<number>()({ kind: { type: 'int', min: 0, max: Number.MAX_SAFE_INTEGER }, default: 0, role: 'run',
    doc: 'seeds the initial weights, the data order and the crops' }),
  // more threads than cores only oversubscribe them: ORT's spinning workers then take 100x longer
  threads: option<number>()({ kind: { type: 'int', min: 1, max: CORES, maxIs: `the ${CORES} core${CORES === 1 ? '' : 's'} of this machine` },
    default: () => CORES, role: 'invocation', doc: 'ONNX Runtime threads (default: all cores)' }),
  variant: option<FcnVariant>()({ kind: { type: 'choice', values: FCN_VARIANTS }, default: 'fcn32s', role: 'run',
    doc: "architecture: the book's FCN-32s, or FCN-16s/8s with skip connections" }),
  // 'invocation': a resumed run is the network its checkpoint holds (arch, when given, must agree)
  arch: option<string | null>()({ kind: { type: 'choice', values: KNOWN_NETWORKS, nullable: true }, default: null, role: 'invocation',
    doc: "the network: the book's fcn32s/fcn16s/fcn8s (as variant) or torchvision's fcn_resnet50, fcn_resnet101, deeplabv3_resnet50, " +
      'deeplabv3_resnet101, lraspp_mobilenet_v3_large, deeplabv3_mobilenet_v3_large, trained with its own loss (with init: the network the file must hold)' }),
  upsampler: option<Upsampler | undefined>()({ kind: { type: 'choice', values: UPSAMPLERS, optional: true }, default: undefined, role: 'run',
    doc: `the book's net's transposed convs: full (every class to every class, the book's) or grouped (each class by itself, ` +
      `bilinear-initialised; parameters grow as classes, not classes²); default: grouped above ${GROUPED_ABOVE_CLASSES} classes` }),
  evalLimit: option<number | null>()({ kind: { type: 'int', min: 1, nullable: true }, default: null, role: 'run',
    doc: 'score only the first n val images each epoch (default: all)' }),
  small: option<SmallImages>()({ kind: { type: 'choice', values: ['filter', 'pad'] }, default: 'filter', role: 'run',
    doc: 'training images smaller than the crop: filter (drop, as the book) or pad (pad with ignored pixels)' }),
  flip: option<boolean>()({ kind: { type: 'boolean' }, default: false, role: 'run', doc: 'mirror training crops left-right at random (the book does not)' }),
  layout: option<LayoutName | undefined>()({ kind: { type: 'choice', values: LAYOUTS, optional: true }, default: undefined, role: 'run',
    doc: 'read the data as this layout instead of detecting it' }),
  classes: option<string[] | undefined>()({ kind: { type: 'names' }, default: undefined, role: 'run',
    doc: "class names, index 0 first (list the background if the masks use it); colours from the VOC palette; replaces the dataset's labelmap.txt/classes.json" }),
  split: option<string>()({ kind: { type: 'split' }, default: 'train', role: 'run',
    doc: 'the training split (train_aug: VOC train + SBD train and val - VOC val, with benchmark_RELEASE beside VOCdevkit)' }),
  valSplit: option<string>()({ kind: { type: 'split' }, default: 'val', role: 'run', doc: 'the split scored after each epoch' }),
  valFraction: option<number | undefined>()({ kind: { type: 'fraction' }, default: undefined, role: 'run',
    doc: "hold out this fraction of the training list (e.g. CVAT's lone default.txt) as the val split, the same ids every run" }),
  scale: option<[number, number] | undefined>()({ kind: { type: 'range', min: 0, max: 16 }, default: undefined, role: 'run',
    doc: "augmentation: rescale each training image by a random factor in [lo, hi] before the crop (torchvision's reference: 0.5,2.0); off by default" }),
  gridImages: option<number>()({ kind: { type: 'int', min: 0 }, default: 4, role: 'invocation', doc: 'val images shown in OUT/grid.png (0: none)' }),
};

export type TrainOptionKey = keyof typeof TRAIN_OPTIONS;
type ValueOf<S> = S extends OptionSpec<infer T> ? T : never;

/** Every setting of a run, resolved (defaults applied, checked). */
export type TrainSettings = { -readonly [K in TrainOptionKey]: ValueOf<(typeof TRAIN_OPTIONS)[K]> };

/** How messages name an option; the CLI passes its flag names. Default: the option's key. */
export type OptionNamer = (option: TrainOptionKey) => string;

/** What `train` takes: any settings (the rest default; `data` is required) and the run's callbacks. */
export type TrainOptions = Partial<TrainSettings> & {
  data: string;
  /** Progress bars on stderr (default false). */
  progress?: boolean;
  /** Receives the human-readable lines (summaries, notes); default: silent. */
  log?: (line: string) => void;
  /** Called after each epoch with its metrics, once its checkpoint is on disk. */
  onEpoch?: (m: EpochMetrics) => void;
  /** How messages and notes name an option (see OptionNamer). */
  optionName?: OptionNamer;
};

/** The defaults (computed ones, like threads, as they are on this machine). */
export function trainDefaults(): Omit<TrainSettings, 'data' | 'backbone' | 'init'> {
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(TRAIN_OPTIONS) as [TrainOptionKey, OptionSpec<unknown>][]) {
    if (key !== 'data' && key !== 'backbone' && key !== 'init') out[key] = valueOrCall(spec.default);
  }
  return out as Omit<TrainSettings, 'data' | 'backbone' | 'init'>;
}

function valueOrCall<T>(d: T | (() => T)): T {
  return typeof d === 'function' ? (d as () => T)() : d;
}

/** The complaint about `value` for an option of `kind` (named `name`), or undefined when it is fine. */
export function check(kind: OptionKind, name: string, value: unknown): string | undefined {
  const got = typeof value === 'string' ? `'${value}'` : Array.isArray(value) ? value.join('x') : String(value);
  switch (kind.type) {
    case 'int': {
      if (value === null && kind.nullable) return undefined;
      const n = value as number;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < kind.min) return `${name} expects an integer >= ${kind.min}, got ${got}`;
      if (kind.max === undefined || n <= kind.max) return undefined;
      return kind.maxIs ? `${name} ${n} is more than ${kind.maxIs} (expected ${kind.min}..${kind.max})` : `${name} expects an integer from ${kind.min} to ${kind.max}, got ${got}`;
    }
    case 'number': {
      const n = value as number;
      if (typeof n !== 'number' || !Number.isFinite(n) || n < kind.min) return `${name} expects a number >= ${kind.min}, got ${got}`;
      return kind.below !== undefined && n >= kind.below ? `${name} expects a number in [${kind.min}, ${kind.below}), got ${got}` : undefined;
    }
    case 'size': {
      const s = value as number[];
      const m = kind.multipleOf;
      const ok = Array.isArray(s) && s.length === 2 && s.every((v) => Number.isInteger(v) && v >= m && v % m === 0);
      return ok ? undefined : `${name} expects HxW with both sides multiples of ${m} (the network's stride), e.g. 320x480; got ${got}`;
    }
    case 'choice':
      if (value === null && kind.nullable) return undefined;
      if (value === undefined && kind.optional) return undefined;
      return kind.values.includes(value as string) ? undefined : `${name} expects one of ${kind.values.join(', ')}, got ${got}`;
    case 'names':
      if (value === undefined) return undefined;
      if (!(Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'string' && v.trim().length > 0))) {
        return `${name} expects names separated by commas, e.g. background,road,car`;
      }
      {
        const names = (value as string[]).map((v) => v.trim());
        const control = names.find(hasControl);
        if (control !== undefined) return `${name}: '${printable(control)}' holds control characters; expected plain names`;
        const twice = names.findIndex((n, i) => names.indexOf(n) !== i);
        return twice < 0 ? undefined : `${name} lists '${names[twice]}' twice (at ${names.indexOf(names[twice]!)} and ${twice}); class names must be unique`;
      }
    case 'split':
      return typeof value === 'string' && /^[\w.-]+$/.test(value) && value !== '.' && value !== '..' ? undefined : `${name} expects a split name such as train, val or train_aug, got ${got}`;
    case 'range': {
      if (value === undefined || value === null) return undefined;
      const r = value as number[];
      const ok = Array.isArray(r) && r.length === 2 && r.every(Number.isFinite) && r[0]! > kind.min && r[0]! <= r[1]! && r[1]! <= kind.max;
      return ok ? undefined : `${name} expects LO,HI with ${kind.min} < LO <= HI <= ${kind.max} (e.g. 0.5,2.0), got ${Array.isArray(r) ? r.join(',') : got}`;
    }
    case 'fraction':
      if (value === undefined || value === null) return undefined;
      return typeof value === 'number' && value > 0 && value < 1 ? undefined : `${name} expects a number between 0 and 1 (e.g. 0.2), got ${got}`;
    case 'boolean':
      return typeof value === 'boolean' ? undefined : `${name} expects true or false, got ${got}`;
    case 'path':
      if (value === undefined && !kind.required) return undefined;
      return typeof value === 'string' && value.length > 0 ? undefined : `${name} is required (a path)`;
  }
}

/**
 * The one validator: applies the defaults, checks every setting against its kind and the settings
 * against each other, and resolves paths. Throws a UsageError naming the first bad option.
 */
export function resolveTrainOptions(o: TrainOptions): TrainSettings {
  const name = o.optionName ?? ((k: TrainOptionKey) => k);
  const given = o as Record<string, unknown>;
  const r: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(TRAIN_OPTIONS) as [TrainOptionKey, OptionSpec<unknown>][]) {
    const value = given[key] !== undefined ? given[key] : valueOrCall(spec.default);
    const complaint = check(spec.kind, name(key), value);
    if (complaint !== undefined) throw new UsageError(key === 'data' ? `${complaint}: a VOC root or a folder holding VOCdevkit/VOC2012` : complaint);
    r[key] = spec.kind.type === 'path' && spec.kind.absolute && typeof value === 'string' ? resolve(value) : value;
  }
  const s = r as TrainSettings;
  const starts = (['backbone', 'init', 'scratch'] as const).filter((k) => Boolean(s[k])).map(name);
  if (starts.length > 1) throw new UsageError(`${starts.join(' and ')} choose different starting weights; pass one of them`);
  if (s.optimizer === 'adamw' && s.momentum !== 0) {
    throw new UsageError(`${name('momentum')} is SGD's; ${name('optimizer')} adamw has its own betas (${ADAMW.beta1}, ${ADAMW.beta2}): leave ${name('momentum')} out`);
  }
  return s;
}
