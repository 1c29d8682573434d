// The optimised-graph cache: a second session starts from the cached graph and computes the same;
// the key follows the model and the settings; a corrupt, truncated or unloadable cache file is
// rebuilt, never used; a cache that cannot be written costs nothing but the cache; the folder keeps
// the most recently used graphs only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { GraphBuilder } from '../src/graph/onnx.js';
import { Session, type EngineTensor } from '../src/engine/session.js';
import {
  defaultGraphCacheDir, graphCacheKey, graphCachePath, pruneGraphCache, readCachedGraph, writeCachedGraph,
} from '../src/engine/graphcache.js';
import { tempDirs } from './helpers/tmp.js';

const { tempDir } = tempDirs('fcn-graphcache-');

/** Conv 3->16 3x3 + BatchNorm + Relu with constant weights: ORT folds the BN and rewrites to NCHWc at 'all'. */
function tinyNet(seed: number): Uint8Array {
  const g = new GraphBuilder('tiny');
  g.input('x', 'float32', ['N', 3, 'H', 'W']);
  const w = new Float32Array(16 * 3 * 9).map((_, i) => Math.sin(i * 0.7 + seed) * 0.3);
  g.initializer('w', 'float32', [16, 3, 3, 3], w);
  const ch = (f: (c: number) => number) => Float32Array.from({ length: 16 }, (_, c) => f(c));
  g.initializer('scale', 'float32', [16], ch((c) => 1 + c * 0.05));
  g.initializer('bias', 'float32', [16], ch((c) => c * 0.01 - 0.05));
  g.initializer('mean', 'float32', [16], ch((c) => Math.cos(c) * 0.1));
  g.initializer('var', 'float32', [16], ch((c) => 0.5 + c * 0.02));
  g.node('Conv', ['x', 'w'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, 'c');
  g.node('BatchNormalization', ['c', 'scale', 'bias', 'mean', 'var'], { epsilon: 1e-5 }, 'b');
  g.node('Relu', ['b'], {}, 'y');
  g.output('y', 'float32', ['N', 16, 'H', 'W']);
  return g.encode();
}

const x: EngineTensor = { dtype: 'float32', dims: [1, 3, 9, 11], data: new Float32Array(3 * 9 * 11).map((_, i) => Math.cos(i * 0.31)) };

async function run(model: Uint8Array, graphCache?: string): Promise<Float32Array> {
  const s = await Session.create(model, { threads: 1, graphCache });
  try {
    return (await s.run({ x }, ['y'])).y!.data as Float32Array;
  } finally {
    await s.dispose();
  }
}

const graphs = (dir: string) => fs.readdirSync(dir).filter((f) => f.endsWith('.onnx'));
const keyOf = (model: Uint8Array) => graphCacheKey(model, { runtime: '1.30.0', provider: 'cpu', level: 'all', threads: 1 });

test('a cached graph is written once, then loaded, and computes what the uncached session does', async () => {
  const dir = tempDir('hit');
  const model = tinyNet(0);
  const plain = await run(model);
  const first = await run(model, dir);
  assert.equal(graphs(dir).length, 1);
  const file = path.join(dir, graphs(dir)[0]!);
  const written = fs.statSync(file).mtimeMs;
  const second = await run(model, dir);
  assert.deepEqual(first, plain);
  assert.deepEqual(second, plain);
  assert.equal(graphs(dir).length, 1, 'the hit wrote nothing new');
  assert.ok(fs.statSync(file).mtimeMs >= written);
  assert.deepEqual(fs.readdirSync(dir).sort(), [graphs(dir)[0]!, graphs(dir)[0]!.replace(/onnx$/, 'sha256')].sort(), 'the graph and its checksum, no temporary files');
});

test('the key follows the model bytes and every setting', () => {
  const a = tinyNet(0);
  const b = tinyNet(1);
  assert.notEqual(keyOf(a), keyOf(b));
  assert.equal(keyOf(a), keyOf(tinyNet(0)));
  const base = { runtime: '1.30.0', provider: 'cpu', level: 'all', threads: 1 };
  for (const change of [{ runtime: '1.31.0' }, { provider: 'cuda' }, { level: 'extended' }, { threads: 2 }]) {
    assert.notEqual(graphCacheKey(a, { ...base, ...change }), graphCacheKey(a, base), JSON.stringify(change));
  }
});

test('a corrupt or truncated cache file is deleted and rebuilt, never used', async () => {
  const dir = tempDir('corrupt');
  const model = tinyNet(2);
  const plain = await run(model);
  await run(model, dir);
  const file = path.join(dir, graphs(dir)[0]!);
  const good = fs.readFileSync(file);
  // one flipped bit in the graph: the checksum fails, so the file is not handed to the runtime
  const flipped = Buffer.from(good);
  flipped[flipped.length >> 1] ^= 0x10;
  fs.writeFileSync(file, flipped);
  const key = path.basename(file, '.onnx');
  assert.equal(await readCachedGraph(dir, key), undefined);
  assert.equal(fs.existsSync(file), false, 'the corrupt file is gone');
  for (const bad of [flipped, good.subarray(0, 20), good.subarray(0, good.length - 100), Buffer.alloc(0)]) {
    fs.writeFileSync(file, bad);
    assert.deepEqual(await run(model, dir), plain);
    assert.deepEqual(fs.readFileSync(file), good, 'rebuilt to the same graph');
  }
  // a graph without its checksum, or with another's, is not trusted either
  const sum = file.replace(/onnx$/, 'sha256');
  for (const damage of [() => fs.rmSync(sum), () => fs.writeFileSync(sum, '0'.repeat(64))]) {
    damage();
    assert.equal(await readCachedGraph(dir, key), undefined);
    assert.deepEqual(await run(model, dir), plain);
    assert.deepEqual(fs.readFileSync(file), good);
    assert.ok(fs.existsSync(sum));
  }
});

test('a checksummed file the runtime cannot load is dropped and rebuilt', async () => {
  const dir = tempDir('unloadable');
  const model = tinyNet(3);
  const plain = await run(model);
  await run(model, dir);
  const file = path.join(dir, graphs(dir)[0]!);
  const key = path.basename(file, '.onnx');
  const good = fs.readFileSync(file);
  await writeCachedGraph(dir, key, new TextEncoder().encode('not an ONNX graph'));
  assert.deepEqual(await run(model, dir), plain);
  assert.deepEqual(fs.readFileSync(file), good);
});

test('a cache folder that cannot be made only skips the cache', async () => {
  const root = tempDir('blocked');
  const blocker = path.join(root, 'file');
  fs.writeFileSync(blocker, 'a file where the folder should be');
  const model = tinyNet(4);
  assert.deepEqual(await run(model, path.join(blocker, 'graphs')), await run(model));
});

test('the folder keeps the most recently used graphs', async () => {
  const dir = tempDir('prune');
  for (let i = 0; i < 5; i++) {
    await writeCachedGraph(dir, `k${i}`, new Uint8Array([i]));
    fs.utimesSync(graphCachePath(dir, `k${i}`), new Date(1e12 + i * 1e6), new Date(1e12 + i * 1e6));
  }
  await readCachedGraph(dir, 'k0'); // used now: the newest
  await pruneGraphCache(dir, 2);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['k0.onnx', 'k0.sha256', 'k4.onnx', 'k4.sha256']);
});

test('the cache folder: $FCN_GRAPH_CACHE, else $XDG_CACHE_HOME/fcn/graphs, else ~/.cache/fcn/graphs; off turns it off', () => {
  assert.equal(defaultGraphCacheDir({ FCN_GRAPH_CACHE: '/x/g' }), '/x/g');
  assert.equal(defaultGraphCacheDir({ FCN_GRAPH_CACHE: 'off' }), undefined);
  assert.equal(defaultGraphCacheDir({ XDG_CACHE_HOME: '/c' }), path.join('/c', 'fcn', 'graphs'));
  assert.match(defaultGraphCacheDir({})!, /\.cache[\\/]fcn[\\/]graphs$/);
});
