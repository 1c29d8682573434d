// The layer kinds by op name: every kind one module (see kind.ts for what a kind owns). Adding a kind
// is its Layer type in model/layers.ts, its parameters in model/params.ts (PARAMS), its module here
// and its entry in KINDS; the type checker asks for both entries.
import type { Layer } from '../../model/layers.js';
import type { LayerKind } from './kind.js';
import { conv } from './conv.js';
import { batchnorm } from './batchnorm.js';
import { relu } from './relu.js';
import { maxpool } from './maxpool.js';
import { add } from './add.js';
import { convtranspose } from './convtranspose.js';
import { resize } from './resize.js';
import { globalavgpool } from './globalavgpool.js';
import { concat } from './concat.js';
import { dropout } from './dropout.js';
import { hardswish } from './hardswish.js';
import { hardsigmoid } from './hardsigmoid.js';
import { sigmoid } from './sigmoid.js';
import { mul } from './mul.js';

type Kinds = { [K in Layer['op']]: LayerKind<Extract<Layer, { op: K }>, any> };

const KINDS: Kinds = { conv, batchnorm, relu, maxpool, add, convtranspose, resize, globalavgpool, concat, dropout,
  hardswish, hardsigmoid, sigmoid, mul };

/** The module that handles `layer`'s kind. */
export function kindOf<L extends Layer>(layer: L): LayerKind<L, unknown> {
  const kind = (KINDS as Record<string, LayerKind<any, any>>)[layer.op];
  if (!kind) throw new Error(`unknown layer kind '${(layer as { op: string }).op}'`);
  return kind as LayerKind<L, unknown>;
}

export type { LayerKind, EvalContext, TrainContext, BackwardContext, LossForm, StepInputDecl } from './kind.js';
