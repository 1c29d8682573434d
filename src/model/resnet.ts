// torchvision's ResNet-50/101 body (`torchvision.models.resnet`, v1.5: the stride on the 3x3 conv),
// declared as layers: the stem, then four stages of Bottleneck blocks. `replace_stride_with_dilation`
// turns a stage's stride 2 into dilation, as torchvision's segmentation networks do with
// [False, True, True] (output stride 8). Parameter names are torchvision's state_dict keys under a
// prefix ('backbone.' inside a segmentation network, '' for the ImageNet classifier's body).
import type { BatchNormLayer, ConvLayer, Layer } from './layers.js';

export const BOTTLENECK_EXPANSION = 4;

/** Blocks per stage: torchvision's resnet50 and resnet101. */
export const RESNET_BLOCKS = Object.freeze({
  resnet50: Object.freeze([3, 4, 6, 3]),
  resnet101: Object.freeze([3, 4, 23, 3]),
}) satisfies Record<string, readonly number[]>;

export type ResNetDepth = keyof typeof RESNET_BLOCKS;

export interface ResNetBodyOptions {
  /** torchvision's resnet50 or resnet101. */
  depth: ResNetDepth;
  /** Base width: channels of the stem and of layer1's 1x1/3x3 convs (64 in torchvision). The stages
   *  have width, 2, 4, 8 x width inside their blocks and 4x that at their outputs. Smaller widths build
   *  the same structure for tests. */
  width?: number;
  /** torchvision's replace_stride_with_dilation for layer2/3/4 ([false, false, false] by default). */
  dilate?: readonly [boolean, boolean, boolean];
  /** Prefix of every parameter name ('backbone.' inside torchvision's segmentation models). */
  prefix?: string;
  /** BatchNorm eps and momentum (PyTorch's defaults). */
  eps?: number;
  momentum?: number;
}

export interface ResNetBody {
  layers: Layer[];
  /** Values holding the stages' outputs. */
  outputs: { layer1: string; layer2: string; layer3: string; layer4: string };
  /** Channels of those outputs (4, 8, 16, 32 x width). */
  channels: { layer1: number; layer2: number; layer3: number; layer4: number };
  /** How much smaller than the input layer4's output is (32, or 8 with layer3/4 dilated). */
  outputStride: number;
}

interface Ctx {
  prefix: string;
  eps: number;
  momentum: number;
}

function conv(ctx: Ctx, name: string, input: string, output: string, inC: number, outC: number, k: number,
  stride: number, dilation = 1): ConvLayer {
  // torchvision's conv3x3 pads by the dilation; conv1x1 and the 7x7 stem pad (k-1)/2
  const pad = k === 3 ? dilation : (k - 1) / 2;
  const layer: ConvLayer = {
    op: 'conv', name: ctx.prefix + name, input, output, inChannels: inC, outChannels: outC, kernel: k, stride, pad,
    bias: false, init: 'kaiming_fan_out',
  };
  if (dilation !== 1) layer.dilation = dilation;
  return layer;
}

function bn(ctx: Ctx, name: string, input: string, output: string, channels: number): BatchNormLayer {
  return { op: 'batchnorm', name: ctx.prefix + name, input, output, channels, eps: ctx.eps, momentum: ctx.momentum };
}

/**
 * torchvision's Bottleneck: 1x1 (inC → planes) - BN - ReLU - 3x3 (stride, dilation) - BN - ReLU -
 * 1x1 (planes → 4·planes) - BN, plus the identity (or a strided 1x1 conv + BN when the shape
 * changes), then ReLU.
 */
function bottleneck(ctx: Ctx, block: string, input: string, inC: number, planes: number, stride: number, dilation: number,
  downsample: boolean): { layers: Layer[]; output: string } {
  const v = (s: string) => `${ctx.prefix}${block}/${s}`;
  const outC = planes * BOTTLENECK_EXPANSION;
  const layers: Layer[] = [
    conv(ctx, `${block}.conv1`, input, v('conv1'), inC, planes, 1, 1),
    bn(ctx, `${block}.bn1`, v('conv1'), v('bn1'), planes),
    { op: 'relu', input: v('bn1'), output: v('relu1') },
    conv(ctx, `${block}.conv2`, v('relu1'), v('conv2'), planes, planes, 3, stride, dilation),
    bn(ctx, `${block}.bn2`, v('conv2'), v('bn2'), planes),
    { op: 'relu', input: v('bn2'), output: v('relu2') },
    conv(ctx, `${block}.conv3`, v('relu2'), v('conv3'), planes, outC, 1, 1),
    bn(ctx, `${block}.bn3`, v('conv3'), v('bn3'), outC),
  ];
  let identity = input;
  if (downsample) {
    layers.push(conv(ctx, `${block}.downsample.0`, input, v('down_conv'), inC, outC, 1, stride));
    layers.push(bn(ctx, `${block}.downsample.1`, v('down_conv'), v('down_bn'), outC));
    identity = v('down_bn');
  }
  const output = `${ctx.prefix}${block}`;
  layers.push({ op: 'add', inputs: [v('bn3'), identity], output: v('sum') });
  layers.push({ op: 'relu', input: v('sum'), output });
  return { layers, output };
}

/** The ResNet-50/101 body on `input` (NCHW, 3 channels): torchvision's layers up to layer4. */
export function resnetBottleneckBody(input: string, opts: ResNetBodyOptions): ResNetBody {
  const width = opts.width ?? 64;
  if (!Number.isInteger(width) || width < 1) throw new Error(`ResNet width must be a positive integer, got ${width}`);
  const blocks = RESNET_BLOCKS[opts.depth];
  if (!blocks) throw new Error(`unknown ResNet depth '${String(opts.depth)}' (expected ${Object.keys(RESNET_BLOCKS).join(' or ')})`);
  const dilate = opts.dilate ?? [false, false, false];
  const ctx: Ctx = { prefix: opts.prefix ?? '', eps: opts.eps ?? 1e-5, momentum: opts.momentum ?? 0.1 };
  const p = ctx.prefix;
  const layers: Layer[] = [
    conv(ctx, 'conv1', input, `${p}conv1`, 3, width, 7, 2),
    bn(ctx, 'bn1', `${p}conv1`, `${p}bn1`, width),
    { op: 'relu', input: `${p}bn1`, output: `${p}relu` },
    { op: 'maxpool', input: `${p}relu`, output: `${p}maxpool`, kernel: 3, stride: 2, pad: 1 },
  ];
  // ResNet._make_layer: a dilated stage keeps stride 1 and multiplies the running dilation by the
  // stride it replaces; its first block still uses the previous dilation
  let x = `${p}maxpool`;
  let inC = width;
  let dilation = 1;
  let outputStride = 4;
  const outs: string[] = [];
  const chans: number[] = [];
  for (let s = 0; s < 4; s++) {
    const planes = width * 2 ** s;
    let stride = s === 0 ? 1 : 2;
    const previousDilation = dilation;
    if (s > 0 && dilate[s - 1]) {
      dilation *= stride;
      stride = 1;
    }
    outputStride *= stride;
    for (let b = 0; b < blocks[s]!; b++) {
      const first = b === 0;
      const block = bottleneck(ctx, `layer${s + 1}.${b}`, x, inC, planes, first ? stride : 1, first ? previousDilation : dilation,
        first && (stride !== 1 || inC !== planes * BOTTLENECK_EXPANSION));
      layers.push(...block.layers);
      x = block.output;
      inC = planes * BOTTLENECK_EXPANSION;
    }
    outs.push(x);
    chans.push(inC);
  }
  return {
    layers,
    outputs: { layer1: outs[0]!, layer2: outs[1]!, layer3: outs[2]!, layer4: outs[3]! },
    channels: { layer1: chans[0]!, layer2: chans[1]!, layer3: chans[2]!, layer4: chans[3]! },
    outputStride,
  };
}
