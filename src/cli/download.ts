// `fcn download voc2012|resnet18`: fetches the real VOC2012 trainval set or torchvision's ImageNet
// ResNet-18 weights, verified by hash. Status and progress go to stderr; the resulting path to stdout.
import { Command } from 'commander';
import { UsageError } from '../util/errors.js';
import { DownloadError, downloadResnet18, downloadVoc2012, type FetchOptions } from '../net/download.js';

interface Flags {
  dir?: string;
  url?: string;
  sha1?: string;
  sha256?: string;
  timeout?: number;
}

function parseTimeout(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--timeout expects a number of seconds > 0, got '${value}'`);
  return n;
}

export function command(): Command {
  return new Command('download')
    .description('download PASCAL VOC2012 trainval (→ DIR/VOCdevkit/VOC2012) or ImageNet ResNet-18 weights (→ DIR/resnet18-f37072fd.pth), hash-verified')
    .argument('<what>', 'voc2012 or resnet18')
    .option('--dir <dir>', 'where to put it (default: $FCN_HOME, else ~/.cache/fcn)')
    .option('--url <url>', 'download from this mirror instead')
    .option('--sha1 <hex>', 'expected SHA-1 (full or its first 8+ hex digits)')
    .option('--sha256 <hex>', 'expected SHA-256 (full or its first 8+ hex digits)')
    .option('--timeout <seconds>', 'connect and idle timeout (default 30)', parseTimeout)
    .action(async (what: string, flags: Flags) => {
      const opts: FetchOptions = {
        dir: flags.dir,
        url: flags.url,
        sha1: flags.sha1,
        sha256: flags.sha256,
        timeoutMs: flags.timeout !== undefined ? flags.timeout * 1000 : undefined,
        progress: true,
        log: (line) => process.stderr.write(line + '\n'),
      };
      try {
        let path: string;
        if (what === 'voc2012') path = (await downloadVoc2012(opts)).path;
        else if (what === 'resnet18') path = (await downloadResnet18(opts)).path;
        else throw new UsageError(`download expects 'voc2012' or 'resnet18', got '${what}'`);
        process.stdout.write(path + '\n');
      } catch (err) {
        if (err instanceof DownloadError && err.reason === 'unreachable' && flags.url === undefined) {
          // still one line: the cause, then what to do about it
          throw new DownloadError(`${err.message} (no internet here? run \`fcn download ${what}\` where there is, or give a mirror with --url)`, err.reason);
        }
        throw err;
      }
    });
}
