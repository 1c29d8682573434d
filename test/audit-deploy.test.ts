// Contract checks of the deployment commands (predict, export, import, quantize, upsample, serve,
// download) run as a user runs them: each test pins one behaviour a black-box audit found wrong.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { initParameters, seededRandom } from '../src/model/params.js';
import { torchvisionNetwork } from '../src/model/torchvision.js';
import { saveCheckpoint } from '../src/weights/checkpoint.js';
import { generateSynthVoc } from '../src/data/synth.js';
import { defaultColors, defaultNormalization } from '../src/model/card.js';
import { SegmentationModel } from '../src/infer/model.js';
import { createServer } from '../src/web/server.js';
import { zeroGrayPng } from './helpers/badfiles.js';
import { tempDirs } from './helpers/tmp.js';
import { runCli } from './helpers/cli.js';

const { tempDir } = tempDirs('fcn-audit-deploy-');

/** A width-reduced torchvision FCN checkpoint with `numClasses` classes. */
async function tinyCheckpoint(file: string, numClasses: number): Promise<void> {
  const arch = torchvisionNetwork('fcn_resnet50', { numClasses, width: 4, aux: false });
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
