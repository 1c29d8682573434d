// PyTorch `torch.save` files read without Python: the zip format (PyTorch >= 1.6: `<stem>/data.pkl`
// plus one raw entry per storage under `<stem>/data/<key>`) and the legacy format (pickles back to
// back, then the raw storages). The pickle is interpreted by our restricted unpickler with an
// allow-list of the few globals a state_dict needs; tensors are materialised from their storage
// with offset, size and stride, so views (transposed, strided, shared storages) come out right.
import { FcnError } from '../util/errors.js';
import { PyCallable, PyTuple, unpickle } from './pickle.js';
import { DTYPE_SIZE, formatShape, shapeNumel, type DType, type Tensor } from './tensor.js';
import { readZip } from './zip.js';

/** torch's storage classes as pickles name them (`torch.FloatStorage`, ...). */
const STORAGE_DTYPES: Readonly<Record<string, DType>> = Object.freeze({
  DoubleStorage: 'F64', FloatStorage: 'F32', HalfStorage: 'F16', BFloat16Storage: 'BF16',
  LongStorage: 'I64', IntStorage: 'I32', ShortStorage: 'I16', CharStorage: 'I8', ByteStorage: 'U8', BoolStorage: 'BOOL',
});

/** What `torch.FloatStorage` etc. unpickle to: a marker carrying the element type. */
class StorageType {
  constructor(readonly dtype: DType, readonly qualname: string) {}
}

/** A storage (or a legacy view of one): element type, and its bytes once they are known. */
class Storage {
  /** Legacy files append storage bytes after the pickle; zip files give them at once. */
  bytes: Uint8Array | undefined;
  constructor(readonly dtype: DType, readonly numel: number, readonly key: string, bytes?: Uint8Array, readonly root?: { storage: Storage; offset: number }) {
    this.bytes = bytes;
  }
  data(file: string): Uint8Array {
    if (this.root) {
      const base = this.root.storage.data(file);
      const size = DTYPE_SIZE[this.dtype];
      return base.subarray(this.root.offset * size, (this.root.offset + this.numel) * size);
    }
    if (!this.bytes) throw new FcnError(`${file}: storage '${this.key}' has no data (truncated file?)`);
    return this.bytes;
  }
}

/** A tensor as the pickle describes it; materialised once every storage's bytes are known. */
class TensorRef {
  constructor(readonly storage: Storage, readonly offset: number, readonly shape: number[], readonly stride: number[]) {}
}

function isCount(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

function intTuple(x: unknown, what: string, file: string): number[] {
  if (!Array.isArray(x) || !x.every(isCount)) throw new FcnError(`${file}: ${what} is not a tuple of non-negative integers`);
  return [...x] as number[];
}

function rebuildTensor(args: unknown[], file: string): TensorRef {
  const [storage, offset, size, stride] = args;
  if (!(storage instanceof Storage)) throw new FcnError(`${file}: a tensor is rebuilt from something that is not a storage`);
  if (!isCount(offset)) throw new FcnError(`${file}: invalid tensor storage offset`);
  const shape = intTuple(size, 'a tensor size', file);
  const strides = intTuple(stride, 'a tensor stride', file);
  if (strides.length !== shape.length) throw new FcnError(`${file}: a tensor of shape ${formatShape(shape)} has stride ${formatShape(strides)}`);
  // the last element reached must lie inside the storage
  let last = offset;
  for (let d = 0; d < shape.length; d++) if (shape[d]! > 0) last += (shape[d]! - 1) * strides[d]!;
  if (shapeNumel(shape) > 0 && last >= storage.numel) {
    throw new FcnError(`${file}: a tensor of shape ${formatShape(shape)} (offset ${offset}, stride ${formatShape(strides)}) reaches past its storage of ${storage.numel} elements`);
  }
  return new TensorRef(storage, offset, shape, strides);
}

/** The allow-list: the only globals a state_dict pickle needs, each bound to a data-building function of ours. */
function torchGlobals(file: string): (module: string, name: string) => unknown {
  const orderedDict = new PyCallable('collections.OrderedDict', (args) => {
    const m = new Map<unknown, unknown>();
    if (args.length > 0 && Array.isArray(args[0])) for (const kv of args[0]) if (Array.isArray(kv) && kv.length === 2) m.set(kv[0], kv[1]);
    return m;
  });
  const rebuildV2 = new PyCallable('torch._utils._rebuild_tensor_v2', (args) => rebuildTensor(args, file));
  const rebuild = new PyCallable('torch._utils._rebuild_tensor', (args) => rebuildTensor(args, file));
  // nn.Parameter(data, requires_grad, hooks[, state]): the data is all we keep
  const rebuildParameter = new PyCallable('torch._utils._rebuild_parameter', (args) => {
    if (!(args[0] instanceof TensorRef)) throw new FcnError(`${file}: a parameter is rebuilt from something that is not a tensor`);
    return args[0];
  });
  // torch >= 1.12 wraps tensors of subclasses as _rebuild_from_type_v2(func, type, args, state)
  const rebuildFromType = new PyCallable('torch._tensor._rebuild_from_type_v2', (args) => {
    const [fn, , fnArgs] = args;
    if (!(fn instanceof PyCallable) || !Array.isArray(fnArgs)) throw new FcnError(`${file}: malformed _rebuild_from_type_v2`);
    return fn.call(fnArgs);
  });
  const tensorType = new PyCallable('torch.Tensor', () => {
    throw new FcnError(`${file}: constructs a torch.Tensor directly, which a state_dict never does`);
  });
  return (module, name) => {
    if (module === 'collections' && name === 'OrderedDict') return orderedDict;
    if (module === 'torch._utils') {
      if (name === '_rebuild_tensor_v2') return rebuildV2;
      if (name === '_rebuild_tensor') return rebuild;
      if (name === '_rebuild_parameter' || name === '_rebuild_parameter_with_state') return rebuildParameter;
    }
    if (module === 'torch._tensor' && name === '_rebuild_from_type_v2') return rebuildFromType;
    if (module === 'torch' && (name === 'Tensor')) return tensorType;
    if (module === 'torch.nn.parameter' && name === 'Parameter') return tensorType;
    if (module === 'torch' && Object.prototype.hasOwnProperty.call(STORAGE_DTYPES, name)) return new StorageType(STORAGE_DTYPES[name]!, `torch.${name}`);
    return undefined;
  };
}

const MAX_TENSOR_BYTES = 2 ** 31;

/** Copies the tensor's elements (any strides) into a fresh contiguous row-major buffer. */
function materialise(ref: TensorRef, file: string, bigEndian: boolean): Tensor {
  const dtype = ref.storage.dtype;
  const size = DTYPE_SIZE[dtype];
  const src = ref.storage.data(file);
  if (src.byteLength < ref.storage.numel * size) {
    throw new FcnError(`${file}: storage '${ref.storage.key}' has ${src.byteLength} bytes, expected ${ref.storage.numel * size} (truncated?)`);
  }
  const n = shapeNumel(ref.shape);
  // stride-0 (expanded) views can claim any size over one element: no state_dict tensor is near this
  if (n * size > MAX_TENSOR_BYTES) {
    throw new FcnError(`${file}: a tensor of shape ${formatShape(ref.shape)} would take ${n * size} bytes (more than ${MAX_TENSOR_BYTES})`);
  }
  const nd = ref.shape.length;
  let contiguous = true;
  for (let d = nd - 1, expect = 1; d >= 0; d--) {
    if (ref.shape[d]! !== 1 && ref.stride[d] !== expect) contiguous = false;
    expect *= ref.shape[d]!;
  }
  const swap = bigEndian && size > 1;
  // contiguous row-major strides in the file's own byte order: a view of the storage, no copy (a
  // Tensor's bytes may be one; readers copy what they keep)
  if (contiguous && !swap) return { dtype, shape: [...ref.shape], data: src.subarray(ref.offset * size, (ref.offset + n) * size) };
  const out = new Uint8Array(n * size);
  if (contiguous) out.set(src.subarray(ref.offset * size, (ref.offset + n) * size));
  else {
    const index = new Array<number>(nd).fill(0);
    let srcElem = ref.offset;
    for (let i = 0; i < n; i++) {
      out.set(src.subarray(srcElem * size, srcElem * size + size), i * size);
      // advance the multi-index like an odometer, last dimension fastest
      for (let d = nd - 1; d >= 0; d--) {
        index[d]!++;
        srcElem += ref.stride[d]!;
        if (index[d]! < ref.shape[d]!) break;
        srcElem -= ref.stride[d]! * ref.shape[d]!;
        index[d] = 0;
      }
    }
  }
  if (swap) for (let i = 0; i < out.length; i += size) out.subarray(i, i + size).reverse();
  return { dtype, shape: [...ref.shape], data: out };
}

/** Replaces every TensorRef in the unpickled object by a materialised Tensor. */
function materialiseAll(value: unknown, file: string, bigEndian: boolean, seen = new Map<unknown, unknown>()): unknown {
  if (value instanceof TensorRef) return materialise(value, file, bigEndian);
  if (seen.has(value)) return seen.get(value);
  if (value instanceof Map) {
    const m = new Map<unknown, unknown>();
    seen.set(value, m);
    for (const [k, v] of value) m.set(k, materialiseAll(v, file, bigEndian, seen));
    return m;
  }
  if (Array.isArray(value)) {
    const a: unknown[] = value instanceof PyTuple ? new PyTuple() : [];
    seen.set(value, a);
    for (const v of value) a.push(materialiseAll(v, file, bigEndian, seen));
    return a;
  }
  return value;
}

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;

export function isZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && (bytes[2] === 3 || bytes[2] === 5) && (bytes[3] === 4 || bytes[3] === 6);
}

/** A legacy torch.save file starts with the pickled magic number: PROTO 2, LONG1 10 bytes, 0x6c 0xfc ... */
export function isLegacyTorch(bytes: Uint8Array): boolean {
  const head = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
  return bytes.length >= head.length && head.every((b, i) => bytes[i] === b);
}

function loadZipPickle(bytes: Uint8Array, file: string): unknown {
  const zip = readZip(bytes, file);
  const pkls = [...zip.entries.keys()].filter((k) => k === 'data.pkl' || /^[^/]+\/data\.pkl$/.test(k));
  if (pkls.length !== 1) {
    throw new FcnError(`${file}: a ZIP archive but not a PyTorch checkpoint (expected one '<name>/data.pkl' entry, found ${pkls.length})`);
  }
  const prefix = pkls[0]!.slice(0, -'data.pkl'.length);
  let bigEndian = false;
  if (zip.has(`${prefix}byteorder`)) {
    const order = new TextDecoder().decode(zip.read(`${prefix}byteorder`)).trim();
    if (order !== 'little' && order !== 'big') throw new FcnError(`${file}: unknown byteorder '${order}'`);
    bigEndian = order === 'big';
  }
  const storages = new Map<string, Storage>();
  const persistentLoad = (pid: unknown): Storage => {
    if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5) throw new FcnError(`${file}: unsupported persistent id ${JSON.stringify(pid)}`);
    const [, type, key, , numel] = pid;
    if (!(type instanceof StorageType) || typeof key !== 'string' || !isCount(numel)) throw new FcnError(`${file}: malformed storage reference`);
    const known = storages.get(key);
    if (known) return known;
    const entry = `${prefix}data/${key}`;
    if (!zip.has(entry)) throw new FcnError(`${file}: storage '${key}' is missing from the archive (expected entry '${entry}')`);
    // never inflate more than the pickle says the storage holds (the entry's header may lie)
    const data = zip.read(entry, numel * DTYPE_SIZE[type.dtype]);
    if (data.byteLength < numel * DTYPE_SIZE[type.dtype]) {
      throw new FcnError(`${file}: storage '${key}' has ${data.byteLength} bytes, expected ${numel * DTYPE_SIZE[type.dtype]} (${numel} x ${type.qualname})`);
    }
    const s = new Storage(type.dtype, numel, key, data);
    storages.set(key, s);
    return s;
  };
  const { value } = unpickle(zip.read(pkls[0]!), { fileName: file, resolveGlobal: torchGlobals(file), persistentLoad });
  return materialiseAll(value, file, bigEndian);
}

function loadLegacy(bytes: Uint8Array, file: string): unknown {
  const plain = { fileName: file, resolveGlobal: torchGlobals(file) };
  let r = unpickle(bytes, plain, 0);
  if (r.value !== LEGACY_MAGIC) throw new FcnError(`${file}: not a PyTorch checkpoint (bad magic number)`);
  r = unpickle(bytes, plain, r.end);
  if (r.value !== 1001) throw new FcnError(`${file}: unsupported legacy PyTorch protocol version ${String(r.value)}`);
  r = unpickle(bytes, plain, r.end);
  const sysInfo = r.value instanceof Map ? r.value : new Map();
  const bigEndian = sysInfo.get('little_endian') === false;
  const storages = new Map<string, Storage>();
  const persistentLoad = (pid: unknown): Storage => {
    if (!Array.isArray(pid) || pid.length < 5) throw new FcnError(`${file}: unsupported persistent id`);
    if (pid[0] === 'module') throw new FcnError(`refusing to load ${file}: it is a pickled nn.Module (code), not a state_dict`);
    const [kind, type, key, , numel, viewMeta] = pid;
    if (kind !== 'storage' || !(type instanceof StorageType) || typeof key !== 'string' || !isCount(numel)) {
      throw new FcnError(`${file}: malformed storage reference`);
    }
    let root = storages.get(key);
    if (!root) {
      root = new Storage(type.dtype, numel, key);
      storages.set(key, root);
    }
    if (viewMeta === null || viewMeta === undefined) return root;
    // an old-style storage view: (view_key, offset, size) in elements of the root
    if (!Array.isArray(viewMeta) || typeof viewMeta[0] !== 'string' || !isCount(viewMeta[1]) || !isCount(viewMeta[2])) {
      throw new FcnError(`${file}: malformed storage view`);
    }
    const [viewKey, offset, size] = viewMeta as [string, number, number];
    if (offset + size > numel) throw new FcnError(`${file}: storage view '${viewKey}' lies outside its storage`);
    let v = storages.get(viewKey);
    if (!v) {
      v = new Storage(type.dtype, size, viewKey, undefined, { storage: root, offset });
      storages.set(viewKey, v);
    }
    return v;
  };
  r = unpickle(bytes, { ...plain, persistentLoad }, r.end);
  const result = r.value;
  r = unpickle(bytes, plain, r.end);
  const keys = r.value;
  if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string')) throw new FcnError(`${file}: the storage key list is malformed`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = r.end;
  for (const key of keys as string[]) {
    const s = storages.get(key);
    if (!s) throw new FcnError(`${file}: data for storage '${key}', which no tensor uses`);
    if (pos + 8 > bytes.length) throw new FcnError(`${file}: storage '${key}' is missing: the file is truncated`);
    const count = Number(dv.getBigInt64(pos, !bigEndian));
    const nbytes = count * DTYPE_SIZE[s.dtype];
    if (count !== s.numel) throw new FcnError(`${file}: storage '${key}' holds ${count} elements, the pickle says ${s.numel}`);
    if (pos + 8 + nbytes > bytes.length) throw new FcnError(`${file}: storage '${key}' is cut short: the file is truncated`);
    s.bytes = bytes.subarray(pos + 8, pos + 8 + nbytes);
    pos += 8 + nbytes;
  }
  return materialiseAll(result, file, bigEndian);
}

/** The whole object `torch.save` wrote (dicts as Maps, tuples as PyTuple, tensors as Tensor). */
export function readTorchFile(bytes: Uint8Array, file: string): unknown {
  try {
    if (isZip(bytes)) return loadZipPickle(bytes, file);
    if (isLegacyTorch(bytes)) return loadLegacy(bytes, file);
  } catch (err) {
    // containers nested thousands deep exhaust the JS stack while being copied: data, not a state_dict
    if (err instanceof RangeError) throw new FcnError(`${file}: not a state_dict (${err.message})`);
    throw err;
  }
  throw new FcnError(`${file}: not a PyTorch checkpoint (expected a torch.save ZIP archive or a legacy torch.save file)`);
}

export function isTensor(x: unknown): x is Tensor {
  return typeof x === 'object' && x !== null && !Array.isArray(x) && !(x instanceof Map) && 'dtype' in x && 'shape' in x && 'data' in x;
}

/** Keys under which training scripts commonly nest the state_dict. */
const WRAPPER_KEYS = ['state_dict', 'model_state_dict', 'model', 'net'];

/** Reads a PyTorch state_dict (name → tensor); `{state_dict: ...}`/`{model: ...}` wrappers are unwrapped, non-tensor entries skipped. */
export function readPth(bytes: Uint8Array, file: string): Map<string, Tensor> {
  let obj = readTorchFile(bytes, file);
  if (obj instanceof Map) {
    for (const key of WRAPPER_KEYS) {
      const inner = obj.get(key);
      if (inner instanceof Map && [...inner.values()].some(isTensor)) {
        obj = inner;
        break;
      }
    }
  }
  if (!(obj instanceof Map)) throw new FcnError(`${file}: holds no state_dict (expected a dict of name → tensor at the top level)`);
  const out = new Map<string, Tensor>();
  for (const [k, v] of obj) if (typeof k === 'string' && isTensor(v)) out.set(k, v);
  if (out.size === 0) {
    const keys = [...obj.keys()].slice(0, 5).map(String).join(', ');
    throw new FcnError(`${file}: holds no tensors (expected a state_dict of name → tensor; top-level keys: ${keys || 'none'})`);
  }
  return out;
}
