// The training stage: the loop (train), its checkpoint/resume state, the curves picture, and the
// compiled SGD step it drives.
export { train, formatEpoch, TRAIN_DEFAULTS } from './loop.js';
export type { TrainOptions, TrainResult } from './loop.js';
export { TRAIN_OPTIONS, resolveTrainOptions } from './options.js';
export type { TrainSettings, TrainOptionKey, OptionNamer } from './options.js';
export type { EpochMetrics, RunConfig, TrainState } from './state.js';
export { TRAIN_STATE_KEY, decodeTrainState } from './state.js';
export { renderCurves, writeCurves } from '../render/curves.js';
export { TrainStep } from './step.js';
export type { StepResult, TrainStepOptions } from './step.js';
