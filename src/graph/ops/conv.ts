// Convolution (torchvision's Conv2d): any kernel, stride, padding and dilation (atrous); channel
// groups at inference. Weight [out, in/groups, k, k], optional bias [out].
import type { ConvLayer } from '../../model/layers.js';
import { biasGrad, convGradInput, convGradWeight, convOutSize, type Shape4 } from '../backward.js';
import type { LayerKind } from './kind.js';

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


  emitEval({ g, param }, layer) {
    g.node('Conv', inputs(layer, param), attrs(layer), layer.output);
  },

  forward({ g, param }, layer) {
    if ((layer.groups ?? 1) !== 1) throw new Error(`${layer.name}: the training step has no grouped convolutions`);
    g.node('Conv', inputs(layer, param), attrs(layer), layer.output);
  },

  backward(ctx, layer, _saved, dy) {
    const { g, tuning } = ctx;
    const dyShape = ctx.shape(layer.output);
    const xShape = ctx.shape(layer.input);
    const wForm = tuning.convGradWeight === 'auto' ? (layer.inChannels < 8 ? 'dilated' : 'im2col')
      : tuning.convGradWeight === 'autotap' ? (layer.inChannels < 8 ? 'dilated' : 'tapconv') : tuning.convGradWeight;
    ctx.paramGrad(`${layer.name}.weight`, convGradWeight(g, layer.input, dy, layer, xShape, dyShape, layer.name, wForm));
    if (layer.bias) ctx.paramGrad(`${layer.name}.bias`, biasGrad(g, dy, layer.name));
    if (ctx.needsGrad(layer.input)) {
      const form = layer.stride === 1 ? tuning.convGradInput : 'convtranspose';
      ctx.accumulate(layer.input, convGradInput(g, dy, ctx.param(`${layer.name}.weight`), layer, xShape, dyShape, form, layer.name));
    }
  },
};
