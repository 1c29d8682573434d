// Scratch folders for a test file: one temp root per file, removed when the process exits; each call
// gives a fresh, numbered folder under it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function tempDirs(prefix: string): { root: string; tempDir: (name: string) => string } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  process.on('exit', () => fs.rmSync(root, { recursive: true, force: true }));
  let count = 0;
  return {
    root,
    tempDir(name: string): string {
      const dir = path.join(root, `${name}-${count++}`);
      fs.mkdirSync(dir, { recursive: true });
      return dir;
    },
  };
}
