// The model on either side of the queue, from whatever `--model` takes locally: our checkpoint, a
// PyTorch or torchvision state_dict, a downloaded network's name, or an ONNX file fcn export / fcn
// quantize wrote. Both sides derive the same identity from the same source, so a worker can refuse
// jobs made for another model; the producer needs only the identity and the card (classes, colours).
import { createHash } from 'node:crypto';
import type { FcnArchitecture } from '../model/fcn.js';
import type { ModelCard } from '../model/card.js';
import { loadCheckpoint, type Checkpoint } from '../weights/checkpoint.js';
import { SegmentationModel, type SegmentationModelOptions } from '../infer/model.js';
import { modelPath } from '../infer/named.js';
import { isOnnxPath, readFcnOnnx } from '../infer/onnx-file.js';
import { FcnError } from '../util/errors.js';
import { modelIdentity } from './identity.js';

export interface QueueModel {
  /** modelIdentity() of the weights; for an ONNX file, a SHA-256 of its bytes (the graph is the model). */
  identity: string;
  arch: FcnArchitecture;
  card: ModelCard;
  /** Compiles the model for segmentation (the worker's side). */
  open(opts: SegmentationModelOptions): Promise<SegmentationModel>;
}

/** Reads `source` as loadModel does (`arch`: the network the file must hold, as loadModel's option). */
export async function openQueueModel(source: string | Checkpoint, arch?: string): Promise<QueueModel> {
  if (typeof source === 'string' && isOnnxPath(source)) {
    const file = await readFcnOnnx(source);
    if (arch !== undefined && file.arch.name !== arch && file.arch.variant !== arch) throw new FcnError(`${source}: holds ${file.arch.name}, not ${arch}`);
    const identity = createHash('sha256').update('fcn-model-identity/onnx/1\0').update(file.bytes).digest('hex');
    return { identity, arch: file.arch, card: file.card, open: (opts) => SegmentationModel.fromOnnx(file, opts) };
  }
  const ckpt = typeof source === 'string' ? await loadCheckpoint(modelPath(source), { arch }) : source;
  return {
    identity: modelIdentity(ckpt),
    arch: ckpt.arch,
    card: { classes: ckpt.classes, colors: ckpt.colors, normalization: ckpt.normalization },
    open: (opts) => SegmentationModel.fromCheckpoint(ckpt, opts),
  };
}
