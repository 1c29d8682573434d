// int8 quantisation: an integer convolution's output against float32 within the error bound its
// scales imply; a small network of every kind quantised with ORT fusing each integer convolution;
// histograms and percentiles; fcn quantize end to end (metadata round trip, eval and predict of the
// .onnx, float and int8 side by side) and its errors (int8 input, foreign ONNX, empty split).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { conv, bn, type FcnArchitecture } from '../src/model/fcn.js';
import type { Layer } from '../src/model/layers.js';
import { initParameters, seededRandom, type TensorMap } from '../src/model/params.js';
import { torchvisionNetwork } from '../src/model/torchvision.js';
import { compileExport, compileInference, exportMetadata } from '../src/graph/inference.js';
import { fcnResNet18 } from '../src/model/fcn.js';
import { SegmentationModel } from '../src/infer/model.js';
import { activationQuant, calibratedValues, compileCalibration, compileQuantized, planQuantization, quantizeWeightsPerChannel, type ValueRange } from '../src/graph/quant.js';
import { Session } from '../src/engine/session.js';
import { GrowingHistogram } from '../src/quantize/ranges.js';
import { spreadIds } from '../src/quantize/calibrate.js';
import { decodeFcnOnnx, floatExportWeights } from '../src/infer/onnx-file.js';
import { loadModel } from '../src/infer/model.js';
import { readOnnxSummary } from '../src/graph/onnx.js';
import { loadCheckpoint, saveCheckpoint } from '../src/weights/checkpoint.js';
import { generateSynthVoc } from '../src/data/synth.js';
import { defaultColors, defaultNormalization } from '../src/model/card.js';
import { miniNet } from './helpers/mininet.js';
import { tempDirs } from './helpers/tmp.js';
import { runCli } from './helpers/cli.js';

const { tempDir } = tempDirs('fcn-quantize-');

function input(n: number, seed: number): Float32Array {
  const r = seededRandom(seed);
  return Float32Array.from({ length: n }, () => (r() * 2 - 1) * 2);
}

/** Calibrates min/max ranges of every quantised value on `x` (one NCHW image). */
async function minmaxRanges(arch: FcnArchitecture, weights: TensorMap, x: Float32Array, h: number, w: number): Promise<Map<string, ValueRange>> {
  const plan = planQuantization(arch, weights);
  const values = calibratedValues(plan);
  const s = await Session.create(compileCalibration(plan), { threads: 1 });
  const out = await s.run({ [arch.input]: { dtype: 'float32', dims: [1, 3, h, w], data: x } }, values.filter((v) => v !== arch.input));
  await s.dispose();
  return new Map(values.map((v) => {
    const hist = new GrowingHistogram(256);
    hist.add(v === arch.input ? x : out[v]!.data as Float32Array);
    return [v, hist.range({ method: 'minmax', percentile: 100 })];
  }));
}

async function logits(graph: Uint8Array, arch: FcnArchitecture, x: Float32Array, h: number, w: number, profilePrefix?: string): Promise<Float32Array> {
  const s = await Session.create(graph, { threads: 1, profilePrefix });
  const out = await s.run({ [arch.input]: { dtype: 'float32', dims: [1, 3, h, w], data: x } }, [arch.output]);
  if (profilePrefix) s.endProfiling();
  await s.dispose();
  return out[arch.output]!.data as Float32Array;
}

test('an integer conv+bn+relu followed by a float 1x1 scorer: logits within the bound its scales give', async () => {
  // image -> conv a (3->8, 3x3) -> bn -> relu -> y -> conv b (8->4, 1x1, float) -> logits
  const layers: Layer[] = [
    conv('a', 'image', 'a/conv', 3, 8, 3, 1, 1),
    bn('abn', 'a/conv', 'a/bn', 8),
    { op: 'relu', input: 'a/bn', output: 'y' },
    conv('b', 'y', 'logits', 8, 4, 1, 1, 0, true, 'pytorch_default'),
  ];
  const arch: FcnArchitecture = { name: 'two-conv', numClasses: 4, layers, input: 'image', output: 'logits', backboneEnd: 2, stride: 1, loss: 'torchvision' };
  const weights = initParameters(arch, seededRandom(3));
  // batch-norm statistics that are not the identity, so folding is exercised
  const r = seededRandom(4);
  for (const k of ['abn.weight', 'abn.bias', 'abn.running_mean']) weights.set(k, Float32Array.from({ length: 8 }, () => r() - 0.5));
  weights.set('abn.running_var', Float32Array.from({ length: 8 }, () => 0.5 + r()));
  const H = 12, W = 16;
  const x = input(3 * H * W, 5);
  const ranges = await minmaxRanges(arch, weights, x, H, W);
  const plan = planQuantization(arch, weights);
  assert.deepEqual([...plan.intConvs], ['a']);
  assert.deepEqual(plan.quantized, ['image', 'y']);
  const ref = await logits(compileInference(arch, weights, { argmax: false }), arch, x, H, W);
  const got = await logits(compileQuantized(plan, ranges), arch, x, H, W);
  // the bound: input rounding s_x/2 times |w|, weight rounding s_w/2 times |x|, their product, the
  // bias's rounding and the output's s_y/2 per channel of y (ReLU is 1-Lipschitz); then the float
  // scorer sums |w_b| times that
  const sx = activationQuant(ranges.get('image')!).scale;
  const sy = activationQuant(ranges.get('y')!).scale;
  const wa = plan.weights.get('a.weight')!;
  const { scale: sw } = quantizeWeightsPerChannel(wa, 8, 63); // the default reduced range
  const fanIn = 27;
  const xmax = Math.max(...Array.from(x, Math.abs));
  const perChannel = Array.from({ length: 8 }, (_, o) => {
    let l1 = 0;
    for (let i = o * fanIn; i < (o + 1) * fanIn; i++) l1 += Math.abs(wa[i]!);
    return l1 * sx / 2 + fanIn * xmax * sw[o]! / 2 + fanIn * sx * sw[o]! / 4 + sx * sw[o]! / 2 + sy / 2;
  });
  const wb = weights.get('b.weight')!;
  for (let c = 0; c < 4; c++) {
    let tol = 0;
    for (let o = 0; o < 8; o++) tol += Math.abs(wb[c * 8 + o]!) * perChannel[o]!;
    for (let p = 0; p < H * W; p++) {
      const d = Math.abs(got[c * H * W + p]! - ref[c * H * W + p]!);
      assert.ok(d <= tol + 1e-5, `class ${c} pixel ${p}: |int8 − float32| = ${d} > bound ${tol}`);
    }
  }
});

test('a network of every kind: every integer convolution fused into QLinearConv, logits close, masks agree', async () => {
  const arch = miniNet(3, 0.1);
  const weights = initParameters(arch, seededRandom(7));
  const H = 32, W = 40;
  const x = input(3 * H * W, 8);
  const ranges = await minmaxRanges(arch, weights, x, H, W);
  const plan = planQuantization(arch, weights);
  // the class scorer stays float; dropout is gone; every batch-norm is folded
  assert.ok(!plan.intConvs.has('head'));
  assert.equal(plan.intConvs.size, 6);
  assert.ok(plan.layers.every((l) => l.op !== 'batchnorm' && l.op !== 'dropout'));
  const dir = tempDir('profile');
  const ref = await logits(compileInference(arch, weights, { argmax: false }), arch, x, H, W);
  const got = await logits(compileQuantized(plan, ranges), arch, x, H, W, path.join(dir, 'p'));
  const profile = JSON.parse(fs.readFileSync(path.join(dir, fs.readdirSync(dir)[0]!), 'utf8')) as { cat: string; name: string; args: { op_name?: string } }[];
  const ops = new Map<string, number>();
  for (const e of profile) if (e.cat === 'Node' && e.name.endsWith('_kernel_time')) ops.set(e.args.op_name!, (ops.get(e.args.op_name!) ?? 0) + 1);
  assert.equal(ops.get('QLinearConv'), plan.intConvs.size, `ops run: ${JSON.stringify([...ops])}`);
  let maxRef = 0, maxDiff = 0, agree = 0;
  for (let i = 0; i < ref.length; i++) {
    maxRef = Math.max(maxRef, Math.abs(ref[i]!));
    maxDiff = Math.max(maxDiff, Math.abs(ref[i]! - got[i]!));
  }
  for (let p = 0; p < H * W; p++) {
    const arg = (t: Float32Array) => [0, 1, 2].reduce((b, c) => (t[c * H * W + p]! > t[b * H * W + p]! ? c : b), 0);
    if (arg(ref) === arg(got)) agree++;
  }
  assert.ok(maxDiff < 0.05 * maxRef, `max |Δlogit| ${maxDiff} against max |logit| ${maxRef}`);
  assert.ok(agree / (H * W) > 0.95, `masks agree on ${agree} of ${H * W} pixels`);
});

test('the book\'s FCN (stride 32) as int8: the graph pads any size inside and crops back, and loads as a model', async () => {
  const arch = fcnResNet18({ numClasses: 3, variant: 'fcn16s' });
  const weights = initParameters(arch, seededRandom(9));
  const ranges = await minmaxRanges(arch, weights, input(3 * 64 * 96, 10), 64, 96);
  const plan = planQuantization(arch, weights);
  // score32, score_layer3 and the upsamplers stay float; the 20 body convolutions are int8
  assert.equal(plan.intConvs.size, 20);
  const card = { classes: ['a', 'b', 'c'], colors: defaultColors(3), normalization: defaultNormalization() };
  const bytes = compileQuantized(plan, ranges, { metadata: { ...exportMetadata(arch, card), precision: 'int8' } });
  const s = await Session.create(bytes, { threads: 1 });
  const out = await s.run({ image: { dtype: 'float32', dims: [1, 3, 50, 70], data: input(3 * 50 * 70, 11) } });
  await s.dispose();
  assert.deepEqual(out['logits']!.dims, [1, 3, 50, 70]);
  assert.deepEqual(out['mask']!.dims, [1, 50, 70]);
  const model = await SegmentationModel.fromOnnx(decodeFcnOnnx(bytes, 'book.int8.onnx'));
  assert.equal(model.arch.name, 'fcn16s-resnet18');
  const seg = await model.segment({ width: 70, height: 50, data: new Uint8Array(70 * 50 * 3).fill(120) });
  assert.equal(seg.mask.length, 70 * 50);
  await model.dispose();
});

test('a grouped-upsampler book FCN (36 classes) as int8: the grouped transposed conv stays float, logits close; argmax false drops only the mask', async () => {
  const arch = fcnResNet18({ numClasses: 36 });
  assert.equal(arch.upsampler, 'grouped');
  const weights = initParameters(arch, seededRandom(12));
  const H = 64, W = 96;
  const x = input(3 * H * W, 13);
  const ranges = await minmaxRanges(arch, weights, x, H, W);
  const plan = planQuantization(arch, weights);
  assert.equal(plan.intConvs.size, 20);
  assert.ok(!plan.intConvs.has('final_conv'));
  const ref = await logits(compileInference(arch, weights, { argmax: false }), arch, x, H, W);
  const withMask = compileQuantized(plan, ranges, { padToStride: false });
  const logitsOnly = compileQuantized(plan, ranges, { padToStride: false, argmax: false });
  assert.deepEqual(readOnnxSummary(withMask).outputs, ['logits', 'mask']);
  assert.deepEqual(readOnnxSummary(logitsOnly).outputs, ['logits']);
  const got = await logits(withMask, arch, x, H, W);
  assert.deepEqual(await logits(logitsOnly, arch, x, H, W), got);
  let maxRef = 0, maxDiff = 0;
  for (let i = 0; i < ref.length; i++) {
    maxRef = Math.max(maxRef, Math.abs(ref[i]!));
    maxDiff = Math.max(maxDiff, Math.abs(ref[i]! - got[i]!));
  }
  assert.ok(maxDiff < 0.05 * maxRef, `max |Δlogit| ${maxDiff} against max |logit| ${maxRef}`);
});

test('the parameters of a float32 export read back: every inference parameter, the block-form upsampler put back into [Cin, Cout, k, k] and its bias', () => {
  const arch = fcnResNet18({ numClasses: 5, variant: 'fcn8s' });
  const weights = initParameters(arch, seededRandom(14));
  const card = { classes: ['a', 'b', 'c', 'd', 'e'], colors: defaultColors(5), normalization: defaultNormalization() };
  const file = decodeFcnOnnx(compileExport(arch, weights, card), 'book.onnx');
  const got = floatExportWeights(file, 'book.onnx');
  assert.equal(got.size, weights.size);
  for (const [name, w] of weights) assert.deepEqual(got.get(name), w, name);
  assert.throws(() => floatExportWeights({ ...file, precision: 'int8' }, 'x.onnx'), /^FcnError: x\.onnx: precision int8, not a float32 export/);
});

test('a grouped-upsampler export (36 classes, ConvTranspose with its own weight) reads back whole', () => {
  const arch = fcnResNet18({ numClasses: 36 });
  assert.equal(arch.upsampler, 'grouped');
  const weights = initParameters(arch, seededRandom(15));
  const classes = Array.from({ length: 36 }, (_, i) => `c${i}`);
  const file = decodeFcnOnnx(compileExport(arch, weights, { classes, colors: defaultColors(36), normalization: defaultNormalization() }), 'grouped.onnx');
  const got = floatExportWeights(file, 'grouped.onnx');
  assert.equal(got.size, weights.size);
  for (const [name, w] of weights) assert.deepEqual(got.get(name), w, name);
});

test('per-channel weights: symmetric, 127 at each channel\'s largest magnitude; an all-zero channel stays zero', () => {
  const { q, scale } = quantizeWeightsPerChannel(Float32Array.of(0.5, -1, 0.25, 0, 0, 0), 2);
  assert.deepEqual([...q], [64, -127, 32, 0, 0, 0]);
  assert.equal(scale[0], Math.fround(1 / 127));
  assert.equal(scale[1], 1);
  const u = activationQuant({ min: 0, max: 2.55 });
  assert.ok(Math.abs(u.scale - 0.01) < 1e-12 && u.zeroPoint === 0);
  assert.deepEqual([...quantizeWeightsPerChannel(Float32Array.of(1, -0.6), 1, 63).q], [63, -38]);
  const a = activationQuant({ min: -1, max: 3 });
  assert.equal(a.zeroPoint, Math.round(1 / a.scale));
  // a range on one side of zero is widened to hold it (zero padding is exact)
  assert.equal(activationQuant({ min: 2, max: 4 }).zeroPoint, 0);
});

test('histogram: min/max exact, percentiles within a bin, growing keeps the counts', () => {
  const h = new GrowingHistogram(1000);
  h.add(Float32Array.from({ length: 1000 }, (_, i) => i / 1000));
  h.add(Float32Array.from({ length: 1000 }, (_, i) => -i / 250)); // grows downwards
  h.add(Float32Array.of(100)); // grows upwards, one outlier
  assert.equal(h.total, 2001);
  assert.deepEqual(h.range({ method: 'minmax', percentile: 100 }), { min: Math.fround(-999 / 250), max: 100 });
  const p = h.range({ method: 'percentile', percentile: 99.9 });
  const bin = h.width / h.bins;
  assert.ok(p.max < 1 + bin && p.max > 0.99 - bin, `upper ${p.max}`);
  assert.ok(p.min > -4 - bin && p.min < -3.99 + 2 * bin, `lower ${p.min}`);
  assert.deepEqual(spreadIds(['a', 'b', 'c', 'd'], 2), ['a', 'c']);
  assert.deepEqual(spreadIds(['a'], 5), ['a']);
});

test('fcn quantize: int8 ONNX with the export\'s metadata, loaded by eval and predict; float and int8 side by side; errors', async () => {
  const dir = tempDir('cli');
  const data = path.join(dir, 'data');
  await generateSynthVoc(data, { train: 3, val: 2, size: [64, 96], spread: 0, seed: 1 });
  // a width-reduced torchvision FCN (stride 1) with the synthetic set's 6 classes
  const arch = torchvisionNetwork('fcn_resnet50', { numClasses: 6, width: 4, aux: false });
  const classes = ['background', 'a', 'b', 'c', 'd', 'e'];
  const ckpt = path.join(dir, 'net.safetensors');
  await saveCheckpoint(ckpt, {
    arch, weights: initParameters(arch, seededRandom(2)), classes, colors: defaultColors(6), normalization: defaultNormalization(), metadata: {}, extra: new Map(),
  });
  const out = path.join(dir, 'net.int8.onnx');
  const q = await runCli(['quantize', '--model', ckpt, '--data', data, '--calib', '2', '--out', out, '--threads', '1'], {}, 60_000);
  assert.equal(q.status, 0, q.stderr);
  assert.match(q.stderr, /calibrate train .*2\/2/);
  assert.match(q.stdout, /wrote .*net\.int8\.onnx .* of the float32 export's .* MB\): fcn_resnet50, \d+ int8 convolutions, min\/max ranges from 2 train images/);
  assert.match(q.stdout, /mIoU\s+\d\.\d{4}\s+\d\.\d{4}/);
  assert.match(q.stdout, /masks agree on \d+\.\d\d% of val pixels/);
  const bytes = fs.readFileSync(out);
  const file = decodeFcnOnnx(bytes, out);
  assert.equal(file.precision, 'int8');
  assert.deepEqual(file.card.classes, classes);
  assert.equal(file.arch.name, 'fcn_resnet50');
  assert.equal((file.arch as { options?: { width: number } }).options!.width, 4);
  assert.deepEqual(JSON.parse(file.metadata['calibration']!).images, 2);
  assert.ok((readOnnxSummary(bytes).ops['DequantizeLinear'] ?? 0) > 0);
  const model = await loadModel(out);
  assert.equal(model.precision, 'int8');
  assert.equal(model.onnx?.length, bytes.length);
  const seg = await model.segment({ width: 50, height: 37, data: new Uint8Array(50 * 37 * 3).fill(90) });
  assert.equal(seg.mask.length, 50 * 37);
  await model.dispose();

  // from the float32 file fcn export wrote: the same int8 file as from the checkpoint
  const exported = path.join(dir, 'net.onnx');
  const ck = await loadCheckpoint(ckpt);
  fs.writeFileSync(exported, compileExport(ck.arch, ck.weights, ck));
  const fromOnnx = path.join(dir, 'net.from-onnx.int8.onnx');
  const qo = await runCli(['quantize', '--model', exported, '--data', data, '--calib', '2', '--out', fromOnnx, '--threads', '1'], {}, 60_000);
  assert.equal(qo.status, 0, qo.stderr);
  assert.match(qo.stdout, /wrote .*net\.from-onnx\.int8\.onnx .* of the float32 export's .* MB\): fcn_resnet50, \d+ int8 convolutions/);
  assert.match(qo.stdout, /masks agree on \d+\.\d\d% of val pixels/);
  assert.ok(fs.readFileSync(fromOnnx).equals(bytes), 'quantising the export gives the checkpoint\'s int8 file');

  const ev = await runCli(['eval', '--model', out, '--data', data, '--threads', '1'], {}, 60_000);
  assert.equal(ev.status, 0, ev.stderr);
  assert.match(ev.stdout, /mean IoU\s+\d\.\d{4}/);

  // already int8; a foreign ONNX (no metadata); a split without images
  const again = await runCli(['quantize', '--model', out, '--data', data, '--out', path.join(dir, 'x.onnx')]);
  assert.equal(again.status, 1);
  assert.match(again.stderr, /net\.int8\.onnx: already int8/);
  const foreign = path.join(dir, 'foreign.onnx');
  fs.writeFileSync(foreign, compileInference(arch, initParameters(arch, seededRandom(2))));
  const pf = await runCli(['predict', '--model', foreign, '--out', path.join(dir, 'p'), path.join(data, 'JPEGImages', fs.readdirSync(path.join(data, 'JPEGImages'))[0]!)]);
  assert.equal(pf.status, 1);
  assert.match(pf.stderr, /foreign\.onnx: an ONNX model without fcn's metadata \(missing 'architecture', 'classes', 'colors', 'normalization'/);
  assert.equal(pf.stderr.trim().split('\n').length, 1);
  fs.writeFileSync(path.join(data, 'ImageSets', 'Segmentation', 'empty.txt'), '');
  const empty = await runCli(['quantize', '--model', ckpt, '--data', data, '--split', 'empty', '--out', path.join(dir, 'y.onnx')]);
  assert.equal(empty.status, 1);
  assert.match(empty.stderr, /'empty' split has no images to calibrate on|empty/);
  assert.ok(!fs.existsSync(path.join(dir, 'y.onnx')) && !fs.existsSync(path.join(dir, 'x.onnx')));
});
