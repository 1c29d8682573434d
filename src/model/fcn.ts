// The FCN, declared once: torchvision's ResNet-18 body without avgpool/fc (H/32 x W/32 x 512), a 1x1
// conv to num_classes and a bilinear-initialised transposed conv (k64, s32, p16) back to the input
// size: the d2l book's network. FCN-16s/8s add the paper's skip connections from layer3/layer2.
import { layerInputs, type Layer, type ConvLayer, type BatchNormLayer } from './layers.js';

export type FcnVariant = 'fcn32s' | 'fcn16s' | 'fcn8s';
export const FCN_VARIANTS: readonly FcnVariant[] = ['fcn32s', 'fcn16s', 'fcn8s'];

/**
 * The book's upsamplers: 'full' transposed convs map every class to every class (C²·k² weights:
 * 150 classes at k 64 is 92 M); 'grouped' ones upsample each class by itself (C·k² weights), the
 * same map as the full kernel's bilinear diagonal at initialisation.
 */
export type Upsampler = 'full' | 'grouped';
export const UPSAMPLERS: readonly Upsampler[] = ['full', 'grouped'];

/** Above this many classes a fresh network's upsamplers are grouped unless told otherwise. */
export const GROUPED_ABOVE_CLASSES = 32;

/** The upsampler a fresh network of `numClasses` gets when none is asked for. */
export function defaultUpsampler(numClasses: number): Upsampler {
  return numClasses > GROUPED_ABOVE_CLASSES ? 'grouped' : 'full';
}

/**
 * How the training step scores the logits against the labels (255 = ignore):
 * - 'book': per image the mean cross-entropy over its valid pixels (0 for an image with none), summed
 *   over the batch — the d2l book's `loss(...).mean(1).mean(1)` summed;
 * - 'torchvision': torchvision's segmentation reference, `F.cross_entropy(out, y, ignore_index=255)`
 *   (the mean over all valid pixels of the batch) plus 0.5 x the same for the auxiliary output.
 */
export type LossKind = 'book' | 'torchvision';
export const LOSS_KINDS: readonly LossKind[] = ['book', 'torchvision'];

/** Weight of the auxiliary output's loss in the 'torchvision' loss (torchvision's reference: 0.5). */
export const AUX_LOSS_WEIGHT = 0.5;

/**
 * A segmentation network, declared once: the layers over named values, its input, its outputs, which
 * prefix of the layers is the backbone, the size rule of its input and the loss it trains with.
 */
export interface FcnArchitecture {
  /** e.g. 'fcn32s-resnet18', 'fcn_resnet50' — stored in checkpoints. */
  name: string;
  /** The book's net only: which of FCN-32s/16s/8s. */
  variant?: FcnVariant;
  /** The book's net only: its transposed convs' kind (the name ends in '-grouped' for 'grouped'). */
  upsampler?: Upsampler;
  numClasses: number;
  layers: Layer[];
  /** Name of the graph input (NCHW float32, ImageNet-normalised) and main output (logits NCHW at the input's size). */
  input: string;
  output: string;
  /** An auxiliary output (logits at the input's size) that only the training loss reads (torchvision's aux head). */
  auxOutput?: string;
  /** Layers up to and including this index form the backbone (frozen with --freeze-backbone). */
  backboneEnd: number;
  /**
   * The input's height and width must be multiples of this (padding at inference makes them so): 32
   * for the book's net; 1 for torchvision's, which run at the image's own size.
   */
  stride: number;
  loss: LossKind;
}

/** The layer kinds and values an architecture's inference graph needs: those its main output depends on. */
export function inferenceLayers(arch: FcnArchitecture): Layer[] {
  return layersFor(arch, [arch.output]);
}

/** The layers (in declaration order) that `outputs` depend on. */
export function layersFor(arch: FcnArchitecture, outputs: string[]): Layer[] {
  const needed = new Set(outputs);
  const keep: boolean[] = new Array<boolean>(arch.layers.length).fill(false);
  for (let i = arch.layers.length - 1; i >= 0; i--) {
    const layer = arch.layers[i]!;
    if (!needed.has(layer.output)) continue;
    keep[i] = true;
    for (const v of layerInputs(layer)) needed.add(v);
  }
  return arch.layers.filter((_, i) => keep[i]);
}

export const BN_EPS = 1e-5;
export const BN_MOMENTUM = 0.1;

/** A convolution layer (torchvision's init and no bias unless told). */
export function conv(name: string, input: string, output: string, inC: number, outC: number, k: number, stride: number, pad: number,
  bias = false, init: ConvLayer['init'] = 'kaiming_fan_out', dilation = 1): ConvLayer {
  const layer: ConvLayer = { op: 'conv', name, input, output, inChannels: inC, outChannels: outC, kernel: k, stride, pad, bias, init };
  if (dilation !== 1) layer.dilation = dilation;
  return layer;
}

/** A batch-norm layer with PyTorch's eps and momentum. */
export function bn(name: string, input: string, output: string, channels: number): BatchNormLayer {
  return { op: 'batchnorm', name, input, output, channels, eps: BN_EPS, momentum: BN_MOMENTUM };
}

/** torchvision's BasicBlock: conv3x3-bn-relu-conv3x3-bn (+ downsample) + identity, relu. */
function basicBlock(prefix: string, input: string, inC: number, outC: number, stride: number): { layers: Layer[]; output: string } {
  const v = (s: string) => `${prefix}/${s}`;
  const layers: Layer[] = [
    conv(`${prefix}.conv1`, input, v('conv1'), inC, outC, 3, stride, 1),
    bn(`${prefix}.bn1`, v('conv1'), v('bn1'), outC),
    { op: 'relu', input: v('bn1'), output: v('relu1') },
    conv(`${prefix}.conv2`, v('relu1'), v('conv2'), outC, outC, 3, 1, 1),
    bn(`${prefix}.bn2`, v('conv2'), v('bn2'), outC),
  ];
  let identity = input;
  if (stride !== 1 || inC !== outC) {
    layers.push(conv(`${prefix}.downsample.0`, input, v('down_conv'), inC, outC, 1, stride, 0));
    layers.push(bn(`${prefix}.downsample.1`, v('down_conv'), v('down_bn'), outC));
    identity = v('down_bn');
  }
  layers.push({ op: 'add', inputs: [v('bn2'), identity], output: v('sum') });
  layers.push({ op: 'relu', input: v('sum'), output: `${prefix}` });
  return { layers, output: prefix };
}

/** The ResNet-18 body; returns the layers and the names of layer2/3/4's outputs (strides 8, 16, 32). */
export function resnet18Body(input: string): { layers: Layer[]; outputs: { layer2: string; layer3: string; layer4: string } } {
  const layers: Layer[] = [
    conv('conv1', input, 'conv1', 3, 64, 7, 2, 3),
    bn('bn1', 'conv1', 'bn1', 64),
    { op: 'relu', input: 'bn1', output: 'relu' },
    { op: 'maxpool', input: 'relu', output: 'maxpool', kernel: 3, stride: 2, pad: 1 },
  ];
  let x = 'maxpool';
  let inC = 64;
  const stageOut: string[] = [];
  const widths = [64, 128, 256, 512];
  widths.forEach((outC, s) => {
    for (let b = 0; b < 2; b++) {
      const stride = b === 0 && s > 0 ? 2 : 1;
      const block = basicBlock(`layer${s + 1}.${b}`, x, inC, outC, stride);
      layers.push(...block.layers);
      x = block.output;
      inC = outC;
    }
    stageOut.push(x);
  });
  return { layers, outputs: { layer2: stageOut[1]!, layer3: stageOut[2]!, layer4: stageOut[3]! } };
}

export interface FcnOptions {
  numClasses?: number;
  variant?: FcnVariant;
  /** Default: defaultUpsampler(numClasses) ('grouped' above 32 classes). */
  upsampler?: Upsampler;
}

/** The FCN declaration. Default: the book's FCN-32s with 21 VOC classes. */
export function fcnResNet18(opts: FcnOptions = {}): FcnArchitecture {
  const numClasses = opts.numClasses ?? 21;
  const variant = opts.variant ?? 'fcn32s';
  const upsampler = opts.upsampler ?? defaultUpsampler(numClasses);
  if (!UPSAMPLERS.includes(upsampler)) throw new Error(`upsampler must be one of ${UPSAMPLERS.join(', ')}, got ${String(upsampler)}`);
  if (!Number.isInteger(numClasses) || numClasses < 1 || numClasses > 255) {
    throw new Error(`numClasses must be an integer in 1..255 (255 is the ignore label), got ${numClasses}`);
  }
  const input = 'image';
  const body = resnet18Body(input);
  const layers: Layer[] = [...body.layers];
  const backboneEnd = layers.length - 1;
  const C = numClasses;
  layers.push(conv('final_conv', body.outputs.layer4, 'score32', 512, C, 1, 1, 0, true, 'pytorch_default'));
  const up = (name: string, input: string, output: string, factor: number): Layer => ({
    op: 'convtranspose', name, input, output, inChannels: C, outChannels: C,
    kernel: 2 * factor, stride: factor, pad: factor / 2, bias: true, init: 'bilinear', ...(upsampler === 'grouped' ? { groups: C } : {}),
  });
  if (variant === 'fcn32s') {
    layers.push(up('transpose_conv', 'score32', 'logits', 32));
  } else {
    // FCN-16s: 2x-upsample the stride-32 scores and add a 1x1 scoring of layer3 (stride 16). The skip
    // scorers start at zero, as in the paper, so a fresh FCN-16s/8s begins as the coarser net.
    layers.push(up('upscore2', 'score32', 'up16', 2));
    layers.push(conv('score_layer3', body.outputs.layer3, 'score16_skip', 256, C, 1, 1, 0, true, 'zeros'));
    layers.push({ op: 'add', inputs: ['up16', 'score16_skip'], output: 'score16' });
    if (variant === 'fcn16s') {
      layers.push(up('transpose_conv', 'score16', 'logits', 16));
    } else {
      // FCN-8s: once more, with layer2 (stride 8).
      layers.push(up('upscore4', 'score16', 'up8', 2));
      layers.push(conv('score_layer2', body.outputs.layer2, 'score8_skip', 128, C, 1, 1, 0, true, 'zeros'));
      layers.push({ op: 'add', inputs: ['up8', 'score8_skip'], output: 'score8' });
      layers.push(up('transpose_conv', 'score8', 'logits', 8));
    }
  }
  return {
    name: `${variant}-resnet18${upsampler === 'grouped' ? '-grouped' : ''}`, variant, upsampler, numClasses: C, layers, input, output: 'logits',
    backboneEnd, stride: 32, loss: 'book',
  };
}

/** Parses an architecture name stored in a checkpoint ('fcn32s-resnet18', 'fcn8s-resnet18-grouped', ...). */
export function parseArchitectureName(name: string): { variant: FcnVariant; upsampler: Upsampler } | undefined {
  const m = /^(fcn32s|fcn16s|fcn8s)-resnet18(-grouped)?$/.exec(name);
  return m ? { variant: m[1] as FcnVariant, upsampler: m[2] ? 'grouped' : 'full' } : undefined;
}
