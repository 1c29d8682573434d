// `fcn download NAME`: fetches a published dataset or torchvision weights file (src/net/registry.ts),
// verified by its digest. Status and progress go to stderr; the resulting path to stdout.
import { Command } from 'commander';
import { UsageError } from '../util/errors.js';
import { DownloadError, PUBLISHED, PUBLISHED_NAMES, downloadPublished, type FetchOptions } from '../net/index.js';

interface Flags {
  dir?: string;
  url?: string;
  md5?: string;
  sha1?: string;
  sha256?: string;
  timeout?: number;
}

function parseTimeout(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--timeout expects a number of seconds > 0, got '${value}'`);
  return n;
}

function namesHelp(): string {
  const width = Math.max(...PUBLISHED_NAMES.map((n) => n.length));
  return '\nNames:\n' + PUBLISHED.map((p) => `  ${p.name.padEnd(width)}  ${p.description}`).join('\n') + '\n';
}

export function command(): Command {
  return new Command('download')
    .description('download a published dataset or torchvision weights file into DIR, verified by its digest')
    .argument('<name>', 'what to download (see Names below)')
    .option('--dir <dir>', 'where to put it (default: $FCN_HOME, else ~/.cache/fcn)')
    .option('--url <url>', 'download from this mirror instead')
    .option('--md5 <hex>', 'expected MD5 (full or its first 8+ hex digits), for a mirror serving another file')
    .option('--sha1 <hex>', 'expected SHA-1 (full or its first 8+ hex digits)')
    .option('--sha256 <hex>', 'expected SHA-256 (full or its first 8+ hex digits)')
    .option('--timeout <seconds>', 'connect and idle timeout (default 30)', parseTimeout)
    .addHelpText('after', namesHelp())
    .action(async (name: string, flags: Flags) => {
      if (!PUBLISHED_NAMES.includes(name)) {
        throw new UsageError(`download expects one of ${PUBLISHED_NAMES.join(', ')}; got '${name}'`);
      }
      const opts: FetchOptions = {
        dir: flags.dir,
        url: flags.url,
        md5: flags.md5,
        sha1: flags.sha1,
        sha256: flags.sha256,
        timeoutMs: flags.timeout !== undefined ? flags.timeout * 1000 : undefined,
        progress: true,
        log: (line) => process.stderr.write(line + '\n'),
      };
      try {
        process.stdout.write((await downloadPublished(name, opts)).path + '\n');
      } catch (err) {
        if (err instanceof DownloadError && err.reason === 'unreachable' && flags.url === undefined) {
          // still one line: the cause, then what to do about it
          throw new DownloadError(`${err.message} (no internet here? run \`fcn download ${name}\` where there is, or give a mirror with --url)`, err.reason);
        }
        throw err;
      }
    });
}
