// One network's inference graph compiled in different forms (InferenceGraphOptions) and run on the same
// batch of two images at the sizes inference tests use: 64x96 as given, and 50x70 padded to the stride
// inside the graph (padToStride), so block-form upsamplers meet both a whole and a cropped output.
import { compileInference, type InferenceGraphOptions } from '../../src/graph/inference.js';
import { Session, type EngineTensor } from '../../src/engine/session.js';
import type { FcnArchitecture } from '../../src/model/fcn.js';
import type { TensorMap } from '../../src/model/params.js';

export type RunForm = (opts: InferenceGraphOptions, fetch: string[]) => Promise<Record<string, EngineTensor>>;

/** Calls `check` once per size with the size and a runner of `arch`'s graph (one session per call, 1 thread). */
export async function forEachFormSize(arch: FcnArchitecture, weights: TensorMap,
  check: (H: number, W: number, run: RunForm) => Promise<void>): Promise<void> {
  for (const [H, W, padToStride] of [[64, 96, false], [50, 70, true]] as const) {
    const x: EngineTensor = { dtype: 'float32', dims: [2, 3, H, W], data: new Float32Array(2 * 3 * H * W).map((_, i) => Math.sin(i * 0.37)) };
    await check(H, W, async (opts, fetch) => {
      const s = await Session.create(compileInference(arch, weights, { padToStride, ...opts }), { threads: 1 });
      try {
        return await s.run({ image: x }, fetch);
      } finally {
        await s.dispose();
      }
    });
  }
}
