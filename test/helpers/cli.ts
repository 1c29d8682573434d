// Runs the real `fcn` CLI in a child process without blocking this one (a test's servers live in it).
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

export interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
  /** Wall time of the whole process. */
  ms: number;
}

/** `fcn ARGS` with `env` added to this process's environment; killed after `limitMs`. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}, limitMs = 25_000): Promise<CliRun> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/fcn.js', ...args], { cwd: repoRoot, env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}
