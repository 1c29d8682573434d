// Transposed convolution (the FCN's upsamplers), weight [in, out, k, k] as PyTorch stores it. When
// the kernel is a multiple of the stride (k = m·s: the book's 64/32, FCN-16s/8s's 4/2) both graphs use
// backward.ts's block GEMM (blockUpsample) instead of ORT's ConvTranspose, which is much slower here.
import type { ConvTransposeLayer } from '../../model/layers.js';
import {
  biasGrad, blockFormApplies, blockUpsample, convTransposeBlocks, convTransposeBlocksGradInput, convTransposeBlocksGradOutput,
  convTransposeBlocksGradWeight, convTransposeGradInput, convTransposeGradWeight, convTransposeOutSize, type BlockConvTransposeSaved,
} from '../backward.js';
import type { GraphBuilder } from '../onnx.js';
import type { LayerKind, LossForm, TrainContext } from './kind.js';

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

function plain(g: GraphBuilder, layer: ConvTransposeLayer, param: (name: string) => string): void {
  const inputs = [layer.input, param(`${layer.name}.weight`)];
  if (layer.bias) inputs.push(param(`${layer.name}.bias`));
  g.node('ConvTranspose', inputs, {
    kernel_shape: [layer.kernel, layer.kernel], strides: [layer.stride, layer.stride], pads: [layer.pad, layer.pad, layer.pad, layer.pad],
  }, layer.output);
}

const useBlocks = (ctx: TrainContext, layer: ConvTransposeLayer): boolean => ctx.tuning.convTranspose === 'blocks' && blockFormApplies(layer);

export const convtranspose: LayerKind<ConvTransposeLayer, BlockConvTransposeSaved | undefined> = {
  op: 'convtranspose',

  outputShape(layer, [x]) {
    const [n, c, h, w] = x!;
    if (c !== layer.inChannels) throw new Error(`${layer.name} expects ${layer.inChannels} channels, gets ${c}`);
    return [n, layer.outChannels, convTransposeOutSize(h, layer), convTransposeOutSize(w, layer)];
  },


  emitEval(ctx, layer) {
    const W = ctx.weight(`${layer.name}.weight`);
    if (ctx.upsample !== 'blocks' || !blockFormApplies(layer) || !W) {
      plain(ctx.g, layer, ctx.param);
      return;
    }
    // the block form carries its own rearranged copy of the weights
    const bias = layer.bias ? ctx.weight(`${layer.name}.bias`) : undefined;
    const wb = blockWeights(layer, W, bias);
    const name = ctx.g.initializer(`${layer.name}.blocks`, 'float32', [wb.rows, wb.cols], wb.data);
    blockUpsample(ctx.g, layer.input, name, layer, layer.inChannels, layer.outChannels, ctx.shape(layer.input), layer.output, layer.name,
      { ones: bias !== undefined, crop: true, blockLayout: false });
  },

  // The logits from a block-form upsampler go to the loss uncropped (labels padded with 'ignore'
  // instead: no crop here and no padding of the gradient), and with lossLayout 'blocks' in the
  // GEMM's layout (labels rearranged to match: no Transpose either way).
  lossForm(ctx, layer): LossForm | undefined {
    if (!useBlocks(ctx, layer)) return undefined;
    const [, , h, w] = ctx.shape(layer.input);
    const m = layer.kernel / layer.stride;
    return { pad: layer.pad, blocks: ctx.tuning.lossLayout === 'blocks' ? { rows: h + m - 1, cols: w + m - 1, size: layer.stride } : undefined };
  },

  forward(ctx, layer) {
    if (!useBlocks(ctx, layer)) {
      plain(ctx.g, layer, ctx.param);
      return undefined;
    }
    return convTransposeBlocks(ctx.g, layer.input, ctx.param(`${layer.name}.weight`), layer.bias ? ctx.param(`${layer.name}.bias`) : undefined,
      layer, ctx.shape(layer.input), layer.outChannels, layer.output, layer.name, ctx.lossForm === undefined, ctx.lossForm?.blocks !== undefined);
  },

  backward(ctx, layer, saved, dy) {
    const { g } = ctx;
    if (saved) {
      const inBlocks = ctx.lossForm?.blocks !== undefined;
      const dD = convTransposeBlocksGradOutput(g, dy, layer, ctx.shape(layer.input), layer.outChannels, layer.name, ctx.lossForm !== undefined, inBlocks);
      ctx.paramGrad(`${layer.name}.weight`, convTransposeBlocksGradWeight(g, dD, saved, layer, layer.inChannels, layer.outChannels, layer.name));
      if (layer.bias) ctx.paramGrad(`${layer.name}.bias`, biasGrad(g, dy, layer.name, inBlocks ? [0, 1, 2, 4, 5] : undefined));
      if (ctx.needsGrad(layer.input)) ctx.accumulate(layer.input, convTransposeBlocksGradInput(g, dD, saved, layer, ctx.shape(layer.input), layer.name));
      return;
    }
    ctx.paramGrad(`${layer.name}.weight`, convTransposeGradWeight(g, layer.input, dy, layer, ctx.shape(layer.input), ctx.shape(layer.output), layer.name));
    if (layer.bias) ctx.paramGrad(`${layer.name}.bias`, biasGrad(g, dy, layer.name));
    if (ctx.needsGrad(layer.input)) ctx.accumulate(layer.input, convTransposeGradInput(g, dy, ctx.param(`${layer.name}.weight`), layer, layer.name));
  },
};
