// Logistic sigmoid (nn.Sigmoid, LR-ASPP's scale branch): y = 1/(1 + e^−x); dy/dx = y·(1 − y), so the
// backward reads the output.
import type { SigmoidLayer } from '../../model/layers.js';
import { op } from '../backward.js';
import type { LayerKind } from './kind.js';

export const sigmoid: LayerKind<SigmoidLayer, void> = {
  op: 'sigmoid',
  outputShape: (_layer, [x]) => x!,
  emitEval({ g }, layer) {
    g.node('Sigmoid', [layer.input], {}, layer.output);
  },
  forward({ g }, layer) {
    g.node('Sigmoid', [layer.input], {}, layer.output);
  },
  backward(ctx, layer, _saved, dy) {
    if (!ctx.needsGrad(layer.input)) return;
    const { g } = ctx;
    const y = layer.output;
    const h = `${y}:d`;
    const d = op(g, 'Mul', [y, op(g, 'Sub', [g.constant(1), y], h)], h);
    ctx.accumulate(layer.input, op(g, 'Mul', [dy, d], `${y}:dx`));
  },
};
