// Elementwise sum of two values of the same shape (residual connections, FCN's skips).
import type { AddLayer } from '../../model/layers.js';
import type { LayerKind } from './kind.js';

export const add: LayerKind<AddLayer, void> = {
  op: 'add',
  outputShape(layer, [a, b]) {
    if (a!.join() !== b!.join()) throw new Error(`add '${layer.output}' of [${a!.join(', ')}] and [${b!.join(', ')}]`);
    return a!;
  },
  emitEval({ g }, layer) {
    g.node('Add', [...layer.inputs], {}, layer.output);
  },
  forward({ g }, layer) {
    g.node('Add', [...layer.inputs], {}, layer.output);
  },
  backward(ctx, layer, _saved, dy) {
    ctx.accumulate(layer.inputs[0], dy);
    ctx.accumulate(layer.inputs[1], dy);
  },
};
