// A loaded segmentation model: the FCN compiled for inference with its weights (or an ONNX file fcn
// wrote: a float32 export or an int8 quantisation), plus what a user needs to read its output (class
// names, colours, input normalisation). Predicts full images of any size: padded to a multiple of
// the stride, logits cropped back; large images in overlapping tiles.
import { readFile } from 'node:fs/promises';
import type { FcnArchitecture } from '../model/fcn.js';
import { fcnResNet18, type FcnVariant } from '../model/fcn.js';
import { initParameters, seededRandom, type TensorMap } from '../model/params.js';
import { compileInference } from '../graph/inference.js';
import { Session, getDefaultDevice } from '../engine/session.js';
import { defaultGraphCacheDir } from '../engine/graphcache.js';
import { decodeImage, type LabelMap, type RgbImage } from '../data/image.js';
import { VOC_PALETTE, type Rgb } from '../data/voc.js';
import { loadCheckpoint, type Checkpoint } from '../weights/checkpoint.js';
import { defaultCard, type ModelCard } from '../model/card.js';
import { normalizeWindow } from './preprocess.js';
import { classShares, predictInTiles, type ClassShare } from './tiled.js';
import { modelPath } from './named.js';
import { isOnnxPath, readFcnOnnx, type FcnOnnxFile, type Precision } from './onnx-file.js';
import { FcnError, errorMessage } from '../util/errors.js';

/** Context kept around each tile's core, in pixels. */
export const DEFAULT_TILE_MARGIN = 96;
/** The smallest tile size: more than twice the margin, so every tile has a core. */
export const MIN_TILE = 2 * DEFAULT_TILE_MARGIN + 1;

export interface SegmentationModelOptions {
  /** ORT intra-op threads (default: all cores). */
  threads?: number;
  /** Images with a side longer than this go through overlapping tiles of this size (multiple of 32). Default 1024. */
  tileSize?: number;
  /** Context kept around each tile's core, in pixels (default 96). */
  tileMargin?: number;
  /** The network a loaded file must hold (e.g. 'fcn_resnet50'); recognised from the file when absent. */
  arch?: string;
  /**
   * Folder of ORT's optimised graphs, so that the next process that loads the same weights starts
   * faster (engine/graphcache.ts); false: none. loadModel of a file or checkpoint defaults to the
   * user's cache (defaultGraphCacheDir); fromWeights/fromCheckpoint to none.
   */
  graphCache?: string | false;
}

export type { ClassShare } from './tiled.js';

/** Why `tileSize` cannot tile `arch`'s input (it must be a multiple of the stride, larger than twice the margin), or undefined. */
export function tileSizeProblem(arch: FcnArchitecture, tileSize: number, margin = DEFAULT_TILE_MARGIN): string | undefined {
  if (Number.isSafeInteger(tileSize) && tileSize % arch.stride === 0 && tileSize > 2 * margin) return undefined;
  const stride = arch.stride > 1 ? `a multiple of ${arch.name}'s stride ${arch.stride} and ` : '';
  return `tile size ${tileSize} must be ${stride}larger than twice the tile margin ${margin}`;
}

export interface Segmentation {
  /** Class id per pixel, row-major, width x height. */
  mask: Uint8Array;
  width: number;
  height: number;
  /** Classes present in the mask, most pixels first. */
  classes: ClassShare[];
}

export class SegmentationModel {
  readonly tileSize: number;
  readonly tileMargin: number;

  /** The logits session, compiled on the first logits() call (predict's session outputs the mask only). */
  private logitsSession: Promise<Session> | undefined;

  private constructor(
    /** The network's declaration (for a model loaded from ONNX: rebuilt from the file's metadata; the graph is the file's). */
    readonly arch: FcnArchitecture,
    readonly meta: ModelCard,
    private readonly session: Session,
    /** The parameters the session was compiled from; none for a model loaded from an ONNX file (its graph has the logits). */
    private readonly weights: TensorMap | undefined,
    private readonly opts: SegmentationModelOptions,
    /** 'int8' for a graph `fcn quantize` wrote. */
    readonly precision: Precision = 'float32',
    /** The ONNX file's bytes when the model was loaded from one (what the page's onnxruntime-web runs). */
    readonly onnx?: Uint8Array,
  ) {
    this.tileSize = opts.tileSize ?? 1024;
    this.tileMargin = opts.tileMargin ?? DEFAULT_TILE_MARGIN;
    this.checkTileSize(this.tileSize);
  }

  private checkTileSize(tileSize: number): void {
    const problem = tileSizeProblem(this.arch, tileSize, this.tileMargin);
    if (problem) throw new FcnError(problem, 2);
  }

  /** Compiles `weights` (all parameters under canonical names) into an ORT session. */
  static async fromWeights(arch: FcnArchitecture, weights: TensorMap, meta?: Partial<ModelCard>, opts: SegmentationModelOptions = {}): Promise<SegmentationModel> {
    const full = { ...defaultCard(arch.numClasses), ...meta };
    const graphCache = opts.graphCache === false ? undefined : opts.graphCache;
    // the mask alone: a block-form upsampler's logits then never leave the GEMM's layout (graph/inference.ts)
    const session = await Session.create(compileInference(arch, weights, { logits: false, winograd: onCpu() }), { threads: opts.threads, graphCache });
    return new SegmentationModel(arch, full, session, weights, opts);
  }

  static async fromCheckpoint(ckpt: Checkpoint, opts: SegmentationModelOptions = {}): Promise<SegmentationModel> {
    return SegmentationModel.fromWeights(ckpt.arch, ckpt.weights,
      { classes: ckpt.classes, colors: ckpt.colors, normalization: ckpt.normalization }, opts);
  }

  /** Runs an ONNX file fcn wrote (its graph as it is: float32 export or int8). */
  static async fromOnnx(file: FcnOnnxFile, opts: SegmentationModelOptions = {}): Promise<SegmentationModel> {
    const graphCache = opts.graphCache === false ? undefined : opts.graphCache;
    const session = await Session.create(file.bytes, { threads: opts.threads, graphCache });
    return new SegmentationModel(file.arch, file.card, session, undefined, opts, file.precision, file.bytes);
  }

  get numClasses(): number {
    return this.arch.numClasses;
  }

  /** Class ids for every pixel of `image` (same width and height); `tileSize` overrides the model's for this image. */
  async predict(image: RgbImage, tileSize = this.tileSize): Promise<LabelMap> {
    if (tileSize !== this.tileSize) this.checkTileSize(tileSize);
    const settings = { normalization: this.meta.normalization, stride: this.arch.stride, tileSize, tileMargin: this.tileMargin };
    const data = await predictInTiles(image, settings, async (x) => {
      const out = await this.session.run(
        { [this.arch.input]: { dtype: 'float32', dims: [1, 3, x.height, x.width], data: x.data } }, ['mask']);
      return out.mask!.data as BigInt64Array;
    });
    return { width: image.width, height: image.height, data };
  }

  /** Logits (1 x C x H x W) of a whole image in one pass, cropped back from the padded input. */
  async logits(image: RgbImage): Promise<Float32Array> {
    const { width, height } = image;
    const x = normalizeWindow(image, this.meta.normalization, 0, 0, height, width, this.arch.stride);
    // an ONNX file's graph outputs the logits beside the mask; a compiled model's mask-only session does not
    this.logitsSession ??= this.weights
      ? Session.create(compileInference(this.arch, this.weights, { argmax: false, winograd: onCpu() }), { threads: this.opts.threads })
      : Promise.resolve(this.session);
    const out = await (await this.logitsSession).run(
      { [this.arch.input]: { dtype: 'float32', dims: [1, 3, x.height, x.width], data: x.data } }, [this.arch.output]);
    const padded = out[this.arch.output]!.data as Float32Array;
    const C = this.arch.numClasses;
    const res = new Float32Array(C * height * width);
    for (let c = 0; c < C; c++) {
      for (let y = 0; y < height; y++) {
        const src = (c * x.height + y) * x.width;
        res.set(padded.subarray(src, src + width), (c * height + y) * width);
      }
    }
    return res;
  }

  /** Segments an image given as encoded bytes (JPEG/PNG/WebP), a file path, or decoded pixels. */
  async segment(input: Uint8Array | string | RgbImage): Promise<Segmentation> {
    let image: RgbImage;
    if (typeof input === 'string') image = await decodeImage(await readInput(input), input);
    else if (input instanceof Uint8Array) image = await decodeImage(input);
    else image = input;
    const mask = await this.predict(image);
    return { mask: mask.data, width: mask.width, height: mask.height, classes: this.classShares(mask) };
  }

  /** One name per class id (the model card's, `class_N` where it has none). */
  classNames(): string[] {
    return Array.from({ length: this.numClasses }, (_, id) => this.meta.classes[id] ?? `class_${id}`);
  }

  /** One colour per class id (the model card's, VOC's palette where it has none). */
  classColors(): Rgb[] {
    return Array.from({ length: this.numClasses }, (_, id) => this.meta.colors[id] ?? VOC_PALETTE[id]!);
  }

  /** The classes present in a mask with their pixel counts and shares, most pixels first. */
  classShares(mask: LabelMap): ClassShare[] {
    return classShares(mask.data, this.classNames(), this.classColors());
  }

  async dispose(): Promise<void> {
    await this.session.dispose();
    const logits = this.logitsSession ? await this.logitsSession : undefined;
    if (logits && logits !== this.session) await logits.dispose();
  }
}

async function readInput(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new FcnError(`${path}: cannot read image (${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : errorMessage(err)})`);
  }
}

export interface FreshModelOptions {
  numClasses?: number;
  variant?: FcnVariant;
  seed?: number;
}

/**
 * Loads a model: a checkpoint path (our .safetensors, the book's PyTorch .pth, torchvision's
 * segmentation state_dicts, or the same tensors as .safetensors), an ONNX file fcn export or fcn
 * quantize wrote (`.onnx`), a published network's name
 * (`fcn_resnet50`: its downloaded file), a Checkpoint already read, or `{ numClasses, variant }` for a
 * freshly initialised network.
 */
export async function loadModel(source: string | Checkpoint | FreshModelOptions, opts: SegmentationModelOptions = {}): Promise<SegmentationModel> {
  // a saved model's optimised graph is cached per user (never beside the checkpoint, which may be read-only)
  const cached = { ...opts, graphCache: opts.graphCache ?? defaultGraphCacheDir() ?? false };
  if (typeof source === 'string' && isOnnxPath(source)) {
    const file = await readFcnOnnx(source);
    if (opts.arch !== undefined && file.arch.name !== opts.arch && file.arch.variant !== opts.arch) {
      throw new FcnError(`${source}: holds ${file.arch.name}, not ${opts.arch}`);
    }
    return SegmentationModel.fromOnnx(file, cached);
  }
  if (typeof source === 'string') return SegmentationModel.fromCheckpoint(await loadCheckpoint(modelPath(source), { arch: opts.arch }), cached);
  if ('weights' in source && 'arch' in source) return SegmentationModel.fromCheckpoint(source, cached);
  const fresh = source as FreshModelOptions;
  const arch = fcnResNet18({ numClasses: fresh.numClasses, variant: fresh.variant });
  return SegmentationModel.fromWeights(arch, initParameters(arch, seededRandom(fresh.seed ?? 0)), undefined, opts);
}

/**
 * Winograd convolutions pay on ONNX Runtime's CPU provider only (GPU providers have their own);
 * `FCN_WINOGRAD=0` turns them off, for half the peak memory of fcn_resnet50/101 at ~10% of the speed.
 */
function onCpu(): boolean {
  return getDefaultDevice().name === 'cpu' && process.env['FCN_WINOGRAD'] !== '0';
}
