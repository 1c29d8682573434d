#!/usr/bin/env node
// The `fcn` command: runs the compiled CLI (built by `npm install` through the `prepare` script).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
const main = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));
if (!existsSync(main)) {
  process.stderr.write(`fcn: ${main} is missing: run \`npm install\` (or \`npm run build\`) in the package first\n`);
  process.exit(1);
}
await import(main);
