// The ONNX writer: a small graph builder over onnx-proto's generated protobuf classes. Compilers add
// inputs, initializers and nodes by name, then encode() gives the ModelProto bytes. It never runs them.
import type OnnxProto from 'onnx-proto';
import { requireCjs } from '../util/cjs.js';

const { onnx } = requireCjs('onnx-proto') as typeof OnnxProto;

export const OPSET = 17;

export type DType = 'float32' | 'float64' | 'int64' | 'int32' | 'uint8' | 'int8' | 'bool';

const DATA_TYPE: Record<DType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  float64: onnx.TensorProto.DataType.DOUBLE,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
  uint8: onnx.TensorProto.DataType.UINT8,
  int8: onnx.TensorProto.DataType.INT8,
  bool: onnx.TensorProto.DataType.BOOL,
};

export type TensorData = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array | Int8Array;

/** Forces a number attribute to be written as FLOAT even when it is integral (e.g. alpha = 1). */
export class FloatAttr {
  constructor(readonly value: number) {}
}
export const f = (value: number): FloatAttr => new FloatAttr(value);

export type Attr = number | FloatAttr | number[] | FloatAttr[] | string | { tensor: { dtype: DType; dims: number[]; data: TensorData } };

export interface ValueInfo {
  name: string;
  dtype: DType;
  /** Fixed sizes or symbolic names (e.g. 'N', 'H', 'W'). */
  dims: (number | string)[];
}

function tensorProto(name: string, dtype: DType, dims: number[], data: TensorData) {
  const expected = dims.reduce((a, b) => a * b, 1);
  if (data.length !== expected) throw new Error(`initializer ${name}: ${data.length} values for dims [${dims.join(', ')}]`);
  return onnx.TensorProto.create({
    name,
    dataType: DATA_TYPE[dtype],
    dims,
    rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  });
}

function valueInfo(v: ValueInfo) {
  return onnx.ValueInfoProto.create({
    name: v.name,
    type: {
      tensorType: {
        elemType: DATA_TYPE[v.dtype],
        shape: { dim: v.dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  });
}

function attribute(name: string, value: Attr) {
  const T = onnx.AttributeProto.AttributeType;
  if (value instanceof FloatAttr) return { name, type: T.FLOAT, f: value.value };
  if (typeof value === 'number') {
    return Number.isInteger(value) ? { name, type: T.INT, i: value } : { name, type: T.FLOAT, f: value };
  }
  if (typeof value === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(value) };
  if (Array.isArray(value)) {
    const floats = value.some((v) => v instanceof FloatAttr || !Number.isInteger(v));
    if (floats) return { name, type: T.FLOATS, floats: value.map((v) => (v instanceof FloatAttr ? v.value : v)) };
    return { name, type: T.INTS, ints: value as number[] };
  }
  return { name, type: T.TENSOR, t: tensorProto('', value.tensor.dtype, value.tensor.dims, value.tensor.data) };
}

export class GraphBuilder {
  private readonly nodes: ReturnType<typeof onnx.NodeProto.create>[] = [];
  private readonly initializers: ReturnType<typeof onnx.TensorProto.create>[] = [];
  private readonly inputs: ValueInfo[] = [];
  private readonly outputs: ValueInfo[] = [];
  private readonly annotations: ValueInfo[] = [];
  private readonly names = new Set<string>();
  private counter = 0;
  private readonly constCache = new Map<string, string>();

  constructor(readonly graphName: string) {}

  /** A name not used before, derived from `prefix`. */
  fresh(prefix: string): string {
    let name = prefix;
    while (this.names.has(name)) name = `${prefix}_${++this.counter}`;
    this.names.add(name);
    return name;
  }

  input(name: string, dtype: DType, dims: (number | string)[]): string {
    this.claim(name);
    this.inputs.push({ name, dtype, dims });
    return name;
  }

  output(name: string, dtype: DType, dims: (number | string)[]): void {
    this.outputs.push({ name, dtype, dims });
  }

  /** Declares the type and (possibly symbolic) shape of an inner value, for the runtime's shape-based passes. */
  valueInfo(name: string, dtype: DType, dims: (number | string)[]): void {
    this.annotations.push({ name, dtype, dims });
  }

  initializer(name: string, dtype: DType, dims: number[], data: TensorData): string {
    this.claim(name);
    this.initializers.push(tensorProto(name, dtype, dims, data));
    return name;
  }

  /** A small constant tensor (shared when the same value is asked for twice). Never use it for big zeros: broadcast a scalar. */
  constant(values: number | number[] | bigint[], dtype: DType = 'float32', dims?: number[]): string {
    const list = Array.isArray(values) ? values : [values];
    const shape = dims ?? (Array.isArray(values) ? [list.length] : []);
    const key = `${dtype}:${shape.join('x')}:${list.join(',')}`;
    const cached = this.constCache.get(key);
    if (cached) return cached;
    let data: TensorData;
    switch (dtype) {
      case 'float32': data = Float32Array.from(list as number[]); break;
      case 'float64': data = Float64Array.from(list as number[]); break;
      case 'int64': data = BigInt64Array.from(list.map((v) => BigInt(v))); break;
      case 'int32': data = Int32Array.from(list as number[]); break;
      case 'uint8': case 'bool': data = Uint8Array.from(list as number[]); break;
      case 'int8': data = Int8Array.from(list as number[]); break;
    }
    // fresh() has already claimed the name; initializer() would claim it a second time
    const name = this.fresh('const');
    this.initializers.push(tensorProto(name, dtype, shape, data));
    this.constCache.set(key, name);
    return name;
  }

  /** Adds a node; returns its output names (fresh ones unless given). */
  nodeN(opType: string, inputs: string[], attrs: Record<string, Attr | undefined> = {}, outputs: number | string[] = 1, domain?: string): string[] {
    const outNames = typeof outputs === 'number'
      ? Array.from({ length: outputs }, () => this.fresh(`${opType.toLowerCase()}`))
      : outputs.map((o) => { this.claim(o); return o; });
    const attribute_ = Object.entries(attrs).filter(([, v]) => v !== undefined).map(([k, v]) => attribute(k, v as Attr));
    this.nodes.push(onnx.NodeProto.create({
      name: this.fresh(`n_${opType}`),
      opType,
      domain: domain ?? '',
      input: inputs,
      output: outNames,
      attribute: attribute_,
    }));
    return outNames;
  }

  /** Adds a node with one output; `output` names it. */
  /** Dimensions start … end − 1 of `value`'s runtime shape, as an int64 [end − start] value (Slice of Shape). */
  dims(value: string, start: number, end: number): string {
    return this.node('Slice', [this.node('Shape', [value]), this.constant([start], 'int64'), this.constant([end], 'int64')]);
  }

  node(opType: string, inputs: string[], attrs: Record<string, Attr | undefined> = {}, output?: string): string {
    return this.nodeN(opType, inputs, attrs, output ? [output] : 1)[0]!;
  }

  get nodeCount(): number {
    return this.nodes.length;
  }

  /** Encodes the ModelProto; `metadata` goes to metadata_props (readable by any ONNX runtime). */
  encode(docString = '', metadata: Record<string, string> = {}): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: 'fcn',
      producerVersion: '0.1.0',
      docString,
      metadataProps: Object.entries(metadata).map(([key, value]) => ({ key, value })),
      // ONNX's operators at OPSET; ONNX Runtime's contrib domains (com.microsoft, com.microsoft.nchwc) at their version 1
      opsetImport: [{ domain: '', version: OPSET }, ...[...new Set(this.nodes.map((n) => n.domain).filter((d) => d))].map((domain) => ({ domain, version: 1 }))],
      graph: {
        name: this.graphName,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs.map(valueInfo),
        output: this.outputs.map(valueInfo),
        valueInfo: this.annotations.map(valueInfo),
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }

  private claim(name: string): void {
    if (this.names.has(name)) throw new Error(`graph ${this.graphName}: value name '${name}' used twice`);
    this.names.add(name);
  }
}

/** What a reader of an ONNX file needs without running it: metadata_props, the graph's inputs and outputs, its node count by op type. */
export interface OnnxSummary {
  producer: string;
  metadata: Record<string, string>;
  inputs: string[];
  outputs: string[];
  /** Each output's declared shape: a number for a fixed dimension, the parameter's name for a symbolic one, null when undeclared. */
  outputShapes: Record<string, (number | string | null)[]>;
  ops: Record<string, number>;
}

/** Decodes an ONNX ModelProto's header parts; throws an Error when the bytes are not one. */
export function readOnnxSummary(bytes: Uint8Array): OnnxSummary {
  const model = onnx.ModelProto.decode(bytes);
  if (!model.graph) throw new Error('no graph in the model');
  const metadata: Record<string, string> = {};
  for (const p of model.metadataProps ?? []) if (p.key) metadata[p.key] = p.value ?? '';
  const ops: Record<string, number> = {};
  for (const n of model.graph.node ?? []) ops[n.opType ?? ''] = (ops[n.opType ?? ''] ?? 0) + 1;
  return {
    producer: model.producerName ?? '',
    metadata,
    inputs: (model.graph.input ?? []).map((v) => v.name ?? ''),
    outputs: (model.graph.output ?? []).map((v) => v.name ?? ''),
    outputShapes: Object.fromEntries((model.graph.output ?? []).map((v) => [v.name ?? '',
      (v.type?.tensorType?.shape?.dim ?? []).map((d) => (d.dimValue != null ? Number(d.dimValue) : d.dimParam || null))])),
    ops,
  };
}

/** The float32 initializers of an ONNX model by name, with their dims (raw or float_data storage). */
export function readOnnxFloatInitializers(bytes: Uint8Array): Map<string, { dims: number[]; data: Float32Array }> {
  const model = onnx.ModelProto.decode(bytes);
  const out = new Map<string, { dims: number[]; data: Float32Array }>();
  for (const t of model.graph?.initializer ?? []) {
    if (t.dataType !== onnx.TensorProto.DataType.FLOAT || !t.name) continue;
    const dims = (t.dims ?? []).map(Number);
    const raw = t.rawData;
    // copied: the decoded bytes may be unaligned for a Float32Array view
    const data = raw && raw.length > 0 ? new Float32Array(Uint8Array.from(raw).buffer) : Float32Array.from(t.floatData ?? []);
    out.set(t.name, { dims, data });
  }
  return out;
}
