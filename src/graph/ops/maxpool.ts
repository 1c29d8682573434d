// Max pooling; the training forward keeps the argmax indices and the backward scatters dy to them.
import type { MaxPoolLayer } from '../../model/layers.js';
import { convOutSize, maxPoolGrad, maxPoolWithIndices } from '../backward.js';
import type { LayerKind } from './kind.js';

function attrs(layer: MaxPoolLayer) {
  return { kernel_shape: [layer.kernel, layer.kernel], strides: [layer.stride, layer.stride], pads: [layer.pad, layer.pad, layer.pad, layer.pad] };
}

export const maxpool: LayerKind<MaxPoolLayer, string | undefined> = {
  op: 'maxpool',
  outputShape: (layer, [x]) => [x![0], x![1], convOutSize(x![2], layer), convOutSize(x![3], layer)],
  emitEval({ g }, layer) {
    g.node('MaxPool', [layer.input], attrs(layer), layer.output);
  },
  forward(ctx, layer) {
    if (!ctx.needsGrad(layer.input)) {
      ctx.g.node('MaxPool', [layer.input], attrs(layer), layer.output);
      return undefined;
    }
    return maxPoolWithIndices(ctx.g, layer.input, layer, layer.output, layer.output);
  },
  backward(ctx, layer, indices, dy) {
    ctx.accumulate(layer.input, maxPoolGrad(ctx.g, dy, indices!, ctx.shape(layer.input), layer.output, ctx.runtimeZero?.()));
  },
};
