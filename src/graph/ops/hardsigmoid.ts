// Hard sigmoid (nn.Hardsigmoid, MobileNetV3's squeeze-and-excitation gate): y = relu6(x + 3)/6 =
// clamp(x/6 + ½, 0, 1), ONNX's HardSigmoid with alpha 1/6, beta ½. Its derivative is 1/6 strictly
// inside (−3, 3) and 0 outside (PyTorch's hardsigmoid_backward). The backward keeps the input.
import type { HardsigmoidLayer } from '../../model/layers.js';
import { f } from '../onnx.js';
import { op } from '../backward.js';
import type { LayerKind } from './kind.js';

const attrs = { alpha: f(1 / 6), beta: f(0.5) };

export const hardsigmoid: LayerKind<HardsigmoidLayer, void> = {
  op: 'hardsigmoid',
  outputShape: (_layer, [x]) => x!,
  emitEval({ g }, layer) {
    g.node('HardSigmoid', [layer.input], attrs, layer.output);
  },
  forward({ g }, layer) {
    g.node('HardSigmoid', [layer.input], attrs, layer.output);
  },
  backward(ctx, layer, _saved, dy) {
    if (!ctx.needsGrad(layer.input)) return;
    const { g } = ctx;
    const x = layer.input;
    const h = `${layer.output}:d`;
    const inside = op(g, 'And', [op(g, 'Greater', [x, g.constant(-3)], h), op(g, 'Less', [x, g.constant(3)], h)], h);
    const scaled = op(g, 'Mul', [dy, g.constant(1 / 6)], h);
    ctx.accumulate(x, op(g, 'Where', [inside, scaled, g.constant(0)], `${layer.output}:dx`));
  },
};
