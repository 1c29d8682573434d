// One optimiser step at a time on the compiled training-step graph: owns the session, the current
// weights, running statistics and optimiser state (SGD's momentum buffers, AdamW's moments and update
// count), feeds them with each batch and keeps what comes back.
import type { FcnArchitecture } from '../model/fcn.js';
import { checkParameters, fcnParameters, numel, seededRandom, type TensorMap } from '../model/params.js';
import {
  compileTrainStep, slotName, TRAIN_IO, updatedName, IGNORE_LABEL, type OptimizerSlot, type TrainGraph, type TrainGraphOptions,
} from '../graph/train.js';
import { Session, tensor, type EngineTensor, type SessionOptions } from '../engine/session.js';
import { GraphBuilder } from '../graph/onnx.js';
import { nchwcBlockFrom, nchwcProbe } from '../graph/nchwc.js';

/** A label the network has no class for; `index` is its position in the N·H·W labels (so callers can name the image). */
export class LabelRangeError extends RangeError {
  constructor(readonly value: number, readonly index: number, readonly numClasses: number) {
    super(`train step: label ${value} is not a class (0..${numClasses - 1}) or ${IGNORE_LABEL}`);
  }
}

export interface TrainStepOptions extends TrainGraphOptions {
  /** Intra-op threads; default: all cores. */
  threads?: number;
  /** Engine settings for benchmarks and profiling (optimisation level, memory pattern/arena, profile file prefix). */
  session?: Omit<SessionOptions, 'threads'>;
}

/**
 * Dropout's keep-mask for one step: Bernoulli(1 − p) per element (1 = kept), drawn from `seed` and the
 * mask's position among the step's masks, so the same seed gives the same masks on any run.
 */
export function keepMask(seed: number, index: number, n: number, p: number): Uint8Array {
  const random = seededRandom((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0);
  const mask = new Uint8Array(n);
  for (let i = 0; i < n; i++) mask[i] = random() >= p ? 1 : 0;
  return mask;
}

let nchwcBlock: Promise<number | undefined> | undefined;

/**
 * The NCHWc block size of this process's ONNX Runtime (8 with AVX2, 16 with AVX-512), asked of the
 * runtime itself once (nchwcProbe); undefined where it has no NCHWc kernels.
 */
export function nchwcBlockSize(): Promise<number | undefined> {
  nchwcBlock ??= (async () => {
    const g = new GraphBuilder('nchwc-probe');
    const probe = nchwcProbe(g);
    let session: Session | undefined;
    try {
      session = await Session.create(g.encode(), { threads: 1, optimization: 'disabled' });
      const out = await session.run({ [probe.input]: tensor('float32', probe.dims, probe.data) });
      return nchwcBlockFrom(out[probe.output]!.data as Float32Array);
    } catch {
      return undefined;
    } finally {
      await session?.dispose();
    }
  })();
  return nchwcBlock;
}

/** What an optimiser carries from step to step, to save and resume: per slot, a tensor per parameter; the updates done. */
export interface OptimizerState {
  slots: Map<OptimizerSlot, TensorMap>;
  /** Updates done so far (AdamW's bias correction uses it; PyTorch's state['step']). */
  step: number;
}

export interface StepResult {
  /**
   * The batch's loss as the architecture defines it: 'book', Σ over images of the mean cross-entropy
   * over the image's valid pixels; 'torchvision', the mean over the batch's valid pixels (+ 0.5 x the
   * auxiliary output's).
   */
  loss: number;
  /** Valid pixels whose argmax (before the update) equals the label. */
  correct: number;
  /** Pixels whose label is not 255. */
  valid: number;
}

export class TrainStep {
  private stepsRun = 0;

  private constructor(
    private readonly arch: FcnArchitecture,
    /** The graph's layout; its bytes (45 MB with a baked-in backbone) are not kept once loaded. */
    private readonly graph: Omit<TrainGraph, 'bytes'>,
    private readonly session: Session,
    private readonly current: TensorMap,
    /** Optimiser state by slot input name (slotName(param, slot)). */
    private readonly buffers: TensorMap,
    /** Updates done, resumed ones included. */
    private updates: number,
  ) {}

  /**
   * Compiles the step for `opts` (mode, batch, crop, weight decay, optimiser) and loads it. `weights`
   * must hold every parameter and running statistic; `resume` continues an optimiser's state (zeros
   * and step 0 otherwise, which is PyTorch's first step exactly: SGD's buffer with dampening 0 and
   * AdamW's moments both start at zero).
   */
  static async create(arch: FcnArchitecture, weights: TensorMap, opts: TrainStepOptions, resume?: OptimizerState): Promise<TrainStep> {
    checkParameters(arch, weights, 'training weights');
    const nchwc = opts.nchwcBlock ?? await nchwcBlockSize();
    const { bytes, ...graph } = compileTrainStep(arch, { ...opts, nchwcBlock: nchwc }, opts.mode === 'head' ? weights : undefined);
    // Tensors the step updates are copied; frozen ones (baked into the graph) are only referenced, for weights().
    const frozen = new Set(graph.frozen);
    const current: TensorMap = new Map();
    for (const spec of fcnParameters(arch)) {
      const t = weights.get(spec.name)!;
      current.set(spec.name, frozen.has(spec.name) ? t : Float32Array.from(t));
    }
    const buffers: TensorMap = new Map();
    for (const slot of graph.slots) {
      for (const t of graph.momentum) {
        const given = resume?.slots.get(slot)?.get(t.name);
        if (given && given.length !== numel(t.shape)) {
          throw new Error(`optimizer state ${slot} of '${t.name}' has ${given.length} values, expected [${t.shape.join(', ')}]`);
        }
        buffers.set(slotName(t.name, slot), given ? Float32Array.from(given) : new Float32Array(numel(t.shape)));
      }
    }
    const updates = resume?.step ?? 0;
    if (!Number.isInteger(updates) || updates < 0) throw new Error(`optimizer state: step must be a whole number >= 0, got ${updates}`);
    // Memory pattern off: ORT's pre-planned block for this graph is ~0.7 GB larger than allocating from
    // its arena as it goes (full, b4 320x480). Full mode at level 'extended': its weights are inputs, so
    // 'all' has no NCHWc convolutions to gain (and would convert the 'tapconv' form's constant kernels).
    const session = await Session.create(bytes, {
      memPattern: false, optimization: opts.mode === 'full' ? 'extended' : 'all', ...opts.session, threads: opts.threads,
    });
    return new TrainStep(arch, graph, session, current, buffers, updates);
  }

  get options(): TrainGraphOptions {
    return this.graph.options;
  }

  /**
   * One optimiser step on a batch; keeps the updated weights, running statistics and optimiser state.
   * `seed` draws the step's dropout masks (keepMask): give each step its own (e.g. the run's seed
   * mixed with the global step number) and a resumed run repeats them. Without it, the number of
   * steps this TrainStep has run (masks differ per step, but a resumed run starts over at 0).
   */
  async run(images: Float32Array, labels: Uint8Array, lr: number, seed?: number): Promise<StepResult> {
    const maskSeed = seed ?? this.stepsRun;
    this.stepsRun++;
    const { batch: N, height: H, width: W } = this.graph.options;
    if (images.length !== N * 3 * H * W) throw new Error(`train step: expected ${N}x3x${H}x${W} image values, got ${images.length}`);
    if (labels.length !== N * H * W) throw new Error(`train step: expected ${N}x${H}x${W} labels, got ${labels.length}`);
    const C = this.arch.numClasses;
    for (let i = 0; i < labels.length; i++) {
      const v = labels[i]!;
      if (v >= C && v !== IGNORE_LABEL) throw new LabelRangeError(v, i, C);
    }
    if (!Number.isFinite(lr)) throw new Error(`train step: learning rate must be a finite number, got ${lr}`);
    const feeds: Record<string, EngineTensor> = {
      [TRAIN_IO.image]: tensor('float32', [N, 3, H, W], images),
      [TRAIN_IO.labels]: tensor('uint8', [N, H, W], labels),
      [TRAIN_IO.lr]: tensor('float32', [], Float32Array.of(lr)),
    };
    for (const t of [...this.graph.trained, ...this.graph.state]) feeds[t.name] = tensor('float32', t.shape, this.current.get(t.name)!);
    for (const [name, t] of this.buffers) feeds[name] = tensor('float32', this.shapeOfSlot(name), t);
    if (this.graph.options.optimizer === 'adamw') feeds[TRAIN_IO.step] = tensor('float32', [], Float32Array.of(this.updates + 1));
    this.graph.stepInputs.forEach((d, i) => {
      feeds[d.name] = tensor('bool', d.shape, keepMask(maskSeed, i, numel(d.shape), d.keepMask.p));
    });
    const out = await this.session.run(feeds);
    for (const t of [...this.graph.trained, ...this.graph.state]) this.current.set(t.name, out[updatedName(t.name)]!.data as Float32Array);
    for (const name of [...this.buffers.keys()]) this.buffers.set(name, out[updatedName(name)]!.data as Float32Array);
    this.updates++;
    return {
      loss: (out[TRAIN_IO.loss]!.data as Float32Array)[0]!,
      correct: Number((out[TRAIN_IO.correct]!.data as BigInt64Array)[0]!),
      valid: Number((out[TRAIN_IO.valid]!.data as BigInt64Array)[0]!),
    };
  }

  /** Every parameter and running statistic under its canonical name (frozen ones included). */
  weights(): TensorMap {
    return new Map([...this.current].map(([k, v]) => [k, Float32Array.from(v)]));
  }

  private shapeOfSlot(name: string): number[] {
    const param = name.slice(0, name.lastIndexOf(':'));
    return this.graph.momentum.find((t) => t.name === param)!.shape;
  }

  /** The optimiser's state (copies): per slot, a tensor per trained parameter; and the updates done. */
  optimizerState(): OptimizerState {
    const slots = new Map<OptimizerSlot, TensorMap>();
    for (const slot of this.graph.slots) {
      slots.set(slot, new Map(this.graph.momentum.map((t) => [t.name, Float32Array.from(this.buffers.get(slotName(t.name, slot))!)])));
    }
    return { slots, step: this.updates };
  }

  /** SGD's momentum buffers by parameter name; empty when momentum is 0 (and for AdamW). */
  momentumBuffers(): TensorMap {
    return this.optimizerState().slots.get('momentum') ?? new Map();
  }

  async dispose(): Promise<void> {
    await this.session.dispose();
  }
}
