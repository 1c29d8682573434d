// fcn download: the downloader (resume, redirects, timeouts, hash refusal, cache), safe tar
// extraction, and the CLI, all against an HTTP server on 127.0.0.1 started here (no internet).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import { createHash } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tar from 'tar';
import {
  downloadFile,
  downloadResnet18,
  downloadVoc2012,
  defaultDownloadDir,
  findCachedBackbone,
  backboneHint,
  DownloadError,
  VOC2012_TRAINVAL,
  RESNET18_IMAGENET,
  PUBLISHED_NAMES,
} from '../src/net/download.js';
import { extractTar, unsafeEntryReason } from '../src/net/archive.js';
import { sidecarPath } from '../src/net/cache.js';
import { FcnError } from '../src/util/errors.js';
import { repoRoot, runCli } from './helpers/cli.js';
import { bypassesProxy, proxyFor, proxyHeaders } from '../src/net/proxy.js';

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'fcn-download-'));
let counter = 0;
function freshDir(): string {
  return path.join(tmpRoot, `d${++counter}`);
}

// ---------- fixtures: a tiny VOC-layout tar and a tiny "checkpoint" ----------

const sha1 = (b: Buffer) => createHash('sha1').update(b).digest('hex');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const VOC_FILES: Record<string, Buffer> = {
  'VOCdevkit/VOC2012/JPEGImages/2007_000032.jpg': Buffer.from('not really a jpeg, 1'),
  'VOCdevkit/VOC2012/JPEGImages/2007_000039.jpg': Buffer.alloc(20000, 7), // big enough to cut mid-file
  'VOCdevkit/VOC2012/SegmentationClass/2007_000032.png': Buffer.from('mask 32'),
  'VOCdevkit/VOC2012/SegmentationClass/2007_000039.png': Buffer.from('mask 39'),
  'VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt': Buffer.from('2007_000032\n'),
  'VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt': Buffer.from('2007_000039\n'),
};

async function makeVocTar(): Promise<Buffer> {
  const src = path.join(tmpRoot, 'voc-src');
  for (const [rel, data] of Object.entries(VOC_FILES)) {
    fs.mkdirSync(path.dirname(path.join(src, rel)), { recursive: true });
    fs.writeFileSync(path.join(src, rel), data);
  }
  const file = path.join(tmpRoot, 'voc.tar');
  await tar.create({ cwd: src, file, portable: true }, ['VOCdevkit']);
  return fs.readFileSync(file);
}

interface RawEntry {
  path: string;
  type?: 'File' | 'Directory' | 'SymbolicLink' | 'Link';
  linkpath?: string;
  body?: Buffer;
}

/** A tar written header by header, so it can hold entries tar.create would never write. */
function rawTar(entries: RawEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const body = e.body ?? Buffer.alloc(0);
    const type = e.type ?? 'File';
    const h = new tar.Header({
      path: e.path,
      type,
      linkpath: e.linkpath,
      mode: type === 'Directory' ? 0o755 : 0o644,
      size: type === 'File' ? body.length : 0,
      mtime: new Date(1_300_000_000_000),
      uid: 0,
      gid: 0,
    });
    const block = Buffer.alloc(512);
    h.encode(block, 0);
    blocks.push(block);
    if (type === 'File' && body.length > 0) {
      blocks.push(body, Buffer.alloc((512 - (body.length % 512)) % 512));
    }
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

const VOC_DIRS: RawEntry[] = [
  { path: 'VOCdevkit/', type: 'Directory' },
  { path: 'VOCdevkit/VOC2012/', type: 'Directory' },
  { path: 'VOCdevkit/VOC2012/JPEGImages/', type: 'Directory' },
  { path: 'VOCdevkit/VOC2012/SegmentationClass/', type: 'Directory' },
  { path: 'VOCdevkit/VOC2012/ImageSets/', type: 'Directory' },
  { path: 'VOCdevkit/VOC2012/ImageSets/Segmentation/', type: 'Directory' },
  { path: 'VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt', body: Buffer.from('a\n') },
];

// a "checkpoint": the name carries the first 8 hex digits of its SHA-256, as torchvision's do
const PTH = Buffer.from(Array.from({ length: 30000 }, (_, i) => (i * 31 + 7) & 255));
const PTH_NAME = `resnet18-${sha256(PTH).slice(0, 8)}.pth`;
let VOC_TAR: Buffer;

// ---------- the test server ----------

interface Route {
  body?: Buffer;
  /** On the first request only: send this many body bytes, then close the connection (a FIN after
   *  the data: a reset could make the client's kernel drop bytes it had not yet read). */
  dropAfter?: number;
  /** Answer range requests with 200 and the whole body. */
  ignoreRange?: boolean;
  /** Accept the request and never answer ('headers': send headers, then nothing). */
  stall?: 'silent' | 'headers';
  /** Send the body without a Content-Length (chunked), cut to this many bytes. */
  chunkedPrefix?: number;
  redirect?: { status: number; location: string };
}

const routes = new Map<string, Route>();
const seen: { url: string; range?: string }[] = [];
const hangingSockets = new Set<import('node:net').Socket>();
let server: http.Server;
let base = '';
let tlsServer: https.Server;
let tlsBase = '';
const TLS_DIR = path.join(repoRoot, 'test', 'fixtures', 'tls');
const TLS_CERT = path.join(TLS_DIR, 'cert.pem');

function requestsFor(url: string): { url: string; range?: string }[] {
  return seen.filter((r) => r.url === url);
}

before(async () => {
  VOC_TAR = await makeVocTar();
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const url = req.url ?? '';
    const range = req.headers.range;
    const nth = requestsFor(url).length;
    seen.push({ url, range });
    const route = routes.get(url);
    if (!route) {
      res.writeHead(404).end('not here');
      return;
    }
    if (route.redirect) {
      res.writeHead(route.redirect.status, { Location: route.redirect.location }).end();
      return;
    }
    if (route.stall) {
      hangingSockets.add(req.socket);
      if (route.stall === 'headers') res.writeHead(200, { 'Content-Length': String(route.body!.length) }).flushHeaders();
      return;
    }
    const body = route.body!;
    if (route.chunkedPrefix !== undefined) {
      res.writeHead(200);
      res.end(body.subarray(0, route.chunkedPrefix));
      return;
    }
    const m = range ? /^bytes=(\d+)-$/.exec(range) : null;
    let start = 0;
    if (m && !route.ignoreRange) {
      start = Number(m[1]);
      if (start >= body.length) {
        res.writeHead(416, { 'Content-Range': `bytes */${body.length}` }).end();
        return;
      }
      res.writeHead(206, { 'Content-Length': String(body.length - start), 'Content-Range': `bytes ${start}-${body.length - 1}/${body.length}` });
    } else {
      res.writeHead(200, { 'Content-Length': String(body.length) });
    }
    if (route.dropAfter !== undefined && nth === 0) {
      res.write(body.subarray(start, route.dropAfter), () => req.socket.end());
      return;
    }
    res.end(body.subarray(start));
  };
  server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // the same routes over TLS, with a self-signed certificate for 127.0.0.1 (scripts/make_tls_fixture.py)
  tlsServer = https.createServer({ key: fs.readFileSync(path.join(TLS_DIR, 'key.pem')), cert: fs.readFileSync(TLS_CERT) }, handler);
  await new Promise<void>((r) => tlsServer.listen(0, '127.0.0.1', r));
  tlsBase = `https://127.0.0.1:${(tlsServer.address() as AddressInfo).port}`;
});

after(async () => {
  for (const s of hangingSockets) s.destroy();
  server.closeAllConnections();
  tlsServer.closeAllConnections();
  await new Promise((r) => server.close(r));
  await new Promise((r) => tlsServer.close(r));
  fs.rmSync(tmpRoot, { recursive: true, force: true });
});


function listing(dir: string): string[] {
  return fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
}

function assertVocExtracted(dir: string): void {
  for (const [rel, data] of Object.entries(VOC_FILES)) {
    assert.deepEqual(fs.readFileSync(path.join(dir, rel)), data, rel);
  }
}

// ---------- tests ----------

test('the official constants are the ones published', () => {
  assert.equal(VOC2012_TRAINVAL.url, 'http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar');
  assert.equal(VOC2012_TRAINVAL.size, 1999639040);
  assert.equal(VOC2012_TRAINVAL.sha1, '4e443f8a2eca6b1dac8a6c57641b67dd40621a49');
  assert.equal(RESNET18_IMAGENET.url, 'https://download.pytorch.org/models/resnet18-f37072fd.pth');
  assert.equal(RESNET18_IMAGENET.file, 'resnet18-f37072fd.pth');
});

test('voc2012 via the CLI: download, sha1 check, extraction into DIR/VOCdevkit/VOC2012; a second run transfers nothing', async () => {
  routes.set('/voc/VOCtrainval_11-May-2012.tar', { body: VOC_TAR });
  const dir = freshDir();
  const args = ['download', 'voc2012', '--dir', dir, '--url', `${base}/voc/VOCtrainval_11-May-2012.tar`, '--sha1', sha1(VOC_TAR)];
  const r = await runCli(args);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), path.join(dir, 'VOCdevkit', 'VOC2012'));
  assertVocExtracted(dir);
  // the archive stays as the verified cache; no temporary folder is left behind
  assert.deepEqual(listing(dir), ['VOCdevkit', 'VOCtrainval_11-May-2012.tar', 'VOCtrainval_11-May-2012.tar.verified.json']);
  assert.deepEqual(fs.readFileSync(path.join(dir, 'VOCtrainval_11-May-2012.tar')), VOC_TAR);
  const side = JSON.parse(fs.readFileSync(path.join(dir, 'VOCtrainval_11-May-2012.tar.verified.json'), 'utf8'));
  assert.equal(side.algorithm, 'sha1');
  assert.equal(side.digest, sha1(VOC_TAR));
  assert.equal(side.size, VOC_TAR.length);
  assert.equal(requestsFor('/voc/VOCtrainval_11-May-2012.tar').length, 1);

  const again = await runCli(args);
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stderr, /cached/);
  assert.equal(requestsFor('/voc/VOCtrainval_11-May-2012.tar').length, 1, 'second run made a request');
});

test('resnet18 via the CLI: SHA-256 prefix from the file name; second run is cached; FCN_HOME is the default dir', async () => {
  routes.set(`/models/${PTH_NAME}`, { body: PTH });
  const home = freshDir();
  const r = await runCli(['download', 'resnet18', '--url', `${base}/models/${PTH_NAME}`, '--timeout', '5'], { FCN_HOME: home });
  assert.equal(r.status, 0, r.stderr);
  const file = path.join(home, PTH_NAME);
  assert.equal(r.stdout.trim(), file);
  assert.deepEqual(fs.readFileSync(file), PTH);
  assert.deepEqual(listing(home), [PTH_NAME, `${PTH_NAME}.verified.json`]);
  const n = requestsFor(`/models/${PTH_NAME}`).length;
  const logs: string[] = [];
  const again = await downloadResnet18({ dir: home, url: `${base}/models/${PTH_NAME}`, log: (l) => logs.push(l) });
  assert.deepEqual([again.cached, again.bytesTransferred, again.path], [true, 0, file]);
  assert.match(logs.join('\n'), /cached: .*verified earlier\); nothing to download/);
  assert.equal(requestsFor(`/models/${PTH_NAME}`).length, n);
});

test('a connection dropped mid-file is resumed with a Range request (within the run)', async () => {
  const name = PTH_NAME.replace('.pth', '.pth'); // same bytes, separate route
  routes.set(`/drop/${name}`, { body: PTH, dropAfter: 10000 });
  const dir = freshDir();
  const logs: string[] = [];
  const got = await downloadResnet18({ dir, url: `${base}/drop/${name}`, retryDelayMs: 10, log: (l) => logs.push(l) });
  assert.equal(got.cached, false);
  assert.deepEqual(fs.readFileSync(got.path), PTH);
  const reqs = requestsFor(`/drop/${name}`);
  assert.equal(reqs.length, 2);
  assert.equal(reqs[0]!.range, undefined);
  const m = /^bytes=(\d+)-$/.exec(reqs[1]!.range ?? '');
  assert.ok(m, `second request had no Range header: ${reqs[1]!.range}`);
  const from = Number(m[1]);
  assert.ok(from > 0 && from <= 10000, `resumed at ${from}`);
  assert.equal(got.bytesTransferred, PTH.length, 'bytes received over both attempts');
  assert.ok(logs.some((l) => /resuming/.test(l)));
  assert.ok(!fs.existsSync(`${got.path}.part`));
});

test('a dropped connection keeps <file>.part; the next run resumes it; a server ignoring Range restarts cleanly', async () => {
  routes.set('/voc2/VOCtrainval_11-May-2012.tar', { body: VOC_TAR, dropAfter: 7000 });
  const dir = freshDir();
  const opts = { dir, url: `${base}/voc2/VOCtrainval_11-May-2012.tar`, sha1: sha1(VOC_TAR) };
  await assert.rejects(
    downloadFile({ url: opts.url, dest: path.join(dir, 'VOCtrainval_11-May-2012.tar'), expect: [{ algorithm: 'sha1', hex: sha1(VOC_TAR) }], retries: 0 }),
    (err: unknown) => err instanceof DownloadError && err.reason === 'connection-lost' && /run again to resume/.test(err.message),
  );
  const part = path.join(dir, 'VOCtrainval_11-May-2012.tar.part');
  const kept = fs.statSync(part).size;
  assert.ok(kept > 0 && kept <= 7000, `part has ${kept} bytes`);
  assert.deepEqual(fs.readFileSync(part), VOC_TAR.subarray(0, kept));
  const got = await downloadVoc2012(opts);
  assert.equal(requestsFor('/voc2/VOCtrainval_11-May-2012.tar').at(-1)!.range, `bytes=${kept}-`);
  assert.equal(got.bytesTransferred, VOC_TAR.length - kept);
  assertVocExtracted(dir);

  // 200 to a range request: the partial bytes are discarded, not glued to a fresh body
  routes.set('/norange/VOCtrainval_11-May-2012.tar', { body: VOC_TAR, dropAfter: 5000, ignoreRange: true });
  const dir2 = freshDir();
  const logs: string[] = [];
  const got2 = await downloadVoc2012({ dir: dir2, url: `${base}/norange/VOCtrainval_11-May-2012.tar`, sha1: sha1(VOC_TAR), retryDelayMs: 10, log: (l) => logs.push(l) });
  assert.match(requestsFor('/norange/VOCtrainval_11-May-2012.tar')[1]!.range ?? '', /^bytes=\d+-$/);
  assert.ok(logs.some((l) => /ignored the range request/.test(l)), logs.join('\n'));
  assert.deepEqual(fs.readFileSync(got2.archive), VOC_TAR);
  assertVocExtracted(dir2);
});

test('the CLI resumes after a drop too, and reports progress', async () => {
  routes.set(`/cli-drop/${PTH_NAME}`, { body: PTH, dropAfter: 12000 });
  const dir = freshDir();
  const r = await runCli(['download', 'resnet18', '--dir', dir, '--url', `${base}/cli-drop/${PTH_NAME}`]);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(fs.readFileSync(path.join(dir, PTH_NAME)), PTH);
  assert.match(requestsFor(`/cli-drop/${PTH_NAME}`)[1]!.range ?? '', /^bytes=\d+-$/);
  assert.match(r.stderr, /resuming/);
  assert.match(r.stderr, /100% .*kB.*\/s/); // the final progress line: bytes, rate
});

test('redirects are followed (relative and absolute, 301/302/307/308) and bounded', async () => {
  routes.set('/r1', { redirect: { status: 301, location: '/r2' } });
  routes.set('/r2', { redirect: { status: 307, location: `${base}/r3` } });
  routes.set('/r3', { redirect: { status: 302, location: `/final/${PTH_NAME}` } });
  routes.set(`/final/${PTH_NAME}`, { body: PTH });
  const dir = freshDir();
  // the file name (and so the hash prefix) comes from the URL given, as torchvision does; here it
  // is given explicitly because /r1 has no such name
  const got = await downloadResnet18({ dir, url: `${base}/r1`, sha256: sha256(PTH) });
  assert.deepEqual(fs.readFileSync(got.path), PTH);
  assert.equal(path.basename(got.path), PTH_NAME);
  assert.deepEqual(seen.slice(-4).map((s) => s.url), ['/r1', '/r2', '/r3', `/final/${PTH_NAME}`]);

  routes.set('/loop', { redirect: { status: 308, location: '/loop' } });
  await assert.rejects(
    downloadFile({ url: `${base}/loop`, dest: path.join(freshDir(), 'x.bin'), expect: [{ algorithm: 'sha256', hex: sha256(PTH) }] }),
    /more than 10 redirects/,
  );
});

test('a wrong hash is refused with one line, the file kept aside, nothing at the target; a later run downloads again', async () => {
  routes.set('/bad/VOCtrainval_11-May-2012.tar', { body: VOC_TAR });
  const dir = freshDir();
  const wrong = '0'.repeat(40);
  const r = await runCli(['download', 'voc2012', '--dir', dir, '--url', `${base}/bad/VOCtrainval_11-May-2012.tar`, '--sha1', wrong]);
  assert.equal(r.status, 1);
  const lines = r.stderr.trim().split('\n');
  const last = lines.at(-1)!;
  assert.match(last, new RegExp(`^fcn: .*sha1 is ${sha1(VOC_TAR)}, expected sha1 ${wrong}; refused and kept aside as .*\\.bad-`));
  assert.equal(r.stdout, '');
  const files = listing(dir);
  assert.ok(!files.includes('VOCdevkit'), 'nothing extracted');
  assert.ok(!files.includes('VOCtrainval_11-May-2012.tar'), 'no file at the target name');
  const bad = files.filter((f) => f.startsWith('VOCtrainval_11-May-2012.tar.bad-'));
  assert.equal(bad.length, 1, files.join(','));
  assert.deepEqual(fs.readFileSync(path.join(dir, bad[0]!)), VOC_TAR);

  // a torchvision-style name whose prefix does not match the content
  routes.set('/bad/resnet18-00000000.pth', { body: PTH });
  const dir2 = freshDir();
  await assert.rejects(downloadResnet18({ dir: dir2, url: `${base}/bad/resnet18-00000000.pth` }), (err: unknown) =>
    err instanceof DownloadError && err.reason === 'hash' && /expected sha256 starting with 00000000/.test(err.message),
  );
  assert.ok(!fs.existsSync(path.join(dir2, 'resnet18-00000000.pth')));

  // the refused copy is never reused: the next run fetches again
  const n = requestsFor('/bad/VOCtrainval_11-May-2012.tar').length;
  const ok = await downloadVoc2012({ dir, url: `${base}/bad/VOCtrainval_11-May-2012.tar`, sha1: sha1(VOC_TAR) });
  assert.equal(requestsFor('/bad/VOCtrainval_11-May-2012.tar').length, n + 1);
  assert.equal(ok.cached, false);
  assertVocExtracted(dir);
});

test('a file changed after verification is re-checked: touched → re-hashed and kept; corrupted → kept aside and fetched again', async () => {
  routes.set(`/cache/${PTH_NAME}`, { body: PTH });
  const dir = freshDir();
  const url = `${base}/cache/${PTH_NAME}`;
  const first = await downloadResnet18({ dir, url });
  assert.equal(first.cached, false);
  const n = requestsFor(`/cache/${PTH_NAME}`).length;

  const later = new Date(Date.now() + 5000);
  fs.utimesSync(first.path, later, later); // new mtime: the sidecar no longer vouches for it
  const logs: string[] = [];
  const touched = await downloadResnet18({ dir, url, log: (l) => logs.push(l) });
  assert.equal(touched.cached, true);
  assert.ok(logs.some((l) => /checking the sha256/.test(l)), logs.join('\n'));
  assert.equal(JSON.parse(fs.readFileSync(sidecarPath(first.path), 'utf8')).mtimeMs, fs.statSync(first.path).mtimeMs);
  assert.equal(requestsFor(`/cache/${PTH_NAME}`).length, n);

  const corrupt = Buffer.from(PTH);
  corrupt[100] ^= 0xff;
  fs.writeFileSync(first.path, corrupt);
  const refetched = await downloadResnet18({ dir, url });
  assert.equal(refetched.cached, false);
  assert.equal(requestsFor(`/cache/${PTH_NAME}`).length, n + 1);
  assert.deepEqual(fs.readFileSync(refetched.path), PTH);
  const bad = listing(dir).filter((f) => f.includes('.bad-'));
  assert.equal(bad.length, 1);
  assert.deepEqual(fs.readFileSync(path.join(dir, bad[0]!)), corrupt);
});

test('a truncated transfer (wrong size) is refused and kept aside; a server offering the wrong size is refused', async () => {
  routes.set('/short.bin', { body: PTH, chunkedPrefix: 1000 });
  const dir = freshDir();
  const dest = path.join(dir, 'short.bin');
  await assert.rejects(
    downloadFile({ url: `${base}/short.bin`, dest, expect: [{ algorithm: 'sha256', hex: sha256(PTH) }], size: PTH.length }),
    (err: unknown) => err instanceof DownloadError && err.reason === 'size' && /got 1000 bytes, expected 30000; refused and kept aside/.test(err.message),
  );
  assert.ok(!fs.existsSync(dest));
  assert.equal(listing(dir).filter((f) => f.startsWith('short.bin.bad-')).length, 1);

  routes.set('/sized.bin', { body: PTH });
  await assert.rejects(
    downloadFile({ url: `${base}/sized.bin`, dest: path.join(freshDir(), 'sized.bin'), expect: [{ algorithm: 'sha256', hex: sha256(PTH) }], size: 12345 }),
    /offers 30000 bytes, expected 12345/,
  );
});

test('unsafe entries: the rules', () => {
  assert.equal(unsafeEntryReason('VOCdevkit/VOC2012/a.jpg', 'File'), undefined);
  assert.equal(unsafeEntryReason('VOCdevkit/VOC2012/link', 'SymbolicLink', '../VOC2012/a.jpg'), undefined);
  assert.equal(unsafeEntryReason('VOCdevkit/hard', 'Link', 'VOCdevkit/VOC2012/a.jpg'), undefined);
  assert.equal(unsafeEntryReason('../evil.txt', 'File'), "path contains '..'");
  assert.equal(unsafeEntryReason('VOCdevkit/../../evil.txt', 'File'), "path contains '..'");
  assert.equal(unsafeEntryReason('/etc/evil', 'File'), 'absolute path');
  assert.equal(unsafeEntryReason('C:/evil', 'File'), 'absolute path');
  assert.equal(unsafeEntryReason('VOCdevkit/l', 'SymbolicLink', '/etc'), "link to the absolute path '/etc'");
  assert.equal(unsafeEntryReason('VOCdevkit/l', 'SymbolicLink', '../../x'), "link to '../../x' outside the target folder");
  assert.equal(unsafeEntryReason('VOCdevkit/h', 'Link', '../x'), "link to '../x' outside the target folder");
  assert.equal(unsafeEntryReason('VOCdevkit/fifo', 'FIFO'), 'unsupported entry type FIFO');
});

const EVIL_TARS: { name: string; entries: RawEntry[]; entry: string }[] = [
  { name: 'dotdot', entries: [...VOC_DIRS, { path: '../evil.txt', body: Buffer.from('escaped') }], entry: '../evil.txt' },
  { name: 'absolute', entries: [...VOC_DIRS, { path: '/tmp/fcn-evil-absolute.txt', body: Buffer.from('escaped') }], entry: '/tmp/fcn-evil-absolute.txt' },
  { name: 'symlink', entries: [...VOC_DIRS, { path: 'VOCdevkit/VOC2012/up', type: 'SymbolicLink', linkpath: '../../../..' }], entry: 'VOCdevkit/VOC2012/up' },
  { name: 'symlink-abs', entries: [...VOC_DIRS, { path: 'VOCdevkit/VOC2012/JPEGImages2', type: 'SymbolicLink', linkpath: '/etc' }], entry: 'VOCdevkit/VOC2012/JPEGImages2' },
  { name: 'hardlink', entries: [...VOC_DIRS, { path: 'VOCdevkit/VOC2012/h', type: 'Link', linkpath: '../outside.txt' }], entry: 'VOCdevkit/VOC2012/h' },
];

for (const evil of EVIL_TARS) {
  test(`a tar with an escaping entry (${evil.name}) is refused, naming the entry; nothing at the target`, async () => {
    const body = rawTar(evil.entries);
    routes.set(`/evil/${evil.name}.tar`, { body });
    const parent = freshDir();
    const dir = path.join(parent, 'home');
    await assert.rejects(downloadVoc2012({ dir, url: `${base}/evil/${evil.name}.tar`, sha1: sha1(body) }), (err: unknown) => {
      assert.ok(err instanceof Error);
      assert.equal(err.message, `${path.join(dir, `${evil.name}.tar`)}: refusing to extract entry '${evil.entry}': ${unsafeEntryReason(evil.entry, evil.entries.at(-1)!.type ?? 'File', evil.entries.at(-1)!.linkpath)}`);
      return true;
    });
    // the verified archive stays (it is what was asked for); nothing was extracted or left over
    assert.deepEqual(listing(dir), [`${evil.name}.tar`, `${evil.name}.tar.verified.json`]);
    assert.deepEqual(listing(parent), ['home']);
    assert.ok(!fs.existsSync('/tmp/fcn-evil-absolute.txt'));
  });
}

test('https: followed from an http redirect, as download.pytorch.org sends to its CDN; an untrusted certificate is one clear line', async () => {
  routes.set(`/tls/${PTH_NAME}`, { body: PTH });
  routes.set(`/to-tls/${PTH_NAME}`, { redirect: { status: 302, location: `${tlsBase}/tls/${PTH_NAME}` } });
  const dir = path.join(tmpRoot, 'tls');
  const r = await runCli(['download', 'resnet18', '--dir', dir, '--url', `${base}/to-tls/${PTH_NAME}`], { NODE_EXTRA_CA_CERTS: TLS_CERT });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(fs.readFileSync(path.join(dir, PTH_NAME)), PTH);
  assert.equal(requestsFor(`/tls/${PTH_NAME}`).length, 1);

  const untrusted = path.join(tmpRoot, 'tls-untrusted');
  const bad = await runCli(['download', 'resnet18', '--dir', untrusted, '--url', `${tlsBase}/tls/${PTH_NAME}`], { NODE_EXTRA_CA_CERTS: '' });
  assert.equal(bad.status, 1);
  const lines = bad.stderr.trim().split('\n');
  assert.equal(lines.length, 1, bad.stderr);
  assert.match(lines[0]!, /^fcn: .*127\.0\.0\.1.*certificate/i);
  assert.ok(!fs.existsSync(path.join(untrusted, PTH_NAME)));
});

test('proxy settings: which variable applies, no_proxy, loopback always direct, bad settings are usage errors', () => {
  const u = (s: string) => new URL(s);
  const env = { https_proxy: 'http://p:3128', HTTP_PROXY: 'proxy.corp:8080', no_proxy: '.internal.example, mirror.example:8443' };
  assert.equal(proxyFor(u('https://download.pytorch.org/x'), env)?.href, 'http://p:3128/');
  assert.equal(proxyFor(u('http://host.robots.ox.ac.uk/x'), env)?.href, 'http://proxy.corp:8080/', 'no scheme means http://');
  assert.equal(proxyFor(u('http://a.internal.example/x'), env), undefined);
  assert.equal(proxyFor(u('http://internal.example/x'), env), undefined);
  assert.equal(proxyFor(u('https://mirror.example:8443/x'), env), undefined);
  assert.ok(proxyFor(u('https://mirror.example/x'), env), 'no_proxy with a port only matches that port');
  assert.equal(proxyFor(u('http://127.0.0.1:9/x'), env), undefined);
  assert.equal(proxyFor(u('http://localhost/x'), env), undefined);
  assert.equal(proxyFor(u('http://[::1]/x'), env), undefined);
  assert.equal(proxyFor(u('https://x.org/'), { ALL_PROXY: 'http://all:1' })?.host, 'all:1');
  assert.equal(proxyFor(u('https://x.org/'), { https_proxy: 'http://p:1', NO_PROXY: '*' }), undefined);
  assert.equal(proxyFor(u('https://x.org/'), {}), undefined);
  assert.ok(bypassesProxy('x.org', '443', 'x.org') && !bypassesProxy('notx.org', '443', 'x.org'));
  assert.throws(() => proxyFor(u('https://x.org/'), { https_proxy: 'socks5://p:1080' }), (e: unknown) => e instanceof FcnError && e.exitCode === 2 && /only http:\/\/ proxies/.test(e.message));
  assert.deepEqual(proxyHeaders(new URL('http://user:p%40ss@p:1')), { 'proxy-authorization': `Basic ${Buffer.from('user:p@ss').toString('base64')}` });
});

test('through an http proxy: http in absolute form, https by CONNECT (TLS end to end), credentials sent; a refused tunnel is one line', async () => {
  // a small forward proxy: every host is this test's servers (fcn-test.invalid resolves nowhere)
  const asked: { method: string; target: string; auth?: string }[] = [];
  const proxy = http.createServer((req, res) => {
    asked.push({ method: req.method!, target: req.url!, auth: req.headers['proxy-authorization'] });
    const target = new URL(req.url!);
    const up = http.request({ host: '127.0.0.1', port: new URL(base).port, path: target.pathname, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode!, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.writeHead(502).end());
    up.end();
  });
  const tunnels = new Set<import('node:net').Socket>();
  proxy.on('connect', (req: http.IncomingMessage, socket: import('node:net').Socket) => {
    asked.push({ method: 'CONNECT', target: req.url!, auth: req.headers['proxy-authorization'] });
    tunnels.add(socket);
    socket.on('error', () => socket.destroy());
    if (req.url === 'forbidden.invalid:443') {
      socket.end('HTTP/1.1 403 Forbidden\r\n\r\n');
      return;
    }
    const up = net.connect(Number(new URL(tlsBase).port), '127.0.0.1', () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      up.pipe(socket);
      socket.pipe(up);
    });
    tunnels.add(up);
    up.on('error', () => socket.destroy());
    socket.on('close', () => up.destroy());
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  const proxyUrl = `http://fcn:s3cret@127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  const auth = `Basic ${Buffer.from('fcn:s3cret').toString('base64')}`;
  try {
    routes.set(`/proxied/${PTH_NAME}`, { body: PTH });
    const env = { HTTP_PROXY: proxyUrl, HTTPS_PROXY: proxyUrl, NO_PROXY: '', NODE_EXTRA_CA_CERTS: TLS_CERT };
    const plain = path.join(tmpRoot, 'proxy-http');
    const r1 = await runCli(['download', 'resnet18', '--dir', plain, '--url', `http://fcn-test.invalid/proxied/${PTH_NAME}`], env);
    assert.equal(r1.status, 0, r1.stderr);
    assert.deepEqual(fs.readFileSync(path.join(plain, PTH_NAME)), PTH);
    assert.deepEqual(asked.shift(), { method: 'GET', target: `http://fcn-test.invalid/proxied/${PTH_NAME}`, auth });

    routes.set(`/tls/${PTH_NAME}`, { body: PTH });
    const secure = path.join(tmpRoot, 'proxy-https');
    const r2 = await runCli(['download', 'resnet18', '--dir', secure, '--url', `https://fcn-test.invalid/tls/${PTH_NAME}`], env);
    assert.equal(r2.status, 0, r2.stderr);
    assert.deepEqual(fs.readFileSync(path.join(secure, PTH_NAME)), PTH);
    assert.deepEqual(asked.shift(), { method: 'CONNECT', target: 'fcn-test.invalid:443', auth });

    const refused = await runCli(['download', 'resnet18', '--dir', path.join(tmpRoot, 'proxy-403'), '--url', `https://forbidden.invalid/tls/${PTH_NAME}`], env);
    assert.equal(refused.status, 1);
    assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr);
    assert.match(refused.stderr, /^fcn: proxy 127\.0\.0\.1:\d+ refused the tunnel to forbidden\.invalid: HTTP 403/);
    assert.doesNotMatch(refused.stderr, /s3cret/, 'credentials never printed');

    const noProxy = await runCli(['download', 'resnet18', '--dir', path.join(tmpRoot, 'proxy-down'), '--url', `https://fcn-test.invalid/tls/${PTH_NAME}`],
      { ...env, HTTPS_PROXY: 'http://127.0.0.1:1' });
    assert.equal(noProxy.status, 1);
    assert.match(noProxy.stderr, /^fcn: cannot reach proxy 127\.0\.0\.1:1: connection refused/);
  } finally {
    for (const t of tunnels) t.destroy();
    proxy.closeAllConnections();
    await new Promise((r) => proxy.close(r));
  }
});

test('a chain of symlinks that escapes only on disk is caught after extraction', async () => {
  // each link's text stays inside, but sub/l -> .. makes a -> sub/l/.. land above the root
  const tarFile = path.join(tmpRoot, 'chain.tar');
  fs.writeFileSync(tarFile, rawTar([
    { path: 'sub/', type: 'Directory' },
    { path: 'sub/l', type: 'SymbolicLink', linkpath: '..' },
    { path: 'a', type: 'SymbolicLink', linkpath: 'sub/l/..' },
  ]));
  const into = path.join(freshDir(), 'x');
  fs.mkdirSync(into, { recursive: true });
  await assert.rejects(extractTar(tarFile, into), new RegExp(`refusing entry 'a': symlink resolves outside the target folder`));

  // a tar whose links stay inside extracts fine
  const okFile = path.join(tmpRoot, 'ok.tar');
  fs.writeFileSync(okFile, rawTar([
    { path: 'd/', type: 'Directory' },
    { path: 'd/f.txt', body: Buffer.from('hello') },
    { path: 'd/s', type: 'SymbolicLink', linkpath: 'f.txt' },
    { path: 'h', type: 'Link', linkpath: 'd/f.txt' },
  ]));
  const into2 = path.join(freshDir(), 'y');
  let last = 0;
  await extractTar(okFile, into2, { onProgress: (n, total) => { last = n; assert.equal(total, fs.statSync(okFile).size); } });
  assert.equal(last, fs.statSync(okFile).size);
  assert.equal(fs.readFileSync(path.join(into2, 'd/s'), 'utf8'), 'hello');
  assert.equal(fs.readFileSync(path.join(into2, 'h'), 'utf8'), 'hello');
});

test('an archive without VOCdevkit/VOC2012 is refused and nothing is left at the target', async () => {
  const body = rawTar([{ path: 'something/', type: 'Directory' }, { path: 'something/else.txt', body: Buffer.from('x') }]);
  routes.set('/other.tar', { body });
  const dir = freshDir();
  await assert.rejects(downloadVoc2012({ dir, url: `${base}/other.tar`, sha1: sha1(body) }), /other\.tar: expected a folder VOCdevkit\/VOC2012\/JPEGImages in the archive/);
  assert.deepEqual(listing(dir), ['other.tar', 'other.tar.verified.json']);
});

test('a stalled server gives a timeout error quickly; nothing at the target', async () => {
  routes.set(`/stall-headers/${PTH_NAME}`, { body: PTH, stall: 'headers' });
  routes.set(`/stall-silent/${PTH_NAME}`, { body: PTH, stall: 'silent' });
  const dir = freshDir();
  const r = await runCli(['download', 'resnet18', '--dir', dir, '--url', `${base}/stall-headers/${PTH_NAME}`, '--timeout', '0.5']);
  assert.equal(r.status, 1);
  assert.ok(r.ms < 8000, `took ${r.ms} ms`);
  assert.match(r.stderr.trim().split('\n').at(-1)!, /^fcn: download from 127\.0\.0\.1:\d+ stalled: no data for 0\.5 s$/);
  assert.ok(!fs.existsSync(path.join(dir, PTH_NAME)));
  assert.ok(!fs.existsSync(path.join(dir, `${PTH_NAME}.part`)));

  const t0 = Date.now();
  await assert.rejects(downloadResnet18({ dir, url: `${base}/stall-silent/${PTH_NAME}`, timeoutMs: 300 }), /^DownloadError: host 127\.0\.0\.1:\d+ did not answer within 0\.3 s$/);
  assert.ok(Date.now() - t0 < 3000);
  assert.deepEqual(listing(dir), []);
});

test('HTTP errors and refused connections are one clear line, exit 1; bad flags exit 2', async () => {
  const dir = freshDir();
  const missing = await runCli(['download', 'resnet18', '--dir', dir, '--url', `${base}/nope/${PTH_NAME}`]);
  assert.equal(missing.status, 1);
  assert.equal(missing.stderr, `fcn: ${base}/nope/${PTH_NAME}: HTTP 404 Not Found\n`);
  assert.deepEqual(listing(dir), []);

  // a port nobody listens on: take one from the OS and close it
  const probe = http.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as AddressInfo).port;
  await new Promise((r) => probe.close(r));
  await assert.rejects(downloadResnet18({ dir, url: `http://127.0.0.1:${port}/${PTH_NAME}` }), new RegExp(`^DownloadError: cannot reach host 127\\.0\\.0\\.1:${port}: connection refused$`));

  const bad = await runCli(['download', 'mnist', '--dir', dir]);
  assert.equal(bad.status, 2, bad.stderr);
  assert.equal(bad.stderr, `fcn: download expects one of ${PUBLISHED_NAMES.join(', ')}; got 'mnist'\n`);
  const usage = (err: unknown) => err instanceof FcnError && err.exitCode === 2;
  await assert.rejects(downloadResnet18({ dir, sha256: 'xyz' }), (err: unknown) => usage(err) && /--sha256 expects 8 to 64 hex digits, got 'xyz'/.test(String(err)));
  await assert.rejects(downloadVoc2012({ dir, sha1: 'abc' }), (err: unknown) => usage(err) && /--sha1 expects 8 to 40 hex digits/.test(String(err)));
  await assert.rejects(downloadResnet18({ dir, url: 'ftp://x/resnet18-12345678.pth' }), (err: unknown) => usage(err) && /not an http or https URL/.test(String(err)));
  await assert.rejects(downloadResnet18({ dir, url: `${base}/weights.pth` }), (err: unknown) => usage(err) && /file name is not resnet18-<8 hex>\.pth.*pass --sha256 HEX/.test(String(err)));
  assert.deepEqual(listing(dir), []);
});

test('the real commands without internet fail fast with one "cannot reach host" line', async (t) => {
  const online = await lookup('download.pytorch.org').then(() => true, () => false);
  if (online) {
    t.skip('this machine resolves download.pytorch.org; not downloading 45 MB in a test');
    return;
  }
  const dir = freshDir();
  const r = await runCli(['download', 'resnet18', '--dir', dir]);
  assert.equal(r.status, 1);
  assert.ok(r.ms < 15000, `took ${r.ms} ms`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /^fcn: cannot reach host download\.pytorch\.org: .*run `fcn download resnet18` where there is/);
  assert.equal(r.stdout, '');
  assert.deepEqual(listing(dir), []);
  // the VOC archive's host, through the library
  const t0 = Date.now();
  await assert.rejects(downloadVoc2012({ dir }), (err: unknown) => err instanceof DownloadError && err.reason === 'unreachable' && /^cannot reach host host\.robots\.ox\.ac\.uk/.test(err.message));
  assert.ok(Date.now() - t0 < 15000);
  assert.deepEqual(listing(dir), []);
});

test('findCachedBackbone trusts a current sidecar or the hash, and nothing else; backboneHint says what to do', () => {
  const dir = freshDir();
  fs.mkdirSync(dir, { recursive: true });
  assert.equal(findCachedBackbone(dir), undefined);
  const file = path.join(dir, 'resnet18-f37072fd.pth');
  fs.writeFileSync(file, PTH); // right name, wrong content: its sha256 does not start with f37072fd
  assert.notEqual(sha256(PTH).slice(0, 8), 'f37072fd');
  assert.equal(findCachedBackbone(dir), undefined);
  // a sidecar as the downloader writes it after verifying (the real file is not available here)
  const st = fs.statSync(file);
  fs.writeFileSync(sidecarPath(file), JSON.stringify({ algorithm: 'sha256', digest: 'f37072fd' + '0'.repeat(56), size: st.size, mtimeMs: st.mtimeMs }));
  assert.equal(findCachedBackbone(dir), file);
  fs.appendFileSync(file, 'x'); // the file changed since: the sidecar no longer counts
  assert.equal(findCachedBackbone(dir), undefined);

  // with no dir: the default download folder ($FCN_HOME)
  const saved = process.env.FCN_HOME;
  try {
    process.env.FCN_HOME = dir;
    assert.equal(defaultDownloadDir(), dir);
    fs.writeFileSync(file, PTH);
    const st2 = fs.statSync(file);
    fs.writeFileSync(sidecarPath(file), JSON.stringify({ algorithm: 'sha256', digest: 'f37072fd' + '1'.repeat(56), size: st2.size, mtimeMs: st2.mtimeMs }));
    assert.equal(findCachedBackbone(), file);
    const hint = backboneHint();
    assert.ok(hint.split('\n').length <= 2);
    assert.match(hint, /no ImageNet weights found; training from scratch/);
    assert.match(hint, /`fcn download resnet18`/);
    assert.ok(hint.includes(`--backbone ${file}`), hint);
  } finally {
    if (saved === undefined) delete process.env.FCN_HOME;
    else process.env.FCN_HOME = saved;
  }
  delete process.env.FCN_HOME;
  assert.equal(defaultDownloadDir(), path.join(os.homedir(), '.cache', 'fcn'));
  if (saved !== undefined) process.env.FCN_HOME = saved;
});
