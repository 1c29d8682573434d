// fcn serve --model FILE [--host 127.0.0.1] [--port 8080] [--body-timeout 60] [--max-uploads 16]
//           [--drain-timeout 25]
import { isIP } from 'node:net';
import { Command } from 'commander';
import { serve } from '../web/serve.js';
import { UsageError } from '../util/errors.js';
import { ARCH_HELP, MODEL_HELP, parseArch, parseVariant, VARIANT_HELP, foldVariant, parseFloatFlag, parseIntFlag } from './options.js';
import { MIN_TILE } from '../infer/model.js';
import { modelPath } from '../infer/named.js';

interface ServeFlags {
  model: string;
  arch?: string;
  host: string;
  port: number;
  maxBodyMb: number;
  maxSide: number;
  bodyTimeout: number;
  maxUploads: number;
  drainTimeout: number;
  threads?: number;
  tile: number;
  quiet?: boolean;
}

/** A number within [min, max]; anything else is a usage error naming the flag. */
function rangeFlag(name: string, min: number, max: number, integer: boolean) {
  return (value: string): number => {
    const n = Number(value);
    const ok = value.trim() !== '' && (integer ? Number.isInteger(n) : Number.isFinite(n)) && n >= min && n <= max;
    if (!ok) throw new UsageError(`${name} expects ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got '${value}'`);
    return n;
  };
}

/** A TCP port: an integer, then within 0..65535. */
function portFlag(value: string): number {
  const n = parseIntFlag('--port', 0)(value);
  if (n > 65535) throw new UsageError(`--port expects a port number from 0 to 65535, got '${value}'`);
  return n;
}

/** An IP address, or a host name made of DNS labels (not all digits, which would be a bad IPv4 address). */
function hostFlag(value: string): string {
  const label = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;
  const name = value.length <= 253 && value.split('.').every((l) => label.test(l)) && !/^[\d.]+$/.test(value);
  if (isIP(value) === 0 && !name) throw new UsageError(`--host expects an IP address or a host name, got '${value}'`);
  return value;
}

export function command(): Command {
  return new Command('serve')
    .description('web page and HTTP API for segmentation: POST /api/segment (image body) -> classes and mask PNG; GET /healthz (alive), /readyz (ready)')
    .requiredOption('--model <file|name>', MODEL_HELP)
    .option('--arch <name>', ARCH_HELP, parseArch)
    .option('--variant <name>', VARIANT_HELP, parseVariant)
    .hook('preAction', foldVariant)
    .option('--host <address>', 'address to bind (0.0.0.0 makes it reachable from other machines)', hostFlag, '127.0.0.1')
    .option('--port <n>', 'port (0 picks a free one)', portFlag, 8080)
    .option('--max-body-mb <mb>', 'largest upload accepted, in MB', parseFloatFlag('--max-body-mb', 0.001), 20)
    .option('--max-side <n>', 'largest image side accepted, in pixels', parseIntFlag('--max-side', 1), 4096)
    .option('--body-timeout <seconds>', 'time a client has to send its whole request; slower ones get 408', rangeFlag('--body-timeout', 0.1, 86400, false), 60)
    .option('--max-uploads <n>', 'request bodies received at once; more get 503', rangeFlag('--max-uploads', 1, 100000, true), 16)
    .option('--drain-timeout <seconds>', 'on SIGTERM/SIGINT, time to finish the requests in flight before closing them', rangeFlag('--drain-timeout', 0, 86400, false), 25)
    .option('--tile <n>', 'images with a side longer than this are predicted in overlapping tiles', parseIntFlag('--tile', MIN_TILE), 1024)
    .option('--threads <n>', 'ONNX Runtime threads (default: all cores)', parseIntFlag('--threads', 1))
    .option('--quiet', 'do not print a line per request')
    .action(async (o: ServeFlags) => {
      const server = await serve({
        model: modelPath(o.model), arch: o.arch, host: o.host, port: o.port, maxBodyMb: o.maxBodyMb, maxSide: o.maxSide,
        bodyTimeoutS: o.bodyTimeout, maxUploads: o.maxUploads, drainTimeoutS: o.drainTimeout,
        tileSize: o.tile, threads: o.threads,
        log: o.quiet ? undefined : (line) => process.stdout.write(`${line}\n`),
      });
      const { arch } = server.model;
      process.stdout.write(`fcn serve: ${server.url} (${arch.name}, ${arch.numClasses} classes; Ctrl+C to stop)\n`);
      // Resolve the action (and let main exit 0) once the server has drained and closed.
      await new Promise<void>((resolve) => {
        let stopping = false;
        const stop = (signal: NodeJS.Signals) => {
          if (stopping) {
            process.stderr.write(`fcn serve: ${signal} again, exiting now\n`);
            process.exit(130);
          }
          stopping = true;
          const n = server.inFlight();
          process.stdout.write(`fcn serve: ${signal}, closing (${n} request${n === 1 ? '' : 's'} in flight, up to ${o.drainTimeout} s to finish)\n`);
          server.close().then(({ cutOff }) => {
            if (cutOff > 0) process.stderr.write(`fcn serve: drain timeout (${o.drainTimeout} s) passed, ${cutOff} request${cutOff === 1 ? '' : 's'} cut off\n`);
            process.stdout.write('fcn serve: closed\n');
            resolve();
          }, (err: unknown) => {
            process.stderr.write(`fcn serve: error while closing: ${String(err)}\n`);
            resolve();
          });
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
    });
}
