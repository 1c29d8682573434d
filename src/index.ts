// The package surface, modelled on tfjs-models: load a model and segment, train, evaluate, and the
// data, metric and picture helpers around them. Every CLI command is a thin wrapper over a function
// here. The stages' pieces (compilers, the training step, readers, queue plumbing) are in
// `fcn/internals` (src/internals.ts).

// models: load (a checkpoint, a PyTorch/torchvision state_dict, a downloaded name, or fresh) and segment
export { loadModel, SegmentationModel } from "./infer/model.js";
export type { Segmentation, ClassShare, SegmentationModelOptions, FreshModelOptions } from "./infer/model.js";
export { predictFiles } from "./infer/predict.js";
export type { PredictFilesResult } from "./infer/predict.js";
export { fcnResNet18, torchvisionNetwork, TORCHVISION_NETWORKS, FCN_VARIANTS, bilinearKernel } from "./model/index.js";
export type { FcnArchitecture, FcnVariant, TorchvisionNetwork, ModelCard, Color, Normalization } from "./model/index.js";
export { loadCheckpoint, saveCheckpoint, importCheckpoint } from "./weights/index.js";
export type { Checkpoint } from "./weights/index.js";

// training and evaluation
export { train, TRAIN_DEFAULTS } from "./train/index.js";
export type { TrainOptions, TrainResult, EpochMetrics } from "./train/index.js";
export { demo } from "./train/demo.js";
export type { DemoOptions, DemoResult } from "./train/demo.js";
export { evaluate } from "./infer/evaluate.js";
export type { EvaluateOptions } from "./infer/evaluate.js";
export { scoreFolders } from "./infer/score.js";
export type { ScoreOptions } from "./infer/score.js";
export { ConfusionMatrix, metricsReport, formatMetricsTable } from "./eval/confusion.js";
export type { SegmentationMetrics, MetricsReport } from "./eval/confusion.js";

// data: datasets in any layout, their classes, images and masks, the synthetic set
export { openDataset, findDataset } from "./data/layouts.js";
export type { OpenOptions } from "./data/layouts.js";
export type { Dataset, Example, LayoutName } from "./data/dataset.js";
export { readLabelFile, labelsFromNames, vocLabels, ade20kLabels } from "./data/labels.js";
export type { LabelSpace } from "./data/labels.js";
export { VOC_CLASSES, VOC_COLORMAP, VOC_PALETTE, IGNORE_INDEX } from "./data/voc.js";
export type { Rgb } from "./data/voc.js";
export { ADE20K_CLASSES, ADE20K_PALETTE } from "./data/ade20k.js";
export { readImage, decodeImage, readMask, decodeMask, writeMask, encodeMask, writeImage } from "./data/image.js";
export type { RgbImage, LabelMap } from "./data/image.js";
export { generateSynthVoc } from "./data/synth.js";
export type { SynthOptions, SynthResult } from "./data/synth.js";

// pictures
export { labelToImage, overlay, imageGrid } from "./render/pictures.js";

// serving, downloads, scale-out
export { serve } from "./web/serve.js";
export type { ServeOptions, RunningServer } from "./web/serve.js";
export { createServer } from "./web/server.js";
export type { ServerOptions } from "./web/server.js";
export { downloadPublished, downloadVoc2012, resolveNamedWeights, DownloadError } from "./net/download.js";
export { PUBLISHED_NAMES } from "./net/registry.js";
export { predictQueued, evaluateQueued } from "./queue/producer.js";
export type { QueueProducerOptions, QueuePredictOptions, QueuePredictResult, QueueEvaluateOptions, QueueRunStats } from "./queue/producer.js";
export { startQueueWorker } from "./queue/worker.js";
export type { QueueWorkerOptions, QueueWorker } from "./queue/worker.js";
// --shard K/N and --merge: the split every copy of a job array agrees on, and the exact sum of the parts
export { parseShard, selectShard } from "./queue/shard.js";
export type { Shard } from "./queue/shard.js";
export { mergeMetricsFiles } from "./queue/merge.js";
export type { MergedMatrix } from "./queue/merge.js";

// --device: the ONNX Runtime execution provider every later model and training run uses
export { parseDevice, setDefaultDevice } from "./engine/session.js";
export type { Device, DeviceName } from "./engine/session.js";

export { FcnError, UsageError } from "./util/errors.js";
