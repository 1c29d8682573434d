// The model card: what a user needs besides the weights to read a network's output and feed it
// input: class names, their colours, and the input normalisation. Every stage reads it from here
// (the trainer writes it into the checkpoint, inference, the pictures, the server and the exported
// ONNX graph read it back), so a network trained with other classes or another normalisation
// predicts exactly as it was trained.
import { VOC_CLASSES, VOC_COLORMAP, VOC_PALETTE } from '../data/voc.js';
import { IMAGENET_MEAN, IMAGENET_STD } from '../data/transforms.js';

export type Color = [number, number, number];

/** Per-channel input normalisation of RGB/255: (x - mean) / std. */
export interface Normalization {
  mean: number[];
  std: number[];
}

export interface ModelCard {
  classes: string[];
  colors: Color[];
  normalization: Normalization;
}

/** Class names when a file has none: VOC's for 21 classes, else class_<i>. */
export function defaultClasses(numClasses: number): string[] {
  return numClasses === VOC_CLASSES.length ? [...VOC_CLASSES] : Array.from({ length: numClasses }, (_, i) => `class_${i}`);
}

/** Colours when a file has none: the VOC colour map, continued by the VOC palette. */
export function defaultColors(numClasses: number): Color[] {
  const table = numClasses <= VOC_COLORMAP.length ? VOC_COLORMAP : VOC_PALETTE;
  return Array.from({ length: numClasses }, (_, i) => [...table[i]!] as Color);
}

/** ImageNet's mean and standard deviation, as torchvision's pretrained bodies expect. */
export function defaultNormalization(): Normalization {
  return { mean: [...IMAGENET_MEAN], std: [...IMAGENET_STD] };
}

/** The card of a network whose file says nothing about its classes: VOC's names and colours for 21
 *  classes, ImageNet normalisation. */
export function defaultCard(numClasses: number): ModelCard {
  return { classes: defaultClasses(numClasses), colors: defaultColors(numClasses), normalization: defaultNormalization() };
}
