// Symbolic spatial sizes of the inference graph's values, declared to ONNX Runtime as value_info.
//
// The graph's height and width are symbolic ('H', 'W'). ORT's NCHWc pass fuses a residual sum into
// the convolution that produces one of its operands (the convolution accumulates into the other
// operand's buffer, then applies the ReLU) only when it can prove both operands the same shape. It
// tracks sizes through convolutions that keep them, but not through dilated ones, and ONNX's own
// shape inference gives up on symbolic sizes: so in a dilated ResNet stage (torchvision's
// segmentation bodies, output stride 8) every block's sum and ReLU ran as separate passes over
// 17-35 MB tensors after the convolution had written its own output. Naming each value's size as a
// symbolic expression of H and W lets ORT see that both operands have the same symbols (its pass
// compares dim_params), which is the truth: equal expressions of the same H and W are equal numbers.
//
// A size is a number or a canonical expression string. A window of kernel k, stride s, padding p and
// dilation d maps n to floor((n + o - 1) / s) + 1 with o = 2p - d(k - 1): the expression depends on
// (n, o, s) only, so two windows with equal (o, s) on the same input (a strided 3x3 conv and its
// block's strided 1x1 shortcut) give the same string. Layers this module does not know give no size
// (nothing is declared from them on): a missing hint costs speed, never correctness.
import type { Layer } from '../model/layers.js';

export type Size = number | string;

function windowSize(n: Size, kernel: number, stride: number, pad: number, dilation: number): Size {
  const o = 2 * pad - dilation * (kernel - 1);
  if (typeof n === 'number') return Math.floor((n + o - 1) / stride) + 1;
  if (stride === 1) return o === 0 ? n : `(${n}${o > 0 ? '+' : ''}${o})`;
  return `(floor((${n}${o - 1 >= 0 ? '+' : ''}${o - 1})/${stride})+1)`;
}

/**
 * The spatial size [height, width] of every value of `layers` whose size follows from the input's
 * `[height, width]` by rules known here: windows (conv, maxpool), same-size elementwise layers,
 * resize (the size of `like`), global pooling (1), concatenation and sums of equal sizes.
 */
export function symbolicSizes(layers: readonly Layer[], input: string, height: Size, width: Size): Map<string, [Size, Size]> {
  const sizes = new Map<string, [Size, Size]>([[input, [height, width]]]);
  const same = (names: readonly string[]): [Size, Size] | undefined => {
    const first = sizes.get(names[0]!);
    return first && names.every((n) => { const s = sizes.get(n); return s && s[0] === first[0] && s[1] === first[1]; }) ? first : undefined;
  };
  for (const l of layers) {
    let out: [Size, Size] | undefined;
    switch (l.op) {
      case 'conv': case 'maxpool': {
        const x = sizes.get(l.input);
        const d = l.op === 'conv' ? l.dilation ?? 1 : 1;
        if (x) out = [windowSize(x[0], l.kernel, l.stride, l.pad, d), windowSize(x[1], l.kernel, l.stride, l.pad, d)];
        break;
      }
      case 'batchnorm': case 'relu': case 'dropout': case 'hardswish': case 'hardsigmoid': case 'sigmoid':
        out = sizes.get(l.input);
        break;
      case 'add': case 'concat':
        out = same(l.inputs);
        break;
      case 'mul': {
        // a gate broadcasts [N, C, 1, 1] over the other operand
        const [a, b] = l.inputs.map((n) => sizes.get(n));
        out = a && b ? (a[0] === 1 && a[1] === 1 ? b : b[0] === 1 && b[1] === 1 ? a : same(l.inputs)) : undefined;
        break;
      }
      case 'resize':
        out = sizes.get(l.like);
        break;
      case 'globalavgpool':
        out = [1, 1];
        break;
      default:
        out = undefined;
    }
    if (out) sizes.set(l.output, out);
  }
  return sizes;
}
