// The vocabulary of the architecture declaration: a flat list of layers over named values (each
// layer reads named values and writes one). Compilers (src/graph) walk this list; parameter names,
// shapes and initialisers are derived from it (params.ts). The declaration knows no runtime.

/** What convolutions and transposed convolutions share: square kernels over NCHW values. */
interface ConvGeometry {
  /** Parameter prefix: `${name}.weight`, `${name}.bias` [out]. */
  name: string;
  input: string;
  output: string;
  inChannels: number;
  outChannels: number;
  kernel: number;
  stride: number;
  pad: number;
  bias: boolean;
}

/** Convolution; `${name}.weight` is [out, in / groups, k, k]. */
export interface ConvLayer extends ConvGeometry {
  op: 'conv';
  /** Spacing of the kernel taps (atrous convolution); 1 when absent. */
  dilation?: number;
  /** Channel groups (depthwise when equal to the channels); 1 when absent. */
  groups?: number;
  /** How a fresh network initialises the weight: torchvision's ResNet init, PyTorch's Conv2d default, or zeros (the paper's skip scorers). */
  init: 'kaiming_fan_out' | 'pytorch_default' | 'zeros';
}

export interface BatchNormLayer {
  op: 'batchnorm';
  /** Parameters: `${name}.weight`, `.bias`, `.running_mean`, `.running_var`, all [channels]. */
  name: string;
  input: string;
  output: string;
  channels: number;
  eps: number;
  /** PyTorch's BatchNorm momentum for the running statistics (0.1). */
  momentum: number;
}

export interface ReluLayer {
  op: 'relu';
  input: string;
  output: string;
}

export interface MaxPoolLayer {
  op: 'maxpool';
  input: string;
  output: string;
  kernel: number;
  stride: number;
  pad: number;
}

export interface AddLayer {
  op: 'add';
  inputs: [string, string];
  output: string;
}

/** Transposed convolution; `${name}.weight` is [in, out, k, k] (PyTorch's layout). */
/** Transposed convolution; `${name}.weight` is [in, out / groups, k, k] (PyTorch's layout). */
export interface ConvTransposeLayer extends ConvGeometry {
  op: 'convtranspose';
  /** Channel groups: equal to the channels for a per-class (grouped) upsampler; 1 when absent. */
  groups?: number;
  init: 'bilinear';
}

/** Bilinear resize of `input` to the height and width of `like` (PyTorch's
 *  `F.interpolate(mode='bilinear', align_corners=False)`): how torchvision's heads bring logits back
 *  to the input size, and how DeepLab's pooling branch broadcasts its 1x1 features back. */
export interface ResizeLayer {
  op: 'resize';
  input: string;
  /** The value whose spatial size the output takes. */
  like: string;
  output: string;
}

/** Global average pooling to [N, C, 1, 1] (`nn.AdaptiveAvgPool2d(1)`). */
export interface GlobalAvgPoolLayer {
  op: 'globalavgpool';
  input: string;
  output: string;
}

/** Concatenation along the channels. */
export interface ConcatLayer {
  op: 'concat';
  inputs: string[];
  output: string;
}

/** Dropout: identity at inference; in training a seeded Bernoulli mask scaled by 1/(1-p). */
export interface DropoutLayer {
  op: 'dropout';
  input: string;
  output: string;
  p: number;
}

/** Hard swish, x·relu6(x + 3)/6 (`nn.Hardswish`, MobileNetV3's activation). */
export interface HardswishLayer {
  op: 'hardswish';
  input: string;
  output: string;
}

/** Hard sigmoid, relu6(x + 3)/6 (`nn.Hardsigmoid`, the squeeze-and-excitation gate). */
export interface HardsigmoidLayer {
  op: 'hardsigmoid';
  input: string;
  output: string;
}

/** Logistic sigmoid (`nn.Sigmoid`, LR-ASPP's scale branch). */
export interface SigmoidLayer {
  op: 'sigmoid';
  input: string;
  output: string;
}

/** Elementwise product, broadcasting size-1 dimensions ([N, C, H, W]·[N, C, 1, 1]: channel gating). */
export interface MulLayer {
  op: 'mul';
  inputs: [string, string];
  output: string;
}

export type Layer = ConvLayer | BatchNormLayer | ReluLayer | MaxPoolLayer | AddLayer | ConvTransposeLayer
  | ResizeLayer | GlobalAvgPoolLayer | ConcatLayer | DropoutLayer | HardswishLayer | HardsigmoidLayer | SigmoidLayer | MulLayer;

/** Layers that own parameters. */
export type ParamLayer = ConvLayer | BatchNormLayer | ConvTransposeLayer;

export function layerInputs(layer: Layer): string[] {
  switch (layer.op) {
    case 'add':
    case 'mul':
    case 'concat':
      return [...layer.inputs];
    case 'resize':
      return [layer.input, layer.like];
    default:
      return [layer.input];
  }
}
