// `fcn serve` as a process: it prints its URL, answers, reports /readyz, and on SIGTERM drains (a
// half-sent upload in flight is finished and answered, new connections are refused) and exits 0;
// bad flags are usage errors (exit 2) found before the model is loaded.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { fcnResNet18, initParameters, seededRandom } from '../src/model/index.js';
import { VOC_CLASSES, VOC_COLORMAP } from '../src/data/voc.js';
import { saveCheckpoint } from '../src/weights/checkpoint.js';
import { repoRoot } from './helpers/fixtures.js';
import { encode, picture, rawClient, slowHead } from './helpers/web.js';

let tmp: string;
let ckptPath: string;

before(async () => {
  const arch = fcnResNet18({ numClasses: 21 });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fcn-serve-cli-'));
  ckptPath = path.join(tmp, 'model.safetensors');
  await saveCheckpoint(ckptPath, {
    arch, weights: initParameters(arch, seededRandom(1)), classes: [...VOC_CLASSES], colors: VOC_COLORMAP.map((c) => [c[0], c[1], c[2]] as [number, number, number]),
    normalization: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] }, metadata: {}, extra: new Map(),
  });
});

after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('fcn serve: prints the URL, answers, closes cleanly on SIGTERM; bad flags and files are one-line errors', async () => {
  const child = spawn(process.execPath, ['bin/fcn.js', 'serve', '--model', ckptPath, '--port', '0', '--threads', '1'], { cwd: repoRoot });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no URL printed; stdout: ${stdout} stderr: ${stderr}`)), 30_000);
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      const m = /fcn serve: (http:\/\/127\.0\.0\.1:\d+\/) \(fcn32s-resnet18, 21 classes/.exec(stdout);
      if (m) { clearTimeout(timer); resolve(m[1]!); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`exited ${code}: ${stderr}`)); });
  });
  const png = await encode(picture(64, 48), 'png');
  const res = await fetch(`${url}api/segment`, { method: 'POST', body: png, headers: { 'content-type': 'image/png' } });
  assert.equal(res.status, 200);
  const ready = await fetch(`${url}readyz`);
  assert.equal(ready.status, 200);
  assert.deepEqual(await ready.json(), { ready: true });

  // graceful drain: an upload is half sent when SIGTERM comes; the server stops accepting
  // connections, lets that request finish, answers it, and exits 0
  const port = Number(new URL(url).port);
  const upload = rawClient(port, slowHead(png.length));
  upload.socket.write(png.subarray(0, 100));
  for (let i = 0; i < 100; i++) {
    const health = await (await fetch(`${url}healthz`)).json() as { uploads: { receiving: number } };
    if (health.uploads.receiving === 1) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  for (let i = 0; i < 200 && !/SIGTERM, closing/.test(stdout); i++) await new Promise((r) => setTimeout(r, 25));
  assert.match(stdout, /SIGTERM, closing \(1 request in flight, up to 25 s to finish\)/);
  // the listening socket closes a moment after the signal is handled
  let refusedConnection = '';
  for (let i = 0; i < 100 && refusedConnection !== 'ECONNREFUSED'; i++) {
    refusedConnection = await new Promise<string>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.on('connect', () => { s.destroy(); setTimeout(() => resolve('connected'), 50); });
      s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    });
  }
  assert.equal(refusedConnection, 'ECONNREFUSED', 'no new connections once draining');
  upload.socket.write(png.subarray(100));
  const answered = await upload.closed;
  assert.match(answered.text, /^HTTP\/1\.1 200 /, answered.text.slice(0, 200));
  assert.match(answered.text, /"maskPng":"/);
  assert.equal(await exit, 0, stderr);
  assert.match(stdout, /POST \/api\/segment 200 64x48 \d+ ms[\s\S]*SIGTERM, closing[\s\S]*POST \/api\/segment 200 64x48 \d+ ms\nfcn serve: closed\n$/);
  assert.equal(stderr, '');

  const missing = spawnSync(process.execPath, ['bin/fcn.js', 'serve', '--model', path.join(tmp, 'nope.safetensors'), '--port', '0'], { cwd: repoRoot, encoding: 'utf8' });
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /^fcn: .*nope\.safetensors.*\n$/);
  const badPort = spawnSync(process.execPath, ['bin/fcn.js', 'serve', '--model', ckptPath, '--port', 'http'], { cwd: repoRoot, encoding: 'utf8' });
  assert.equal(badPort.status, 2);
  assert.match(badPort.stderr, /--port expects an integer >= 0, got 'http'/);
  // bad flags are usage errors found before anything is loaded (the model path does not even exist)
  const bad: [string[], RegExp][] = [
    [['--port', '99999'], /^fcn: --port expects a port number from 0 to 65535, got '99999'\n$/],
    [['--body-timeout', '0'], /^fcn: --body-timeout expects a number from 0\.1 to 86400, got '0'\n$/],
    [['--max-uploads', '0'], /^fcn: --max-uploads expects an integer from 1 to 100000, got '0'\n$/],
    [['--drain-timeout', 'soon'], /^fcn: --drain-timeout expects a number from 0 to 86400, got 'soon'\n$/],
    [['--host', '999.1.1.1'], /^fcn: --host expects an IP address or a host name, got '999\.1\.1\.1'\n$/],
    [['--host', 'my host'], /^fcn: --host expects an IP address or a host name, got 'my host'\n$/],
  ];
  for (const [flags, message] of bad) {
    const r = spawnSync(process.execPath, ['bin/fcn.js', 'serve', '--model', path.join(tmp, 'nope.safetensors'), ...flags], { cwd: repoRoot, encoding: 'utf8' });
    assert.equal(r.status, 2, `${flags.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
});
