// The bench's conv ceiling bookkeeping (bench/ceiling.ts): the book's convolutions and upsampler
// listed once per shape with the right counts and FLOPs, the FLOP-weighted combination, and ORT
// profile events read into per-shape rows set against the standalone times.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fcnResNet18 } from '../src/model/index.js';
import { combine, convCases, profileKey, profileRows, readProfile, timeCase } from '../bench/ceiling.js';
import { tempDirs } from './helpers/tmp.js';

const { tempDir } = tempDirs('fcn-ceiling-');

test("the book's FCN at 320x480: 21 convolutions (the body's 20 and the scorer) in 12 shapes, and the upsampler's GEMM, 11.75 GFLOP", () => {
  const cases = convCases(fcnResNet18({ numClasses: 21 }), 1, 320, 480);
  const convs = cases.filter((c) => c.kind === 'conv');
  assert.equal(convs.length, 12);
  assert.equal(convs.reduce((a, c) => a + c.count, 0), 21);
  const stem = convs.find((c) => c.kernel === 7)!;
  assert.equal(stem.flop, 2 * 64 * 160 * 240 * 3 * 49);
  const up = cases.find((c) => c.kind === 'gemm')!;
  // 10x15 scores, m = 2: 11x16 blocks, 4·21 + 1 inner (bias row), 21·32² columns
  assert.deepEqual(up.gemm, [176, 85, 21504]);
  const total = cases.reduce((a, c) => a + c.count * c.flop, 0) / 1e9;
  assert.ok(Math.abs(total - 11.75) < 0.01, `${total}`);
  const layer = convs.find((c) => c.key.startsWith('64>64 k3 80x120>80x120'))!;
  assert.equal(layer.count, 4);
  assert.deepEqual(layer.layers, ['layer1.0.conv1', 'layer1.0.conv2', 'layer1.1.conv1', 'layer1.1.conv2']);
});

test('combine: the rate is total FLOP over total best time (rates weighted by FLOPs)', () => {
  const row = (flop: number, ms: number, count: number) => ({ ...convCases(fcnResNet18({ numClasses: 2 }), 1, 64, 64)[0]!, flop, best_ms: ms, count });
  const c = combine([row(1e9, 10, 1), row(3e9, 10, 2)]);
  assert.equal(c.totalMs, 30);
  assert.equal(c.totalGflop, 7);
  assert.ok(Math.abs(c.gflopPerS - 7 / 0.03) < 1e-9);
});

test('a standalone conv case runs and times', async () => {
  const c = convCases(fcnResNet18({ numClasses: 2 }), 1, 64, 64).find((k) => k.kernel === 3)!;
  const ms = await timeCase(c, 1, 2, 1);
  assert.ok(ms > 0 && Number.isFinite(ms));
});

test("readProfile takes the last run's kernels; profileRows groups convs by shape against the standalone times", () => {
  const key = profileKey(1, 64, 64, 3, 80, 120, 80, 120);
  const conv = (ts: number, dur: number) => ({
    cat: 'Node', name: 'layer1.0/relu1_nchwc_kernel_time', ts, dur,
    args: { op_name: 'Conv', input_type_shape: [{ float: [1, 64, 80, 120] }, { float: [64, 64, 3, 3] }, { float: [64] }], output_type_shape: [{ float: [1, 64, 80, 120] }] },
  });
  const events = [
    { name: 'model_run', ts: 0, dur: 100 }, conv(10, 9999),
    { name: 'model_run', ts: 1000, dur: 50 }, conv(1010, 4000),
    { cat: 'Node', name: 'n_Transpose_kernel_time', ts: 1020, dur: 1000, args: { op_name: 'Transpose', input_type_shape: [{ float: [1, 11, 16, 21, 32, 32] }], output_type_shape: [{ float: [1, 21, 11, 32, 16, 32] }] } },
    { cat: 'Node', name: 'n_MatMul_kernel_time', ts: 1030, dur: 500, args: { op_name: 'MatMul', input_type_shape: [{ float: [1, 176, 85] }], output_type_shape: [{ float: [1, 176, 21504] }] } },
  ];
  const file = path.join(tempDir('profile'), 'p.json');
  fs.writeFileSync(file, JSON.stringify(events));
  const { runMs, nodes } = readProfile(file);
  assert.equal(runMs, 0.05);
  assert.equal(nodes.length, 3);
  assert.equal(nodes[0]!.key, key);
  assert.equal(nodes[0]!.flop, 2 * 64 * 80 * 120 * 64 * 9);
  assert.equal(nodes[2]!.flop, 2 * 176 * 21504 * 85);
  const standalone = convCases(fcnResNet18({ numClasses: 21 }), 1, 320, 480).map((c) => ({ ...c, best_ms: 2 }));
  const rows = profileRows(nodes, standalone);
  assert.deepEqual(rows.map((r) => r.what), [`Conv ${key}`, 'Transpose', 'MatMul']);
  assert.equal(rows[0]!.ceilingMs, 2); // one node at the shape's standalone 2 ms: 50% of ceiling at 4 ms
  assert.ok(Math.abs(rows[0]!.share - 4000 / 5500) < 1e-12);
});
