// What the pieces of an epoch share: the resolved settings, the network and its card, the data, the
// compiled step, the data RNG and where the files go. Built once by train() (loop.ts).
import type { VocDataset } from '../data/dataset.js';
import type { Rng } from '../data/rng.js';
import type { FcnArchitecture } from '../model/fcn.js';
import type { ModelCard } from '../model/card.js';
import type { OptionNamer, TrainSettings } from './options.js';
import type { RunFiles } from './checkpoints.js';
import type { TrainStep } from './step.js';

export interface Run {
  settings: TrainSettings;
  /** How messages name an option. */
  name: OptionNamer;
  log: (line: string) => void;
  /** Progress bars on stderr. */
  progress: boolean;
  files: RunFiles;
  arch: FcnArchitecture;
  card: ModelCard;
  trainDs: VocDataset;
  valDs: VocDataset;
  /** The training ids usable at the crop size. */
  ids: string[];
  stepsPerEpoch: number;
  step: TrainStep;
  /** The data RNG: order, crops and flips; its state at an epoch boundary is saved for resume. */
  rng: Rng;
}
