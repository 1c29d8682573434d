// The segmentation heads torchvision's networks share (`torchvision.models.segmentation`): FCNHead
// (the FCN classifier and every aux head) and DeepLabHead (ASPP and its classifier), declared as
// layers with torchvision's parameter names under a prefix ('classifier', 'aux_classifier').
import type { BatchNormLayer, ConvLayer, Layer } from './layers.js';

/** DeepLabV3's atrous rates (torchvision's DeepLabHead). */
export const ASPP_RATES: readonly number[] = Object.freeze([12, 24, 36]);

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
