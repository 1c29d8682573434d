// 1x1 stride-1 convolutions as one MatMul: y[n] = W·x[n] with x[n] seen as a [Cin, H·W] matrix and
// W as [Cout, Cin] (no copy: NCHW rows are already the matrix's rows), plus the bias per row.
import type { ConvLayer } from '../model/layers.js';
import type { FcnArchitecture } from '../model/fcn.js';
import { isResNetNetwork } from '../model/torchvision.js';
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
  const shape = g.node('Concat', [g.constant([0, layer.outChannels], 'int64'), g.dims(layer.input, 2, 4)], { axis: 0 });
  g.node('Reshape', [y, shape], {}, layer.output);
}

/**
 * The 1x1 form measured faster for `arch`: MatMuls for torchvision's ResNet-50/101 networks, whose
 * bottleneck 1x1 convolutions at 65x65 (520x520 input, output stride 8) with 256-2048 channels ran at
 * about a third of their 3x3 convolutions' rate in ORT's NCHWc kernel (a 65-pixel row of 1024-2048
 * channels outgrows the core's L2 and is re-read for every 32 output channels), while the GEMM blocks
 * for the cache (the forward at 520x520 0.82x the time, interleaved A/B under load; bench/r50ab.ts);
 * ORT's Conv for the rest (not measured otherwise).
 */
export function defaultPointwiseForm(arch: FcnArchitecture): 'conv' | 'matmul' {
  return isResNetNetwork(arch.name) ? 'matmul' : 'conv';
}
