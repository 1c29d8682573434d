// The import rules of docs/ARCHITECTURE.md, checked on the source: which stage may import which, and
// which npm packages each stage may touch. A new arrow is a design decision: change the table here
// and in the document together.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

const root = new URL('../../', import.meta.url).pathname;
const src = join(root, 'src');

/** Stage → the stages it may import (besides itself). Leaves import only util. */
const ALLOWED: Record<string, readonly string[]> = {
  util: [],
  data: ['util'],
  eval: ['util'],
  net: ['util'],
  engine: ['util'],
  render: ['data', 'util'],
  model: ['data', 'util'],
  weights: ['model', 'data', 'util'],
  graph: ['model', 'util'],
  infer: ['graph', 'weights', 'model', 'engine', 'data', 'eval', 'render', 'net', 'util'],
  queue: ['infer', 'weights', 'model', 'engine', 'data', 'eval', 'render', 'net', 'util'],
  train: ['infer', 'graph', 'weights', 'model', 'engine', 'data', 'eval', 'render', 'net', 'util'],
  quantize: ['infer', 'graph', 'weights', 'model', 'engine', 'data', 'eval', 'render', 'net', 'util'],
  web: ['queue', 'infer', 'weights', 'model', 'engine', 'data', 'eval', 'render', 'graph', 'util'],
  cli: ['web', 'queue', 'train', 'quantize', 'infer', 'graph', 'weights', 'model', 'engine', 'data', 'eval', 'render', 'net', 'util'],
};

/** npm packages (or prefixes) → the only stages that may import them. */
const PACKAGES: Record<string, readonly string[]> = {
  commander: ['cli'],
  'onnxruntime-node': ['engine'],
  'onnxruntime-common': ['engine'],
  'onnxruntime-web': [],
  bullmq: ['queue'],
  ioredis: ['queue'],
  undici: ['net'],
  fastify: ['web'],
  '@fastify/': ['web'],
};

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return sources(p);
    return p.endsWith('.ts') ? [p] : [];
  });
}

function imports(text: string): string[] {
  const out: string[] = [];
  const re = /(?:^|[\n;])\s*(?:import|export)\b[^'"]*?from\s*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;
  for (let m = re.exec(text); m; m = re.exec(text)) out.push((m[1] ?? m[2])!);
  return out;
}

const stageOf = (file: string): string => relative(src, file).split(sep)[0]!;

test('stages import only the stages below them (docs/ARCHITECTURE.md)', () => {
  const bad: string[] = [];
  for (const file of sources(src)) {
    const from = stageOf(file);
    if (from.endsWith('.ts')) continue;  // src/index.ts: the package surface re-exports every stage
    assert.ok(ALLOWED[from], `${relative(root, file)}: the stage '${from}' is not in the architecture table`);
    for (const spec of imports(readFileSync(file, 'utf8'))) {
      if (!spec.startsWith('.')) continue;
      const target = relative(src, join(file, '..', spec)).split(sep)[0]!;
      if (target === from || target.endsWith('.js')) continue;
      if (!ALLOWED[from]!.includes(target)) bad.push(`${relative(root, file)} imports ${spec} (${from} -> ${target})`);
    }
  }
  assert.deepEqual(bad, []);
});

test('npm packages stay in their stage: commander in cli, onnxruntime in engine, bullmq in queue, undici in net, fastify in web', () => {
  const bad: string[] = [];
  for (const file of sources(src)) {
    const from = stageOf(file);
    for (const spec of imports(readFileSync(file, 'utf8'))) {
      if (spec.startsWith('.') || spec.startsWith('node:')) continue;
      for (const [pkg, stages] of Object.entries(PACKAGES)) {
        const hit = pkg.endsWith('/') ? spec.startsWith(pkg) : spec === pkg || spec.startsWith(`${pkg}/`);
        if (hit && !stages.includes(from)) bad.push(`${relative(root, file)} imports ${spec}`);
      }
    }
  }
  assert.deepEqual(bad, []);
});
