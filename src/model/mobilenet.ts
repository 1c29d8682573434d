// torchvision 0.14's MobileNetV3-Large segmentation networks, declared with their exact structure
// (`torchvision.models.mobilenetv3`, `torchvision.models.segmentation.lraspp` / `.deeplabv3`):
// the body is `mobilenet_v3_large(dilated=True).features` (a 3x3 stride-2 stem, fifteen inverted
// residual blocks, a 1x1 conv to 6x the last block's channels; the last three blocks dilated 2
// instead of the stride 2 of C4, so output stride 16), cut where torchvision's builders cut it:
// `stage_indices = [0] + [strided blocks] + [last]` = [0, 2, 4, 7, 13, 16], "low"/"aux" at
// features[4] (C2, stride 8), "high"/"out" at features[16] (C5, stride 16).
// - lraspp_mobilenet_v3_large: LRASPPHead(40, 960, classes, 128): cbr = 1x1 conv - BN - ReLU on the
//   high features, gated by scale = sigmoid(1x1 conv(global average of high)), resized bilinearly to
//   the low features' size; the logits are low_classifier(low) + high_classifier(gated); no aux head.
//   (high_classifier is applied before that resize, which it commutes with: see lrasppHead.)
// - deeplabv3_mobilenet_v3_large: DeepLabHead(960, classes) on the high features and the optional
//   FCNHead(40, classes) aux head on the low ones (torchvision's published weights carry it).
// Both bring the logits back to the input's size bilinearly and run at the image's own size.
// Parameter names are torchvision's state_dict keys (`backbone.<i>.block.<j>...`, `classifier.*`,
// `aux_classifier.*`), so its weights load by name unchanged.
import type { BatchNormLayer, ConvLayer, Layer } from './layers.js';
import type { FcnArchitecture } from './fcn.js';
import { deeplabHead, fcnHead } from './heads.js';

export type MobileNetNetwork = 'lraspp_mobilenet_v3_large' | 'deeplabv3_mobilenet_v3_large';
export const MOBILENET_NETWORKS: readonly MobileNetNetwork[] = Object.freeze(
  ['lraspp_mobilenet_v3_large', 'deeplabv3_mobilenet_v3_large'] as MobileNetNetwork[]);

export function isMobileNetNetwork(name: string): name is MobileNetNetwork {
  return (MOBILENET_NETWORKS as readonly string[]).includes(name);
}

/** One row of MobileNetV3-Large's table (torchvision's `_mobilenet_v3_conf`, before width_mult):
 *  input, kernel, expanded, output channels, squeeze-and-excitation, hard swish (else ReLU), stride,
 *  and whether `dilated=True` turns it into dilation 2. */
interface BlockRow {
  input: number;
  kernel: number;
  expanded: number;
  out: number;
  se: boolean;
  hs: boolean;
  stride: number;
  dilated: boolean;
}

const row = (input: number, kernel: number, expanded: number, out: number, se: boolean, act: 'RE' | 'HS', stride: number, dilated = false): BlockRow =>
  ({ input, kernel, expanded, out, se, hs: act === 'HS', stride, dilated });

/** MobileNetV3-Large's inverted residual blocks (the paper's Table 1), as torchvision lists them. */
export const LARGE_BLOCKS: readonly BlockRow[] = Object.freeze([
  row(16, 3, 16, 16, false, 'RE', 1),
  row(16, 3, 64, 24, false, 'RE', 2), // C1
  row(24, 3, 72, 24, false, 'RE', 1),
  row(24, 5, 72, 40, true, 'RE', 2), // C2
  row(40, 5, 120, 40, true, 'RE', 1),
  row(40, 5, 120, 40, true, 'RE', 1),
  row(40, 3, 240, 80, false, 'HS', 2), // C3
  row(80, 3, 200, 80, false, 'HS', 1),
  row(80, 3, 184, 80, false, 'HS', 1),
  row(80, 3, 184, 80, false, 'HS', 1),
  row(80, 3, 480, 112, true, 'HS', 1),
  row(112, 3, 672, 112, true, 'HS', 1),
  row(112, 5, 672, 160, true, 'HS', 2, true), // C4
  row(160, 5, 960, 160, true, 'HS', 1, true),
  row(160, 5, 960, 160, true, 'HS', 1, true),
]);

/** features[] indices torchvision's segmentation builders read: C2 (stride 8) and C5 (stride 16). */
export const LOW_FEATURE = 4;
export const HIGH_FEATURE = LARGE_BLOCKS.length + 1;

/** The channel counts of a MobileNetV3-Large body: the stem's, and per block its expanded, output
 *  and squeeze (0 without squeeze-and-excitation) channels; the last conv has 6x the last block's. */
export interface MobileNetChannels {
  stem: number;
  blocks: { expanded: number; out: number; squeeze: number }[];
}

/** torchvision's `_make_divisible(v, 8)`: v rounded to the nearest multiple of 8, at least 8, and
 *  not more than 10% below v. */
export function makeDivisible(v: number, divisor = 8): number {
  let n = Math.max(divisor, Math.floor(v + divisor / 2) - (Math.floor(v + divisor / 2) % divisor));
  if (n < 0.9 * v) n += divisor;
  return n;
}

/** The channels of `mobilenet_v3_large(width_mult=w)` (InvertedResidualConfig.adjust_channels; the
 *  squeeze is _make_divisible(expanded // 4, 8) of the adjusted expanded channels). */
export function mobilenetChannels(widthMult = 1): MobileNetChannels {
  if (!(widthMult > 0)) throw new Error(`width multiplier must be positive, got ${widthMult}`);
  const adjust = (c: number) => makeDivisible(c * widthMult);
  return {
    stem: adjust(LARGE_BLOCKS[0]!.input),
    blocks: LARGE_BLOCKS.map((b) => {
      const expanded = adjust(b.expanded);
      return { expanded, out: adjust(b.out), squeeze: b.se ? makeDivisible(Math.floor(expanded / 4)) : 0 };
    }),
  };
}

export interface MobileNetOptions {
  /** Output classes (21 for torchvision's COCO-with-VOC-labels weights). */
  numClasses?: number;
  /** DeepLabV3's auxiliary FCNHead on the low features (default true; LR-ASPP has none). */
  aux?: boolean;
  /** torchvision's width_mult (1); ignored when `channels` is given. */
  widthMult?: number;
  /** Exact channel counts (as read from a state_dict); default mobilenetChannels(widthMult). */
  channels?: MobileNetChannels;
  /** The head's width: LR-ASPP's inter_channels (128) or ASPP's channels (256). */
  headChannels?: number;
}

/** The options a declaration was built with, all filled in (stored on the architecture). */
export interface MobileNetBuiltOptions {
  numClasses: number;
  aux: boolean;
  channels: MobileNetChannels;
  headChannels: number;
}

export interface MobileNetArchitecture extends FcnArchitecture {
  name: MobileNetNetwork;
  variant?: undefined;
  stride: 1;
  loss: 'torchvision';
  options: MobileNetBuiltOptions;
}

/** The head's width torchvision uses: LRASPP's inter_channels 128, DeepLabHead's ASPP 256. */
export function defaultHeadChannels(name: MobileNetNetwork): number {
  return name.startsWith('lraspp') ? 128 : 256;
}

// MobileNetV3's norm_layer: partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
const BODY_EPS = 1e-3;
const BODY_MOMENTUM = 0.01;

function bodyConv(name: string, input: string, output: string, inC: number, outC: number, k: number,
  opts: { stride?: number; dilation?: number; groups?: number; bias?: boolean } = {}): ConvLayer {
  const dilation = opts.dilation ?? 1;
  // Conv2dNormActivation pads (k − 1)/2·dilation; MobileNetV3 inits every conv kaiming_normal_(fan_out), biases 0
  const layer: ConvLayer = {
    op: 'conv', name, input, output, inChannels: inC, outChannels: outC, kernel: k, stride: opts.stride ?? 1,
    pad: ((k - 1) / 2) * dilation, bias: opts.bias ?? false, init: 'kaiming_fan_out',
  };
  if (dilation !== 1) layer.dilation = dilation;
  if ((opts.groups ?? 1) !== 1) layer.groups = opts.groups;
  return layer;
}

function bodyBn(name: string, input: string, output: string, channels: number): BatchNormLayer {
  return { op: 'batchnorm', name, input, output, channels, eps: BODY_EPS, momentum: BODY_MOMENTUM };
}

/** Conv2dNormActivation: conv `${prefix}.0` - BN `${prefix}.1` - activation (hard swish, ReLU or none). */
function convNormAct(prefix: string, input: string, inC: number, outC: number, k: number, act: 'hs' | 'relu' | 'none',
  opts: { stride?: number; dilation?: number; groups?: number } = {}): { layers: Layer[]; output: string } {
  const layers: Layer[] = [
    bodyConv(`${prefix}.0`, input, `${prefix}/conv`, inC, outC, k, opts),
    bodyBn(`${prefix}.1`, `${prefix}/conv`, `${prefix}/bn`, outC),
  ];
  if (act === 'none') return { layers, output: `${prefix}/bn` };
  layers.push({ op: act === 'hs' ? 'hardswish' : 'relu', input: `${prefix}/bn`, output: `${prefix}/act` });
  return { layers, output: `${prefix}/act` };
}

/**
 * torchvision's InvertedResidual: 1x1 expand (when the expanded width differs) - depthwise k x k
 * (stride, or dilation with stride 1) - squeeze-and-excitation (global average, 1x1 conv with bias,
 * ReLU, 1x1 conv with bias, hard sigmoid, times the input) - 1x1 project with BN and no activation,
 * plus the input when the stride is 1 and the widths agree.
 */
function invertedResidual(prefix: string, input: string, inC: number, r: BlockRow, c: MobileNetChannels['blocks'][number], dilation: number): { layers: Layer[]; output: string } {
  const act = r.hs ? 'hs' : 'relu';
  const layers: Layer[] = [];
  let x = input;
  let j = 0;
  if (c.expanded !== inC) {
    const e = convNormAct(`${prefix}.block.${j++}`, x, inC, c.expanded, 1, act);
    layers.push(...e.layers);
    x = e.output;
  }
  const dw = convNormAct(`${prefix}.block.${j++}`, x, c.expanded, c.expanded, r.kernel, act,
    { stride: dilation > 1 ? 1 : r.stride, dilation, groups: c.expanded });
  layers.push(...dw.layers);
  x = dw.output;
  if (r.se) {
    const se = `${prefix}.block.${j++}`;
    layers.push(
      { op: 'globalavgpool', input: x, output: `${se}/pool` },
      bodyConv(`${se}.fc1`, `${se}/pool`, `${se}/fc1`, c.expanded, c.squeeze, 1, { bias: true }),
      { op: 'relu', input: `${se}/fc1`, output: `${se}/relu` },
      bodyConv(`${se}.fc2`, `${se}/relu`, `${se}/fc2`, c.squeeze, c.expanded, 1, { bias: true }),
      { op: 'hardsigmoid', input: `${se}/fc2`, output: `${se}/scale` },
      { op: 'mul', inputs: [x, `${se}/scale`], output: `${se}/out` },
    );
    x = `${se}/out`;
  }
  const proj = convNormAct(`${prefix}.block.${j}`, x, c.expanded, c.out, 1, 'none');
  layers.push(...proj.layers);
  if (r.stride === 1 && inC === c.out) {
    layers.push({ op: 'add', inputs: [proj.output, input], output: prefix });
    return { layers, output: prefix };
  }
  return { layers, output: proj.output };
}

export interface MobileNetBody {
  layers: Layer[];
  /** features[4] (C2, output stride 8) and features[16] (C5, output stride 16). */
  low: string;
  high: string;
  lowChannels: number;
  highChannels: number;
}

/** `mobilenet_v3_large(dilated=True).features` on `input`, parameters named `${prefix}<index>.…`. */
export function mobilenetV3LargeBody(input: string, channels: MobileNetChannels, prefix = 'backbone.'): MobileNetBody {
  if (channels.blocks.length !== LARGE_BLOCKS.length) throw new Error(`MobileNetV3-Large has ${LARGE_BLOCKS.length} blocks, got channels for ${channels.blocks.length}`);
  const stem = convNormAct(`${prefix}0`, input, 3, channels.stem, 3, 'hs', { stride: 2 });
  const layers: Layer[] = [...stem.layers];
  let x = stem.output;
  let inC = channels.stem;
  const outputs: string[] = [x];
  const widths: number[] = [inC];
  LARGE_BLOCKS.forEach((r, i) => {
    const c = channels.blocks[i]!;
    const block = invertedResidual(`${prefix}${i + 1}`, x, inC, r, c, r.dilated ? 2 : 1);
    layers.push(...block.layers);
    x = block.output;
    inC = c.out;
    outputs.push(x);
    widths.push(inC);
  });
  const last = convNormAct(`${prefix}${HIGH_FEATURE}`, x, inC, 6 * inC, 1, 'hs');
  layers.push(...last.layers);
  return { layers, low: outputs[LOW_FEATURE]!, high: last.output, lowChannels: widths[LOW_FEATURE]!, highChannels: 6 * inC };
}

function headConv(name: string, input: string, output: string, inC: number, outC: number, bias: boolean): ConvLayer {
  // the heads keep nn.Conv2d's default initialisation (torchvision does not re-initialise them)
  return { op: 'conv', name, input, output, inChannels: inC, outChannels: outC, kernel: 1, stride: 1, pad: 0, bias, init: 'pytorch_default' };
}

/** torchvision's LRASPPHead (see the top of this file); writes `output` at the low features' size. */
export function lrasppHead(prefix: string, body: MobileNetBody, numClasses: number, inter: number, output: string): Layer[] {
  const p = (s: string) => `${prefix}/${s}`;
  return [
    headConv(`${prefix}.cbr.0`, body.high, p('cbr0'), body.highChannels, inter, false),
    { op: 'batchnorm', name: `${prefix}.cbr.1`, input: p('cbr0'), output: p('cbr1'), channels: inter, eps: 1e-5, momentum: 0.1 },
    { op: 'relu', input: p('cbr1'), output: p('cbr') },
    { op: 'globalavgpool', input: body.high, output: p('scale0') },
    headConv(`${prefix}.scale.1`, p('scale0'), p('scale1'), body.highChannels, inter, false),
    { op: 'sigmoid', input: p('scale1'), output: p('scale') },
    { op: 'mul', inputs: [p('cbr'), p('scale')], output: p('gated') },
    // high_classifier(resize(gated)) taken as resize(high_classifier(gated)): the resize mixes each
    // channel's pixels with weights summing to 1 and the 1x1 conv mixes channels per pixel (its bias
    // passes through), so they commute; this way the conv runs at the high features' size and the
    // resize moves the classes (21), not the 128 channels
    headConv(`${prefix}.low_classifier`, body.low, p('low'), body.lowChannels, numClasses, true),
    headConv(`${prefix}.high_classifier`, p('gated'), p('high_small'), inter, numClasses, true),
    { op: 'resize', input: p('high_small'), like: body.low, output: p('high') },
    { op: 'add', inputs: [p('low'), p('high')], output },
  ];
}

/** The declaration of torchvision's `name` (e.g. `lraspp_mobilenet_v3_large(num_classes=21)`). */
export function mobilenetNetwork(name: MobileNetNetwork, opts: MobileNetOptions = {}): MobileNetArchitecture {
  if (!isMobileNetNetwork(name)) throw new Error(`unknown network '${String(name)}' (expected ${MOBILENET_NETWORKS.join(', ')})`);
  const lraspp = name.startsWith('lraspp');
  const options: MobileNetBuiltOptions = {
    numClasses: opts.numClasses ?? 21,
    aux: lraspp ? false : (opts.aux ?? true),
    channels: opts.channels ?? mobilenetChannels(opts.widthMult ?? 1),
    headChannels: opts.headChannels ?? defaultHeadChannels(name),
  };
  const C = options.numClasses;
  if (!Number.isInteger(C) || C < 1 || C > 255) throw new Error(`numClasses must be an integer in 1..255 (255 is the ignore label), got ${C}`);
  if (!Number.isInteger(options.headChannels) || options.headChannels < 1) throw new Error(`head channels must be a positive integer, got ${options.headChannels}`);
  if (lraspp && opts.aux) throw new Error(`${name} has no auxiliary head`);
  const input = 'image';
  const body = mobilenetV3LargeBody(input, options.channels);
  const layers: Layer[] = [...body.layers];
  const backboneEnd = layers.length - 1;
  if (lraspp) layers.push(...lrasppHead('classifier', body, C, options.headChannels, 'classifier/out'));
  else layers.push(...deeplabHead('classifier', body.high, body.highChannels, C, options.headChannels, 'classifier/out'));
  layers.push({ op: 'resize', input: 'classifier/out', like: input, output: 'logits' });
  let auxOutput: string | undefined;
  if (options.aux) {
    layers.push(...fcnHead('aux_classifier', body.low, body.lowChannels, C, 'aux_classifier/out'));
    layers.push({ op: 'resize', input: 'aux_classifier/out', like: input, output: 'aux_logits' });
    auxOutput = 'aux_logits';
  }
  return {
    name, numClasses: C, layers, input, output: 'logits', ...(auxOutput ? { auxOutput } : {}),
    backboneEnd, stride: 1, loss: 'torchvision', options,
  };
}
