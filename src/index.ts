// The package surface: every CLI command is a thin wrapper over a function exported here.
export { VOC_CLASSES, VOC_COLORMAP, VOC_PALETTE, IGNORE_INDEX } from "./data/voc.js";
export type { Rgb } from "./data/voc.js";
export { readImage, decodeImage, readMask, decodeMask, writeMask, encodeMask, writeImage } from "./data/image.js";
export type { RgbImage, LabelMap } from "./data/image.js";
export { FcnError, UsageError } from "./util/errors.js";
export { createServer, modelInfo } from "./web/server.js";
export type { ServerOptions, ModelInfo } from "./web/server.js";
export { serve } from "./web/serve.js";
export type { ServeOptions, RunningServer } from "./web/serve.js";
export { downloadVoc2012, downloadResnet18, downloadFile, findCachedBackbone, backboneHint, defaultDownloadDir, DownloadError, VOC2012_TRAINVAL, RESNET18_IMAGENET } from "./data/download.js";
export type { FetchOptions, DownloadOptions, DownloadResult, Voc2012Result, Resnet18Result, DownloadFailure } from "./data/download.js";
export { extractTar } from "./data/archive.js";
export { ConfusionMatrix, metricsReport, formatMetricsTable } from "./eval/confusion.js";
export type { SegmentationMetrics, MetricsReport } from "./eval/confusion.js";
export { labelToImage, overlay, classesPresent, legendImage, imageGrid, gridLayout, showExamples } from "./infer/pictures.js";
export type { ClassPresence, LegendEntry, GridOptions, GridLayout, LayoutOptions, ShowExample, ShowOptions } from "./infer/pictures.js";
export { scoreFolders } from "./infer/score.js";
export type { ScoreOptions } from "./infer/score.js";
