// Convolution (torchvision's Conv2d): any kernel, stride, padding, dilation (atrous) and channel
// groups. Weight [out, in/groups, k, k], optional bias [out].
import type { ConvLayer } from '../../model/layers.js';
import { biasGrad, convGradInput, convGradWeight, convOutSize, depthwiseConvGrads, op, uniqueName, type GradWeightForm, type Shape4 } from '../backward.js';
import type { LayerKind, TrainContext } from './kind.js';
import { emitPointwise } from '../pointwise.js';
import { emitWinogradConv, winogradApplies } from '../winograd.js';
import { nchwcApplies, nchwcConv } from '../nchwc.js';
import { TAPS_AT_ONCE, type TrainGraphTuning } from '../tuning.js';

function attrs(layer: ConvLayer) {
  const d = layer.dilation ?? 1;
  const groups = layer.groups ?? 1;
  return {
    kernel_shape: [layer.kernel, layer.kernel], strides: [layer.stride, layer.stride],
    pads: [layer.pad, layer.pad, layer.pad, layer.pad], dilations: d !== 1 ? [d, d] : undefined, group: groups !== 1 ? groups : undefined,
  };
}

function inputs(layer: ConvLayer, param: (name: string) => string): string[] {
  const list = [layer.input, param(`${layer.name}.weight`)];
  if (layer.bias) list.push(param(`${layer.name}.bias`));
  return list;
}

/**
 * The weight-gradient form of a convolution with `cin` input channels per group whose batch's im2col
 * columns of all k² taps hold `columns` values: the 'auto…' choices of TrainGraphTuning resolved.
 */
function weightGradForm(form: Required<TrainGraphTuning>['convGradWeight'], cin: number, columns: number): GradWeightForm {
  if (form !== 'auto' && form !== 'autotap' && form !== 'autotapall') return form;
  if (cin < 8) return 'dilated';
  if (form === 'auto') return 'im2col';
  return form === 'autotapall' && columns <= TAPS_AT_ONCE ? 'tapconvall' : 'tapconv';
}

/** ORT's NCHWc block size when this trained convolution runs on its NCHWc kernels (../nchwc.ts), else undefined. */
function nchwcBlockOf({ nchwcBlock, tuning }: TrainContext, layer: ConvLayer): number | undefined {
  return nchwcApplies(layer.inChannels, layer.outChannels, layer.groups ?? 1, nchwcBlock, tuning.nchwcMinChannels) ? nchwcBlock : undefined;
}

export const conv: LayerKind<ConvLayer, void> = {
  op: 'conv',

  outputShape(layer, [x]) {
    const [n, c, h, w] = x!;
    if (c !== layer.inChannels) throw new Error(`${layer.name} expects ${layer.inChannels} channels, gets ${c}`);
    const groups = layer.groups ?? 1;
    if (layer.inChannels % groups || layer.outChannels % groups) throw new Error(`${layer.name}: ${groups} groups do not divide ${layer.inChannels} -> ${layer.outChannels} channels`);
    const out: Shape4 = [n, layer.outChannels, convOutSize(h, layer), convOutSize(w, layer)];
    if (out[2] < 1 || out[3] < 1) throw new Error(`${layer.name}: a ${h}x${w} input is smaller than the kernel's reach`);
    return out;
  },


  emitEval(ctx, layer) {
    if (ctx.pointwise?.(layer)) return emitPointwise(ctx, layer);
    const w = ctx.winograd !== undefined && winogradApplies(layer, ctx.winograd) ? ctx.weight(`${layer.name}.weight`) : undefined;
    if (w) {
      const b = layer.bias ? ctx.weight(`${layer.name}.bias`) : undefined;
      emitWinogradConv(ctx.g, layer.input, w, b, { inChannels: layer.inChannels, outChannels: layer.outChannels }, layer.name, 4, layer.output);
      return;
    }
    ctx.g.node('Conv', inputs(layer, ctx.param), attrs(layer), layer.output);
  },

  forward(ctx, layer) {
    const { g, param } = ctx;
    const block = nchwcBlockOf(ctx, layer);
    if (block) {
      const [x, w, b] = inputs(layer, param);
      nchwcConv(g, x!, w!, b, [layer.outChannels, layer.inChannels, layer.kernel, layer.kernel], attrs(layer), block, layer.output);
      return;
    }
    g.node('Conv', inputs(layer, param), attrs(layer), layer.output);
  },

  backward(ctx, layer, _saved, dy) {
    const { g, tuning } = ctx;
    const dyShape = ctx.shape(layer.output);
    const xShape = ctx.shape(layer.input);
    const cin = layer.inChannels / (layer.groups ?? 1);
    const wForm = weightGradForm(tuning.convGradWeight, cin, xShape[0] * cin * layer.kernel ** 2 * dyShape[2] * dyShape[3]);
    const dxForm = layer.stride === 1 ? tuning.convGradInput : 'convtranspose';
    const foldBatch = tuning.gradWeightBatch === 'auto';
    const w = ctx.param(`${layer.name}.weight`);
    const needInput = ctx.needsGrad(layer.input);
    if (layer.bias) ctx.paramGrad(`${layer.name}.bias`, biasGrad(g, dy, layer.name));
    const groups = layer.groups ?? 1;
    if (groups === 1) {
      ctx.paramGrad(`${layer.name}.weight`, convGradWeight(g, layer.input, dy, layer, xShape, dyShape, layer.name, wForm, foldBatch));
      if (needInput) ctx.accumulate(layer.input, convGradInput(g, dy, w, layer, xShape, dyShape, dxForm, layer.name, nchwcBlockOf(ctx, layer)));
      return;
    }
    if (groups === layer.inChannels && groups === layer.outChannels && ctx.tuning.depthwise === 'grouped') {
      // depthwise (MobileNet): one grouped op per gradient instead of one convolution per channel
      const r = depthwiseConvGrads(g, layer.input, dy, w, layer, xShape, dyShape, needInput, layer.name);
      ctx.paramGrad(`${layer.name}.weight`, r.dW);
      if (r.dx) ctx.accumulate(layer.input, r.dx);
      return;
    }
    // groups: group j's outputs read only group j's inputs through weight rows j·O/g ..: each group is
    // an ordinary convolution, differentiated on its slices and concatenated back
    const split = (v: string, channels: number, hint: string): string[] =>
      g.nodeN('Split', [v, g.constant(new Array<number>(groups).fill(channels / groups), 'int64')], { axis: 1 },
        Array.from({ length: groups }, () => uniqueName(g, `${layer.name}:${hint}`)));
    const xs = split(layer.input, layer.inChannels, 'xg');
    const dys = split(dy, layer.outChannels, 'dyg');
    const ws = g.nodeN('Split', [w, g.constant(new Array<number>(groups).fill(layer.outChannels / groups), 'int64')], { axis: 0 },
      Array.from({ length: groups }, () => uniqueName(g, `${layer.name}:wg`)));
    const xg: Shape4 = [xShape[0], xShape[1] / groups, xShape[2], xShape[3]];
    const dyg: Shape4 = [dyShape[0], dyShape[1] / groups, dyShape[2], dyShape[3]];
    const dW = xs.map((x, j) => convGradWeight(g, x, dys[j]!, layer, xg, dyg, `${layer.name}:g${j}`, wForm, foldBatch));
    ctx.paramGrad(`${layer.name}.weight`, op(g, 'Concat', dW, `${layer.name}:dW`, { axis: 0 }));
    if (needInput) {
      const dx = dys.map((d, j) => convGradInput(g, d, ws[j]!, layer, xg, dyg, dxForm, `${layer.name}:g${j}`));
      ctx.accumulate(layer.input, op(g, 'Concat', dx, `${layer.name}:dx`, { axis: 1 }));
    }
  },
};
