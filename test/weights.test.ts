// Weights I/O: safetensors, the ZIP reader, the restricted unpickler, torch.save files (values
// compared exactly with what PyTorch saved: test/fixtures/pth/, made by scripts/make_pth_fixtures.py),
// name maps for the book's and torchvision's layouts, our checkpoint format, and `fcn import`.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fcnResNet18, fcnParameters, initParameters, numel, seededRandom, type TensorMap } from '../src/model/index.js';
import { VOC_CLASSES, VOC_COLORMAP, VOC_PALETTE } from '../src/data/voc.js';
import { FcnError } from '../src/util/errors.js';
import { writeZip } from './helpers/badfiles.js';
import {
  canonicalName, crc32, crc32Table, decodeWeightFile, detectLayout, encodeCheckpoint, encodeSafetensors, halfToFloat, loadBackbone,
  loadCheckpoint, loadCheckpointWithSource, PyTuple, readPth, readSafetensors, readTorchFile, readZip, saveCheckpoint,
  sequentialName, tensorValues, toCanonical, toFloat32, unpickle, type Checkpoint, type DType, type Tensor,
} from '../src/weights/index.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const FIXTURES = path.join(repoRoot, 'test/fixtures/pth');
const PWNED = '/tmp/fcn-pwned';

type Expected = { dtype: DType; shape: number[]; values: (number | string)[] };
const expected = JSON.parse(readFileSync(path.join(FIXTURES, 'expected.json'), 'utf8')) as Record<string, Record<string, unknown>>;

function fixture(name: string): Uint8Array {
  return new Uint8Array(readFileSync(path.join(FIXTURES, name)));
}

/** JSON stores non-finite floats as strings. */
function jsonNumber(v: number | string): number {
  return v === 'inf' ? Infinity : v === '-inf' ? -Infinity : v === 'nan' ? NaN : (v as number);
}

function assertTensorEquals(t: Tensor | undefined, e: Expected, what: string): void {
  assert.ok(t, `${what} is missing`);
  assert.equal(t.dtype, e.dtype, `${what} dtype`);
  assert.deepEqual(t.shape, e.shape, `${what} shape`);
  const got = tensorValues(t);
  assert.equal(got.length, e.values.length, `${what} length`);
  got.forEach((g, i) => {
    const want = e.values[i]!;
    if (typeof g === 'bigint') assert.equal(g, BigInt(want as number), `${what}[${i}]`);
    else assert.ok(Object.is(g, jsonNumber(want)), `${what}[${i}]: got ${g}, want ${want}`);
  });
}

function expectFcnError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof FcnError, `expected FcnError, got ${String(err)}`);
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes('\n'), 'error messages are one line');
    return true;
  });
}

async function expectFcnErrorAsync(fn: () => Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(fn, (err: unknown) => {
    assert.ok(err instanceof FcnError, `expected FcnError, got ${String(err)}`);
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes('\n'), 'error messages are one line');
    return true;
  });
}

/** An independent safetensors writer (any dtype, no alignment padding) to test the reader against. */
function rawSafetensors(entries: { name: string; dtype: DType; shape: number[]; bytes: Uint8Array }[], metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  let offset = 0;
  for (const e of entries) {
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.bytes.length] };
    offset += e.bytes.length;
  }
  const json = Buffer.from(JSON.stringify(header));
  const out = Buffer.alloc(8 + json.length + offset);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  let p = 8 + json.length;
  for (const e of entries) {
    out.set(e.bytes, p);
    p += e.bytes.length;
  }
  return out;
}

function f32Bytes(values: Float32Array): Uint8Array {
  return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
}

let tmp: string;
before(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'fcn-weights-'));
});
after(() => {
  rmSync(tmp, { recursive: true, force: true });
});

// -----------------------------------------------------------------------------------------------
describe('safetensors', () => {
  test('encode → read round trip: aligned header padded with spaces, metadata, exact values, file order', () => {
    const a = new Float32Array([1.5, -0, 3.4028234663852886e38, 1e-45, NaN, -Infinity]);
    const b = new Float32Array([0.1, 0.2]);
    const tensors = new Map([['z.last', { shape: [2, 3], data: a }], ['10', { shape: [2], data: b }], ['2', { shape: [1, 2], data: b }]]);
    const bytes = encodeSafetensors(tensors, { epoch: '3', note: 'ünïcode' });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal(n % 8, 0, 'header length is a multiple of 8');
    const headerText = Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8');
    assert.match(headerText, /^\{.*\} *$/);
    const st = readSafetensors(bytes, 'x.safetensors');
    assert.deepEqual(st.metadata, { epoch: '3', note: 'ünïcode' });
    // integer-like keys come first in a JS object; the reader restores the writer's order from the offsets
    assert.deepEqual([...st.tensors.keys()], ['z.last', '10', '2']);
    const z = st.tensors.get('z.last')!;
    assert.equal(z.dtype, 'F32');
    assert.deepEqual(z.shape, [2, 3]);
    const back = toFloat32(z);
    assert.deepEqual(new Uint8Array(back.buffer), new Uint8Array(a.buffer), 'bit exact (incl. -0 and NaN)');
    assert.deepEqual([...toFloat32(st.tensors.get('2')!)], [...b]);
  });

  test('reads F16, BF16, F64, I64, I32, U8, BOOL and converts them to float32', () => {
    const f16 = Buffer.alloc(10);
    [0x3c00, 0xc000, 0x7bff, 0x0001, 0xfc00].forEach((h, i) => f16.writeUInt16LE(h, i * 2)); // 1, -2, 65504, 2^-24, -inf
    const bf16 = Buffer.alloc(4);
    bf16.writeUInt16LE(0x3f80, 0); // 1.0
    bf16.writeUInt16LE(0xc049, 2); // -3.140625
    const f64 = Buffer.alloc(16);
    f64.writeDoubleLE(Math.PI, 0);
    f64.writeDoubleLE(-1e300, 8);
    const i64 = Buffer.alloc(16);
    i64.writeBigInt64LE(-(2n ** 40n), 0);
    i64.writeBigInt64LE(7n, 8);
    const i32 = Buffer.alloc(8);
    i32.writeInt32LE(-2147483648, 0);
    i32.writeInt32LE(5, 4);
    const bytes = rawSafetensors([
      { name: 'h', dtype: 'F16', shape: [5], bytes: f16 },
      { name: 'bf', dtype: 'BF16', shape: [2], bytes: bf16 },
      { name: 'd', dtype: 'F64', shape: [2, 1], bytes: f64 },
      { name: 'l', dtype: 'I64', shape: [2], bytes: i64 },
      { name: 'i', dtype: 'I32', shape: [2], bytes: i32 },
      { name: 'u', dtype: 'U8', shape: [3], bytes: Buffer.from([0, 128, 255]) },
      { name: 'b', dtype: 'BOOL', shape: [2], bytes: Buffer.from([1, 0]) },
      { name: 's', dtype: 'F32', shape: [], bytes: f32Bytes(new Float32Array([4.5])) },
    ]);
    const st = readSafetensors(bytes, 'mixed.safetensors');
    const f = (k: string) => [...toFloat32(st.tensors.get(k)!)];
    assert.deepEqual(f('h'), [1, -2, 65504, 2 ** -24, -Infinity]);
    assert.deepEqual(f('bf'), [1, -3.140625]);
    assert.deepEqual(f('d'), [Math.fround(Math.PI), -Infinity]); // -1e300 overflows float32
    assert.deepEqual(f('l'), [-(2 ** 40), 7]);
    assert.deepEqual(tensorValues(st.tensors.get('l')!), [-(2n ** 40n), 7n]);
    assert.deepEqual(f('i'), [-2147483648, 5]);
    assert.deepEqual(f('u'), [0, 128, 255]);
    assert.deepEqual(f('b'), [1, 0]);
    assert.deepEqual(st.tensors.get('s')!.shape, []);
    assert.deepEqual(f('s'), [4.5]);
  });

  test('halfToFloat: normals, subnormals, zero signs, infinities, NaN', () => {
    assert.equal(halfToFloat(0x3555), 0.333251953125);
    assert.equal(halfToFloat(0x03ff), 1023 * 2 ** -24); // largest subnormal
    assert.equal(halfToFloat(0x0400), 2 ** -14); // smallest normal
    assert.ok(Object.is(halfToFloat(0x8000), -0));
    assert.equal(halfToFloat(0x7c00), Infinity);
    assert.ok(Number.isNaN(halfToFloat(0x7e00)));
  });

  test('invalid files are FcnErrors naming the file', () => {
    const good = encodeSafetensors(new Map([['w', { shape: [4], data: new Float32Array(4) }]]));
    expectFcnError(() => readSafetensors(good.subarray(0, 5), 'a.safetensors'), /^a\.safetensors: .*too short/);
    expectFcnError(() => readSafetensors(good.subarray(0, 20), 'b.safetensors'), /^b\.safetensors: .*header .*truncated/);
    expectFcnError(() => readSafetensors(good.subarray(0, good.length - 1), 'c.safetensors'), /^c\.safetensors: .*'w' ends at byte 16 of a 15-byte data section/);
    const json = (h: string, data = 0) => {
      const b = Buffer.alloc(8 + h.length + data);
      b.writeBigUInt64LE(BigInt(h.length), 0);
      b.write(h, 8);
      return new Uint8Array(b);
    };
    expectFcnError(() => readSafetensors(json('{"w": '), 'd.safetensors'), /^d\.safetensors: .*not JSON/);
    expectFcnError(() => readSafetensors(json('[1, 2]'), 'e.safetensors'), /^e\.safetensors: .*JSON object/);
    expectFcnError(() => readSafetensors(json('{"w":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}}', 1), 'f.safetensors'), /unsupported dtype "F8"/);
    expectFcnError(() => readSafetensors(json('{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', 8), 'g.safetensors'), /^g\.safetensors: .*'w' \(F32 \[3\]\) needs 12 bytes, its offsets give 8/);
    expectFcnError(() => readSafetensors(json('{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', 4), 'h.safetensors'), /invalid shape/);
    expectFcnError(() => readSafetensors(json('{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}', 4), 'i.safetensors'), /invalid data_offsets/);
    expectFcnError(() => readSafetensors(json('{"__metadata__":{"epoch":3}}'), 'j.safetensors'), /__metadata__ value 'epoch' is not a string/);
    const huge = Buffer.alloc(16);
    huge.writeBigUInt64LE(2n ** 62n, 0);
    expectFcnError(() => readSafetensors(huge, 'k.safetensors'), /^k\.safetensors: .*exceeds/);
  });
});

// -----------------------------------------------------------------------------------------------
describe('zip', () => {
  test('crc32 check value', () => {
    assert.equal(crc32(new TextEncoder().encode('123456789')), 0xcbf43926);
    assert.equal(crc32Table(new TextEncoder().encode('123456789')), 0xcbf43926);
  });

  test('crc32: zlib\'s and the table\'s agree on any bytes', () => {
    const random = seededRandom(7);
    for (const n of [0, 1, 7, 64, 1000, 65537]) {
      const data = Uint8Array.from({ length: n }, () => Math.floor(random() * 256));
      assert.equal(crc32(data), crc32Table(data), `${n} bytes`);
    }
  });

  test('reads the entries torch.save writes, stored, deflated and zip64', () => {
    const stored = readZip(fixture('tensors.pth'), 'tensors.pth');
    assert.deepEqual([...stored.entries.keys()].filter((k) => !k.includes('/data/')), ['tensors/data.pkl', 'tensors/version']);
    assert.equal(new TextDecoder().decode(stored.read('tensors/version')), '3\n');
    for (const name of ['tensors_deflate.pth', 'tensors_zip64.pth']) {
      const z = readZip(fixture(name), name);
      assert.deepEqual([...z.entries.keys()], [...stored.entries.keys()], name);
      for (const k of z.entries.keys()) assert.deepEqual(z.read(k), stored.read(k), `${name}: ${k}`);
    }
    assert.ok([...readZip(fixture('tensors_deflate.pth'), 'd').entries.values()].every((e) => e.method === 8));
    assert.ok([...readZip(fixture('tensors_zip64.pth'), 'z').entries.values()].every((e) => e.localHeaderOffset >= 0 && e.size < 0xffffffff));
  });

  test('truncated and corrupt archives are FcnErrors naming the file', () => {
    const bytes = fixture('tensors.pth');
    expectFcnError(() => readZip(bytes.subarray(0, Math.floor(bytes.length / 2)), 'half.pth'), /^half\.pth: .*truncated/);
    expectFcnError(() => readZip(bytes.subarray(0, bytes.length - 1), 'cut.pth'), /^cut\.pth: .*truncated/);
    expectFcnError(() => readTorchFile(bytes.subarray(0, bytes.length - 30), 'cut2.pth'), /^cut2\.pth: .*truncated/);
    // flip one byte inside a storage: the CRC catches it
    const z = readZip(bytes, 't');
    const entry = z.entries.get('tensors/data/0')!;
    const corrupt = new Uint8Array(bytes);
    const dv = new DataView(corrupt.buffer);
    const start = entry.localHeaderOffset + 30 + dv.getUint16(entry.localHeaderOffset + 26, true) + dv.getUint16(entry.localHeaderOffset + 28, true);
    corrupt[start + 1]! ^= 0x40;
    expectFcnError(() => readPth(corrupt, 'flipped.pth'), /^flipped\.pth: .*CRC-32 of 'tensors\/data\/0' does not match/);
    // an entry whose data runs past the end
    const deflated = fixture('tensors_deflate.pth');
    const trimmed = new Uint8Array(deflated);
    trimmed.fill(0, 40, 200); // damage the first entry's compressed stream
    expectFcnError(() => readPth(trimmed, 'damaged.pth'), /^damaged\.pth: /);
  });
});

// -----------------------------------------------------------------------------------------------
describe('unpickler', () => {
  const hex = (h: string) => new Uint8Array(Buffer.from(h, 'hex'));
  const noGlobals = { fileName: 'p.pkl', resolveGlobal: () => undefined };
  // pickle.dumps([1, -2, 2**40, -2**70, 2.5, 'héllo ✓ 😀', (1, 'a'), {'k': None, 3: True}, False, [], ()], protocol=p)
  const PICKLES: Record<string, string> = {
    0: '286c70300a49310a61492d320a614c313039393531313632373737364c0a614c2d313138303539313632303731373431313330333432344c0a6146322e350a615668e96c6c6f205c7532373133205c5530303031663630300a70310a612849310a56610a70320a7470330a61286470340a566b0a70350a4e7349330a4930310a73614930300a61286c70360a612874612e',
    1: '5d7100284b014afeffffff4c313039393531313632373737364c0a4c2d313138303539313632303731373431313330333432344c0a474004000000000000580f00000068c3a96c6c6f20e29c9320f09f98807101284b0158010000006171027471037d71042858010000006b71054e4b034930310a754930300a5d710629652e',
    2: '80025d7100284b014afeffffff8a060000000000018a090000000000000000c0474004000000000000580f00000068c3a96c6c6f20e29c9320f09f988071014b0158010000006171028671037d71042858010000006b71054e4b038875895d710629652e',
    4: '80049552000000000000005d94284b014afeffffff8a060000000000018a090000000000000000c04740040000000000008c0f68c3a96c6c6f20e29c9320f09f9880944b018c01619486947d94288c016b944e4b038875895d9429652e',
  };
  for (const [proto, h] of Object.entries(PICKLES)) {
    test(`Python's protocol ${proto} data`, () => {
      const { value, end } = unpickle(hex(h), noGlobals);
      assert.equal(end, h.length / 2);
      const v = value as unknown[];
      assert.ok(Array.isArray(v) && !(v instanceof PyTuple));
      assert.deepEqual(v.slice(0, 3), [1, -2, 2 ** 40]);
      assert.equal(v[3], -(2n ** 70n));
      assert.equal(v[4], 2.5);
      assert.equal(v[5], 'héllo ✓ 😀');
      assert.ok(v[6] instanceof PyTuple);
      assert.deepEqual([...(v[6] as unknown[])], [1, 'a']);
      assert.deepEqual(v[7], new Map<unknown, unknown>([['k', null], [3, true]]));
      assert.equal(v[8], false);
      assert.deepEqual(v[9], []);
      assert.ok(v[10] instanceof PyTuple && (v[10] as unknown[]).length === 0);
    });
  }

  test('sets and frozensets (protocol 4)', () => {
    assert.deepEqual(unpickle(hex('80049509000000000000008f94284b014b02902e'), noGlobals).value, new Set([1, 2]));
    assert.deepEqual(unpickle(hex('8004950600000000000000284b0391942e'), noGlobals).value, new Set([3]));
  });

  test('a global outside the allow-list is refused by name; bytes under protocol 2 need _codecs.encode and are refused too', () => {
    expectFcnError(() => unpickle(hex('800263636f6c6c656374696f6e730a4f726465726564446963740a7100295271012e'), noGlobals),
      /^refusing to load p\.pkl: it references collections\.OrderedDict, which a PyTorch state_dict never needs \(loading a checkpoint must never run code\)$/);
    // pickle.dumps(b'\x00\xff', protocol=2)
    expectFcnError(() => unpickle(hex('8002635f636f646563730a656e636f64650a71005802000000c3bf71015806000000c3a96c6174696e317102867103527104'), noGlobals),
      /it references _codecs\.encode/);
  });

  test('extension-registry opcodes, unknown opcodes and truncated data are refused', () => {
    expectFcnError(() => unpickle(hex('8002820152'), noGlobals), /refusing to load p\.pkl: .*extension registry/);
    expectFcnError(() => unpickle(hex('8002ff'), noGlobals), /^p\.pkl: corrupt pickle data at byte 2: unsupported opcode 0xff/);
    expectFcnError(() => unpickle(hex('80025806000000616263'), noGlobals), /^p\.pkl: .*truncated/);
    expectFcnError(() => unpickle(hex('80024b01'), noGlobals), /^p\.pkl: .*truncated/);
    expectFcnError(() => unpickle(hex('8002742e'), noGlobals), /no MARK/);
    expectFcnError(() => unpickle(hex('800268052e'), noGlobals), /memo key 5 was never stored/);
  });
});

// -----------------------------------------------------------------------------------------------
describe('torch.save files', () => {
  for (const name of ['tensors.pth', 'tensors_legacy.pth', 'tensors_deflate.pth', 'tensors_zip64.pth', 'state_dict.pth']) {
    test(`${name}: every tensor equals what PyTorch saved (dtype, shape, values)`, () => {
      const tensors = readPth(fixture(name), name);
      const want = expected[name] as Record<string, Expected>;
      assert.deepEqual([...tensors.keys()], Object.keys(want));
      for (const [k, e] of Object.entries(want)) assertTensorEquals(tensors.get(k), e, `${name}: ${k}`);
    });
  }

  test('views: shared storage, transposed, step-sliced and expanded (stride 0) tensors are materialised by their strides', () => {
    const t = readPth(fixture('tensors.pth'), 'tensors.pth');
    const v = (k: string) => [...toFloat32(t.get(k)!)];
    // base = arange(24) * 0.5 - 3.25; shared_a = base[2:8].view(2, 3); shared_b = base.view(4, 6)[2]
    const base = Array.from({ length: 24 }, (_, i) => i * 0.5 - 3.25);
    assert.deepEqual(v('shared_a'), base.slice(2, 8));
    assert.deepEqual(v('shared_b'), base.slice(12, 18));
    // stepped_offset = base.view(4, 6)[1:, 1::3]
    assert.deepEqual(v('stepped_offset'), [1, 2, 3].flatMap((r) => [base[r * 6 + 1]!, base[r * 6 + 4]!]));
    assert.deepEqual(v('expanded'), [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]);
    // transposed = matrix.t(), stepped = matrix[:, ::2]: both from the same 3x5 matrix
    const tr = v('transposed');
    const matrix = Array.from({ length: 15 }, (_, i) => tr[(i % 5) * 3 + Math.floor(i / 5)]!);
    assert.deepEqual(v('stepped'), [0, 1, 2].flatMap((r) => [0, 2, 4].map((c) => matrix[r * 5 + c]!)));
    assert.deepEqual(t.get('empty')!.shape, [0, 3]);
    assert.equal(t.get('empty')!.data.length, 0);
  });

  test('wrapped.pth: the whole object (ints, big ints, floats, None, bools, tuples, lists, optimizer state) and the unwrapped state_dict', () => {
    const obj = readTorchFile(fixture('wrapped.pth'), 'wrapped.pth') as Map<string, unknown>;
    const want = expected['wrapped.pth'] as {
      scalars: Record<string, unknown>; big: string; pair: unknown[]; list: unknown[];
      param_groups: Record<string, unknown>[]; momentum_buffer_0: Expected; state_dict: Record<string, Expected>;
    };
    for (const [k, v] of Object.entries(want.scalars)) assert.deepEqual(obj.get(k), v, k);
    assert.equal(obj.get('big'), BigInt(want.big));
    assert.ok(obj.get('pair') instanceof PyTuple);
    assert.deepEqual([...(obj.get('pair') as unknown[])], want.pair);
    assert.deepEqual(obj.get('list'), want.list);
    const optimizer = obj.get('optimizer') as Map<string, unknown>;
    const groups = optimizer.get('param_groups') as Map<string, unknown>[];
    assert.equal(groups.length, want.param_groups.length);
    groups.forEach((g, i) => assert.deepEqual(Object.fromEntries(g), want.param_groups[i]));
    const state = optimizer.get('state') as Map<number, Map<string, Tensor>>;
    assertTensorEquals(state.get(0)!.get('momentum_buffer'), want.momentum_buffer_0, 'momentum_buffer');
    const sd = readPth(fixture('wrapped.pth'), 'wrapped.pth');
    assert.deepEqual([...sd.keys()], Object.keys(want.state_dict));
    for (const [k, e] of Object.entries(want.state_dict)) assertTensorEquals(sd.get(k), e, k);
  });

  test('not a state_dict: a file without tensors, and bytes that are not torch.save output', () => {
    const pickle = Buffer.from('80027d710028580500000065706f636871014b03752e', 'hex'); // {'epoch': 3}
    const zip = zipStored([['archive/data.pkl', pickle], ['archive/version', Buffer.from('3\n')]]);
    expectFcnError(() => readPth(zip, 'epoch.pth'), /^epoch\.pth: holds no tensors .*top-level keys: epoch/);
    expectFcnError(() => readPth(zipStored([['a.txt', Buffer.from('hi')]]), 'other.zip'), /^other\.zip: a ZIP archive but not a PyTorch checkpoint/);
    expectFcnError(() => readPth(Buffer.from('hello world'), 'text.pth'), /^text\.pth: not a PyTorch checkpoint/);
  });

  test('hostile sizes: an expanded view of 2^40 elements, lists nested 100000 deep', () => {
    expectFcnError(() => readPth(fixture('oversized_view.pth'), 'oversized_view.pth'), /^oversized_view\.pth: a tensor of shape \[1048576, 1048576\] would take 4398046511104 bytes/);
    const depth = 100000;
    const deep = Buffer.concat([Buffer.from([0x80, 0x02]), Buffer.alloc(depth, 0x5d), Buffer.alloc(depth - 1, 0x61), Buffer.from('.')]);
    expectFcnError(() => readPth(zipStored([['archive/data.pkl', deep]]), 'deep.pth'), /^deep\.pth: not a state_dict/);
  });

  test('malicious pickles are refused, naming the callable, and run nothing', () => {
    rmSync(PWNED, { force: true });
    const cases: [string, string][] = [
      ['malicious_os_system.pth', 'os.system'],
      ['malicious_posix_system.pth', 'posix.system'],
      ['malicious_eval.pth', 'builtins.eval'],
      ['malicious_subprocess.pth', 'subprocess.Popen'],
      ['malicious_nested.pth', 'posix.system'],
      ['malicious_legacy.pth', 'posix.system'],
    ];
    for (const [file, callable] of cases) {
      const re = new RegExp(`^refusing to load ${file.replace('.', '\\.')}: it references ${callable.replace('.', '\\.')}, which a PyTorch state_dict never needs \\(loading a checkpoint must never run code\\)$`);
      expectFcnError(() => readPth(fixture(file), file), re);
    }
    assert.equal(existsSync(PWNED), false, `${PWNED} must not exist`);
  });
});

/** A stored-only ZIP (independent of our reader) for hand-made archives. */
function zipStored(entries: [string, Uint8Array][]): Uint8Array {
  return new Uint8Array(writeZip(entries.map(([name, data]) => ({ name, data }))));
}

// -----------------------------------------------------------------------------------------------
// The book's numbering of the body, written out as the book's Sequential has it (the reference the name map is tested against).
const BOOK_INDEX: Record<string, number> = { conv1: 0, bn1: 1, layer1: 4, layer2: 5, layer3: 6, layer4: 7 };
function bookName(canonical: string): string {
  const [head, ...rest] = canonical.split('.');
  return head! in BOOK_INDEX ? [String(BOOK_INDEX[head!]), ...rest].join('.') : canonical;
}

/** Random small values for every parameter of `arch`; `bytes` writes them as .safetensors under `rename(name)`, plus extras. */
function synthesize(arch = fcnResNet18(), seed = 1): { values: TensorMap; bytes: (rename: (n: string) => string, extra?: Parameters<typeof rawSafetensors>[0]) => Uint8Array } {
  const random = seededRandom(seed);
  const specs = fcnParameters(arch);
  const values: TensorMap = new Map();
  for (const spec of specs) {
    const v = new Float32Array(numel(spec.shape));
    for (let i = 0; i < v.length; i++) v[i] = random() - 0.5;
    values.set(spec.name, v);
  }
  return {
    values,
    bytes: (rename, extra = []) => rawSafetensors([
      ...specs.map((s) => ({ name: rename(s.name), dtype: 'F32' as DType, shape: s.shape, bytes: f32Bytes(values.get(s.name)!) })),
      ...extra,
    ]),
  };
}

/** The book's FCN-32s with 21 classes, made once (13 M values). */
let book21: ReturnType<typeof synthesize> | undefined;
function bookFcn(): ReturnType<typeof synthesize> {
  return (book21 ??= synthesize(fcnResNet18(), 3));
}

function int64Scalar(n: bigint): Uint8Array {
  const b = Buffer.alloc(8);
  b.writeBigInt64LE(n, 0);
  return b;
}

describe('name maps', () => {
  test("the book's Sequential names ↔ canonical, literal examples", () => {
    const cases: [string, string][] = [
      ['0.weight', 'conv1.weight'], ['1.running_mean', 'bn1.running_mean'], ['4.0.conv1.weight', 'layer1.0.conv1.weight'],
      ['5.0.downsample.1.weight', 'layer2.0.downsample.1.weight'], ['6.1.bn1.running_var', 'layer3.1.bn1.running_var'],
      ['7.1.bn2.weight', 'layer4.1.bn2.weight'], ['final_conv.bias', 'final_conv.bias'], ['transpose_conv.weight', 'transpose_conv.weight'],
    ];
    for (const [book, canonical] of cases) {
      assert.equal(canonicalName(book, 'fcn-sequential'), canonical);
      assert.equal(sequentialName(canonical), book);
    }
    assert.equal(canonicalName('1.num_batches_tracked', 'fcn-sequential'), undefined);
    assert.equal(canonicalName('layer1.0.bn1.num_batches_tracked', 'resnet18-torchvision'), undefined);
    assert.equal(canonicalName('fc.weight', 'resnet18-torchvision'), undefined);
    assert.equal(canonicalName('layer1.0.conv1.weight', 'resnet18-torchvision'), 'layer1.0.conv1.weight');
    assert.equal(canonicalName('9.weight', 'fcn-sequential'), '9.weight', 'unknown indices stay for the missing/unexpected check');
  });

  test('every declared parameter maps to the book name the reference table gives, and back', () => {
    for (const variant of ['fcn32s', 'fcn8s'] as const) {
      for (const spec of fcnParameters(fcnResNet18({ variant }))) {
        assert.equal(sequentialName(spec.name), bookName(spec.name));
        assert.equal(canonicalName(bookName(spec.name), 'fcn-sequential'), spec.name);
      }
    }
  });

  test('detectLayout and DataParallel prefixes', () => {
    const names = fcnParameters(fcnResNet18()).map((s) => s.name);
    assert.equal(detectLayout(names.map(bookName), 'f'), 'fcn-sequential');
    assert.equal(detectLayout(names, 'f'), 'fcn');
    const body = fcnParameters(fcnResNet18()).filter((p) => p.backbone).map((p) => p.name);
    assert.equal(detectLayout([...body, 'fc.weight', 'fc.bias'], 'f'), 'resnet18-torchvision');
    assert.equal(detectLayout(['module.0.weight', 'module.final_conv.weight'], 'f'), 'fcn-sequential');
    const renamed = toCanonical(new Map([['module.0.weight', 1], ['module.1.num_batches_tracked', 2], ['module.final_conv.weight', 3]]), 'fcn-sequential', 'f');
    assert.deepEqual([...renamed], [['conv1.weight', 1], ['final_conv.weight', 3]]);
    expectFcnError(() => detectLayout(['encoder.weight', 'decoder.bias'], 'other.pth'), /^other\.pth: unrecognised weight names \(2 tensors, first 'encoder\.weight', 'decoder\.bias'\)/);
  });
});

// -----------------------------------------------------------------------------------------------
describe('checkpoints', () => {
  test("the book's FCN as .safetensors (Sequential names, int64 num_batches_tracked) loads bit exact under canonical names, with VOC classes", async () => {
    const arch = fcnResNet18();
    const s = bookFcn();
    const file = path.join(tmp, 'book.safetensors');
    const counters = fcnParameters(arch).filter((p) => p.role === 'running_mean')
      .map((p) => ({ name: bookName(p.name.replace('running_mean', 'num_batches_tracked')), dtype: 'I64' as DType, shape: [], bytes: int64Scalar(5n) }));
    writeFileSync(file, s.bytes(bookName, counters));
    const { checkpoint: c, source } = await loadCheckpointWithSource(file);
    assert.deepEqual(source, { format: 'safetensors', layout: 'fcn-sequential' });
    assert.equal(c.arch.name, 'fcn32s-resnet18');
    assert.equal(c.arch.numClasses, 21);
    assert.deepEqual([...c.weights.keys()], fcnParameters(arch).map((p) => p.name));
    for (const [k, v] of s.values) assert.deepEqual(c.weights.get(k), v, k);
    assert.deepEqual(c.classes, [...VOC_CLASSES]);
    assert.deepEqual(c.colors, VOC_COLORMAP.map((rgb) => [...rgb]));
    assert.deepEqual(c.normalization, { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });
    assert.deepEqual(c.metadata, {});
    assert.equal(c.extra.size, 0);
  });

  test('canonical-name FCN-8s with 5 classes: variant and classes inferred, class_<i> names and palette colours', async () => {
    const arch = fcnResNet18({ variant: 'fcn8s', numClasses: 5 });
    const s = synthesize(arch, 4);
    const file = path.join(tmp, 'fcn8s.safetensors');
    writeFileSync(file, s.bytes((n) => n));
    const c = await loadCheckpoint(file);
    assert.equal(c.arch.name, 'fcn8s-resnet18');
    assert.equal(c.arch.numClasses, 5);
    assert.deepEqual(c.classes, ['class_0', 'class_1', 'class_2', 'class_3', 'class_4']);
    assert.deepEqual(c.colors, VOC_PALETTE.slice(0, 5).map((rgb) => [...rgb]));
    for (const [k, v] of s.values) assert.deepEqual(c.weights.get(k), v, k);
  });

  test("torchvision's ResNet-18 layout: loadBackbone gives the body (fc.* and counters dropped); loadCheckpoint says to use it as a backbone", async () => {
    const arch = fcnResNet18();
    const body = fcnParameters(arch).filter((p) => p.backbone);
    const random = seededRandom(7);
    const values = new Map(body.map((p) => [p.name, new Float32Array(numel(p.shape)).map(() => random())]));
    const entries = [
      ...body.map((p) => ({ name: p.name, dtype: 'F32' as DType, shape: p.shape, bytes: f32Bytes(values.get(p.name)!) })),
      ...body.filter((p) => p.role === 'running_var').map((p) => ({ name: p.name.replace('running_var', 'num_batches_tracked'), dtype: 'I64' as DType, shape: [], bytes: int64Scalar(1n) })),
      { name: 'fc.weight', dtype: 'F32' as DType, shape: [1000, 512], bytes: new Uint8Array(1000 * 512 * 4) },
      { name: 'fc.bias', dtype: 'F32' as DType, shape: [1000], bytes: new Uint8Array(4000) },
    ];
    const file = path.join(tmp, 'resnet18.safetensors');
    writeFileSync(file, rawSafetensors(entries));
    const backbone = await loadBackbone(file, arch);
    assert.deepEqual([...backbone.keys()], body.map((p) => p.name));
    assert.equal(backbone.size, 100); // 20 convs + 20 batch norms x 4
    for (const [k, v] of values) assert.deepEqual(backbone.get(k), v, k);
    await expectFcnErrorAsync(() => loadCheckpoint(file), /resnet18\.safetensors: holds torchvision's ResNet-18 ImageNet weights, not an FCN: use it as a backbone/);
    // the backbone of a book FCN file works too
    const book = path.join(tmp, 'book-for-backbone.safetensors');
    const s = bookFcn();
    writeFileSync(book, s.bytes(bookName));
    const fromBook = await loadBackbone(book, arch);
    assert.equal(fromBook.size, 100);
    assert.deepEqual(fromBook.get('layer4.1.bn2.running_var'), s.values.get('layer4.1.bn2.running_var'));
    // a ResNet-34 (layer1.2.*) is not ours
    const r34 = path.join(tmp, 'resnet34.safetensors');
    writeFileSync(r34, rawSafetensors([...entries, { name: 'layer1.2.conv1.weight', dtype: 'F32', shape: [1], bytes: new Uint8Array(4) }]));
    await expectFcnErrorAsync(() => loadBackbone(r34, arch), /resnet34\.safetensors: 1 unexpected tensors for a ResNet-18 backbone: 'layer1\.2\.conv1\.weight'/);
  });

  test('save → load round trip: bit exact weights and extra buffers, labels, normalisation and metadata preserved', async () => {
    const arch = fcnResNet18({ variant: 'fcn16s', numClasses: 3 });
    const weights = initParameters(arch, seededRandom(11));
    weights.get('conv1.weight')![0] = -0; // keep the sign of zero
    const extra: TensorMap = new Map([
      ['momentum.final_conv.weight', Float32Array.from({ length: 3 * 512 }, (_, i) => i * 1e-3)],
      ['rng.state', new Float32Array([1, 2, 3, 4])],
    ]);
    const ckpt: Checkpoint = {
      arch, weights, extra,
      classes: ['background', 'cat', 'dog'],
      colors: [[0, 0, 0], [255, 0, 0], [0, 128, 255]],
      normalization: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] },
      metadata: { epoch: '3', optimizer: JSON.stringify({ lr: 0.001, momentum: 0.9 }) },
    };
    const file = path.join(tmp, 'sub', 'ckpt.safetensors');
    await saveCheckpoint(file, ckpt);
    assert.deepEqual(readdirSync(path.dirname(file)), ['ckpt.safetensors'], 'no temp file left');
    const back = await loadCheckpoint(file);
    assert.equal(back.arch.name, 'fcn16s-resnet18');
    assert.equal(back.arch.numClasses, 3);
    assert.deepEqual([...back.weights.keys()], [...weights.keys()]);
    for (const [k, v] of weights) assert.deepEqual(new Uint8Array(back.weights.get(k)!.buffer), new Uint8Array(v.buffer), k);
    assert.deepEqual(back.extra, extra);
    assert.deepEqual(back.classes, ckpt.classes);
    assert.deepEqual(back.colors, ckpt.colors);
    assert.deepEqual(back.normalization, ckpt.normalization);
    assert.deepEqual(back.metadata, ckpt.metadata);
    // the file itself: our metadata keys, parameter shapes, a shadowing buffer keeps its parameter's shape
    const st = readSafetensors(readFileSync(file), file);
    assert.equal(st.metadata['format'], 'fcn-checkpoint');
    assert.equal(st.metadata['formatVersion'], '1');
    assert.equal(st.metadata['architecture'], 'fcn16s-resnet18');
    assert.equal(st.metadata['numClasses'], '3');
    assert.deepEqual(JSON.parse(st.metadata['classes']!), ckpt.classes);
    assert.deepEqual(st.tensors.get('upscore2.weight')!.shape, [3, 3, 4, 4]);
    assert.deepEqual(st.tensors.get('momentum.final_conv.weight')!.shape, [3, 512, 1, 1]);
    assert.deepEqual(st.tensors.get('rng.state')!.shape, [4]);
    // saving the loaded checkpoint again gives the same bytes
    assert.deepEqual(encodeCheckpoint(back), new Uint8Array(readFileSync(file)));
  });

  test('saving an inconsistent checkpoint throws before writing anything', async () => {
    const arch = fcnResNet18({ numClasses: 2 });
    const weights = synthesize(arch, 2).values;
    const base: Checkpoint = { arch, weights, extra: new Map(), classes: ['a', 'b'], colors: [[0, 0, 0], [1, 1, 1]], normalization: { mean: [0, 0, 0], std: [1, 1, 1] }, metadata: {} };
    const file = path.join(tmp, 'bad-save', 'x.safetensors');
    await assert.rejects(() => saveCheckpoint(file, { ...base, classes: ['a'] }), /'classes' must be 2 class names/);
    await assert.rejects(() => saveCheckpoint(file, { ...base, metadata: { architecture: 'x' } }), /reserved/);
    const short = new Map(weights);
    short.delete('bn1.bias');
    await assert.rejects(() => saveCheckpoint(file, { ...base, weights: short }), /lack 'bn1\.bias'/);
    assert.equal(existsSync(path.dirname(file)), false);
  });

  test('load errors: missing file, empty, not a checkpoint, truncated zip, wrong shape, missing keys, bad metadata', async () => {
    await expectFcnErrorAsync(() => loadCheckpoint(path.join(tmp, 'nope.pth')), /nope\.pth: no such file/);
    await expectFcnErrorAsync(() => loadCheckpoint(tmp), /is a directory/);
    const empty = path.join(tmp, 'empty.safetensors');
    writeFileSync(empty, '');
    await expectFcnErrorAsync(() => loadCheckpoint(empty), /empty\.safetensors: the file is empty/);
    const text = path.join(tmp, 'notes.txt');
    writeFileSync(text, 'these are not weights');
    await expectFcnErrorAsync(() => loadCheckpoint(text), /notes\.txt: not a checkpoint \(expected a \.safetensors file or a PyTorch \.pth state_dict\)/);
    const cut = path.join(tmp, 'cut.pth');
    const wrongShape = fixture('book_wrong_shape.pth');
    writeFileSync(cut, wrongShape.subarray(0, wrongShape.length - 100));
    await expectFcnErrorAsync(() => loadCheckpoint(cut), /cut\.pth: not a valid ZIP archive .*truncated/);
    await expectFcnErrorAsync(() => loadCheckpoint(path.join(FIXTURES, 'book_wrong_shape.pth')),
      /book_wrong_shape\.pth: tensor '0\.weight' has shape \[64, 3, 3, 3\], expected \[64, 3, 7, 7\] for fcn32s-resnet18 with 21 classes$/);
    await expectFcnErrorAsync(() => loadCheckpoint(path.join(FIXTURES, 'book_missing.pth')),
      /book_missing\.pth: missing 98 of 104 tensors for fcn32s-resnet18 with 5 classes: '0\.weight', '4\.0\.conv1\.weight', '4\.0\.bn1\.weight' and 95 more$/);
    // an FCN without its head: the class count is unknown
    const headless = path.join(tmp, 'headless.safetensors');
    writeFileSync(headless, rawSafetensors([{ name: 'transpose_conv.bias', dtype: 'F32', shape: [2], bytes: new Uint8Array(8) }]));
    await expectFcnErrorAsync(() => loadCheckpoint(headless), /headless\.safetensors: missing tensor 'final_conv\.weight'/);
    // an unexpected tensor in a foreign file
    const arch = fcnResNet18({ numClasses: 2 });
    const s = synthesize(arch, 5);
    const extraFile = path.join(tmp, 'extra.safetensors');
    writeFileSync(extraFile, s.bytes(bookName, [{ name: 'aux.weight', dtype: 'F32', shape: [1], bytes: new Uint8Array(4) }]));
    await expectFcnErrorAsync(() => loadCheckpoint(extraFile), /extra\.safetensors: 1 unexpected tensors for fcn32s-resnet18 with 2 classes: 'aux\.weight'/);
    // our format with bad metadata
    const good = encodeCheckpoint({ arch, weights: s.values, extra: new Map(), classes: ['a', 'b'], colors: [[0, 0, 0], [9, 9, 9]], normalization: { mean: [0, 0, 0], std: [1, 1, 1] }, metadata: {} });
    const st = readSafetensors(good, 'g');
    const rewrite = (md: Record<string, string>) => {
      const entries = new Map([...st.tensors].map(([k, t]) => [k, { shape: t.shape, data: toFloat32(t) }]));
      return encodeSafetensors(entries, md);
    };
    const cases: [Record<string, string>, RegExp][] = [
      [{ ...st.metadata, formatVersion: '2' }, /checkpoint format version 2 is not supported/],
      [{ ...st.metadata, architecture: 'fcn4s-vgg16' }, /unknown architecture 'fcn4s-vgg16'/],
      [{ ...st.metadata, numClasses: '3' }, /'classes' must be 3 class names/],
      [{ ...st.metadata, numClasses: '3', classes: '["a","b","c"]', colors: '[[0,0,0],[1,1,1],[2,2,2]]' },
        /badmeta\.safetensors: tensor 'final_conv\.weight' has shape \[2, 512, 1, 1\], expected \[3, 512, 1, 1\] for fcn32s-resnet18$/],
      [{ ...st.metadata, classes: '["a"' }, /'classes' is not valid JSON/],
      [{ ...st.metadata, colors: '[[0,0,0],[256,0,0]]' }, /'colors' must be 2 \[r, g, b\] triples/],
      [{ ...st.metadata, normalization: '{"mean":[0,0,0],"std":[1,0,1]}' }, /'normalization' must be/],
    ];
    for (const [md, re] of cases) {
      const f = path.join(tmp, 'badmeta.safetensors');
      writeFileSync(f, rewrite(md));
      await expectFcnErrorAsync(() => loadCheckpoint(f), re);
    }
    // .pth state_dicts of other networks
    await expectFcnErrorAsync(() => loadCheckpoint(path.join(FIXTURES, 'state_dict.pth')), /state_dict\.pth: missing tensor 'final_conv\.weight'/);
  });

  test('decodeWeightFile tells formats apart by content, not by extension', () => {
    assert.equal(decodeWeightFile(fixture('tensors.pth'), 'weights.safetensors').format, 'pth');
    assert.equal(decodeWeightFile(fixture('tensors_legacy.pth'), 'x.bin').format, 'pth');
    const st = encodeSafetensors(new Map([['w', { shape: [1], data: new Float32Array([2]) }]]));
    assert.equal(decodeWeightFile(st, 'weights.pth').format, 'safetensors');
  });
});

// -----------------------------------------------------------------------------------------------
describe('fcn import', () => {
  const fcn = (...args: string[]) => spawnSync(process.execPath, ['bin/fcn.js', ...args], { cwd: repoRoot, encoding: 'utf8' });

  test("converts the book's FCN tensors to our checkpoint and prints what it found", async () => {
    const s = bookFcn();
    const input = path.join(tmp, 'cli-book.safetensors');
    writeFileSync(input, s.bytes(bookName));
    const out = path.join(tmp, 'cli-out', 'model.safetensors');
    const r = fcn('import', input, '--out', out);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /safetensors, the book's FCN \(nn\.Sequential names\)/);
    assert.match(r.stdout, /^architecture: fcn32s-resnet18$/m);
    assert.match(r.stdout, /^classes: 21 \(background, aeroplane, bicycle, bird, boat, …, tv\/monitor\)$/m);
    assert.match(r.stdout, /^tensors: 104$/m);
    const c = await loadCheckpoint(out);
    assert.equal(readSafetensors(readFileSync(out), out).metadata['format'], 'fcn-checkpoint');
    for (const [k, v] of s.values) assert.deepEqual(c.weights.get(k), v, k);
    assert.deepEqual(readdirSync(path.dirname(out)), ['model.safetensors']);
  });

  test('errors: exit 1 with one line naming the file, no output file, nothing executed; exit 2 for usage', () => {
    rmSync(PWNED, { force: true });
    const out = path.join(tmp, 'cli-err', 'model.safetensors');
    const cases: [string, RegExp][] = [
      [path.join(FIXTURES, 'book_wrong_shape.pth'), /^fcn: .*book_wrong_shape\.pth: tensor '0\.weight' has shape \[64, 3, 3, 3\], expected \[64, 3, 7, 7\]/],
      [path.join(FIXTURES, 'malicious_posix_system.pth'), /^fcn: refusing to load .*malicious_posix_system\.pth: it references posix\.system/],
      [path.join(tmp, 'missing.pth'), /^fcn: .*missing\.pth: no such file/],
    ];
    for (const [input, re] of cases) {
      const r = fcn('import', input, '--out', out);
      assert.equal(r.status, 1, input);
      assert.match(r.stderr, re);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.equal(existsSync(out), false);
    }
    assert.equal(existsSync(path.dirname(out)), false, 'nothing written at all');
    assert.equal(existsSync(PWNED), false);
    const usage = fcn('import', path.join(FIXTURES, 'tensors.pth'));
    assert.equal(usage.status, 2);
  });
});
