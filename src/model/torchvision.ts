// torchvision 0.14's ResNet segmentation networks (the MobileNetV3 ones are in mobilenet.ts), declared with their exact structure
// (`torchvision.models.segmentation`): a ResNet-50/101 body with replace_stride_with_dilation
// [False, True, True] (output stride 8), a head on layer4 (FCNHead, or DeepLabHead with ASPP), the
// logits resized bilinearly back to the input's size (`_SimpleSegmentationModel.forward`), and the
// optional auxiliary FCNHead on layer3. Parameter names are torchvision's state_dict keys
// (`backbone.*`, `classifier.*`, `aux_classifier.*`), so its weights load by name unchanged.
// These networks run on the image at its own size: no padding to a stride.
import type { Layer } from './layers.js';
import { deeplabHead, fcnHead } from './heads.js';
import type { FcnArchitecture } from './fcn.js';
import { BOTTLENECK_EXPANSION, resnetBottleneckBody, type ResNetDepth } from './resnet.js';
import {
  isMobileNetNetwork, mobilenetNetwork, MOBILENET_NETWORKS,
  type MobileNetArchitecture, type MobileNetNetwork, type MobileNetOptions,
} from './mobilenet.js';

/** torchvision's ResNet segmentation networks. */
export type ResNetNetwork = 'fcn_resnet50' | 'fcn_resnet101' | 'deeplabv3_resnet50' | 'deeplabv3_resnet101';
export const RESNET_NETWORKS: readonly ResNetNetwork[] = Object.freeze(
  ['fcn_resnet50', 'fcn_resnet101', 'deeplabv3_resnet50', 'deeplabv3_resnet101'] as ResNetNetwork[]);

/** Every torchvision segmentation network fcn declares: the ResNet ones (here) and the MobileNetV3 ones (mobilenet.ts). */
export type TorchvisionNetwork = ResNetNetwork | MobileNetNetwork;
export const TORCHVISION_NETWORKS: readonly TorchvisionNetwork[] = Object.freeze([...RESNET_NETWORKS, ...MOBILENET_NETWORKS]);

export type TorchvisionHead = 'fcn' | 'deeplabv3';

export function isTorchvisionNetwork(name: string): name is TorchvisionNetwork {
  return (TORCHVISION_NETWORKS as readonly string[]).includes(name);
}

export function isResNetNetwork(name: string): name is ResNetNetwork {
  return (RESNET_NETWORKS as readonly string[]).includes(name);
}

/** The published ImageNet classifier whose body a network starts from (`fcn download NAME`). */
export function imagenetBodyName(name: TorchvisionNetwork): string {
  return isMobileNetNetwork(name) ? 'mobilenet_v3_large' : networkParts(name).depth;
}

/** A ResNet network name's head and body ('deeplabv3_resnet101' → deeplabv3, resnet101). */
export function networkParts(name: ResNetNetwork): { head: TorchvisionHead; depth: ResNetDepth } {
  const [head, depth] = name.split('_') as [TorchvisionHead, ResNetDepth];
  return { head, depth };
}

export interface TorchvisionOptions {
  /** Output classes (21 for torchvision's COCO-with-VOC-labels weights). */
  numClasses?: number;
  /** The auxiliary FCNHead on layer3 (torchvision's published weights carry it). Default true. */
  aux?: boolean;
  /** The ResNet's base width (64); smaller widths give the same structure, narrower, for tests. */
  width?: number;
  /** ASPP's channels (256). */
  asppChannels?: number;
}

/** A torchvision network: runs at the image's own size (stride 1, the resize brings the logits back)
 *  and trains with torchvision's reference loss (cross-entropy over the batch's valid pixels, + 0.5 x aux). */
export interface ResNetSegmentationArchitecture extends FcnArchitecture {
  /** torchvision's name: stored in checkpoints, used by --arch. */
  name: ResNetNetwork;
  variant?: undefined;
  stride: 1;
  loss: 'torchvision';
  /** The options the declaration was built with, all filled in. */
  options: Required<TorchvisionOptions>;
}

/** A torchvision segmentation network's declaration: a ResNet or a MobileNetV3 one. */
export type TorchvisionArchitecture = ResNetSegmentationArchitecture | MobileNetArchitecture;

/** The declaration of torchvision's `name` (e.g. `fcn_resnet50(num_classes=21, aux_loss=True)`). */
export function torchvisionNetwork(name: ResNetNetwork, opts?: TorchvisionOptions): ResNetSegmentationArchitecture;
export function torchvisionNetwork(name: MobileNetNetwork, opts?: MobileNetOptions): MobileNetArchitecture;
export function torchvisionNetwork(name: TorchvisionNetwork, opts?: TorchvisionOptions | MobileNetOptions): TorchvisionArchitecture;
export function torchvisionNetwork(name: TorchvisionNetwork, opts: TorchvisionOptions | MobileNetOptions = {}): TorchvisionArchitecture {
  if (isMobileNetNetwork(name)) return mobilenetNetwork(name, opts as MobileNetOptions);
  if (!isResNetNetwork(name)) throw new Error(`unknown network '${String(name)}' (expected ${TORCHVISION_NETWORKS.join(', ')})`);
  return resnetSegmentation(name, opts as TorchvisionOptions);
}

function resnetSegmentation(name: ResNetNetwork, opts: TorchvisionOptions): ResNetSegmentationArchitecture {
  const options: Required<TorchvisionOptions> = {
    numClasses: opts.numClasses ?? 21, aux: opts.aux ?? true, width: opts.width ?? 64, asppChannels: opts.asppChannels ?? 256,
  };
  const C = options.numClasses;
  if (!Number.isInteger(C) || C < 1 || C > 255) throw new Error(`numClasses must be an integer in 1..255 (255 is the ignore label), got ${C}`);
  if (!Number.isInteger(options.asppChannels) || options.asppChannels < 1) throw new Error(`ASPP channels must be a positive integer, got ${options.asppChannels}`);
  const { head, depth } = networkParts(name);
  const input = 'image';
  const body = resnetBottleneckBody(input, { depth, width: options.width, dilate: [false, true, true], prefix: 'backbone.' });
  const layers: Layer[] = [...body.layers];
  const backboneEnd = layers.length - 1;
  const c4 = body.channels.layer4;
  if (head === 'fcn') layers.push(...fcnHead('classifier', body.outputs.layer4, c4, C, 'classifier/out'));
  else layers.push(...deeplabHead('classifier', body.outputs.layer4, c4, C, options.asppChannels, 'classifier/out'));
  layers.push({ op: 'resize', input: 'classifier/out', like: input, output: 'logits' });
  let auxOutput: string | undefined;
  if (options.aux) {
    layers.push(...fcnHead('aux_classifier', body.outputs.layer3, body.channels.layer3, C, 'aux_classifier/out'));
    layers.push({ op: 'resize', input: 'aux_classifier/out', like: input, output: 'aux_logits' });
    auxOutput = 'aux_logits';
  }
  return {
    name, numClasses: C, layers, input, output: 'logits', ...(auxOutput ? { auxOutput } : {}),
    backboneEnd, stride: 1, loss: 'torchvision', options,
  };
}

/** layer4's channels for a base width (2048 at torchvision's 64). */
export function layer4Channels(width: number): number {
  return 8 * width * BOTTLENECK_EXPANSION;
}
