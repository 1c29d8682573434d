// fcn download for every published file (the registry), SBD's tgz, the bare-name resolver, transient
// HTTP answers, and a server announcing more bytes than the disk holds; all against an HTTP server on
// 127.0.0.1 started here, with files generated here (digests computed by the test).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tar from 'tar';
import { PUBLISHED, PUBLISHED_NAMES, downloadFile, downloadPublished, resolveNamedWeights, DownloadError } from '../src/net/index.js';
import { sidecarPath } from '../src/net/cache.js';
import { FcnError } from '../src/util/errors.js';
import { repoRoot, runCli } from './helpers/cli.js';

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'fcn-net-'));
let counter = 0;
const freshDir = () => path.join(tmpRoot, `d${++counter}`);
const digest = (alg: string, b: Buffer) => createHash(alg).update(b).digest('hex');

interface Route {
  body?: Buffer;
  /** Announce this Content-Length (or Content-Range total), send `body`, then hold the connection. */
  claim?: number;
  /** Answer the first N requests with 503 and Retry-After: 0. */
  unavailable?: number;
  /** First request only: send this many bytes, then close. */
  dropAfter?: number;
}
const routes = new Map<string, Route>();
const seen: { url: string; range?: string }[] = [];
const held = new Set<Socket>();
let server: http.Server;
let base = '';

before(async () => {
  server = http.createServer((req, res) => {
    const url = req.url ?? '';
    const nth = seen.filter((s) => s.url === url).length;
    seen.push({ url, range: req.headers.range });
    const route = routes.get(url);
    if (!route) return void res.writeHead(404).end();
    if (route.unavailable !== undefined && nth < route.unavailable) return void res.writeHead(503, { 'Retry-After': '0' }).end();
    const body = route.body!;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = m ? Number(m[1]) : 0;
    if (route.claim !== undefined) {
      held.add(req.socket);
      const head: http.OutgoingHttpHeaders = m
        ? { 'Content-Length': String(route.claim - start), 'Content-Range': `bytes ${start}-${route.claim - 1}/${route.claim}` }
        : { 'Content-Length': String(route.claim) };
      res.writeHead(m ? 206 : 200, head);
      res.write(body);
      return;
    }
    if (m) res.writeHead(206, { 'Content-Length': String(body.length - start), 'Content-Range': `bytes ${start}-${body.length - 1}/${body.length}` });
    else res.writeHead(200, { 'Content-Length': String(body.length) });
    if (route.dropAfter !== undefined && nth === 0) return void res.write(body.subarray(start, route.dropAfter), () => req.socket.end());
    res.end(body.subarray(start));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  for (const s of held) s.destroy();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  fs.rmSync(tmpRoot, { recursive: true, force: true });
});


const listing = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).sort() : []);

/** A "checkpoint" named as torchvision names it: `<stem>-<first 8 hex of its SHA-256>.pth`. */
function checkpoint(stem: string, seed: number): { body: Buffer; name: string } {
  const body = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 131 + seed * 17) & 255));
  return { body, name: `${stem}-${digest('sha256', body).slice(0, 8)}.pth` };
}

test('the registry: every name of the CLI contract, torchvision files SHA-256-prefixed by their names, SBD by MD5', () => {
  assert.deepEqual(PUBLISHED_NAMES, [
    'voc2012', 'sbd', 'resnet18', 'resnet50', 'resnet101', 'mobilenet_v3_large', 'fcn_resnet50', 'fcn_resnet101',
    'deeplabv3_resnet50', 'deeplabv3_resnet101', 'lraspp_mobilenet_v3_large', 'deeplabv3_mobilenet_v3_large',
  ]);
  const files = Object.fromEntries(PUBLISHED.map((p) => [p.name, p.file]));
  assert.deepEqual(files, {
    voc2012: 'VOCtrainval_11-May-2012.tar',
    sbd: 'benchmark.tgz',
    resnet18: 'resnet18-f37072fd.pth',
    resnet50: 'resnet50-0676ba61.pth',
    resnet101: 'resnet101-63fe2227.pth',
    mobilenet_v3_large: 'mobilenet_v3_large-8738ca79.pth',
    fcn_resnet50: 'fcn_resnet50_coco-1167a1af.pth',
    fcn_resnet101: 'fcn_resnet101_coco-7ecb50ca.pth',
    deeplabv3_resnet50: 'deeplabv3_resnet50_coco-cd0a2569.pth',
    deeplabv3_resnet101: 'deeplabv3_resnet101_coco-586e9e4e.pth',
    lraspp_mobilenet_v3_large: 'lraspp_mobilenet_v3_large-d234d4ea.pth',
    deeplabv3_mobilenet_v3_large: 'deeplabv3_mobilenet_v3_large-fc3c493d.pth',
  });
  for (const p of PUBLISHED.filter((e) => e.name !== 'voc2012' && e.name !== 'sbd')) {
    assert.equal(p.url, `https://download.pytorch.org/models/${p.file}`);
    assert.deepEqual(p.digest, { algorithm: 'sha256', hex: /-([0-9a-f]{8})\.pth$/.exec(p.file)![1] });
  }
  const sbd = PUBLISHED.find((p) => p.name === 'sbd')!;
  assert.equal(sbd.url, 'https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz');
  assert.deepEqual(sbd.digest, { algorithm: 'md5', hex: '82b4d87ceb2ed10f6038a1cba92111cb' });
});

test('fcn download --help lists every name with one line each', async () => {
  const r = await runCli(['download', '--help']);
  assert.equal(r.status, 0, r.stderr);
  for (const name of PUBLISHED_NAMES) {
    assert.equal(r.stdout.split('\n').filter((l) => new RegExp(`^  ${name} +\\S`).test(l)).length, 1, `${name} in\n${r.stdout}`);
  }
});

test('every published weights file downloads under its torchvision name, prefix-checked; the CLI prints the path', async () => {
  const dir = freshDir();
  const weights = PUBLISHED.filter((p) => !p.archive);
  for (const [i, p] of weights.entries()) {
    const stem = p.file.replace(/-[0-9a-f]{8}\.pth$/, '');
    const { body, name } = checkpoint(stem, i);
    routes.set(`/models/${name}`, { body });
    if (p.name === 'fcn_resnet50') {
      const r = await runCli(['download', p.name, '--dir', dir, '--url', `${base}/models/${name}`]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, path.join(dir, name) + '\n');
    } else {
      const got = await downloadPublished(p.name, { dir, url: `${base}/models/${name}` });
      assert.equal(got.path, path.join(dir, name));
    }
    assert.deepEqual(fs.readFileSync(path.join(dir, name)), body);
    assert.equal(JSON.parse(fs.readFileSync(sidecarPath(path.join(dir, name)), 'utf8')).digest, digest('sha256', body));
  }
  assert.equal(listing(dir).length, 2 * weights.length);
  // a mirror whose file name carries no digest needs one given, and says so naming the expected form
  await assert.rejects(downloadPublished('deeplabv3_resnet50', { dir, url: `${base}/models/weights.pth` }), (err: unknown) =>
    err instanceof FcnError && err.exitCode === 2 && /not deeplabv3_resnet50_coco-<8 hex>\.pth/.test(err.message));
});

/** A generated SBD-layout tgz: benchmark_RELEASE/dataset/{cls,img,train.txt,val.txt}. */
async function makeSbdTgz(): Promise<Buffer> {
  const src = path.join(tmpRoot, 'sbd-src');
  const files: Record<string, string> = {
    'benchmark_RELEASE/dataset/cls/2008_000002.mat': 'MATLAB 5.0 MAT-file (not really)',
    'benchmark_RELEASE/dataset/img/2008_000002.jpg': 'jpeg',
    'benchmark_RELEASE/dataset/train.txt': '2008_000002\n',
    'benchmark_RELEASE/dataset/val.txt': '',
  };
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(src, rel)), { recursive: true });
    fs.writeFileSync(path.join(src, rel), text);
  }
  const file = path.join(tmpRoot, 'benchmark.tgz');
  await tar.create({ cwd: src, file, gzip: true, portable: true }, ['benchmark_RELEASE']);
  return fs.readFileSync(file);
}

test('sbd: MD5-checked, resumed after a dropped connection, extracted safely into DIR/benchmark_RELEASE; a second run is cached', async () => {
  const tgz = await makeSbdTgz();
  routes.set('/sbd/benchmark.tgz', { body: tgz, dropAfter: Math.floor(tgz.length / 2) });
  const dir = freshDir();
  const md5 = digest('md5', tgz);
  // the first run loses the connection and keeps the .part; the next run resumes it
  await assert.rejects(
    downloadFile({ url: `${base}/sbd/benchmark.tgz`, dest: path.join(dir, 'benchmark.tgz'), expect: [{ algorithm: 'md5', hex: md5 }], retries: 0 }),
    (err: unknown) => err instanceof DownloadError && err.message.includes(path.join(dir, 'benchmark.tgz.part')),
  );
  const kept = fs.statSync(path.join(dir, 'benchmark.tgz.part')).size;
  const r = await runCli(['download', 'sbd', '--dir', dir, '--url', `${base}/sbd/benchmark.tgz`, '--md5', md5]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, path.join(dir, 'benchmark_RELEASE') + '\n');
  assert.equal(seen.filter((s) => s.url === '/sbd/benchmark.tgz').at(-1)!.range, `bytes=${kept}-`);
  assert.equal(fs.readFileSync(path.join(dir, 'benchmark_RELEASE/dataset/train.txt'), 'utf8'), '2008_000002\n');
  assert.ok(fs.existsSync(path.join(dir, 'benchmark_RELEASE/dataset/cls/2008_000002.mat')));
  assert.deepEqual(listing(dir), ['benchmark.tgz', 'benchmark.tgz.verified.json', 'benchmark_RELEASE']);
  assert.equal(JSON.parse(fs.readFileSync(path.join(dir, 'benchmark.tgz.verified.json'), 'utf8')).algorithm, 'md5');
  const n = seen.length;
  const again = await downloadPublished('sbd', { dir, url: `${base}/sbd/benchmark.tgz`, md5 });
  assert.deepEqual([again.cached, seen.length], [true, n]);

  // an archive without benchmark_RELEASE/dataset/cls is refused; nothing at the target
  const src = path.join(tmpRoot, 'sbd-nocls');
  fs.mkdirSync(path.join(src, 'benchmark_RELEASE', 'dataset', 'img'), { recursive: true });
  const file = path.join(tmpRoot, 'nocls.tgz');
  await tar.create({ cwd: src, file, gzip: true, portable: true }, ['benchmark_RELEASE']);
  routes.set('/sbd/nocls.tgz', { body: fs.readFileSync(file) });
  const dir2 = freshDir();
  await assert.rejects(downloadPublished('sbd', { dir: dir2, url: `${base}/sbd/nocls.tgz`, md5: digest('md5', fs.readFileSync(file)) }),
    /nocls\.tgz: expected a folder benchmark_RELEASE\/dataset\/cls in the archive/);
  assert.deepEqual(listing(dir2), ['nocls.tgz', 'nocls.tgz.verified.json']);
});

test('a server announcing 10^15 bytes: refused by free space before any .part or --dir exists; a kept .part is named', async () => {
  const { body, name } = checkpoint('resnet18', 99);
  routes.set(`/huge/${name}`, { body: body.subarray(0, 1000), claim: 1e15 });
  const parent = freshDir();
  fs.mkdirSync(parent);
  const dir = path.join(parent, 'not', 'yet');
  const r = await runCli(['download', 'resnet18', '--dir', dir, '--url', `${base}/huge/${name}`]);
  assert.equal(r.status, 1);
  const lines = r.stderr.trim().split('\n');
  assert.match(lines.at(-1)!, new RegExp(`^fcn: ${dir.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: not enough disk space for ${name}: needs 909\\.5 TB, .* free$`));
  assert.deepEqual(listing(parent), [], 'neither the folder nor a .part was made');

  // a .part from an earlier run stays as it was, and the message says where it is
  const kept = path.join(parent, `${name}.part`);
  fs.writeFileSync(kept, body.subarray(0, 1000));
  await assert.rejects(downloadPublished('resnet18', { dir: parent, url: `${base}/huge/${name}` }), (err: unknown) =>
    err instanceof DownloadError && err.reason === 'disk' && err.message.includes(kept));
  assert.equal(seen.filter((s) => s.url === `/huge/${name}`).at(-1)!.range, 'bytes=1000-');
  assert.deepEqual(fs.readFileSync(kept), body.subarray(0, 1000));
  assert.deepEqual(listing(parent), [`${name}.part`]);
});

test('a transient 503 with Retry-After is retried (undici\'s retry), then the file arrives', async () => {
  const { body, name } = checkpoint('resnet50', 7);
  routes.set(`/busy/${name}`, { body, unavailable: 2 });
  const logs: string[] = [];
  const got = await downloadPublished('resnet50', { dir: freshDir(), url: `${base}/busy/${name}`, retryDelayMs: 10, log: (l) => logs.push(l) });
  assert.deepEqual(fs.readFileSync(got.path), body);
  assert.equal(seen.filter((s) => s.url === `/busy/${name}`).length, 3);
  assert.equal(logs.filter((l) => /^HTTP 503 Service Unavailable; trying again/.test(l)).length, 2, logs.join('\n'));
});

test('resolveNamedWeights: the verified cached file, or the fcn download command that fetches it and where', () => {
  const dir = freshDir();
  fs.mkdirSync(dir);
  const file = path.join(dir, 'fcn_resnet50_coco-1167a1af.pth');
  assert.throws(() => resolveNamedWeights('fcn_resnet50', dir), (err: unknown) =>
    err instanceof FcnError && err.exitCode === 1 &&
    err.message === `fcn_resnet50: fcn_resnet50_coco-1167a1af.pth is not in ${dir}; \`fcn download fcn_resnet50 --dir ${dir}\` fetches it to ${file}`);
  // the right name with the wrong content is not taken
  fs.writeFileSync(file, 'not the published file');
  assert.throws(() => resolveNamedWeights('fcn_resnet50', dir), /is not the published file \(its sha256 does not start with 1167a1af\)/);
  // a sidecar as the downloader writes it after verifying (the real file is not available here)
  const st = fs.statSync(file);
  fs.writeFileSync(sidecarPath(file), JSON.stringify({ algorithm: 'sha256', digest: '1167a1af' + '0'.repeat(56), size: st.size, mtimeMs: st.mtimeMs }));
  assert.equal(resolveNamedWeights('fcn_resnet50', dir), file);

  // no dir: $FCN_HOME, then torch.hub's cache ($TORCH_HOME/hub/checkpoints)
  const saved = { FCN_HOME: process.env.FCN_HOME, TORCH_HOME: process.env.TORCH_HOME };
  try {
    const home = freshDir();
    const torch = freshDir();
    process.env.FCN_HOME = home;
    process.env.TORCH_HOME = torch;
    assert.throws(() => resolveNamedWeights('lraspp_mobilenet_v3_large'), (err: unknown) =>
      err instanceof FcnError && err.message.includes('`fcn download lraspp_mobilenet_v3_large` fetches it to ' + path.join(home, 'lraspp_mobilenet_v3_large-d234d4ea.pth')));
    const hub = path.join(torch, 'hub', 'checkpoints');
    fs.mkdirSync(hub, { recursive: true });
    fs.copyFileSync(file, path.join(hub, path.basename(file)));
    const st2 = fs.statSync(path.join(hub, path.basename(file)));
    fs.writeFileSync(sidecarPath(path.join(hub, path.basename(file))), JSON.stringify({ algorithm: 'sha256', digest: '1167a1af' + '1'.repeat(56), size: st2.size, mtimeMs: st2.mtimeMs }));
    assert.equal(resolveNamedWeights('fcn_resnet50'), path.join(hub, path.basename(file)));
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
  for (const bad of ['voc2012', 'fcn_resnet18']) {
    assert.throws(() => resolveNamedWeights(bad), (err: unknown) => err instanceof FcnError && err.exitCode === 2 && /is not a published network; known: resnet18, /.test(err.message));
  }
});

test('undici routes as proxyFor decides: HTTP_PROXY / ALL_PROXY, NO_PROXY (with ports), loopback always direct', async () => {
  const { body, name } = checkpoint('resnet101', 3);
  routes.set(`/via/${name}`, { body });
  const asked: string[] = [];
  const proxy = http.createServer((req, res) => {
    asked.push(req.url!);
    const up = http.request(`${base}${new URL(req.url!).pathname}`, (r) => {
      res.writeHead(r.statusCode!, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.writeHead(502).end());
    up.end();
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  const names = ['http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'all_proxy', 'ALL_PROXY', 'no_proxy', 'NO_PROXY'];
  const saved = Object.fromEntries(names.map((k) => [k, process.env[k]]));
  const get = async (url: string, env: Record<string, string>) => {
    for (const k of names) delete process.env[k];
    Object.assign(process.env, env);
    try {
      return await downloadPublished('resnet101', { dir: freshDir(), url, timeoutMs: 5000 });
    } finally {
      for (const k of names) delete process.env[k];
      for (const [k, v] of Object.entries(saved)) if (v !== undefined) process.env[k] = v;
    }
  };
  try {
    const remote = `http://fcn-test.invalid/via/${name}`;
    await get(remote, { HTTP_PROXY: proxyUrl });
    await get(remote, { ALL_PROXY: proxyUrl, NO_PROXY: 'fcn-test.invalid:8080' }); // another port: still proxied
    assert.deepEqual(asked.splice(0), [remote, remote]);
    await assert.rejects(get(remote, { HTTP_PROXY: proxyUrl, no_proxy: 'other.example, .invalid' }), /^DownloadError: cannot reach host fcn-test\.invalid/);
    // loopback goes direct even when a (dead) proxy is set and NO_PROXY says nothing
    const got = await get(`${base}/via/${name}`, { HTTP_PROXY: 'http://127.0.0.1:1', NO_PROXY: '' });
    assert.deepEqual(fs.readFileSync(got.path), body);
    assert.deepEqual(asked, []);
  } finally {
    proxy.closeAllConnections();
    await new Promise((r) => proxy.close(r));
  }
});
