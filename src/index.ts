// The package surface: every CLI command is a thin wrapper over a function exported here.
export { VOC_CLASSES, VOC_COLORMAP, VOC_PALETTE, IGNORE_INDEX } from "./data/voc.js";
export type { Rgb } from "./data/voc.js";
export { readImage, decodeImage, readMask, decodeMask, writeMask, encodeMask, writeImage } from "./data/image.js";
export type { RgbImage, LabelMap } from "./data/image.js";
export { FcnError, UsageError } from "./util/errors.js";
