// torchvision's segmentation networks run as torchvision runs them: on the image at its own size
// (37x53 and 29x41 here, not multiples of 8), logits within 1e-4 of torchvision 0.14's
// `model(x)['out']` and masks equal to its argmax on >= 99.9% of pixels, for width-reduced builds
// of all six networks (the MobileNetV3 ones at torchvision's width_mult 0.25) (test/fixtures/torchvision/, scripts/make_torchvision_fixtures.py); the same
// through `fcn predict --model state_dict.pth`, the tile loop, and `fcn export`'s ONNX graph.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TORCHVISION_NETWORKS } from '../src/model/torchvision.js';
import { loadModel } from '../src/infer/model.js';
import { readImage, readMask } from '../src/data/image.js';
import { loadCheckpoint } from '../src/weights/checkpoint.js';
import { compileExport } from '../src/graph/inference.js';
import { Session } from '../src/engine/session.js';
import { normalizeWindow } from '../src/infer/preprocess.js';
import { countDifferent, fixturesRoot, loadFixture, maxAbsDiff, repoRoot } from './helpers/fixtures.js';

const fx = loadFixture('torchvision');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fcn-tv-infer-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const pthPath = (name: string) => path.join(fixturesRoot, 'torchvision', `${name}.pth`);

for (const name of TORCHVISION_NETWORKS) {
  test(`${name}: logits within 1e-4 of torchvision's and masks equal to its argmax, at 37x53 and 29x41`, async () => {
    const model = await loadModel(pthPath(name), { threads: 1 });
    try {
      assert.equal(model.arch.name, name);
      assert.equal(model.arch.stride, 1);
      for (const key of ['a', 'b']) {
        const image = await readImage(fx.imagePath(key));
        const ref = fx.f32(`${name}/logits_${key}`);
        const logits = await model.logits(image);
        assert.equal(logits.length, ref.data.length);
        const diff = maxAbsDiff(logits, ref.data);
        assert.ok(diff <= 1e-4, `${name} ${key}: max |logit - torchvision| = ${diff}`);
        const mask = await model.predict(image);
        assert.deepEqual([mask.height, mask.width], [image.height, image.width]);
        const different = countDifferent(mask.data, fx.u8(`${name}/mask_${key}`).data);
        assert.ok(different <= mask.data.length * 0.001, `${name} ${key}: ${different} of ${mask.data.length} pixels differ`);
      }
    } finally {
      await model.dispose();
    }
  });
}

test('fcn predict --model torchvision_state_dict.pth writes the masks torchvision predicts (network recognised from the keys)', () => {
  const out = path.join(tmp, 'pred');
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'bin/fcn.js'), 'predict', '--model', pthPath('deeplabv3_resnet50'), '--out', out,
    '--threads', '1', fx.imagePath('a'), fx.imagePath('b')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return (async () => {
    for (const key of ['a', 'b']) {
      const mask = await readMask(path.join(out, `image_${key}.png`));
      const ref = fx.u8(`deeplabv3_resnet50/mask_${key}`);
      assert.deepEqual([mask.height, mask.width], ref.shape);
      assert.ok(countDifferent(mask.data, ref.data) <= mask.data.length * 0.001);
    }
  })();
});

test('large images go through the tile loop at the image\'s own size (tiles need no multiple of 8)', async () => {
  const model = await loadModel(pthPath('fcn_resnet50'), { threads: 1, tileSize: 41, tileMargin: 8 });
  try {
    const image = await readImage(fx.imagePath('a'));
    const mask = await model.predict(image);
    assert.deepEqual([mask.height, mask.width], [37, 53]);
    // tiles see less context than the whole image: most pixels still agree with torchvision's whole-image argmax
    const different = countDifferent(mask.data, fx.u8('fcn_resnet50/mask_a').data);
    assert.ok(different < mask.data.length * 0.5, `${different} pixels differ`);
  } finally {
    await model.dispose();
  }
});

test('fcn export\'s ONNX graph of a torchvision network gives torchvision\'s logits at any size', async () => {
  for (const name of ['deeplabv3_resnet101', 'lraspp_mobilenet_v3_large']) {
    const ckpt = await loadCheckpoint(pthPath(name));
    const session = await Session.create(compileExport(ckpt.arch, ckpt.weights, ckpt), { threads: 1 });
    try {
      for (const key of ['a', 'b']) {
        const image = await readImage(fx.imagePath(key));
        const x = normalizeWindow(image, ckpt.normalization, 0, 0, image.height, image.width, 1);
        const out = await session.run({ image: { dtype: 'float32', dims: [1, 3, x.height, x.width], data: x.data } }, ['logits', 'mask']);
        const ref = fx.f32(`${name}/logits_${key}`);
        assert.deepEqual(out.logits!.dims, ref.shape);
        assert.ok(maxAbsDiff(out.logits!.data as Float32Array, ref.data) <= 1e-4, name);
      }
    } finally {
      await session.dispose();
    }
  }
});

test('fcn eval (with --resize as torchvision\'s evaluation preset, and without) gives the confusion matrix torchvision\'s reference computes', () => {
  const data = path.join(tmp, 'voc');
  for (const d of ['JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation']) fs.mkdirSync(path.join(data, d), { recursive: true });
  for (const key of ['a', 'b']) {
    // the PNG under a .jpg name: images are decoded by content, and PNG keeps the pixels exact
    fs.copyFileSync(fx.imagePath(key), path.join(data, 'JPEGImages', `${key}.jpg`));
    fs.copyFileSync(fx.imagePath(`mask_${key}`), path.join(data, 'SegmentationClass', `${key}.png`));
  }
  fs.writeFileSync(path.join(data, 'ImageSets/Segmentation/val.txt'), 'a\nb\n');
  const expected = fx.meta.results['eval'] as Record<string, { resize: number | null; confusionMatrix: number[][] }>;
  for (const [name, e] of Object.entries(expected)) {
    const json = path.join(tmp, `${name}.json`);
    const args = ['eval', '--model', pthPath(name), '--data', data, '--json', json, '--threads', '1', ...(e.resize ? ['--resize', String(e.resize)] : [])];
    const r = spawnSync(process.execPath, [path.join(repoRoot, 'bin/fcn.js'), ...args], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const report = JSON.parse(fs.readFileSync(json, 'utf8')) as { confusionMatrix: number[][] };
    assert.deepEqual(report.confusionMatrix, e.confusionMatrix, name);
  }
});
