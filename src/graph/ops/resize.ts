// Bilinear resize of a value to another value's height and width, as PyTorch's
// F.interpolate(mode='bilinear', align_corners=False) without antialiasing: output pixel i reads the
// input at src = max((i + ½)·in/out − ½, 0), between floor(src) and the next pixel (clamped to the
// last), weighted by the distance. It upsamples, downsamples, and from a 1x1 input broadcasts.
// ONNX's Resize (linear, half_pixel) is the same map; being linear, y = A_h·x·A_wᵀ per plane with
// the interpolation matrices A, so the backward is dx = A_hᵀ·dy·A_w (static shapes in training).
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

function emit(g: GraphBuilder, layer: ResizeLayer, sizes: string): void {
  g.node('Resize', [layer.input, '', '', sizes], { mode: 'linear', coordinate_transformation_mode: 'half_pixel' }, layer.output);
}

export const resize: LayerKind<ResizeLayer, void> = {
  op: 'resize',

  outputShape(layer, [x, like]) {
    if (x![0] !== like![0]) throw new Error(`resize '${layer.output}': batch ${x![0]} of '${layer.input}' differs from ${like![0]} of '${layer.like}'`);
    return [x![0], x![1], like![2], like![3]];
  },


  emitEval({ g, shape }, layer) {
    const [x, like] = [shape(layer.input), shape(layer.like)];
    if (x && like) {
      emit(g, layer, g.constant([x[0], x[1], like[2], like[3]], 'int64'));
      return;
    }
    const part = (value: string, a: number, b: number) =>
      op(g, 'Slice', [op(g, 'Shape', [value], `${layer.output}:shape`), g.constant([a], 'int64'), g.constant([b], 'int64')], `${layer.output}:dims`);
    emit(g, layer, op(g, 'Concat', [part(layer.input, 0, 2), part(layer.like, 2, 4)], `${layer.output}:sizes`, { axis: 0 }));
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
