// The one switch for formulation alternatives of the training step: the defaults are the measured
// best (bench/train-step.ts compares the others); product code never sets it.
import type { BatchNormForm, GradInputForm, GradWeightForm, ReluForm } from './backward.js';

/** Formulation switches, for benchmarking alternatives; defaults are the measured best. */
export interface TrainGraphTuning {
  /** Input gradient of stride-1 convolutions (strided ones always use ConvTranspose). */
  convGradInput?: GradInputForm;
  /**
   * Weight gradient of k x k convolutions (1x1 ones are always one batched MatMul). 'auto' / 'autotap':
   * im2col / tapconv, except the dilated form for inputs with < 8 channels (the 7x7 stem on RGB: 49
   * tiny slices cost more). tapconv's one-hot kernels are constants: run the graph at ORT's 'extended'
   * optimisation level, or 'all' converts them to NCHWc and pays for the reorders. 'autotapall': as
   * 'autotap', with tapconvall where the columns of all k² taps of the batch have at most
   * TAPS_AT_ONCE values (at 320x480 the book's layer1-4 at batch 4, layer2-4 at 8, layer4 at 32:
   * larger transients raised the step's peak memory, b8 1375 -> 1510 MB with layer1's, b32 4681 ->
   * 5609 MB with layer2-4's).
   */
  convGradWeight?: GradWeightForm | 'auto' | 'autotap' | 'autotapall';
  /**
   * The weight gradients' GEMMs over the batch: 'auto' folds the batch into one GEMM where the
   * per-image products would be larger than the columns (more output channels than pixels);
   * 'perImage': always one product per image, summed. (Not the default: the summation order changes
   * the rounding, and the 3-step parity fixture, whose ReLU branches sit within ~1e-7 of zero, then
   * ends 1.4e-4 off PyTorch's loss, over its 1e-4 bound, where one product per image ends 5.6e-5 off;
   * single-step gradients are as close to PyTorch's either way. 'auto' made the full batch-4 step 9%
   * faster: bench/train-step.ts --ab --variants base,dwfold, wall median 4753 vs 5207 ms, load 5-6.)
   */
  gradWeightBatch?: 'auto' | 'perImage';
  /**
   * 'affine' is not the default: at batch 32 (320x480, full) it raised the peak RSS from 4681 to
   * 5654 MB (at b8 1447 vs 1457, no difference), for about a pass less per layer.
   */
  batchNorm?: BatchNormForm;
  /** Trained transposed convolutions whose kernel is a multiple of the stride: ORT's ConvTranspose, or block GEMMs. */
  convTranspose?: 'convtranspose' | 'blocks';
  /**
   * When the logits come from a block-form transposed conv: the loss reads them in NCHW (a Transpose
   * each way) or in the GEMM's block layout with the labels rearranged to match ('blocks': classes
   * on axis 3 of [N, rows, cols, C, s, s]; 'blocksLast': classes innermost, [N, rows, cols, s, s, C]).
   */
  lossLayout?: 'nchw' | 'blocks' | 'blocksLast';
  /** ReLU's pass-through in the forward (where a mask is kept) and the backward: see ReluForm. */
  relu?: ReluForm;
  /**
   * A ReLU whose output only a max-pool reads: 'poolFirst' pools first and applies the ReLU to the
   * pooled values (max and ReLU commute: both keep order, so max(relu(x)) = relu(max(x)), and the
   * pooled argmax differs only in windows with no positive value, whose gradient the ReLU zeroes
   * either way), a quarter of the elements for the ReLU and its mask at a 3x3 stride-2 pool;
   * 'declared': as the declaration orders them.
   */
  reluPool?: 'declared' | 'poolFirst';
  /**
   * A convolution reading the image, its batch-norm and a max-pool of that (the ResNet stem, with
   * reluPool 'poolFirst'): 'on' saves neither x̂ nor the pool's argmax for the backward but recomputes
   * both there from the image (one more stem convolution and a few passes); 'auto' where x̂ has at
   * least RECOMPUTE_AT values; 'off' keeps them.
   */
  stemRecompute?: 'auto' | 'on' | 'off';
  /** Depthwise convolutions' gradients: one grouped op each ('grouped'), or one convolution per channel ('split', as other grouped convs). */
  depthwise?: 'grouped' | 'split';
  /**
   * Where the step knows ORT's NCHWc block size (TrainGraphOptions.nchwcBlock): the trained
   * convolutions, and the convolutions of stride-1 input gradients, whose channels are multiples of
   * it and at least nchwcMinChannels run on ORT's NCHWc kernels ('nchwc', see ../nchwc.ts) instead
   * of its im2col + GEMM ('nchw').
   */
  convLayout?: 'nchw' | 'nchwc';
  nchwcMinChannels?: number;
  /**
   * A max-pool over a batch-norm's output (the ResNet stem with reluPool 'poolFirst'): 'fused' takes
   * the batch-norm's gradients straight from the pool's (backward.ts batchNormGradThroughMaxPool: sums
   * over the pooled values, one scatter into the affine part of dx); 'separate' scatters the pool's
   * gradient into zeros and runs the batch-norm's backward on that.
   */
  poolBatchNorm?: 'fused' | 'separate';
}

/** Most im2col values of a batch (N·C·k²·h·w) that 'autotapall' makes in one Conv: 24 Mi floats, 96 MiB. */
export const TAPS_AT_ONCE = 24 << 20;

/** Fewest values of the stem's x̂ at which 'auto' recomputes it: 32 Mi floats, 128 MiB (batch 14 at 320x480). */
export const RECOMPUTE_AT = 32 << 20;

export const DEFAULT_TUNING: Required<TrainGraphTuning> = {
  convGradInput: 'conv', convGradWeight: 'autotapall', gradWeightBatch: 'perImage', batchNorm: 'explicit', convTranspose: 'blocks', lossLayout: 'blocks',
  depthwise: 'grouped', relu: 'mul', reluPool: 'poolFirst', stemRecompute: 'auto', convLayout: 'nchwc', nchwcMinChannels: 64, poolBatchNorm: 'fused',
};
