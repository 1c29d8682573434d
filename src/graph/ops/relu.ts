// ReLU. The backward needs where the output is positive: from the output itself when a trained
// convolution keeps it anyway, else from a bool mask (a quarter of the bytes).
import type { ReluLayer } from '../../model/layers.js';
import { reluGrad, reluMask } from '../backward.js';
import type { LayerKind } from './kind.js';

export const relu: LayerKind<ReluLayer, string | undefined> = {
  op: 'relu',
  outputShape: (_layer, [x]) => x!,
  emitEval({ g }, layer) {
    g.node('Relu', [layer.input], {}, layer.output);
  },
  forward(ctx, layer) {
    ctx.g.node('Relu', [layer.input], {}, layer.output);
    return ctx.needsGrad(layer.input) && !ctx.kept(layer.output) ? reluMask(ctx.g, layer.output, layer.output) : undefined;
  },
  backward(ctx, layer, mask, dy) {
    ctx.accumulate(layer.input, reluGrad(ctx.g, layer.output, dy, layer.output, mask));
  },
};
