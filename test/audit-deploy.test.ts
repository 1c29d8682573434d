// Contract checks of the deployment commands (predict, export, import, quantize, upsample, serve,
// download) run as a user runs them: each test pins one behaviour a black-box audit found wrong.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { createHash } from 'node:crypto';
import path from 'node:path';
import sharp from 'sharp';
import { initParameters, seededRandom } from '../src/model/params.js';
import { torchvisionNetwork } from '../src/model/torchvision.js';
import { saveCheckpoint } from '../src/weights/checkpoint.js';
import { generateSynthVoc } from '../src/data/synth.js';
import { defaultColors, defaultNormalization } from '../src/model/card.js';
import { SegmentationModel } from '../src/infer/model.js';
import { createServer } from '../src/web/server.js';
import { readSafetensors } from '../src/weights/safetensors.js';
import { downloadPublished, resolveNamedWeights } from '../src/net/download.js';
import { zeroGrayPng } from './helpers/badfiles.js';
import { tempDirs } from './helpers/tmp.js';
import { fixturesRoot } from './helpers/fixtures.js';
import { readImage } from '../src/data/image.js';
import type OnnxProto from 'onnx-proto';
import { requireCjs } from '../src/util/cjs.js';
import { encode, picture } from './helpers/web.js';
import { runCli } from './helpers/cli.js';

const { tempDir } = tempDirs('fcn-audit-deploy-');
const { onnx } = requireCjs('onnx-proto') as typeof OnnxProto;

/** A width-reduced torchvision FCN checkpoint with `numClasses` classes. */
async function tinyCheckpoint(file: string, numClasses: number, aux = false): Promise<void> {
  const arch = torchvisionNetwork('fcn_resnet50', { numClasses, width: 4, aux });
  await saveCheckpoint(file, {
    arch, weights: initParameters(arch, seededRandom(2)), classes: Array.from({ length: numClasses }, (_, i) => `c${i}`),
    colors: defaultColors(numClasses), normalization: defaultNormalization(), metadata: {}, extra: new Map(),
  });
}

test('fcn quantize: a model with fewer classes than the dataset is calibrated and written; the val comparison is skipped, not a crash', async () => {
  const dir = tempDir('classes');
  const data = path.join(dir, 'data');
  await generateSynthVoc(data, { train: 2, val: 2, size: [64, 96], spread: 0, seed: 1 });
  const ckpt = path.join(dir, 'net3.safetensors');
  await tinyCheckpoint(ckpt, 3);
  const out = path.join(dir, 'net3.int8.onnx');
  const q = await runCli(['quantize', '--model', ckpt, '--data', data, '--calib', '2', '--out', out, '--threads', '1'], {}, 60_000);
  assert.equal(q.status, 0, q.stderr);
  assert.doesNotMatch(q.stderr, /internal error/);
  assert.match(q.stdout, /the val split has 6 classes \(from .*labelmap\.txt\), the model 3: float32 and int8 not compared/);
  assert.ok(fs.statSync(out).size > 0);

  // an empty val id list leaves out the comparison, not the run's success
  fs.writeFileSync(path.join(data, 'ImageSets', 'Segmentation', 'val.txt'), '');
  const again = await runCli(['quantize', '--model', ckpt, '--data', data, '--calib', '1', '--out', out, '--threads', '1'], {}, 60_000);
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, /val split not read \(.*val\.txt: the 'val' id list is empty .*\): float32 and int8 not compared/);
});

test('fcn quantize: an --out that is a folder is refused before calibrating', async () => {
  const dir = tempDir('outdir');
  const data = path.join(dir, 'data');
  await generateSynthVoc(data, { train: 2, val: 1, size: [64, 96], spread: 0, seed: 1 });
  const ckpt = path.join(dir, 'net.safetensors');
  await tinyCheckpoint(ckpt, 6);
  const out = path.join(dir, 'taken');
  fs.mkdirSync(out);
  const q = await runCli(['quantize', '--model', ckpt, '--data', data, '--out', out, '--threads', '1'], {}, 60_000);
  assert.equal(q.status, 1);
  assert.equal(q.stderr.trim(), `fcn: ${out}: cannot write (a folder of that name is in the way)`);
});

test('fcn serve: an upload whose header declares 30000x30000 is 413 (--max-side) like any oversized image, not 400 "unreadable"', async () => {
  const arch = torchvisionNetwork('fcn_resnet50', { numClasses: 3, width: 4, aux: false });
  const model = await SegmentationModel.fromWeights(arch, initParameters(arch, seededRandom(1)), undefined, { threads: 1 });
  const app = createServer(model);
  try {
    for (const [w, h] of [[30000, 30000], [5000, 40]] as const) {
      const res = await app.inject({ method: 'POST', url: '/api/segment', payload: zeroGrayPng(w, h, 64), headers: { 'content-type': 'image/png' } });
      assert.equal(res.statusCode, 413, res.body);
      assert.match(res.json<{ error: string }>().error, new RegExp(`image is ${w}x${h}; the largest side accepted is 4096 pixels`));
    }
  } finally {
    await app.close();
    await model.dispose();
  }
});

test('fcn export --model FILE.onnx (a file fcn export or quantize wrote): --format onnx writes it as it is, --format torchvision reads its weights back; int8 to torchvision is refused', async () => {
  const dir = tempDir('export-onnx');
  const ckpt = path.join(dir, 'net.safetensors');
  await tinyCheckpoint(ckpt, 4, true);
  const onnx = path.join(dir, 'net.onnx');
  const e1 = await runCli(['export', '--model', ckpt, '--onnx', onnx]);
  assert.equal(e1.status, 0, e1.stderr);

  const again = path.join(dir, 'again.onnx');
  const e2 = await runCli(['export', '--model', onnx, '--onnx', again]);
  assert.equal(e2.status, 0, e2.stderr);
  assert.ok(fs.readFileSync(again).equals(fs.readFileSync(onnx)));

  // the state_dict from the ONNX file: the checkpoint's, less the auxiliary head the graph does not hold
  const fromCkpt = path.join(dir, 'ckpt.tv.safetensors');
  const fromOnnx = path.join(dir, 'onnx.tv.safetensors');
  assert.equal((await runCli(['export', '--model', ckpt, '--format', 'torchvision', '--out', fromCkpt])).status, 0);
  const e3 = await runCli(['export', '--model', onnx, '--format', 'torchvision', '--out', fromOnnx]);
  assert.equal(e3.status, 0, e3.stderr);
  assert.match(e3.stdout, /fcn_resnet50, 4 classes, torchvision's key names .*without the auxiliary head.*aux_loss=False/);
  const a = readSafetensors(fs.readFileSync(fromCkpt), fromCkpt).tensors;
  const b = readSafetensors(fs.readFileSync(fromOnnx), fromOnnx).tensors;
  const mainKeys = [...a.keys()].filter((k) => !k.startsWith('aux_classifier.'));
  assert.ok(mainKeys.length < a.size, 'the checkpoint has an auxiliary head');
  assert.deepEqual([...b.keys()].sort(), mainKeys.sort());
  for (const k of mainKeys) {
    assert.deepEqual(b.get(k)!.shape, a.get(k)!.shape, k);
    assert.deepEqual(b.get(k)!.data, a.get(k)!.data, k);
  }

  const wrong = await runCli(['export', '--model', onnx, '--arch', 'deeplabv3_resnet50', '--onnx', path.join(dir, 'x.onnx')]);
  assert.equal(wrong.status, 1);
  assert.match(wrong.stderr, /net\.onnx: holds fcn_resnet50, not deeplabv3_resnet50/);

  const data = path.join(dir, 'data');
  await generateSynthVoc(data, { train: 1, val: 0, size: [64, 96], spread: 0, seed: 1 });
  const int8 = path.join(dir, 'net.int8.onnx');
  assert.equal((await runCli(['quantize', '--model', onnx, '--data', data, '--calib', '1', '--out', int8, '--threads', '1'], {}, 60_000)).status, 0);
  const q = await runCli(['export', '--model', int8, '--format', 'torchvision', '--out', path.join(dir, 'int8.tv.safetensors')]);
  assert.equal(q.status, 1);
  assert.match(q.stderr, /net\.int8\.onnx: an int8 file \(written by fcn quantize\) has no float32 weights to export/);
  assert.ok(!fs.existsSync(path.join(dir, 'int8.tv.safetensors')) && !fs.existsSync(path.join(dir, 'x.onnx')));
});

test('fcn predict on a batch with a folder, an empty file and a truncated PNG: each named for what it is, the good masks whole, exit 1', async () => {
  const dir = tempDir('batch');
  const ckpt = path.join(dir, 'net.safetensors');
  await tinyCheckpoint(ckpt, 3);
  const good = path.join(dir, 'good.png');
  const png = await encode(picture(47, 33), 'png');
  fs.writeFileSync(good, png);
  const cut = path.join(dir, 'cut.png');
  fs.writeFileSync(cut, png.subarray(0, Math.floor(png.length / 2)));
  const empty = path.join(dir, 'empty.jpg');
  fs.writeFileSync(empty, '');
  const folder = path.join(dir, 'folder.png');
  fs.mkdirSync(folder);
  const out = path.join(dir, 'out');
  const r = await runCli(['predict', '--model', ckpt, '--out', out, '--threads', '1', good, folder, empty, cut], {}, 60_000);
  assert.equal(r.status, 1, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.ok(lines.includes(`fcn: ${folder}: a folder, not an image file (JPEG/PNG/WebP expected)`), r.stderr);
  assert.ok(lines.includes(`fcn: ${empty}: the file is empty (JPEG/PNG/WebP expected)`), r.stderr);
  assert.ok(lines.some((l) => l.startsWith(`fcn: ${cut}: not a readable image (JPEG/PNG/WebP expected)`)), r.stderr);
  assert.equal(lines.at(-1), 'fcn: 3 of 4 images could not be read (each named above); 1 segmented');
  assert.deepEqual(fs.readdirSync(out), ['good.png']);
  const mask = await sharp(path.join(out, 'good.png')).metadata();
  assert.equal(mask.width, 47);
  assert.equal(mask.height, 33);
  assert.equal(mask.format, 'png');
});

test('fcn download NAME --url --sha256 (a mirror serving another file), then --model NAME finds that verified download', async () => {
  const dir = tempDir('mirror');
  const body = Buffer.from('pretend weights: any bytes the user vouches for with --sha256');
  const sha256 = createHash('sha256').update(body).digest('hex');
  const server = http.createServer((_req, res) => res.end(body));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const { port } = server.address() as { port: number };
    const got = await downloadPublished('lraspp_mobilenet_v3_large', { dir, url: `http://127.0.0.1:${port}/my-net.pth`, sha256 });
    assert.equal(path.basename(got.path), `lraspp_mobilenet_v3_large-${sha256.slice(0, 8)}.pth`);
    assert.equal(resolveNamedWeights('lraspp_mobilenet_v3_large', dir), got.path);
    // another network's name does not match it
    assert.throws(() => resolveNamedWeights('deeplabv3_mobilenet_v3_large', dir), /deeplabv3_mobilenet_v3_large-fc3c493d\.pth is not in/);
    // a file changed since it was verified is not trusted
    fs.appendFileSync(got.path, 'x');
    assert.throws(() => resolveNamedWeights('lraspp_mobilenet_v3_large', dir), /lraspp_mobilenet_v3_large-d234d4ea\.pth is not in/);
  } finally {
    server.close();
  }
});

test('fcn predict never writes a mask or overlay over one of its input images (--out the images\' own folder): usage error, nothing written', async () => {
  const dir = tempDir('over');
  const ckpt = path.join(dir, 'net.safetensors');
  await tinyCheckpoint(ckpt, 3);
  const png = await encode(picture(20, 12), 'png');
  const jpg = await encode(picture(20, 12, 1), 'jpeg');
  const photos = path.join(dir, 'photos');
  fs.mkdirSync(photos);
  fs.writeFileSync(path.join(photos, 'x.png'), png);
  fs.writeFileSync(path.join(photos, 'y.jpg'), jpg);
  fs.writeFileSync(path.join(photos, 'y.overlay.png'), png);
  const before = fs.readdirSync(photos).sort();

  const r = await runCli(['predict', '--model', ckpt, '--out', photos, '--threads', '1', path.join(photos, 'y.jpg'), path.join(photos, 'x.png')]);
  assert.equal(r.status, 2, r.stderr);
  assert.equal(r.stderr.trim(), `fcn: ${path.join(photos, 'x.png')}: an output (${path.join(photos, 'x.png')}) would overwrite this input image; write the masks to another folder`);
  // the overlay of y.jpg is y.overlay.png, another input: refused too (relative paths alike)
  const o = await runCli(['predict', '--model', ckpt, '--out', path.relative(process.cwd(), photos), '--overlay', '--threads', '1',
    path.join(photos, 'y.jpg'), path.join(photos, 'y.overlay.png')]);
  assert.equal(o.status, 2, o.stderr);
  assert.match(o.stderr, /y\.overlay\.png: an output \(.*y\.overlay\.png\) would overwrite this input image/);
  assert.deepEqual(fs.readdirSync(photos).sort(), before);
  assert.ok(fs.readFileSync(path.join(photos, 'x.png')).equals(png));

  // a JPEG input in its own folder is fine: its mask is another file
  const ok = await runCli(['predict', '--model', ckpt, '--out', photos, '--threads', '1', path.join(photos, 'y.jpg')]);
  assert.equal(ok.status, 0, ok.stderr);
  assert.ok(fs.existsSync(path.join(photos, 'y.png')));
});

test('fcn predict/serve --tile: the smallest value the flag accepts is one the model accepts (193: more than twice the 96-pixel margin)', async () => {
  for (const cmd of ['predict', 'serve']) {
    const r = await runCli([cmd, '--model', 'nonexistent.safetensors', '--tile', '64', ...(cmd === 'predict' ? ['x.png'] : [])]);
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr.trim(), "fcn: --tile expects an integer >= 193, got '64'");
  }
});

test('a CMYK JPEG without an ICC profile decodes to the RGB PIL (torchvision\'s loaders) gives, not through a stand-in press profile', async () => {
  // made by scripts/make_cmyk_fixture.py: K from 0 to 255; PIL's RGB saved losslessly beside it
  const dir = path.join(fixturesRoot, 'cmyk');
  const got = await readImage(path.join(dir, 'cmyk.jpg'));
  const { data, info } = await sharp(path.join(dir, 'rgb.png')).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  assert.equal(got.width, info.width);
  assert.equal(got.height, info.height);
  let worst = 0;
  for (let i = 0; i < data.length; i++) worst = Math.max(worst, Math.abs(got.data[i]! - data[i]!));
  assert.equal(worst, 0, 'every channel of every pixel equals PIL\'s');
});

test('an ONNX file whose metadata names fewer classes than its logits have is refused, not run with nameless class ids', async () => {
  const dir = tempDir('onnx-classes');
  const ckpt = path.join(dir, 'net.safetensors');
  await tinyCheckpoint(ckpt, 3);
  const good = path.join(dir, 'net.onnx');
  assert.equal((await runCli(['export', '--model', ckpt, '--onnx', good])).status, 0);
  const model = onnx.ModelProto.decode(fs.readFileSync(good));
  for (const p of model.metadataProps ?? []) {
    if (p.key === 'classes') p.value = JSON.stringify(['a', 'b']);
    if (p.key === 'colors') p.value = JSON.stringify([[0, 0, 0], [1, 1, 1]]);
  }
  const bad = path.join(dir, 'tampered.onnx');
  fs.writeFileSync(bad, onnx.ModelProto.encode(model).finish());
  const img = path.join(dir, 'x.png');
  fs.writeFileSync(img, await encode(picture(20, 12), 'png'));
  const r = await runCli(['predict', '--model', bad, '--out', path.join(dir, 'out'), '--threads', '1', img]);
  assert.equal(r.status, 1);
  assert.equal(r.stderr.trim(), `fcn: ${bad}: the graph's 'logits' has 3 channels, but its metadata names 2 classes`);
  assert.ok(!fs.existsSync(path.join(dir, 'out')));
  assert.equal((await runCli(['predict', '--model', good, '--out', path.join(dir, 'out'), '--threads', '1', img])).status, 0);
});

test('--variant is --arch\'s alias wherever --arch is (DESIGN: the book\'s fcn16s/fcn8s, "--variant stays as an alias")', async () => {
  const dir = tempDir('variant');
  const ckpt = path.join(dir, 'net.safetensors');
  await tinyCheckpoint(ckpt, 3);
  for (const cmd of ['predict', 'eval', 'show', 'serve', 'export', 'quantize', 'import']) {
    const help = await runCli([cmd, '--help']);
    assert.match(help.stdout, /--variant <name>/, `${cmd} --help lists --variant`);
  }
  // the alias reaches the model check as --arch does: a file holding fcn_resnet50 is not fcn16s
  const png = path.join(dir, 'x.png');
  fs.writeFileSync(png, await encode(picture(20, 12), 'png'));
  const wrong = await runCli(['predict', '--model', ckpt, '--variant', 'fcn16s', '--out', path.join(dir, 'out'), '--threads', '1', png]);
  const viaArch = await runCli(['predict', '--model', ckpt, '--arch', 'fcn16s', '--out', path.join(dir, 'out'), '--threads', '1', png]);
  assert.equal(wrong.status, 1, wrong.stderr);
  assert.equal(wrong.stderr, viaArch.stderr);
  assert.equal((await runCli(['predict', '--model', ckpt, '--variant', 'fcn9s', png])).status, 2);
  const both = await runCli(['predict', '--model', ckpt, '--variant', 'fcn8s', '--arch', 'fcn16s', png]);
  assert.equal(both.status, 2);
  assert.equal(both.stderr.trim(), 'fcn: --variant fcn8s and --arch fcn16s name different networks; give one');
});
