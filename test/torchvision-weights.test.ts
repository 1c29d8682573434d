// torchvision's segmentation networks, declared in src/model/torchvision.ts: the full-size
// declarations have torchvision's parameter counts and state_dict keys; the width-reduced fixtures
// (test/fixtures/torchvision/, made by scripts/make_torchvision_fixtures.py from torchvision's own
// classes) are recognised from their keys and shapes; a forced network that does not fit, and a
// state_dict that fits none, are one-line errors naming what does not fit; import → our checkpoint →
// export with torchvision's names gives back the same tensors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fcnResNet18 } from '../src/model/fcn.js';
import { initParameters, numel } from '../src/model/params.js';
import { torchvisionNetwork, TORCHVISION_NETWORKS, type TorchvisionNetwork } from '../src/model/torchvision.js';
import { resnetBottleneckBody } from '../src/model/resnet.js';
import { HIGH_FEATURE, isMobileNetNetwork, makeDivisible, mobilenetChannels, mobilenetV3LargeBody } from '../src/model/mobilenet.js';
import { importCheckpoint, loadCheckpoint, loadCheckpointWithSource, readPth, readSafetensors, toFloat32, type Tensor } from '../src/weights/index.js';
import {
  asTorchvision, encodeTorchvisionStateDict, isMobileNetClassifier, isResNetBottleneckClassifier, mobilenetBodyTensors, torchvisionBodyTensors, isTorchvisionSegmentation, resnetBodyTensors, torchvisionArchitectureOf, torchvisionKeys,
  torchvisionParameters,
} from '../src/weights/torchvision.js';
import { FcnError } from '../src/util/errors.js';
import { fixturesRoot, loadFixture, repoRoot } from './helpers/fixtures.js';

const fx = loadFixture('torchvision');
const results = fx.meta.results as Record<TorchvisionNetwork, { pth: string; aux: boolean; width: number; aspp: number; classes: number; tensors: number }>;

function pth(name: string): Map<string, Tensor> {
  const file = path.join(fixturesRoot, 'torchvision', `${name}.pth`);
  return readPth(new Uint8Array(readFileSync(file)), file);
}

function oneLine(re: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof FcnError, `expected an FcnError, got ${String(err)}`);
    assert.ok(!err.message.includes('\n'), `one line: ${err.message}`);
    assert.match(err.message, re);
    return true;
  };
}

test('full-size declarations have torchvision 0.14\'s parameter counts and state_dict sizes (21 classes, aux head)', () => {
  // sum(p.numel() for p in model.parameters()) and len(state_dict) less num_batches_tracked, from torchvision 0.14
  const expected: Record<TorchvisionNetwork, [number, number]> = {
    fcn_resnet50: [35322218, 279], fcn_resnet101: [54314346, 534],
    deeplabv3_resnet50: [42004074, 309], deeplabv3_resnet101: [60996202, 564],
    lraspp_mobilenet_v3_large: [3221538, 272], deeplabv3_mobilenet_v3_large: [11029328, 306],
  };
  for (const name of TORCHVISION_NETWORKS) {
    const specs = torchvisionParameters(torchvisionNetwork(name));
    const trainable = specs.filter((s) => s.trainable).reduce((a, s) => a + numel(s.shape), 0);
    assert.deepEqual([trainable, specs.length], expected[name], name);
  }
  const noAux = torchvisionParameters(torchvisionNetwork('fcn_resnet50', { aux: false }));
  assert.ok(noAux.every((s) => !s.name.startsWith('aux_classifier.')));
});

test('the body: output stride 8 with layer3/4 dilated, first dilated block keeps the previous dilation', () => {
  const body = resnetBottleneckBody('x', { depth: 'resnet50', dilate: [false, true, true], prefix: 'backbone.' });
  assert.equal(body.outputStride, 8);
  assert.deepEqual(body.channels, { layer1: 256, layer2: 512, layer3: 1024, layer4: 2048 });
  const conv2 = (block: string) => body.layers.find((l) => l.op === 'conv' && l.name === `backbone.${block}.conv2`);
  const d = (block: string) => { const l = conv2(block); return l && l.op === 'conv' ? [l.stride, l.dilation ?? 1, l.pad] : undefined; };
  assert.deepEqual(d('layer2.0'), [2, 1, 1]);
  assert.deepEqual(d('layer3.0'), [1, 1, 1]);
  assert.deepEqual(d('layer3.1'), [1, 2, 2]);
  assert.deepEqual(d('layer4.0'), [1, 2, 2]);
  assert.deepEqual(d('layer4.2'), [1, 4, 4]);
  assert.equal(resnetBottleneckBody('x', { depth: 'resnet101' }).outputStride, 32);
});

for (const name of TORCHVISION_NETWORKS) {
  test(`${name}: recognised from the keys and shapes of torchvision's state_dict; parameter names are its keys, in order`, () => {
    const r = results[name];
    const tensors = pth(name);
    assert.ok(isTorchvisionSegmentation(tensors.keys()));
    const arch = torchvisionArchitectureOf(tensors, name);
    assert.equal(arch.name, name);
    if (isMobileNetNetwork(name)) {
      // torchvision's width_mult, through its own _make_divisible, is what the shapes say
      assert.deepEqual(arch.options, { numClasses: r.classes, aux: r.aux, channels: mobilenetChannels(r.width), headChannels: r.aspp });
    } else {
      assert.deepEqual(arch.options, { numClasses: r.classes, aux: r.aux, width: r.width, asppChannels: name.startsWith('deeplabv3') ? r.aspp : 256 });
    }
    assert.equal(arch.stride, 1);
    assert.equal(arch.auxOutput !== undefined, r.aux);
    const keys = [...torchvisionKeys(tensors).keys()];
    assert.deepEqual(torchvisionParameters(arch).map((s) => s.name), keys);
    // with nn.DataParallel's prefix, and with --arch naming the same network
    const wrapped = new Map([...tensors].map(([k, v]) => [`module.${k}`, v]));
    assert.equal(torchvisionArchitectureOf(wrapped, name, name).name, name);
  });
}

test('MobileNetV3-Large body: torchvision\'s _make_divisible, strides and dilation as mobilenet_v3_large(dilated=True) sets them', () => {
  // _make_divisible(v, 8): nearest multiple of 8, at least 8, never more than 10% below v
  assert.deepEqual([16, 18, 4, 60, 30, 92].map((v) => makeDivisible(v)), [16, 24, 8, 64, 32, 96]);
  assert.equal(makeDivisible(18 * 0.9), 16);
  const full = mobilenetChannels(1);
  assert.deepEqual(full.blocks.map((b) => b.squeeze).filter((x) => x > 0), [24, 32, 32, 120, 168, 168, 240, 240]);
  const body = mobilenetV3LargeBody('x', full);
  assert.deepEqual([body.lowChannels, body.highChannels], [40, 960]);
  const dw = (i: number) => {
    const convs = body.layers.filter((l) => l.op === 'conv' && l.name.startsWith(`backbone.${i}.block.`) && (l.groups ?? 1) > 1);
    assert.equal(convs.length, 1, `block ${i} has one depthwise conv`);
    const l = convs[0]!;
    return l.op === 'conv' ? [l.kernel, l.stride, l.dilation ?? 1, l.pad] : [];
  };
  assert.deepEqual(dw(2), [3, 2, 1, 1]);
  assert.deepEqual(dw(4), [5, 2, 1, 2]);
  assert.deepEqual(dw(13), [5, 1, 2, 4]); // C4: the stride replaced by dilation 2
  assert.deepEqual(dw(15), [5, 1, 2, 4]);
  const bn = body.layers.find((l) => l.op === 'batchnorm');
  assert.ok(bn && bn.op === 'batchnorm' && bn.eps === 1e-3 && bn.momentum === 0.01, "MobileNetV3's BatchNorm(eps=0.001, momentum=0.01)");
  assert.equal(body.high, `backbone.${HIGH_FEATURE}/act`);
});

test("torchvision's ImageNet mobilenet_v3_large state_dict is recognised as a body and renamed features.* -> backbone.*", () => {
  for (const name of ['lraspp_mobilenet_v3_large', 'deeplabv3_mobilenet_v3_large'] as const) {
    const r = results[name];
    const arch = torchvisionNetwork(name, { numClasses: 5, widthMult: r.width, headChannels: r.aspp });
    const seg = torchvisionKeys(pth(name));
    const imagenet = new Map<string, Tensor>();
    for (const [k, v] of seg) if (k.startsWith('backbone.')) imagenet.set(`features.${k.slice(9)}`, v);
    imagenet.set('classifier.0.weight', { dtype: 'F32', shape: [1280, 240], data: new Uint8Array(0) });
    imagenet.set('classifier.3.weight', { dtype: 'F32', shape: [1000, 1280], data: new Uint8Array(0) });
    assert.ok(isMobileNetClassifier(imagenet.keys()) && !isTorchvisionSegmentation(imagenet.keys()) && !isResNetBottleneckClassifier(imagenet.keys()));
    const body = torchvisionBodyTensors(imagenet, 'mbv3.pth', arch);
    assert.deepEqual([...body.keys()], [...seg.keys()].filter((k) => k.startsWith('backbone.')));
    // a full-width body for a reduced network, and a MobileNet body for a ResNet network: one line each
    assert.throws(() => mobilenetBodyTensors(imagenet, 'mbv3.pth', torchvisionNetwork(name)), oneLine(/^mbv3\.pth: tensor 'backbone\.0\.0\.weight' has shape \[8, 3, 3, 3\], expected \[16, 3, 3, 3\]/));
    assert.throws(() => torchvisionBodyTensors(imagenet, 'mbv3.pth', torchvisionNetwork('fcn_resnet50')), oneLine(/holds a MobileNetV3 ImageNet body, but fcn_resnet50 needs a ResNet one/));
  }
});

test('a forced network that the file does not hold is one line saying what it holds and why', () => {
  assert.throws(() => torchvisionArchitectureOf(pth('lraspp_mobilenet_v3_large'), 'l.pth', 'deeplabv3_mobilenet_v3_large'),
    oneLine(/^l\.pth: holds lraspp_mobilenet_v3_large, not deeplabv3_mobilenet_v3_large: its classifier is LR-ASPP/));
  assert.throws(() => torchvisionArchitectureOf(pth('deeplabv3_mobilenet_v3_large'), 'd.pth', 'deeplabv3_resnet50'),
    oneLine(/^d\.pth: holds deeplabv3_mobilenet_v3_large, not deeplabv3_resnet50: its body is MobileNetV3-Large/));
  assert.throws(() => torchvisionArchitectureOf(pth('deeplabv3_resnet50'), 'r.pth', 'lraspp_mobilenet_v3_large'),
    oneLine(/^r\.pth: holds deeplabv3_resnet50, not lraspp_mobilenet_v3_large: its body is a ResNet/));
  const broken = new Map(pth('lraspp_mobilenet_v3_large'));
  broken.delete('backbone.7.block.2.0.weight');
  assert.throws(() => torchvisionArchitectureOf(broken, 'b.pth'), oneLine(/^b\.pth: missing tensor 'backbone\.7\.block\.2\.0\.weight' \(block 7's projection\)/));
  const deeplab = pth('deeplabv3_resnet50');
  assert.throws(() => torchvisionArchitectureOf(deeplab, 'dl.pth', 'fcn_resnet50'),
    oneLine(/^dl\.pth: holds deeplabv3_resnet50, not fcn_resnet50: its classifier is DeepLabV3's ASPP head/));
  assert.throws(() => torchvisionArchitectureOf(pth('fcn_resnet101'), 'f.pth', 'fcn_resnet50'),
    oneLine(/^f\.pth: holds fcn_resnet101, not fcn_resnet50: 'backbone\.layer3' has 23 blocks \(resnet101\)/));
  assert.throws(() => torchvisionArchitectureOf(deeplab, 'dl.pth', 'fcn32s'), oneLine(/'fcn32s' is not one of torchvision's networks/));
});

test('a state_dict that fits no known network: one line naming the first key or shape that does not fit', () => {
  const base = pth('fcn_resnet50');
  const edit = (f: (m: Map<string, Tensor>) => void) => { const m = new Map(base); f(m); return m; };
  const wrongShape = edit((m) => { const t = m.get('backbone.layer2.0.conv2.weight')!; m.set('backbone.layer2.0.conv2.weight', { ...t, shape: [t.shape[0]!, t.shape[1]!, 5, 5] }); });
  assert.throws(() => torchvisionArchitectureOf(wrongShape, 'x.pth'),
    oneLine(/^x\.pth: tensor 'backbone\.layer2\.0\.conv2\.weight' has shape \[8, 8, 5, 5\], expected \[8, 8, 3, 3\] for fcn_resnet50/));
  const missing = edit((m) => m.delete('backbone.layer1.1.bn2.running_var'));
  assert.throws(() => torchvisionArchitectureOf(missing, 'x.pth'), oneLine(/missing tensor 'backbone\.layer1\.1\.bn2\.running_var'/));
  const extra = edit((m) => m.set('classifier.5.weight', m.get('classifier.4.weight')!));
  assert.throws(() => torchvisionArchitectureOf(extra, 'x.pth'), oneLine(/tensor 'classifier\.5\.weight' \[5, 32, 1, 1\] is not part of fcn_resnet50/));
  const blocks = edit((m) => { for (const k of [...m.keys()]) if (k.startsWith('backbone.layer3.5.')) m.delete(k); });
  assert.throws(() => torchvisionArchitectureOf(blocks, 'x.pth'), oneLine(/'backbone\.layer3' has 5 blocks, expected 6 \(resnet50\) or 23 \(resnet101\)/));
  const head = edit((m) => { for (const k of [...m.keys()]) if (k.startsWith('classifier.')) { m.set(k.replace('classifier.', 'classifier.9.'), m.get(k)!); m.delete(k); } });
  assert.throws(() => torchvisionArchitectureOf(head, 'x.pth'), oneLine(/classifier key 'classifier\.9\.0\.weight' fits neither torchvision's FCNHead/));
});

test('torchvision\'s ImageNet ResNet-50 state_dict is recognised as a body and renamed under backbone.', () => {
  const arch = torchvisionNetwork('fcn_resnet50', { numClasses: 5, width: results.fcn_resnet50.width });
  const seg = torchvisionKeys(pth('fcn_resnet50'));
  // the ImageNet classifier's names: the body's keys without 'backbone.', plus fc.*
  const imagenet = new Map<string, Tensor>();
  for (const [k, v] of seg) if (k.startsWith('backbone.')) imagenet.set(k.slice(9), v);
  imagenet.set('fc.weight', { dtype: 'F32', shape: [1000, 2048], data: new Uint8Array(0) });
  assert.ok(isResNetBottleneckClassifier(imagenet.keys()));
  assert.ok(!isTorchvisionSegmentation(imagenet.keys()));
  const body = resnetBodyTensors(imagenet, 'r50.pth', arch);
  assert.equal(body.size, [...seg.keys()].filter((k) => k.startsWith('backbone.')).length);
  assert.throws(() => resnetBodyTensors(imagenet, 'r50.pth', torchvisionNetwork('fcn_resnet101', { width: 4 })),
    oneLine(/r50\.pth: holds a resnet50 body, but fcn_resnet101 needs resnet101/));
});

test('import → our checkpoint → export --format torchvision gives back the same tensors under the same keys', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fcn-tv-'));
  try {
    for (const name of ['fcn_resnet50', 'deeplabv3_resnet101', 'lraspp_mobilenet_v3_large', 'deeplabv3_mobilenet_v3_large'] as const) {
      const src = path.join(fixturesRoot, 'torchvision', `${name}.pth`);
      const ours = path.join(dir, `${name}.safetensors`);
      const { checkpoint, source } = await importCheckpoint(src, ours);
      assert.equal(source.layout, 'torchvision-segmentation');
      assert.equal(checkpoint.arch.name, name);
      const back = await loadCheckpointWithSource(ours, { arch: name });
      assert.equal(back.source.format, 'fcn-checkpoint');
      assert.deepEqual(asTorchvision(back.checkpoint.arch)?.options, asTorchvision(checkpoint.arch)?.options);
      assert.deepEqual(back.checkpoint.classes, checkpoint.classes);
      const exported = readSafetensors(encodeTorchvisionStateDict(back.checkpoint.arch, back.checkpoint.weights), 'exported');
      assert.equal(exported.metadata['format'], 'pt');
      const original = torchvisionKeys(pth(name));
      assert.deepEqual([...exported.tensors.keys()], [...original.keys()]);
      for (const [k, t] of original) {
        assert.deepEqual(exported.tensors.get(k)!.shape, t.shape, k);
        assert.deepEqual(toFloat32(exported.tensors.get(k)!), toFloat32(t), k);
      }
      // and the exported file reads back as the same network
      writeFileSync(path.join(dir, 'tv.safetensors'), encodeTorchvisionStateDict(back.checkpoint.arch, back.checkpoint.weights));
      assert.equal((await loadCheckpoint(path.join(dir, 'tv.safetensors'))).arch.name, name);
    }
    // our checkpoint of one network with another name asked for
    await assert.rejects(loadCheckpoint(path.join(dir, 'fcn_resnet50.safetensors'), { arch: 'deeplabv3_resnet50' }),
      oneLine(/fcn_resnet50\.safetensors: holds fcn_resnet50, not deeplabv3_resnet50$/));
    // the book's net has no torchvision layout
    const book = fcnResNet18({ numClasses: 3 });
    assert.throws(() => encodeTorchvisionStateDict(book, initParameters(book)), oneLine(/fcn32s-resnet18 is not one of torchvision's networks/));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('fcn import --arch with a state_dict of another network: one line on stderr, exit 1, nothing written', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fcn-tv-'));
  try {
    const out = path.join(dir, 'x.safetensors');
    const r = spawnSync(process.execPath, [path.join(repoRoot, 'bin/fcn.js'), 'import', path.join(fixturesRoot, 'torchvision', 'deeplabv3_resnet50.pth'),
      '--arch', 'fcn_resnet50', '--out', out], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^fcn: .*deeplabv3_resnet50\.pth: holds deeplabv3_resnet50, not fcn_resnet50: its classifier is DeepLabV3's ASPP head/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.ok(!existsSync(out));
    const bad = spawnSync(process.execPath, [path.join(repoRoot, 'bin/fcn.js'), 'predict', '--arch', 'resnet7', '--model', 'x.pth', 'x.png'], { encoding: 'utf8' });
    assert.equal(bad.status, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--model NAME: a bare network name that is not downloaded says which fcn download fetches it', () => {
  const home = mkdtempSync(path.join(os.tmpdir(), 'fcn-tv-home-'));
  try {
    const r = spawnSync(process.execPath, [path.join(repoRoot, 'bin/fcn.js'), 'predict', '--model', 'deeplabv3_resnet101', path.join(fixturesRoot, 'torchvision', 'image_a.png')],
      { encoding: 'utf8', cwd: home, env: { ...process.env, FCN_HOME: home, TORCH_HOME: home } });
    assert.equal(r.status, 1);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.match(r.stderr, /deeplabv3_resnet101.*`fcn download deeplabv3_resnet101` fetches it to .*deeplabv3_resnet101_coco-586e9e4e\.pth/);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});
