// ReLU. The backward needs where the output is positive: from the output itself when a trained
// convolution keeps it anyway, else from a bool mask (a quarter of the bytes).
import type { ReluLayer } from '../../model/layers.js';
import { applyReluMask, reluGrad, reluMask } from '../backward.js';
import type { LayerKind } from './kind.js';

export const relu: LayerKind<ReluLayer, string | undefined> = {
  op: 'relu',
  outputShape: (_layer, [x]) => x!,
  emitEval({ g }, layer) {
    g.node('Relu', [layer.input], {}, layer.output);
  },
  forward(ctx, layer) {
    if (!ctx.needsGrad(layer.input) || ctx.kept(layer.output)) {
      ctx.g.node('Relu', [layer.input], {}, layer.output);
      return undefined;
    }
    // the mask first (x > 0 ⟺ relu(x) > 0), the output selected by it: ONNX Runtime orders nodes by a
    // depth-first walk back from the outputs, and a mask read only by the backward would otherwise be
    // computed there, keeping the full-size output alive through the rest of the forward
    const mask = reluMask(ctx.g, layer.input, layer.output);
    applyReluMask(ctx.g, mask, layer.input, layer.output, ctx.tuning.relu, layer.output);
    return mask;
  },
  backward(ctx, layer, mask, dy) {
    ctx.accumulate(layer.input, reluGrad(ctx.g, layer.output, dy, layer.output, mask, ctx.tuning.relu));
  },
};
