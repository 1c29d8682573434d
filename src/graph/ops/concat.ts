// Concatenation along the channels; the backward splits dy back into the inputs' channel ranges.
import type { ConcatLayer } from '../../model/layers.js';
import { uniqueName } from '../backward.js';
import type { LayerKind } from './kind.js';

export const concat: LayerKind<ConcatLayer, void> = {
  op: 'concat',
  outputShape(layer, shapes) {
    const [n, , h, w] = shapes[0]!;
    for (const [i, s] of shapes.entries()) {
      if (s[0] !== n || s[2] !== h || s[3] !== w) {
        throw new Error(`concat '${layer.output}': '${layer.inputs[i]}' is [${s.join(', ')}], '${layer.inputs[0]}' is [${shapes[0]!.join(', ')}]`);
      }
    }
    return [n, shapes.reduce((c, s) => c + s[1], 0), h, w];
  },
  emitEval({ g }, layer) {
    g.node('Concat', [...layer.inputs], { axis: 1 }, layer.output);
  },
  forward({ g }, layer) {
    g.node('Concat', [...layer.inputs], { axis: 1 }, layer.output);
  },
  backward(ctx, layer, _saved, dy) {
    const { g } = ctx;
    const sizes = layer.inputs.map((v) => ctx.shape(v)[1]);
    const parts = g.nodeN('Split', [dy, g.constant(sizes, 'int64')], { axis: 1 }, layer.inputs.map(() => uniqueName(g, `${layer.output}:dpart`)));
    layer.inputs.forEach((v, i) => ctx.accumulate(v, parts[i]!));
  },
};
