// Hard swish (nn.Hardswish, MobileNetV3): y = x·relu6(x + 3)/6, i.e. 0 for x ≤ −3, x for x ≥ 3 and
// x·(x + 3)/6 between. Its derivative, as PyTorch's hardswish_backward takes it at the kinks:
// 0 for x < −3, x/3 + ½ for −3 ≤ x ≤ 3, 1 for x > 3. The backward keeps the input.
import type { HardswishLayer } from '../../model/layers.js';
import { op } from '../backward.js';
import type { LayerKind } from './kind.js';

export const hardswish: LayerKind<HardswishLayer, void> = {
  op: 'hardswish',
  outputShape: (_layer, [x]) => x!,
  emitEval({ g }, layer) {
    g.node('HardSwish', [layer.input], {}, layer.output);
  },
  forward({ g }, layer) {
    g.node('HardSwish', [layer.input], {}, layer.output);
  },
  backward(ctx, layer, _saved, dy) {
    if (!ctx.needsGrad(layer.input)) return;
    const { g } = ctx;
    const x = layer.input;
    const h = `${layer.output}:d`;
    const slope = op(g, 'Add', [op(g, 'Mul', [x, g.constant(1 / 3)], h), g.constant(0.5)], h);
    const upper = op(g, 'Where', [op(g, 'Greater', [x, g.constant(3)], h), g.constant(1), slope], h);
    const d = op(g, 'Where', [op(g, 'Less', [x, g.constant(-3)], h), g.constant(0), upper], h);
    ctx.accumulate(x, op(g, 'Mul', [dy, d], `${layer.output}:dx`));
  },
};
