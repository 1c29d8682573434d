// Global average pooling to [N, C, 1, 1] (nn.AdaptiveAvgPool2d(1), DeepLab's image-pooling branch);
// the backward spreads dy/(H·W) over the input.
import type { GlobalAvgPoolLayer } from '../../model/layers.js';
import { op } from '../backward.js';
import type { LayerKind } from './kind.js';

export const globalavgpool: LayerKind<GlobalAvgPoolLayer, void> = {
  op: 'globalavgpool',
  outputShape: (_layer, [x]) => [x![0], x![1], 1, 1],
  emitEval({ g }, layer) {
    g.node('GlobalAveragePool', [layer.input], {}, layer.output);
  },
  forward({ g }, layer) {
    g.node('GlobalAveragePool', [layer.input], {}, layer.output);
  },
  backward(ctx, layer, _saved, dy) {
    if (!ctx.needsGrad(layer.input)) return;
    const { g } = ctx;
    const shape = ctx.shape(layer.input);
    const scaled = op(g, 'Mul', [dy, g.constant(1 / (shape[2] * shape[3]))], `${layer.output}:dymean`);
    ctx.accumulate(layer.input, op(g, 'Expand', [scaled, g.constant([...shape], 'int64')], `${layer.output}:dx`));
  },
};
