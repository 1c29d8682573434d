// torchvision 0.14's ResNet segmentation networks, declared with their exact structure
// (`torchvision.models.segmentation`): a ResNet-50/101 body with replace_stride_with_dilation
// [False, True, True] (output stride 8), a head on layer4 (FCNHead, or DeepLabHead with ASPP), the
// logits resized bilinearly back to the input's size (`_SimpleSegmentationModel.forward`), and the
// optional auxiliary FCNHead on layer3. Parameter names are torchvision's state_dict keys
// (`backbone.*`, `classifier.*`, `aux_classifier.*`), so its weights load by name unchanged.
// These networks run on the image at its own size: no padding to a stride.
import type { BatchNormLayer, ConvLayer, Layer } from './layers.js';
import type { FcnArchitecture } from './fcn.js';
import { BOTTLENECK_EXPANSION, resnetBottleneckBody, type ResNetDepth } from './resnet.js';

export type TorchvisionNetwork = 'fcn_resnet50' | 'fcn_resnet101' | 'deeplabv3_resnet50' | 'deeplabv3_resnet101';
export const TORCHVISION_NETWORKS: readonly TorchvisionNetwork[] = Object.freeze(
  ['fcn_resnet50', 'fcn_resnet101', 'deeplabv3_resnet50', 'deeplabv3_resnet101'] as TorchvisionNetwork[]);

export type TorchvisionHead = 'fcn' | 'deeplabv3';

export function isTorchvisionNetwork(name: string): name is TorchvisionNetwork {
  return (TORCHVISION_NETWORKS as readonly string[]).includes(name);
}

/** A network name's head and body ('deeplabv3_resnet101' → deeplabv3, resnet101). */
export function networkParts(name: TorchvisionNetwork): { head: TorchvisionHead; depth: ResNetDepth } {
  const [head, depth] = name.split('_') as [TorchvisionHead, ResNetDepth];
  return { head, depth };
}

/** DeepLabV3's atrous rates (torchvision's DeepLabHead). */
export const ASPP_RATES: readonly number[] = Object.freeze([12, 24, 36]);

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
export interface TorchvisionArchitecture extends FcnArchitecture {
  /** torchvision's name: stored in checkpoints, used by --arch. */
  name: TorchvisionNetwork;
  variant?: undefined;
  stride: 1;
  loss: 'torchvision';
  /** The options the declaration was built with, all filled in. */
  options: Required<TorchvisionOptions>;
}

const BN_EPS = 1e-5;
const BN_MOMENTUM = 0.1;

function conv(name: string, input: string, output: string, inC: number, outC: number, k: number,
  opts: { dilation?: number; bias?: boolean } = {}): ConvLayer {
  const dilation = opts.dilation ?? 1;
  // heads keep nn.Conv2d's default initialisation (torchvision does not re-initialise them)
  const layer: ConvLayer = {
    op: 'conv', name, input, output, inChannels: inC, outChannels: outC, kernel: k, stride: 1,
    pad: k === 1 ? 0 : dilation * (k - 1) / 2, bias: opts.bias ?? false, init: 'pytorch_default',
  };
  if (dilation !== 1) layer.dilation = dilation;
  return layer;
}

function bn(name: string, input: string, output: string, channels: number): BatchNormLayer {
  return { op: 'batchnorm', name, input, output, channels, eps: BN_EPS, momentum: BN_MOMENTUM };
}

/** conv - BN - ReLU with torchvision's Sequential numbering (`${prefix}.0`, `${prefix}.1`). */
function convBnRelu(prefix: string, input: string, inC: number, outC: number, k: number, dilation = 1, first = 0): { layers: Layer[]; output: string } {
  const out = `${prefix}/relu`;
  return {
    layers: [
      conv(`${prefix}.${first}`, input, `${prefix}/conv`, inC, outC, k, { dilation }),
      bn(`${prefix}.${first + 1}`, `${prefix}/conv`, `${prefix}/bn`, outC),
      { op: 'relu', input: `${prefix}/bn`, output: out },
    ],
    output: out,
  };
}

/** torchvision's FCNHead: 3x3 conv (inC → inC/4) - BN - ReLU - Dropout(0.1) - 1x1 conv (→ classes, with bias). */
export function fcnHead(prefix: string, input: string, inChannels: number, numClasses: number, output: string): Layer[] {
  const inter = Math.floor(inChannels / 4);
  return [
    conv(`${prefix}.0`, input, `${prefix}/0`, inChannels, inter, 3),
    bn(`${prefix}.1`, `${prefix}/0`, `${prefix}/1`, inter),
    { op: 'relu', input: `${prefix}/1`, output: `${prefix}/2` },
    { op: 'dropout', input: `${prefix}/2`, output: `${prefix}/3`, p: 0.1 },
    conv(`${prefix}.4`, `${prefix}/3`, output, inter, numClasses, 1, { bias: true }),
  ];
}

/**
 * torchvision's DeepLabHead: ASPP (a 1x1 branch, three 3x3 branches dilated 12/24/36, and image
 * pooling: global average, 1x1 conv, BN, ReLU, broadcast back bilinearly; concatenated, projected by
 * 1x1 conv - BN - ReLU - Dropout(0.5)), then 3x3 conv - BN - ReLU and a 1x1 conv to the classes.
 */
export function deeplabHead(prefix: string, input: string, inChannels: number, numClasses: number, aspp: number, output: string): Layer[] {
  const a = `${prefix}.0`;
  const layers: Layer[] = [];
  const branches: string[] = [];
  const b0 = convBnRelu(`${a}.convs.0`, input, inChannels, aspp, 1);
  layers.push(...b0.layers);
  branches.push(b0.output);
  ASPP_RATES.forEach((rate, i) => {
    const b = convBnRelu(`${a}.convs.${i + 1}`, input, inChannels, aspp, 3, rate);
    layers.push(...b.layers);
    branches.push(b.output);
  });
  const pool = `${a}.convs.${ASPP_RATES.length + 1}`;
  layers.push({ op: 'globalavgpool', input, output: `${pool}/pool` });
  const pb = convBnRelu(pool, `${pool}/pool`, inChannels, aspp, 1, 1, 1);
  layers.push(...pb.layers);
  layers.push({ op: 'resize', input: pb.output, like: input, output: `${pool}/up` });
  branches.push(`${pool}/up`);
  layers.push({ op: 'concat', inputs: branches, output: `${a}/cat` });
  const proj = convBnRelu(`${a}.project`, `${a}/cat`, branches.length * aspp, aspp, 1);
  layers.push(...proj.layers);
  layers.push({ op: 'dropout', input: proj.output, output: `${a}/out`, p: 0.5 });
  layers.push(
    conv(`${prefix}.1`, `${a}/out`, `${prefix}/1`, aspp, aspp, 3),
    bn(`${prefix}.2`, `${prefix}/1`, `${prefix}/2`, aspp),
    { op: 'relu', input: `${prefix}/2`, output: `${prefix}/3` },
    conv(`${prefix}.4`, `${prefix}/3`, output, aspp, numClasses, 1, { bias: true }),
  );
  return layers;
}

/** The declaration of torchvision's `name` (e.g. `fcn_resnet50(num_classes=21, aux_loss=True)`). */
export function torchvisionNetwork(name: TorchvisionNetwork, opts: TorchvisionOptions = {}): TorchvisionArchitecture {
  if (!isTorchvisionNetwork(name)) throw new Error(`unknown network '${String(name)}' (expected ${TORCHVISION_NETWORKS.join(', ')})`);
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
