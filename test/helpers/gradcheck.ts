// Central finite differences for graph emitters, run through onnxruntime: see test/gradcheck.test.ts
// for the method. Callers pass their own seeded normal generator so their random streams stay theirs.
import assert from 'node:assert/strict';
import type { GraphBuilder, DType } from '../../src/graph/onnx.js';
import { GraphBuilder as Builder } from '../../src/graph/onnx.js';
import { Session, type EngineTensor } from '../../src/engine/session.js';

const size = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
const dot = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
};

export interface CaseInput {
  name: string;
  shape: number[];
  data: Float32Array | Uint8Array;
  dtype?: DType;
  /** Differentiated (float32 inputs only). */
  diff?: boolean;
}

export interface OpCase {
  inputs: CaseInput[];
  /** Shape of the output whose upstream gradient `dy` (an extra input) is given; [] = a scalar loss (dy = 1, no input). */
  outShape: number[];
  emit(g: GraphBuilder): { y: string; grads: Record<string, string> };
  /** Finite-difference step. */
  eps: number;
  directions?: number;
}

/**
 * Builds the op's graph (inputs, upstream gradient dy = R), takes the analytic gradients at x, and
 * compares ⟨∇ᵢ, v⟩ with (⟨R, y(x+εv)⟩ − ⟨R, y(x−εv)⟩)/2ε for random v on each differentiated input.
 * Returns the worst relative error (relative to max(|⟨∇ᵢ, v⟩|, its typical size)).
 */
export async function gradcheck(c: OpCase, normals: (n: number, scale?: number) => Float32Array): Promise<number> {
  const g = new Builder('gradcheck');
  for (const inp of c.inputs) g.input(inp.name, inp.dtype ?? 'float32', inp.shape);
  const scalar = c.outShape.length === 0;
  if (!scalar) g.input('dy', 'float32', c.outShape);
  const { y, grads } = c.emit(g);
  g.output(y, 'float32', c.outShape);
  const diffInputs = c.inputs.filter((i) => i.diff);
  for (const inp of diffInputs) {
    g.node('Identity', [grads[inp.name]!], {}, `grad_${inp.name}`);
    g.output(`grad_${inp.name}`, 'float32', inp.shape);
  }
  const session = await Session.create(g.encode(), { threads: 1 });
  const R = scalar ? Float32Array.of(1) : normals(size(c.outShape));
  const feeds = (override?: { name: string; data: Float32Array }): Record<string, EngineTensor> => {
    const out: Record<string, EngineTensor> = {};
    for (const inp of c.inputs) {
      const data = override?.name === inp.name ? override.data : inp.data;
      out[inp.name] = { dtype: inp.dtype ?? 'float32', dims: inp.shape, data };
    }
    if (!scalar) out.dy = { dtype: 'float32', dims: c.outShape, data: R };
    return out;
  };
  const base = await session.run(feeds());
  let worst = 0;
  try {
    for (const inp of diffInputs) {
      const grad = base[`grad_${inp.name}`]!.data as Float32Array;
      assert.equal(grad.length, size(inp.shape), `gradient of ${inp.name} has the input's size`);
      for (let d = 0; d < (c.directions ?? 2); d++) {
        const v = normals(grad.length);
        const x = inp.data as Float32Array;
        const plus = Float32Array.from(x, (xi, i) => xi + c.eps * v[i]!);
        const minus = Float32Array.from(x, (xi, i) => xi - c.eps * v[i]!);
        // the step actually taken, after float32 rounding of x ± εv
        const step = Float64Array.from(plus, (p, i) => (p - minus[i]!) / 2);
        const yPlus = (await session.run(feeds({ name: inp.name, data: plus }), [y]))[y]!.data as Float32Array;
        const yMinus = (await session.run(feeds({ name: inp.name, data: minus }), [y]))[y]!.data as Float32Array;
        const numeric = (dot(R, yPlus) - dot(R, yMinus)) / 2;
        const analytic = dot(grad, step);
        // relative to the derivative's typical size along a random direction, ‖∇‖·‖step‖/√n, so that a
        // direction nearly orthogonal to ∇ by chance does not turn rounding noise into a large ratio
        const typical = Math.sqrt(dot(grad, grad) * dot(step, step) / grad.length);
        const err = Math.abs(numeric - analytic) / Math.max(Math.abs(analytic), typical, 1e-30);
        worst = Math.max(worst, err);
      }
    }
  } finally {
    await session.dispose();
  }
  return worst;
}

