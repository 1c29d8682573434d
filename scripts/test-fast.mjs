// `npm run test:fast`: the unit tests, for the daily loop. Runs every compiled test file except the
// slow tiers (`*.slow.test.js`: multi-process runs, the bad-input sweep, the browser, training runs),
// which `npm test` (and CI) run too.
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

const dir = new URL('../dist/test/', import.meta.url);
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.test.js') && !f.endsWith('.slow.test.js'))
  .sort()
  .map((f) => new URL(f, dir).pathname);
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...process.argv.slice(2), ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
