// fcn train with torchvision's networks: --init with a torchvision state_dict recognises the network
// (architecture and loss follow it; the book's ResNet-18 backbone default does not apply), one epoch
// runs and writes a checkpoint of that network; --arch with a state_dict of another network is one line;
// lraspp_mobilenet_v3_large from --init (width-reduced) and from a full-width ImageNet mobilenet_v3_large
// body (--backbone, torchvision's `features.*` / `classifier.*` names).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { encodeMask } from '../src/data/image.js';
import { loadCheckpoint } from '../src/weights/checkpoint.js';
import { encodeSafetensors, type Float32Entry } from '../src/weights/safetensors.js';
import { torchvisionNetwork } from '../src/model/torchvision.js';
import { fcnParameters, initParameters, seededRandom } from '../src/model/params.js';
import { fixturesRoot, repoRoot } from './helpers/fixtures.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fcn-tv-train-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const init = path.join(fixturesRoot, 'torchvision', 'fcn_resnet50_train.pth'); // 3 classes, width 2, aux head

/** A VOC-layout set of the fixture pictures (37x53, 29x41) with masks of classes 0..2. */
function dataset(): string {
  const root = path.join(tmp, 'voc');
  if (fs.existsSync(root)) return root;
  for (const d of ['JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation']) fs.mkdirSync(path.join(root, d), { recursive: true });
  const ids: string[] = [];
  for (const [i, key] of ['a', 'b', 'a', 'b', 'a', 'b'].entries()) {
    const id = `img${i}`;
    ids.push(id);
    const png = path.join(fixturesRoot, 'torchvision', `image_${key}.png`);
    fs.copyFileSync(png, path.join(root, 'JPEGImages', `${id}.jpg`));
    const [h, w] = key === 'a' ? [37, 53] : [29, 41];
    const mask = new Uint8Array(h * w);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) mask[y * w + x] = (x + y + i) % 7 < 2 ? 255 : Math.floor((3 * x) / w);
    fs.writeFileSync(path.join(root, 'SegmentationClass', `${id}.png`), encodeMask({ width: w, height: h, data: mask }));
  }
  fs.writeFileSync(path.join(root, 'ImageSets/Segmentation/train.txt'), ids.slice(0, 4).join('\n') + '\n');
  fs.writeFileSync(path.join(root, 'ImageSets/Segmentation/val.txt'), ids.slice(4).join('\n') + '\n');
  return root;
}

function fcn(args: string[]) {
  return spawnSync(process.execPath, [path.join(repoRoot, 'bin/fcn.js'), ...args], { encoding: 'utf8', cwd: tmp, env: { ...process.env, FCN_HOME: tmp } });
}

test('fcn train --init torchvision_state_dict.pth: the network is recognised and trained with its loss; the checkpoint is that network', async () => {
  const data = dataset();
  const out = path.join(tmp, 'run');
  const r = fcn(['train', '--data', data, '--init', init, '--out', out, '--epochs', '1', '--batch-size', '2', '--crop', '32x32',
    '--lr', '0.01', '--threads', '1', '--grid', '0']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /fcn_resnet50/);
  const ckpt = await loadCheckpoint(path.join(out, 'last.safetensors'));
  assert.equal(ckpt.arch.name, 'fcn_resnet50');
  assert.equal(ckpt.arch.numClasses, 3);
  assert.equal(ckpt.arch.loss, 'torchvision');
  const metrics = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { trainLoss?: number });
  assert.equal(metrics.length, 1);
  // and it resumes as that network
  const again = fcn(['train', '--data', data, '--init', init, '--out', out, '--epochs', '2', '--batch-size', '2', '--crop', '32x32',
    '--lr', '0.01', '--threads', '1', '--grid', '0', '--resume']);
  assert.equal(again.status, 0, again.stderr);
  assert.equal((await loadCheckpoint(path.join(out, 'last.safetensors'))).arch.name, 'fcn_resnet50');
});

test('fcn train --arch with an --init of another network: one line, exit 1', () => {
  const r = fcn(['train', '--data', dataset(), '--init', init, '--arch', 'deeplabv3_resnet50', '--out', path.join(tmp, 'bad'),
    '--epochs', '1', '--batch-size', '2', '--crop', '32x32']);
  assert.equal(r.status, 1, r.stderr);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  assert.match(r.stderr, /fcn_resnet50_train\.pth: holds fcn_resnet50, not deeplabv3_resnet50/);
});

test('fcn train --init lraspp_mobilenet_v3_large state_dict: recognised, trained with torchvision\'s loss (no aux), checkpoint of that network', async () => {
  const out = path.join(tmp, 'lraspp');
  const r = fcn(['train', '--data', dataset(), '--init', path.join(fixturesRoot, 'torchvision', 'lraspp_mobilenet_v3_large_train.pth'), '--out', out,
    '--epochs', '1', '--batch-size', '2', '--crop', '32x32', '--lr', '0.01', '--threads', '1', '--grid', '0']);
  assert.equal(r.status, 0, r.stderr);
  const ckpt = await loadCheckpoint(path.join(out, 'last.safetensors'));
  assert.equal(ckpt.arch.name, 'lraspp_mobilenet_v3_large');
  assert.equal(ckpt.arch.auxOutput, undefined);
  assert.equal(ckpt.arch.loss, 'torchvision');
});

test('fcn train --arch deeplabv3_mobilenet_v3_large --backbone mobilenet_v3_large (ImageNet names): the body starts from those weights', async () => {
  // a full-width ImageNet MobileNetV3-Large state_dict as torchvision names it: features.* and the classifier's Linear layers
  const arch = torchvisionNetwork('deeplabv3_mobilenet_v3_large', { numClasses: 3 });
  const weights = initParameters(arch, seededRandom(5));
  const entries = new Map<string, Float32Entry>();
  for (const spec of fcnParameters(arch)) {
    if (spec.backbone) entries.set(`features.${spec.name.slice('backbone.'.length)}`, { shape: spec.shape, data: weights.get(spec.name)! });
  }
  entries.set('classifier.0.weight', { shape: [1280, 960], data: new Float32Array(1280 * 960) });
  entries.set('classifier.0.bias', { shape: [1280], data: new Float32Array(1280) });
  const file = path.join(tmp, 'mobilenet_v3_large.safetensors');
  fs.writeFileSync(file, encodeSafetensors(entries, { format: 'pt' }));
  const out = path.join(tmp, 'dlmbv3');
  const r = fcn(['train', '--data', dataset(), '--arch', 'deeplabv3_mobilenet_v3_large', '--backbone', file, '--out', out,
    '--epochs', '1', '--batch-size', '2', '--crop', '32x32', '--lr', '0', '--threads', '1', '--grid', '0']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout + r.stderr, /starting from ImageNet weights/);
  const ckpt = await loadCheckpoint(path.join(out, 'last.safetensors'));
  assert.equal(ckpt.arch.name, 'deeplabv3_mobilenet_v3_large');
  // learning rate 0: the body's convolutions are the file's
  const key = 'backbone.13.block.1.0.weight';
  assert.deepEqual(ckpt.weights.get(key), weights.get(key));
  // and a ResNet network refuses that body in one line
  const bad = fcn(['train', '--data', dataset(), '--arch', 'fcn_resnet50', '--backbone', file, '--out', path.join(tmp, 'bad2'),
    '--epochs', '1', '--batch-size', '2', '--crop', '32x32']);
  assert.equal(bad.status, 1, bad.stderr);
  assert.match(bad.stderr.trim(), /^[^\n]*holds a MobileNetV3 ImageNet body, but fcn_resnet50 needs a ResNet one$/);
});
