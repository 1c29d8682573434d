// The deterministic weight formula (test/helpers/formula.ts) against the literal values Python printed
// into test/fixtures/formula.json, and sanity checks of the PyTorch fixtures and their loader.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { formulaSeed, formulaTensor, formulaWeights } from './helpers/formula.js';
import {
  compareRoundedImage, compareSampled, countDifferent, fixturesRoot, l2Norm, loadFixture, maxAbsDiff, relL2, sampled, sum,
} from './helpers/fixtures.js';
import { bilinearKernel } from '../src/model/bilinear.js';
import { fcnParameters, fcnResNet18 } from '../src/model/index.js';
import { readImage } from '../src/data/image.js';

interface FormulaLiterals {
  parameters: { name: string; shape: number[] }[];
  tensors: { name: string; shape: number[]; seed: number; indices: number[]; values: number[]; sum: number; sumAbs: number }[];
}

const literals = JSON.parse(fs.readFileSync(path.join(fixturesRoot, 'formula.json'), 'utf8')) as FormulaLiterals;

test('formula seeds: hand-computed and Python literals', () => {
  // 'a.b': 97*1 + 46*2 + 98*3 = 483
  assert.equal(formulaSeed('a.b'), 483);
  // 'conv1.weight' overflows 1009: the sum is 7796, 7796 mod 1009 = 733
  assert.equal(formulaSeed('conv1.weight'), 733);
  for (const t of literals.tensors) assert.equal(formulaSeed(t.name), t.seed, t.name);
});

test('formula values equal Python float32 values (first, middle, last elements, sums)', () => {
  assert.ok(literals.tensors.length >= 10);
  for (const t of literals.tensors) {
    const v = formulaTensor(t.name, t.shape);
    assert.equal(v.length, t.shape.reduce((a, b) => a * b, 1), t.name);
    t.indices.forEach((idx, j) => {
      const want = t.values[j]!;
      // Both sides round the same float64 to float32; allow one float32 ulp for a libm difference in sin
      assert.ok(Math.abs(v[idx]! - want) <= Math.abs(want) * 1.2e-7 + 1e-30, `${t.name}[${idx}]: ${v[idx]} vs ${want}`);
    });
    let s = 0;
    let sa = 0;
    for (const x of v) { s += x; sa += Math.abs(x); }
    assert.ok(Math.abs(s - t.sum) <= 1e-9 * t.sumAbs + 1e-12, `${t.name} sum ${s} vs ${t.sum}`);
    assert.ok(Math.abs(sa - t.sumAbs) <= 1e-9 * t.sumAbs, `${t.name} sum|x| ${sa} vs ${t.sumAbs}`);
  }
});

test('formula rules: hand-computed elements', () => {
  // bn1.weight[0] = 1 + 0.25 sin(0.1 seed); final_conv.weight[1] = sin(0.7071 + 0.1 seed) * sqrt(2/512)
  const s1 = formulaSeed('bn1.weight');
  assert.equal(formulaTensor('bn1.weight', [64])[0], Math.fround(1 + 0.25 * Math.sin(0.1 * s1)));
  const s2 = formulaSeed('final_conv.weight');
  assert.equal(formulaTensor('final_conv.weight', [21, 512, 1, 1])[1], Math.fround(Math.sin(0.7071 + 0.1 * s2) * Math.sqrt(2 / 512)));
  const rv = formulaTensor('bn1.running_var', [64]);
  assert.ok(rv.every((x) => x >= 1 && x <= 1.5));
  // transpose_conv.weight is the bilinear kernel plus a perturbation of at most 0.01
  const tw = formulaTensor('transpose_conv.weight', [21, 21, 64, 64]);
  const bk = bilinearKernel(21, 21, 64);
  const d = maxAbsDiff(tw, bk);
  assert.ok(d > 0.009 && d <= 0.0100001, `perturbation ${d}`);
  assert.throws(() => formulaTensor('fc.weight', [1000, 512]), /no rule for tensor 'fc.weight'/);
});

test('formula.json lists the same parameters, in the same order, as the model declaration', () => {
  const specs = fcnParameters(fcnResNet18());
  assert.deepEqual(specs.map((s) => ({ name: s.name, shape: s.shape })), literals.parameters);
  const w = formulaWeights(specs);
  assert.equal(w.size, 104);
  assert.equal(w.get('layer2.0.downsample.0.weight')!.length, 128 * 64);
});

test('fixture loader: tensors, sampling and the helpers', () => {
  assert.deepEqual(Array.from(sampled([0, 1, 2, 3, 4, 5, 6], 3)), [0, 3, 6]);
  assert.equal(relL2([1, 2, 2], [1, 2, 2]), 0);
  assert.ok(Math.abs(relL2([1, 2, 3], [1, 2, 2]) - 1 / 3) < 1e-12);
  assert.equal(l2Norm([3, 4]), 5);
  assert.equal(sum([1, 2, 3.5]), 6.5);
  assert.throws(() => loadFixture('no-such-fixture'), /manifest\.json: missing/);

  const fx = loadFixture('train_step');
  assert.throws(() => fx.tensor('nope'), /no tensor 'nope'/);
  const x = fx.f32('x');
  assert.deepEqual(x.shape, [2, 3, 64, 64]);
  const labels = fx.u8('labels');
  const ignored = labels.data.filter((v) => v === 255).length;
  assert.ok(labels.data.every((v) => v < 21 || v === 255));
  assert.ok(ignored > 0.07 * labels.data.length && ignored < 0.13 * labels.data.length, `ignored ${ignored}`);
  // Whole tensors: the recorded L2 norm and sum are those of the stored values
  const small = fx.f32('full/grad/layer4.1.bn2.weight');
  assert.equal(small.entry.stride, 1);
  assert.ok(Math.abs(l2Norm(small.data) - small.entry.l2!) <= 1e-6 * small.entry.l2!);
  assert.ok(Math.abs(sum(small.data) - small.entry.sum!) <= 1e-6 * small.entry.l2! * Math.sqrt(small.data.length));
  // Sampled tensors keep at most 4096 values; comparing a tensor with itself passes, a perturbed one fails
  const big = fx.f32('full/grad/layer4.1.conv2.weight');
  assert.deepEqual(big.entry.fullShape, [512, 512, 3, 3]);
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  assert.ok(big.entry.stride! >= Math.ceil((512 * 512 * 9) / 4096) && gcd(big.entry.stride!, 512 * 512 * 9) === 1);
  assert.ok(big.data.length <= 4096 && big.data.length === Math.ceil((512 * 512 * 9) / big.entry.stride!));
  const rebuilt = new Float32Array(512 * 512 * 9);
  for (let i = 0; i < big.data.length; i++) rebuilt[i * big.entry.stride!] = big.data[i]!;
  const c = compareSampled(rebuilt, big);
  assert.equal(c.relL2, 0);
  assert.ok(c.normRelErr > 0.5, 'a tensor with only the sampled values has a much smaller norm');
  assert.ok(fx.meta.results.full.loss > 0 && Number.isFinite(fx.meta.results.full.loss));
  // every trained parameter has a gradient, every batch-norm its new running statistics
  const specs = fcnParameters(fcnResNet18());
  for (const s of specs) {
    const key = s.trainable ? `full/grad/${s.name}` : `full/${s.name}`;
    assert.ok(fx.has(key), key);
  }
});

test('infer fixture: masks are the argmax of the stored logits, inputs the normalised PNGs', async () => {
  const fx = loadFixture('infer');
  for (const [tag, h, w] of [['a', 64, 96], ['b', 97, 131]] as const) {
    const logits = fx.f32(`logits_${tag}`);
    assert.deepEqual(logits.shape, [1, 21, h, w]);
    const mask = fx.u8(`mask_${tag}`);
    const plane = h * w;
    const argmax = new Uint8Array(plane);
    for (let p = 0; p < plane; p++) {
      let best = 0;
      for (let c = 1; c < 21; c++) if (logits.data[c * plane + p]! > logits.data[best * plane + p]!) best = c;
      argmax[p] = best;
    }
    assert.equal(countDifferent(argmax, mask.data), 0);
    let maxAbs = 0;
    for (const v of logits.data) maxAbs = Math.max(maxAbs, Math.abs(v));
    assert.ok(Math.abs(maxAbs - fx.meta.results[tag].maxAbsLogit) < 1e-6);

    const img = await readImage(fx.imagePath(`image_${tag}`));
    assert.deepEqual([img.height, img.width], [h, w]);
    const x = fx.f32(`x_${tag}`);
    const mean = [0.485, 0.456, 0.406];
    const std = [0.229, 0.224, 0.225];
    let worst = 0;
    for (let c = 0; c < 3; c++) {
      for (let p = 0; p < plane; p++) {
        const want = (img.data[p * 3 + c]! / 255 - mean[c]!) / std[c]!;
        worst = Math.max(worst, Math.abs(x.data[c * plane + p]! - want));
      }
    }
    assert.ok(worst < 2e-6, `normalisation differs by ${worst}`);
  }
});

/** A plain transposed convolution (one image, ONNX pads [top, left, bottom, right]) to check the upsample fixture's geometry. */
function convTranspose(x: Float32Array, C: number, H: number, W: number, weight: Float32Array, k: number, s: number,
  pads: [number, number, number, number]): { y: Float32Array; OH: number; OW: number } {
  const OH = (H - 1) * s + k - pads[0] - pads[2];
  const OW = (W - 1) * s + k - pads[1] - pads[3];
  const y = new Float32Array(C * OH * OW);
  for (let ci = 0; ci < C; ci++) {
    for (let co = 0; co < C; co++) {
      for (let i = 0; i < H; i++) {
        for (let j = 0; j < W; j++) {
          const v = x[(ci * H + i) * W + j]!;
          for (let a = 0; a < k; a++) {
            const oi = i * s + a - pads[0];
            if (oi < 0 || oi >= OH) continue;
            for (let b = 0; b < k; b++) {
              const oj = j * s + b - pads[1];
              if (oj < 0 || oj >= OW) continue;
              y[(co * OH + oi) * OW + oj]! += v * weight[((ci * C + co) * k + a) * k + b]!;
            }
          }
        }
      }
    }
  }
  return { y, OH, OW };
}

test('upsample fixture: bilinear kernels, geometry and rounding agree with a plain transposed convolution', () => {
  const fx = loadFixture('upsample');
  const rgb = fx.u8('image_rgb');
  const [H, W] = rgb.shape as [number, number, number];
  const x = new Float32Array(3 * H * W);
  for (let p = 0; p < H * W; p++) for (let c = 0; c < 3; c++) x[c * H * W + p] = rgb.data[p * 3 + c]! / 255;
  for (const s of [2, 3]) {
    const r = fx.meta.results[`x${s}`];
    assert.equal(r.kernelSize, 2 * s);
    const kernel = fx.f32(`kernel_x${s}`);
    assert.ok(maxAbsDiff(kernel.data, bilinearKernel(3, 3, 2 * s)) < 1e-7, `kernel x${s}`);
    const { y, OH, OW } = convTranspose(x, 3, H, W, kernel.data, 2 * s, s, r.onnxPads);
    assert.deepEqual([OH, OW], [s * H, s * W]);
    const out = fx.f32(`out_x${s}`);
    assert.deepEqual(out.shape, [3, OH, OW]);
    assert.ok(maxAbsDiff(y, out.data) < 1e-6, `x${s} float output differs by ${maxAbsDiff(y, out.data)}`);
    const u8 = new Uint8Array(OH * OW * 3);
    for (let c = 0; c < 3; c++) for (let p = 0; p < OH * OW; p++) u8[p * 3 + c] = Math.round(Math.min(1, Math.max(0, y[c * OH * OW + p]!)) * 255);
    const cmp = compareRoundedImage(u8, fx.u8(`out_x${s}_u8`).data, out.data);
    assert.equal(cmp.unexplained, 0);
    assert.ok(cmp.mismatches <= r.nearTies);
    // a shifted image is caught
    const shifted = u8.slice(3);
    const bad = compareRoundedImage(new Uint8Array([...shifted, 0, 0, 0]), fx.u8(`out_x${s}_u8`).data, out.data);
    assert.ok(bad.unexplained > 100);
  }
});
