// The deterministic weight formula shared with scripts/make_fixtures.py: PyTorch fixtures store only
// inputs and outputs, and both sides rebuild the same weights from each tensor's name and shape.
// Change it in both places or neither; test/formula.test.ts checks it against literals Python printed.
import { bilinearKernel } from '../../src/model/bilinear.js';

/** seed(name) = (Σ_k charCode(name[k]) · (k+1)) mod 1009. */
export function formulaSeed(name: string): number {
  let s = 0;
  for (let k = 0; k < name.length; k++) s += name.charCodeAt(k) * (k + 1);
  return s % 1009;
}

/**
 * The tensor `name` of shape `shape` (flat, row-major). With u[i] = sin(0.7071·i + 0.1·seed(name)) in
 * float64, each value rounded once to float32:
 * 4-D weights (convs) u·sqrt(2/fan_in); 1-D weights (batch-norm) 1 + 0.25u; biases and running means
 * 0.1u; running variances 1 + 0.5u²; `transpose_conv.weight` bilinearKernel(C, C, k) + 0.01u.
 */
export function formulaTensor(name: string, shape: readonly number[]): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const phase = 0.1 * formulaSeed(name);
  const last = name.slice(name.lastIndexOf('.') + 1);
  const out = new Float32Array(n);
  // The operation order below is Python's, so the float64 intermediates agree bit for bit.
  let value: (u: number, i: number) => number;
  if (name === 'transpose_conv.weight') {
    if (shape.length !== 4) throw new Error(`formula: ${name} must be 4-D, got [${shape.join(', ')}]`);
    const base = bilinearKernel(shape[0]!, shape[1]!, shape[2]!);
    value = (u, i) => base[i]! + 0.01 * u;
  } else if (last === 'weight' && shape.length === 4) {
    const scale = Math.sqrt(2 / (shape[1]! * shape[2]! * shape[3]!));
    value = (u) => u * scale;
  } else if (last === 'weight' && shape.length === 1) {
    value = (u) => 1 + 0.25 * u;
  } else if (last === 'bias' || last === 'running_mean') {
    value = (u) => 0.1 * u;
  } else if (last === 'running_var') {
    value = (u) => 1 + 0.5 * u * u;
  } else {
    throw new Error(`formula: no rule for tensor '${name}' of shape [${shape.join(', ')}]`);
  }
  for (let i = 0; i < n; i++) out[i] = value(Math.sin(0.7071 * i + phase), i);
  return out;
}

/** Every listed tensor from the formula, e.g. `formulaWeights(fcnParameters(fcnResNet18()))`. */
export function formulaWeights(params: readonly { name: string; shape: readonly number[] }[]): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const p of params) out.set(p.name, formulaTensor(p.name, p.shape));
  return out;
}
