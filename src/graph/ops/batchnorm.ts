// Batch normalisation: eval mode with the running statistics; train mode with the batch's, updating
// the running statistics as PyTorch does (momentum, unbiased variance).
import type { BatchNormLayer } from '../../model/layers.js';
import { f } from '../onnx.js';
import { batchNormGrad, batchNormRunningUpdate, batchNormTrain, type BatchNormSaved } from '../backward.js';
import type { LayerKind } from './kind.js';

export const batchnorm: LayerKind<BatchNormLayer, BatchNormSaved> = {
  op: 'batchnorm',

  outputShape(layer, [x]) {
    if (x![1] !== layer.channels) throw new Error(`${layer.name} expects ${layer.channels} channels, gets ${x![1]}`);
    return x!;
  },


  emitEval({ g, param }, layer) {
    const p = (s: string) => param(`${layer.name}.${s}`);
    g.node('BatchNormalization', [layer.input, p('weight'), p('bias'), p('running_mean'), p('running_var')], { epsilon: f(layer.eps) }, layer.output);
  },

  forward(ctx, layer) {
    const { g, param } = ctx;
    const out = batchNormTrain(g, layer.input, param(`${layer.name}.weight`), param(`${layer.name}.bias`), layer.eps,
      ctx.shape(layer.input), layer.output, layer.name, ctx.tuning.batchNorm);
    const rm = `${layer.name}.running_mean`;
    const rv = `${layer.name}.running_var`;
    batchNormRunningUpdate(g, out, param(rm), param(rv), layer.momentum, [ctx.updated(rm), ctx.updated(rv)], layer.name);
    return out.saved;
  },

  backward(ctx, layer, saved, dy) {
    const r = batchNormGrad(ctx.g, dy, saved, ctx.param(`${layer.name}.weight`), layer.name, ctx.needsGrad(layer.input));
    ctx.paramGrad(`${layer.name}.weight`, r.dgamma);
    ctx.paramGrad(`${layer.name}.bias`, r.dbeta);
    if (r.dx) ctx.accumulate(layer.input, r.dx);
  },
};
