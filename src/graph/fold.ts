// Batch normalisation folded into the convolution before it (eval mode): for a conv y = W·x + b
// followed by BN with scale γ, shift β, running mean μ and variance σ², BN(y) = s·(W·x + b − μ) + β
// with s = γ / √(σ² + ε) per output channel, i.e. a conv with weights s·W and bias s·(b − μ) + β.
// ORT does the same for its own Conv nodes; a convolution emitted in another form (a MatMul) needs
// it done here.
import type { BatchNormLayer, ConvLayer, Layer } from '../model/layers.js';
import { layerInputs } from '../model/layers.js';

export interface FoldedTensor { shape: number[]; data: Float32Array }

/**
 * `layers` with every conv that `which` selects and whose output only a batchnorm reads merged with
 * that batchnorm into one conv with a bias (named as the conv, writing the batchnorm's output); the
 * merged weights and biases in `tensors`, keyed by parameter name. `keep`: values that must survive
 * (graph outputs).
 */
export function foldBatchNorms(layers: readonly Layer[], weight: (name: string) => Float32Array, which: (l: ConvLayer) => boolean,
  keep: ReadonlySet<string>): { layers: Layer[]; tensors: Map<string, FoldedTensor> } {
  const readers = new Map<string, number>();
  for (const l of layers) for (const v of layerInputs(l)) readers.set(v, (readers.get(v) ?? 0) + 1);
  const tensors = new Map<string, FoldedTensor>();
  const out: Layer[] = [];
  for (let i = 0; i < layers.length; i++) {
    const l = layers[i]!;
    const next = layers[i + 1];
    if (l.op !== 'conv' || !which(l) || next?.op !== 'batchnorm' || next.input !== l.output || readers.get(l.output) !== 1 || keep.has(l.output)) {
      out.push(l);
      continue;
    }
    const bn = next as BatchNormLayer;
    const w = weight(`${l.name}.weight`);
    const b = l.bias ? weight(`${l.name}.bias`) : undefined;
    const [gamma, beta, mean, variance] = ['weight', 'bias', 'running_mean', 'running_var'].map((s) => weight(`${bn.name}.${s}`));
    const per = w.length / l.outChannels;
    const fw = new Float32Array(w.length);
    const fb = new Float32Array(l.outChannels);
    for (let o = 0; o < l.outChannels; o++) {
      const s = gamma![o]! / Math.sqrt(variance![o]! + bn.eps);
      for (let k = 0; k < per; k++) fw[o * per + k] = s * w[o * per + k]!;
      fb[o] = s * ((b?.[o] ?? 0) - mean![o]!) + beta![o]!;
    }
    tensors.set(`${l.name}.weight`, { shape: [l.outChannels, l.inChannels / (l.groups ?? 1), l.kernel, l.kernel], data: fw });
    tensors.set(`${l.name}.bias`, { shape: [l.outChannels], data: fb });
    out.push({ ...l, output: bn.output, bias: true });
    i++;
  }
  return { layers: out, tensors };
}
