// The vocabulary of the architecture declaration: a flat list of layers over named values (each
// layer reads named values and writes one). Compilers (src/graph) walk this list; parameter names,
// shapes and initialisers are derived from it (params.ts). The declaration knows no runtime.

export interface ConvLayer {
  op: 'conv';
  /** Parameter prefix: `${name}.weight` [out, in, k, k], `${name}.bias` [out]. */
  name: string;
  input: string;
  output: string;
  inChannels: number;
  outChannels: number;
  kernel: number;
  stride: number;
  pad: number;
  bias: boolean;
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

export interface ConvTransposeLayer {
  op: 'convtranspose';
  /** Parameters: `${name}.weight` [in, out, k, k] (PyTorch's layout), `${name}.bias` [out]. */
  name: string;
  input: string;
  output: string;
  inChannels: number;
  outChannels: number;
  kernel: number;
  stride: number;
  pad: number;
  bias: boolean;
  init: 'bilinear';
}

export type Layer = ConvLayer | BatchNormLayer | ReluLayer | MaxPoolLayer | AddLayer | ConvTransposeLayer;

/** Layers that own parameters. */
export type ParamLayer = ConvLayer | BatchNormLayer | ConvTransposeLayer;

export function layerInputs(layer: Layer): string[] {
  return layer.op === 'add' ? [...layer.inputs] : [layer.input];
}
