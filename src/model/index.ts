// The model stage: the FCN declared once, and everything derived from the declaration.
export * from './layers.js';
export * from './fcn.js';
export * from './params.js';
export { bilinearKernel } from './bilinear.js';
export * from './card.js';
export * from './resnet.js';
export * from './torchvision.js';
export * from './heads.js';
export * from './mobilenet.js';
