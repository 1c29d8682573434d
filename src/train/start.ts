// Where a run's weights come from: the saved run (resume), a full checkpoint (init), torchvision's
// ImageNet body (backbone, or the cached copy), or the seed's random initialisation. Each start also
// brings the model card the run trains and saves with (a checkpoint's own, else the default).
import { resolve } from 'node:path';
import { backboneHint, findCachedBackbone } from '../net/download.js';
import { defaultUpsampler, fcnResNet18, GROUPED_ABOVE_CLASSES, type FcnArchitecture, type FcnVariant } from '../model/fcn.js';
import { imagenetBodyName, isTorchvisionNetwork, torchvisionNetwork, type TorchvisionArchitecture } from '../model/torchvision.js';
import { checkArchitectureName } from '../weights/torchvision.js';
import { initParameters, seededRandom, type TensorMap } from '../model/params.js';
import { defaultCard, type ModelCard } from '../model/card.js';
import { loadBackbone, loadCheckpoint, type Checkpoint } from '../weights/checkpoint.js';
import { FcnError } from '../util/errors.js';
import { vocLabels, type LabelSpace } from '../data/labels.js';
import { adaptClassLayers } from './classes.js';
import type { OptionNamer, TrainSettings } from './options.js';
import { checkResumable, decodeTrainState, optimizerFromExtra, runConfig, type TrainState } from './state.js';
import type { OptimizerState } from './step.js';
import { exists } from './checkpoints.js';
import { initParametersParallel } from './initworker.js';

/** VOC's 21 classes: the class count of a fresh network. */
const DEFAULT_NUM_CLASSES = 21;

export interface Start {
  arch: FcnArchitecture;
  weights: TensorMap;
  /** The saved optimiser state when resuming. */
  optimizer?: OptimizerState;
  card: ModelCard;
  /** The saved run's state when resuming. */
  state?: TrainState;
  /** Where the weights came from: 'scratch', 'imagenet:<file>', 'checkpoint:<file>' (the original run's when resuming). */
  init: string;
}

function cardOf(ckpt: Checkpoint): ModelCard {
  return { classes: ckpt.classes, colors: ckpt.colors, normalization: ckpt.normalization };
}

/** The book's variant the settings ask for (arch names the book's nets too, as variant's alias). */
function bookVariant(s: TrainSettings): FcnVariant {
  return s.arch !== null && !isTorchvisionNetwork(s.arch) ? (s.arch as FcnVariant) : s.variant;
}

/** A fresh book network for `numClasses`; says when its upsamplers are per-class (grouped). */
function bookNetwork(s: TrainSettings, numClasses: number, log: (line: string) => void, name: OptionNamer): FcnArchitecture {
  const upsampler = s.upsampler ?? defaultUpsampler(numClasses);
  const arch = fcnResNet18({ numClasses, variant: bookVariant(s), upsampler });
  if (upsampler === 'grouped') {
    const why = s.upsampler ? `${name('upsampler')} grouped` : `${numClasses} classes (more than ${GROUPED_ABOVE_CLASSES})`;
    log(`${why}: the upsamplers are per-class (grouped) transposed convs, bilinear-initialised ` +
      `(${numClasses}·k² weights each instead of ${numClasses}²·k²; ${name('upsampler')} full for the book's)`);
  }
  return arch;
}

/** The upsampler option shapes the book's transposed convs; torchvision's networks have none to shape. */
function refuseUpsampler(s: TrainSettings, network: string, name: OptionNamer): void {
  if (s.upsampler !== undefined) {
    throw new FcnError(`${name('upsampler')} ${s.upsampler} is for the book's networks (fcn32s, fcn16s, fcn8s); ${network} brings its logits back by bilinear resizing (leave ${name('upsampler')} out)`, 2);
  }
}

async function resumeFrom(s: TrainSettings, lastPath: string, name: OptionNamer): Promise<Start> {
  if (!(await exists(lastPath))) {
    throw new FcnError(`${lastPath}: no checkpoint to resume from (start a run without resuming, or resume from the output folder of the run to continue)`);
  }
  const ckpt = await loadCheckpoint(lastPath);
  const state = decodeTrainState(ckpt.metadata, lastPath);
  checkResumable(state.config, runConfig(s, ckpt.arch.numClasses, state.config.init), lastPath, name);
  // torchvision's networks resume as the network the checkpoint holds; arch, when given, must agree
  if (isTorchvisionNetwork(ckpt.arch.name) || (s.arch !== null && isTorchvisionNetwork(s.arch))) {
    if (s.arch !== null) checkArchitectureName(ckpt.arch.name, s.arch, lastPath);
  } else if (ckpt.arch.variant !== bookVariant(s)) {
    throw new FcnError(`${lastPath}: cannot resume: the checkpoint is ${ckpt.arch.name}, not ${bookVariant(s)}`);
  }
  return { arch: ckpt.arch, weights: ckpt.weights, optimizer: optimizerFromExtra(ckpt.extra), card: cardOf(ckpt), state, init: state.config.init };
}

/** The card of a network trained on a dataset: its classes and colours, default normalisation. */
function datasetCard(labels: LabelSpace): ModelCard {
  return { ...defaultCard(labels.classes.length), classes: [...labels.classes], colors: labels.colors.map((c) => [c[0], c[1], c[2]]) };
}

export async function startingPoint(s: TrainSettings, lastPath: string, log: (line: string) => void, name: OptionNamer, labels: LabelSpace): Promise<Start> {
  if (s.resume) return resumeFrom(s, lastPath, name);
  if (s.init) {
    // the network (and with it the loss) is recognised from the file; arch only checks it
    const ckpt = await loadCheckpoint(s.init, { arch: s.arch ?? undefined });
    if (isTorchvisionNetwork(ckpt.arch.name)) refuseUpsampler(s, ckpt.arch.name, name);
    if (!isTorchvisionNetwork(ckpt.arch.name) && ckpt.arch.variant !== bookVariant(s)) {
      throw new FcnError(`${s.init}: the checkpoint is ${ckpt.arch.name} but ${name('variant')} is ${s.variant} (pass ${name('variant')} ${ckpt.arch.variant})`);
    }
    log(`starting from the weights in ${s.init} (${ckpt.arch.name}, ${ckpt.arch.numClasses} classes)`);
    const init = `checkpoint:${resolve(s.init)}`;
    // a dataset that declares no classes (no class file, no class list) is read in the checkpoint's, as
    // eval reads it; otherwise the dataset's names and colours, with the checkpoint's normalisation
    const keeps = labels.source === vocLabels().source || ckpt.arch.numClasses === labels.classes.length;
    // the checkpoint's network is kept as it is: its upsamplers too (a new label space re-heads it and may change them)
    if (keeps && s.upsampler && ckpt.arch.upsampler && s.upsampler !== ckpt.arch.upsampler) {
      throw new FcnError(`${s.init}: the checkpoint's upsamplers are ${ckpt.arch.upsampler}, not ${s.upsampler} (leave ${name('upsampler')} out to continue with them)`);
    }
    if (labels.source === vocLabels().source) return { arch: ckpt.arch, weights: ckpt.weights, card: cardOf(ckpt), init };
    const card: ModelCard = { ...cardOf(ckpt), classes: datasetCard(labels).classes, colors: datasetCard(labels).colors };
    if (ckpt.arch.numClasses === labels.classes.length) return { arch: ckpt.arch, weights: ckpt.weights, card, init };
    // another label space: keep the body (at its widths), start the class layers afresh
    const arch = isTorchvisionNetwork(ckpt.arch.name)
      ? torchvisionNetwork(ckpt.arch.name, { ...(ckpt.arch as TorchvisionArchitecture).options, numClasses: labels.classes.length })
      : bookNetwork(s, labels.classes.length, log, name);
    const adapted = adaptClassLayers(ckpt.weights, arch, initParameters(arch, seededRandom(s.seed)), ckpt.arch);
    log(`the checkpoint has ${ckpt.arch.numClasses} classes, the dataset ${labels.classes.length} (${labels.source}): kept the body, ` +
      `re-initialised the class layers (${adapted.reinitialised.join(', ')})`);
    return { arch, weights: adapted.weights, card, init };
  }
  const torchvision = s.arch !== null && isTorchvisionNetwork(s.arch) ? s.arch : undefined;
  if (torchvision) refuseUpsampler(s, torchvision, name);
  const arch = torchvision ? torchvisionNetwork(torchvision, { numClasses: labels.classes.length })
    : bookNetwork(s, labels.classes.length, log, name);
  const weights = await initParametersParallel(arch, s.seed);
  const card = datasetCard(labels);
  // the cached ResNet-18 is the book's body only: torchvision's networks take ResNet-50/101 as backbone
  const backbone = s.backbone ?? (s.scratch || torchvision ? undefined : findCachedBackbone());
  if (backbone) {
    for (const [key, t] of await loadBackbone(backbone, arch)) weights.set(key, t);
    log(`starting from ImageNet weights: ${backbone}`);
    return { arch, weights, card, init: `imagenet:${resolve(backbone)}` };
  }
  if (torchvision) log(`starting ${arch.name} from random weights (its ImageNet body: \`fcn download ${imagenetBodyName(torchvision)}\`, then pass it as ${name('backbone')})`);
  else log(s.scratch ? 'starting from random weights' : backboneHint());
  if (s.freezeBackbone) log(`note: ${name('freezeBackbone')} without ImageNet weights trains the head on a random, frozen body`);
  return { arch, weights, card, init: 'scratch' };
}
