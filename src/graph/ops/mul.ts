// Elementwise product of two values with broadcasting over size-1 dimensions (NumPy's rule, equal
// rank): squeeze-and-excitation's and LR-ASPP's gating, [N, C, H, W]·[N, C, 1, 1]. For y = a·b,
// da = dy·b and db = dy·a, each summed over the dimensions its operand was broadcast along.
import type { MulLayer } from '../../model/layers.js';
import { op, type Shape4 } from '../backward.js';
import type { LayerKind } from './kind.js';

export const mul: LayerKind<MulLayer, void> = {
  op: 'mul',
  outputShape(layer, [a, b]) {
    const out = a!.map((d, i) => {
      const e = b![i]!;
      if (d !== e && d !== 1 && e !== 1) throw new Error(`mul '${layer.output}' of [${a!.join(', ')}] and [${b!.join(', ')}]: dimension ${i} neither equal nor 1`);
      return Math.max(d, e);
    });
    return out as Shape4;
  },
  emitEval({ g }, layer) {
    g.node('Mul', [...layer.inputs], {}, layer.output);
  },
  forward({ g }, layer) {
    g.node('Mul', [...layer.inputs], {}, layer.output);
  },
  backward(ctx, layer, _saved, dy) {
    const { g } = ctx;
    const out = ctx.shape(layer.output);
    const [a, b] = layer.inputs;
    const grad = (self: string, other: string, which: string): void => {
      if (!ctx.needsGrad(self)) return;
      const full = op(g, 'Mul', [dy, other], `${layer.output}:d${which}`);
      const shape = ctx.shape(self);
      const axes = shape.flatMap((d, i) => (d === 1 && out[i] !== 1 ? [i] : []));
      ctx.accumulate(self, axes.length === 0 ? full
        : op(g, 'ReduceSum', [full, g.constant(axes, 'int64')], `${layer.output}:d${which}sum`, { keepdims: 1 }));
    };
    grad(a, b, 'a');
    grad(b, a, 'b');
  },
};
