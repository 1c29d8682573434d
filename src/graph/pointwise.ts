// 1x1 stride-1 convolutions as one MatMul: y[n] = W·x[n] with x[n] seen as a [Cin, H·W] matrix and
// W as [Cout, Cin] (no copy: NCHW rows are already the matrix's rows), plus the bias per row.
import type { ConvLayer } from '../model/layers.js';
import type { EvalContext } from './ops/kind.js';

/** Whether `layer` is a convolution the MatMul form computes: 1x1 kernel, stride 1, no padding, one group. */
export function pointwiseApplies(layer: ConvLayer): boolean {
  return layer.kernel === 1 && layer.stride === 1 && layer.pad === 0 && (layer.groups ?? 1) === 1;
}

export function emitPointwise({ g, weight }: EvalContext, layer: ConvLayer): void {
  const name = `${layer.name}.weight`;
  const w = weight(name);
  if (!w) throw new Error(`emitPointwise: ${layer.name}'s weights are not baked in`);
  const wm = g.initializer(`${name}:matrix`, 'float32', [layer.outChannels, layer.inChannels], w);
  const x = g.node('Reshape', [layer.input, g.constant([0, 0, -1], 'int64')]);
  let y = g.node('MatMul', [wm, x]);
  if (layer.bias) {
    const b = weight(`${layer.name}.bias`)!;
    y = g.node('Add', [y, g.initializer(`${layer.name}.bias:column`, 'float32', [layer.outChannels, 1], b)]);
  }
  const hw = g.node('Slice', [g.node('Shape', [layer.input]), g.constant([2], 'int64'), g.constant([4], 'int64')]);
  const shape = g.node('Concat', [g.constant([0, layer.outChannels], 'int64'), hw], { axis: 0 });
  g.node('Reshape', [y, shape], {}, layer.output);
}
