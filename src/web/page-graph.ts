// The ONNX graph the page runs in the browser, for any model the server loaded: a model read from
// an ONNX file (`fcn export`'s float32, `fcn quantize`'s int8) is handed out as that file, byte for
// byte; a model built from weights (a checkpoint, a .pth, a downloaded network) as `fcn export`
// writes it (the same network, padded to its stride inside the graph, the `mask` output and the
// model card as metadata). Nothing here knows one network from another.
import { compileExport } from '../graph/inference.js';
import type { SegmentationModel } from '../infer/model.js';
import type { TensorMap } from '../model/params.js';

/** What the server knows of where its model came from. */
export interface PageGraphSource {
  /** The ONNX file the model was loaded from (default: the model's own `onnx`, when it has one). */
  onnx?: Uint8Array;
  /** The weights the model was built from. */
  weights?: TensorMap;
}

/** Where the page's graph comes from: the loaded ONNX file, or an export of the weights. */
export type PageGraphOrigin = 'onnx-file' | 'export';

export interface PageGraph {
  origin: PageGraphOrigin;
  /** The graph's bytes, made on the first call and kept. */
  bytes(): Promise<Uint8Array>;
}

/** The page's graph for `model`, or undefined when the server has neither its ONNX file nor its weights. */
export function pageGraph(model: SegmentationModel, source: PageGraphSource): PageGraph | undefined {
  // a model loaded from an ONNX file keeps the file's bytes as `onnx`
  const onnx = source.onnx ?? model.onnx;
  const { weights } = source;
  if (onnx) return { origin: 'onnx-file', bytes: async () => onnx };
  if (!weights) return undefined;
  let made: Promise<Uint8Array> | undefined;
  const meta = { classes: model.classNames(), colors: model.classColors(), normalization: model.meta.normalization };
  return {
    origin: 'export',
    bytes: () => (made ??= Promise.resolve().then(() => compileExport(model.arch, weights, meta))),
  };
}
