// The training step's named formulation and session alternatives, shared by the by-hand scripts
// bench/train-step.ts and bench/train-memory.ts.
import type { TrainStepOptions } from '../src/train/step.js';

export interface Variant {
  tuning?: TrainStepOptions['tuning'];
  session?: TrainStepOptions['session'];
}

// Named changes; a variant is one name or several joined by '+' (e.g. im2col+dxconv+noarena).
export const CHANGES: Record<string, Variant> = {
  base: {}, // the defaults of compileTrainStep and TrainStep
  // the prototype's formulation (shared/prototype): dilated-conv dW, ConvTranspose dX and upsampler, ORT's memory pattern
  prototype: { tuning: { convGradWeight: 'dilated', convGradInput: 'convtranspose', convTranspose: 'convtranspose' }, session: { memPattern: true, optimization: 'all' } },
  dxconv: { tuning: { convGradInput: 'conv' } },
  dxconvT: { tuning: { convGradInput: 'convtranspose' } },
  dilated: { tuning: { convGradWeight: 'dilated' } },
  autodw: { tuning: { convGradWeight: 'auto' } },
  shifts: { tuning: { convGradWeight: 'shifts' } },
  im2col: { tuning: { convGradWeight: 'im2col' } },
  tapconv: { tuning: { convGradWeight: 'tapconv' } },
  autotap: { tuning: { convGradWeight: 'autotap' } },
  autotapall: { tuning: { convGradWeight: 'autotapall' } },
  blocks: { tuning: { convTranspose: 'blocks' } },
  upconvT: { tuning: { convTranspose: 'convtranspose' } },
  nchwloss: { tuning: { lossLayout: 'nchw' } }, // the loss on NCHW logits: a Transpose each way around the block GEMMs
  blockloss: { tuning: { lossLayout: 'blocks' } }, // the loss in the block GEMM's layout, classes on axis 3
  lastloss: { tuning: { lossLayout: 'blocksLast' } }, // ... classes innermost, LogSoftmax
  dwperimage: { tuning: { gradWeightBatch: 'perImage' } }, // weight-gradient GEMMs one per image, summed
  dwfold: { tuning: { gradWeightBatch: 'auto' } },
  bnexplicit: { tuning: { batchNorm: 'explicit' } },
  bncentered: { tuning: { batchNorm: 'centered' } },
  bnaffine: { tuning: { batchNorm: 'affine' } },
  relumul: { tuning: { relu: 'mul' } }, // ReLU masks applied by Mul (Sign or Cast) instead of ORT's three-pass Where
  reluwhere: { tuning: { relu: 'where' } },
  poolfirst: { tuning: { reluPool: 'poolFirst' } }, // the stem's max-pool before its ReLU (they commute)
  pooldeclared: { tuning: { reluPool: 'declared' } },
  recompute: { tuning: { reluPool: 'poolFirst', stemRecompute: 'on' } }, // the stem's x̂ and pool argmax recomputed in the backward
  norecompute: { tuning: { stemRecompute: 'off' } },
  nchw: { tuning: { convLayout: 'nchw' } }, // every convolution on ORT's im2col + GEMM (no NCHWc kernels)
  poolbnseparate: { tuning: { poolBatchNorm: 'separate' } }, // the stem's max-pool gradient scattered into zeros, then the batch-norm's backward
  nchwc128: { tuning: { nchwcMinChannels: 128 } }, // NCHWc kernels from 128 channels (layer2 on)
  nchwc256: { tuning: { nchwcMinChannels: 256 } },
  noopt: { session: { optimization: 'basic' } },
  optextended: { session: { optimization: 'extended' } },
  optall: { session: { optimization: 'all' } },
  nomempattern: { session: { memPattern: false } },
  mempattern: { session: { memPattern: true } },
  noarena: { session: { memArena: false } },
};

export function variantOf(name: string): Variant {
  const out: Variant = {};
  for (const part of name.split('+')) {
    const c = CHANGES[part];
    if (!c) throw new Error(`unknown change '${part}' (known: ${Object.keys(CHANGES).join(', ')})`);
    out.tuning = { ...out.tuning, ...c.tuning };
    out.session = { ...out.session, ...c.session };
  }
  return out;
}
