// Dropout: identity at inference. In training y = x·keep/(1 − p) with keep a Bernoulli(1 − p) mask
// the step draws from its seed and feeds (so a resumed run draws the same masks); the backward
// multiplies by the same mask: dx = dy·keep/(1 − p).
import type { DropoutLayer } from '../../model/layers.js';
import { op } from '../backward.js';
import type { LayerKind } from './kind.js';

export const dropout: LayerKind<DropoutLayer, string | undefined> = {
  op: 'dropout',
  outputShape(layer, [x]) {
    if (!(layer.p >= 0 && layer.p < 1)) throw new Error(`dropout '${layer.output}': p must be in [0, 1), got ${layer.p}`);
    return x!;
  },
  emitEval({ g }, layer) {
    g.node('Identity', [layer.input], {}, layer.output);
  },
  forward(ctx, layer) {
    const { g } = ctx;
    if (layer.p === 0) {
      g.node('Identity', [layer.input], {}, layer.output);
      return undefined;
    }
    const keep = ctx.stepInput({ name: `${layer.output}:keep`, dtype: 'bool', shape: [...ctx.shape(layer.input)], keepMask: { p: layer.p } });
    const scaled = op(g, 'Mul', [layer.input, g.constant(1 / (1 - layer.p))], `${layer.output}:scaled`);
    g.node('Where', [keep, scaled, g.constant(0)], {}, layer.output);
    return keep;
  },
  backward(ctx, layer, keep, dy) {
    if (!ctx.needsGrad(layer.input)) return;
    const { g } = ctx;
    if (!keep) {
      ctx.accumulate(layer.input, dy);
      return;
    }
    const scaled = op(g, 'Mul', [dy, g.constant(1 / (1 - layer.p))], `${layer.output}:dyscaled`);
    ctx.accumulate(layer.input, op(g, 'Where', [keep, scaled, g.constant(0)], `${layer.output}:dx`));
  },
};
