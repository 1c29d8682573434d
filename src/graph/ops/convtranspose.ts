// Transposed convolution (the FCN's upsamplers), weight [in, out/groups, k, k] as PyTorch stores it.
// When the kernel is a multiple of the stride (k = m·s: the book's 64/32, FCN-16s/8s's 4/2) both graphs
// use backward.ts's block GEMM (blockUpsample) instead of ORT's ConvTranspose, which is much slower
// here. A per-channel (grouped, groups = channels) upsampler is ORT's grouped ConvTranspose: its work
// is C·k² per pixel where the full form's GEMM is C²·k²; its backward is a grouped Conv (dx) and the
// depthwise weight gradient.
import type { ConvTransposeLayer } from '../../model/layers.js';
import {
  biasGrad, blockFormApplies, blockUpsample, convTransposeBlocks, convTransposeBlocksGradInput, convTransposeBlocksGradOutput,
  convTransposeBlocksGradWeight, convTransposeGradInput, convTransposeGradWeight, convTransposeGradWeightDepthwise, convTransposeOutSize,
  type BlockConvTransposeSaved,
} from '../backward.js';
import { op } from '../backward.js';
import type { GraphBuilder } from '../onnx.js';
import type { BlockValue, LayerKind, LossForm, TrainContext } from './kind.js';
import { argmaxPhases, emitPhaseGemm, phaseGeometry, phaseWeights, placePhases } from '../phaseupsample.js';

/** W [Cin, Cout, k, k] (+ bias) rearranged to the block GEMM's [m²·Cin (+1), Cout·s²] (see blockUpsample). */
export function blockWeights(layer: ConvTransposeLayer, W: Float32Array, bias: Float32Array | undefined): { data: Float32Array; rows: number; cols: number } {
  const { kernel: k, stride: s, inChannels: Cin, outChannels: Cout } = layer;
  const m = k / s;
  const rows = m * m * Cin + (bias ? 1 : 0);
  const cols = Cout * s * s;
  const wb = new Float32Array(rows * cols);
  for (let di = 0; di < m; di++) {
    for (let dj = 0; dj < m; dj++) {
      for (let ci = 0; ci < Cin; ci++) {
        const row = ((di * m + dj) * Cin + ci) * cols;
        for (let co = 0; co < Cout; co++) {
          for (let u = 0; u < s; u++) {
            const src = ((ci * Cout + co) * k + di * s + u) * k + dj * s;
            wb.set(W.subarray(src, src + s), row + (co * s + u) * s);
          }
        }
      }
    }
  }
  if (bias) for (let co = 0; co < Cout; co++) wb.fill(bias[co]!, (rows - 1) * cols + co * s * s, (rows - 1) * cols + (co + 1) * s * s);
  return { data: wb, rows, cols };
}

const groupsOf = (layer: ConvTransposeLayer): number => layer.groups ?? 1;

function checkGroups(layer: ConvTransposeLayer): void {
  const groups = groupsOf(layer);
  if (groups !== 1 && (groups !== layer.inChannels || groups !== layer.outChannels)) {
    throw new Error(`${layer.name}: a grouped transposed conv must have one channel per group (groups ${groups}, ${layer.inChannels} -> ${layer.outChannels} channels)`);
  }
}

function plain(g: GraphBuilder, layer: ConvTransposeLayer, param: (name: string) => string): void {
  checkGroups(layer);
  const inputs = [layer.input, param(`${layer.name}.weight`)];
  if (layer.bias) inputs.push(param(`${layer.name}.bias`));
  const groups = groupsOf(layer);
  g.node('ConvTranspose', inputs, {
    kernel_shape: [layer.kernel, layer.kernel], strides: [layer.stride, layer.stride], pads: [layer.pad, layer.pad, layer.pad, layer.pad],
    group: groups > 1 ? groups : undefined,
  }, layer.output);
}

/** The block GEMM is the full (class-to-class) form; grouped layers use ORT's grouped ConvTranspose. */
const blocksFit = (layer: ConvTransposeLayer): boolean => groupsOf(layer) === 1 && blockFormApplies(layer);
const useBlocks = (ctx: TrainContext, layer: ConvTransposeLayer): boolean => ctx.tuning.convTranspose === 'blocks' && blocksFit(layer);

export const convtranspose: LayerKind<ConvTransposeLayer, BlockConvTransposeSaved | undefined> = {
  op: 'convtranspose',

  outputShape(layer, [x]) {
    const [n, c, h, w] = x!;
    if (c !== layer.inChannels) throw new Error(`${layer.name} expects ${layer.inChannels} channels, gets ${c}`);
    return [n, layer.outChannels, convTransposeOutSize(h, layer), convTransposeOutSize(w, layer)];
  },


  emitEval(ctx, layer) {
    const W = ctx.weight(`${layer.name}.weight`);
    if (ctx.upsample === 'convtranspose' || !blocksFit(layer) || !W) {
      plain(ctx.g, layer, ctx.param);
      return;
    }
    // the block and phase forms carry their own rearranged copy of the weights
    const bias = layer.bias ? ctx.weight(`${layer.name}.bias`) : undefined;
    const geo = ctx.upsample === 'phases' || ctx.upsample === 'phaserows' ? phaseGeometry(layer, ctx.upsample === 'phaserows') : undefined;
    if (geo) {
      const pw = phaseWeights(layer, geo, W, bias);
      const name = ctx.g.initializer(`${layer.name}.phases`, 'float32', [geo.rows.phases * geo.cols.phases, pw.rows, pw.cols], pw.data);
      const phased = `${layer.output}:phases`;
      emitPhaseGemm(ctx.g, layer.input, name, layer, geo, bias !== undefined, phased);
      // left in the GEMM's layout: the compiler places it (or only its argmax) where it is read
      if (ctx.blockOutputs) ctx.blockOutputs.set(layer.output, { blocks: phased, stride: layer.stride, pad: 0, phased: true });
      else placePhases(ctx.g, phased, layer.stride, layer.output);
      return;
    }
    const wb = blockWeights(layer, W, bias);
    const name = ctx.g.initializer(`${layer.name}.blocks`, 'float32', [wb.rows, wb.cols], wb.data);
    if (ctx.blockOutputs) {
      // left in block layout: the compiler places it (or only its argmax) where it is read
      const blocks = `${layer.output}:blocks`;
      blockUpsample(ctx.g, layer.input, name, layer, layer.inChannels, layer.outChannels, undefined, blocks, layer.name,
        { ones: bias !== undefined, crop: false, blockLayout: true });
      ctx.blockOutputs.set(layer.output, { blocks, stride: layer.stride, pad: layer.pad });
      return;
    }
    blockUpsample(ctx.g, layer.input, name, layer, layer.inChannels, layer.outChannels, ctx.shape(layer.input), layer.output, layer.name,
      { ones: bias !== undefined, crop: true, blockLayout: false });
  },

  // The logits from a block-form upsampler go to the loss uncropped (labels padded with 'ignore'
  // instead: no crop here and no padding of the gradient), and with lossLayout 'blocks' in the
  // GEMM's layout (labels rearranged to match: no Transpose either way); 'blocksLast' orders the
  // GEMM's columns so that the classes are the innermost axis (the loss's reductions run over
  // contiguous rows).
  lossForm(ctx, layer): LossForm | undefined {
    if (!useBlocks(ctx, layer)) return undefined;
    const [, , h, w] = ctx.shape(layer.input);
    const m = layer.kernel / layer.stride;
    const { lossLayout } = ctx.tuning;
    return {
      pad: layer.pad,
      blocks: lossLayout === 'nchw' ? undefined : { rows: h + m - 1, cols: w + m - 1, size: layer.stride, classLast: lossLayout === 'blocksLast' },
    };
  },

  forward(ctx, layer) {
    if (!useBlocks(ctx, layer)) {
      plain(ctx.g, layer, ctx.param);
      return undefined;
    }
    return convTransposeBlocks(ctx.g, layer.input, ctx.param(`${layer.name}.weight`), layer.bias ? ctx.param(`${layer.name}.bias`) : undefined,
      layer, ctx.shape(layer.input), layer.outChannels, layer.output, layer.name, ctx.lossForm === undefined, ctx.lossForm?.blocks !== undefined,
      ctx.lossForm?.blocks?.classLast === true);
  },

  backward(ctx, layer, saved, dy) {
    const { g } = ctx;
    if (saved) {
      const inBlocks = ctx.lossForm?.blocks !== undefined;
      const dD = convTransposeBlocksGradOutput(g, dy, layer, ctx.shape(layer.input), layer.outChannels, layer.name, ctx.lossForm !== undefined, inBlocks);
      ctx.paramGrad(`${layer.name}.weight`, convTransposeBlocksGradWeight(g, dD, saved, layer, layer.inChannels, layer.outChannels, layer.name));
      const blockAxes = saved.classLast ? [0, 1, 2, 3, 4] : [0, 1, 2, 4, 5];
      if (layer.bias) ctx.paramGrad(`${layer.name}.bias`, biasGrad(g, dy, layer.name, inBlocks ? blockAxes : undefined));
      if (ctx.needsGrad(layer.input)) ctx.accumulate(layer.input, convTransposeBlocksGradInput(g, dD, saved, layer, ctx.shape(layer.input), layer.name));
      return;
    }
    const groups = groupsOf(layer);
    const gradWeight = groups > 1 ? convTransposeGradWeightDepthwise : convTransposeGradWeight;
    ctx.paramGrad(`${layer.name}.weight`, gradWeight(g, layer.input, dy, layer, ctx.shape(layer.input), ctx.shape(layer.output), layer.name));
    if (layer.bias) ctx.paramGrad(`${layer.name}.bias`, biasGrad(g, dy, layer.name));
    if (ctx.needsGrad(layer.input)) ctx.accumulate(layer.input, convTransposeGradInput(g, dy, ctx.param(`${layer.name}.weight`), layer, layer.name, groups));
  },
};

/** [d0, d1·s, d2·s] of an int64 shape's entries `at` (three of them), for putting s x s blocks back in place. */
function placedDims(g: GraphBuilder, shape: string, at: [number, number, number], s: number, hint: string): string {
  const dim = (i: number) => op(g, 'Slice', [shape, g.constant([i], 'int64'), g.constant([i + 1], 'int64')], `${hint}:dim`);
  const times = (i: number) => op(g, 'Mul', [dim(i), g.constant([s], 'int64')], `${hint}:full`);
  return op(g, 'Concat', [dim(at[0]), times(at[1]), times(at[2])], `${hint}:dims`, { axis: 0 });
}

/** Crops `pad` from both ends of two axes. */
function crop(g: GraphBuilder, value: string, pad: number, axes: [number, number], output: string): void {
  if (pad === 0) g.node('Identity', [value], {}, output);
  else g.node('Slice', [value, g.constant([pad, pad], 'int64'), g.constant([-pad, -pad], 'int64'), g.constant(axes, 'int64')], {}, output);
}

/** Writes `output` = the block value in NCHW: [N, Hf, Wf, C, s, s] -> [N, C, Hf, s, Wf, s] -> [N, C, Hf·s, Wf·s], cropped. */
export function placeBlocks(g: GraphBuilder, v: BlockValue, output: string): void {
  if (v.phased) return placePhases(g, v.blocks, v.stride, output);
  const s = v.stride;
  const six = op(g, 'Transpose', [v.blocks], `${output}:placed6`, { perm: [0, 3, 1, 4, 2, 5] });
  const shape = op(g, 'Shape', [v.blocks], `${output}:bshape`);
  // N and C stay, Hf and Wf grow by s: [N, C] then [Hf·s, Wf·s]
  const nc = op(g, 'Gather', [shape, g.constant([0, 3], 'int64')], `${output}:nc`, { axis: 0 });
  const hw = op(g, 'Slice', [placedDims(g, shape, [0, 1, 2], s, output), g.constant([1], 'int64'), g.constant([3], 'int64')], `${output}:hw`);
  const full = op(g, 'Reshape', [six, op(g, 'Concat', [nc, hw], `${output}:fulldims`, { axis: 0 })], `${output}:full`);
  crop(g, full, v.pad, [2, 3], output);
}

/**
 * Writes `output` = the per-pixel argmax over channels of the block value, as [N, H, W] int64: the
 * argmax taken in the block layout (over axis 3, the same values in the same channel order as in
 * NCHW, so the same index wins ties), then only the int64 indices moved into place, not the logits.
 */
export function argmaxBlocks(g: GraphBuilder, v: BlockValue, output: string): void {
  if (v.phased) return argmaxPhases(g, v.blocks, v.stride, output);
  const s = v.stride;
  const idx = op(g, 'ArgMax', [v.blocks], `${output}:bargmax`, { axis: 3, keepdims: 0 }); // [N, Hf, Wf, s, s]
  const five = op(g, 'Transpose', [idx], `${output}:placed5`, { perm: [0, 1, 3, 2, 4] }); // [N, Hf, s, Wf, s]
  const dims = placedDims(g, op(g, 'Shape', [idx], `${output}:ishape`), [0, 1, 2], s, output);
  crop(g, op(g, 'Reshape', [five, dims], `${output}:full`), v.pad, [1, 2], output);
}
