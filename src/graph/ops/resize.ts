// Bilinear resize of a value to another value's height and width, as PyTorch's
// F.interpolate(mode='bilinear', align_corners=False) without antialiasing: output pixel i reads the
// input at src = max((i + ½)·in/out − ½, 0), between floor(src) and the next pixel (clamped to the
// last), weighted by the distance. It upsamples, downsamples, and from a 1x1 input broadcasts.
// ONNX's Resize (linear, half_pixel) is the same map; being linear, y = A_h·x·A_wᵀ per plane with
// the interpolation matrices A, so the backward is dx = A_hᵀ·dy·A_w (static shapes in training).
// Our own inference sessions (symbolic sizes, EvalContext.resize 'separable') take the two axes one
// after the other, y = A_h·(x·A_wᵀ):
// the width as a MatMul with A_wᵀ built inside the graph from the sizes, on the small input; the
// height by ORT's Resize of that viewed as [N·C, h, 1, W] to [N·C, H, 1, W]: with only axis 1 scaled
// ORT takes it for NHWC and interpolates whole rows of W contiguous values, where its NCHW kernel
// gathers four scalars for every output pixel (the final 65→520 resize of LR-ASPP was a fifth of
// its time). Both passes use the same half-pixel map, so this equals the 2-D bilinear to rounding.
// Exported graphs keep the plain 2-D Resize: the one-axis view relies on ORT's CPU kernel choice, and
// onnxruntime-web's WebGPU backend gets it wrong.
import type { ResizeLayer } from '../../model/layers.js';
import { op } from '../backward.js';
import type { GraphBuilder } from '../onnx.js';
import type { LayerKind } from './kind.js';

/** PyTorch's interpolation matrix [out, in] along one axis (float32 arithmetic, as its CPU kernel). */
export function interpolationMatrix(inSize: number, outSize: number): Float32Array {
  const f32 = Math.fround;
  const a = new Float32Array(outSize * inSize);
  const scale = f32(inSize / outSize);
  for (let i = 0; i < outSize; i++) {
    const src = Math.max(f32(f32(scale * f32(i + 0.5)) - 0.5), 0);
    const i0 = Math.min(Math.floor(src), inSize - 1);
    const i1 = Math.min(i0 + 1, inSize - 1);
    const l1 = f32(src - i0);
    a[i * inSize + i0] += f32(1 - l1);
    a[i * inSize + i1] += l1;
  }
  return a;
}

/**
 * A_ᵀ [in, out] of interpolationMatrix built in the graph from the sizes (int64 [1] values), with the
 * same float32 operations: src = max((i + ½)·(in/out) − ½, 0), i0 = min(⌊src⌋, in − 1),
 * i1 = min(i0 + 1, in − 1), weights 1 − (src − i0) at row i0 and src − i0 at row i1.
 */
function interpolationMatrixT(g: GraphBuilder, inSize: string, outSize: string, hint: string): string {
  const h = `${hint}:interp`;
  const scalar = (v: string) => op(g, 'Squeeze', [v, g.constant([0], 'int64')], h);
  const float = (v: string) => op(g, 'Cast', [v], h, { to: 1 /* FLOAT */ });
  const range = (n: string) => float(op(g, 'Range', [g.constant(0, 'int64'), scalar(n), g.constant(1, 'int64')], h));
  const last = op(g, 'Sub', [float(inSize), g.constant(1)], h);
  const scale = op(g, 'Div', [float(inSize), float(outSize)], h);
  const centre = op(g, 'Mul', [op(g, 'Add', [range(outSize), g.constant(0.5)], h), scale], h);
  const src = op(g, 'Max', [op(g, 'Sub', [centre, g.constant(0.5)], h), g.constant(0)], h);
  const i0 = op(g, 'Min', [op(g, 'Floor', [src], h), last], h);
  const i1 = op(g, 'Min', [op(g, 'Add', [i0, g.constant(1)], h), last], h);
  const l1 = op(g, 'Sub', [src, i0], h);
  const l0 = op(g, 'Sub', [g.constant(1), l1], h);
  // rows j of the input against columns i of the output: [in, 1] == [out] → [in, out]
  const j = op(g, 'Unsqueeze', [range(inSize), g.constant([1], 'int64')], h);
  const at = (i: string, l: string) => op(g, 'Mul', [float(op(g, 'Equal', [j, i], h)), l], h);
  return op(g, 'Add', [at(i0, l0), at(i1, l1)], `${hint}:AwT`);
}

/** The inference form (see the top of this file): width by MatMul, then height by a one-axis Resize. */
function emitSeparable(g: GraphBuilder, layer: ResizeLayer): void {
  const o = layer.output;
  const [nc, h, w] = [g.dims(layer.input, 0, 2), g.dims(layer.input, 2, 3), g.dims(layer.input, 3, 4)];
  const [H, W] = [g.dims(layer.like, 2, 3), g.dims(layer.like, 3, 4)];
  const wide = op(g, 'MatMul', [layer.input, interpolationMatrixT(g, w, W, o)], `${o}:wide`);
  const one = g.constant([1], 'int64');
  const rows = op(g, 'Reshape', [wide, op(g, 'Concat', [g.constant([-1], 'int64'), h, one, W], `${o}:rowshape`, { axis: 0 })], `${o}:rows`);
  const sizes = op(g, 'Concat', [g.dims(rows, 0, 1), H, one, W], `${o}:sizes`, { axis: 0 });
  const tall = op(g, 'Resize', [rows, '', '', sizes], `${o}:tall`, { mode: 'linear', coordinate_transformation_mode: 'half_pixel' });
  g.node('Reshape', [tall, op(g, 'Concat', [nc, H, W], `${o}:outshape`, { axis: 0 })], {}, o);
}

function emit(g: GraphBuilder, layer: ResizeLayer, sizes: string): void {
  g.node('Resize', [layer.input, '', '', sizes], { mode: 'linear', coordinate_transformation_mode: 'half_pixel' }, layer.output);
}

export const resize: LayerKind<ResizeLayer, void> = {
  op: 'resize',

  outputShape(layer, [x, like]) {
    if (x![0] !== like![0]) throw new Error(`resize '${layer.output}': batch ${x![0]} of '${layer.input}' differs from ${like![0]} of '${layer.like}'`);
    return [x![0], x![1], like![2], like![3]];
  },


  emitEval({ g, shape, resize }, layer) {
    const [x, like] = [shape(layer.input), shape(layer.like)];
    if (x && like) {
      emit(g, layer, g.constant([x[0], x[1], like[2], like[3]], 'int64'));
      return;
    }
    if (resize === 'separable') {
      emitSeparable(g, layer);
      return;
    }
    emit(g, layer, op(g, 'Concat', [g.dims(layer.input, 0, 2), g.dims(layer.like, 2, 4)], `${layer.output}:sizes`, { axis: 0 }));
  },

  forward(ctx, layer) {
    const [x, like] = [ctx.shape(layer.input), ctx.shape(layer.like)];
    emit(ctx.g, layer, ctx.g.constant([x[0], x[1], like[2], like[3]], 'int64'));
  },

  backward(ctx, layer, _saved, dy) {
    if (!ctx.needsGrad(layer.input)) return;
    const { g } = ctx;
    const [, , h, w] = ctx.shape(layer.input);
    const [, , H, W] = ctx.shape(layer.output);
    const ahT = transpose(interpolationMatrix(h, H), H, h);
    const rows = op(g, 'MatMul', [g.constant(Array.from(ahT), 'float32', [h, H]), dy], `${layer.output}:dxrows`);
    const dx = op(g, 'MatMul', [rows, g.constant(Array.from(interpolationMatrix(w, W)), 'float32', [W, w])], `${layer.output}:dx`);
    ctx.accumulate(layer.input, dx);
  },
};

function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(a.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j]!;
  return t;
}
