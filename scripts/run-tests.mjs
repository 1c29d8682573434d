// `npm test` / `npm run test:fast`: every compiled test file, or (--fast) all but the slow tiers
// (`*.slow.test.js`: multi-process runs, the bad-input sweep, the browser, training runs).
// Models loaded from files cache their optimised graphs per user; the suite uses a folder of its own,
// removed afterwards, so a run neither reads nor fills the user's cache.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const args = process.argv.slice(2);
const fast = args.includes('--fast');
const dir = new URL('../dist/test/', import.meta.url);
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.test.js') && !(fast && f.endsWith('.slow.test.js')))
  .sort()
  .map((f) => new URL(f, dir).pathname);
const cache = mkdtempSync(join(tmpdir(), 'fcn-test-graphs-'));
const env = { ...process.env, FCN_GRAPH_CACHE: process.env.FCN_GRAPH_CACHE ?? cache };
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...args.filter((a) => a !== '--fast'), ...files], { stdio: 'inherit', env });
rmSync(cache, { recursive: true, force: true });
process.exit(r.status ?? 1);
