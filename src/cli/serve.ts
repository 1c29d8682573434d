// fcn serve --model FILE [--host 127.0.0.1] [--port 8080]
import { Command } from 'commander';
import { serve } from '../web/serve.js';
import { parseFloatFlag, parseIntFlag } from './options.js';

interface ServeFlags {
  model: string;
  host: string;
  port: number;
  maxBodyMb: number;
  maxSide: number;
  threads?: number;
  tile: number;
  quiet?: boolean;
}

export function command(): Command {
  return new Command('serve')
    .description('web page and HTTP API for segmentation: POST /api/segment (image body) -> classes and mask PNG')
    .requiredOption('--model <file>', 'checkpoint (.safetensors) or the book\'s PyTorch state_dict (.pth)')
    .option('--host <address>', 'address to bind (0.0.0.0 makes it reachable from other machines)', '127.0.0.1')
    .option('--port <n>', 'port (0 picks a free one)', parseIntFlag('--port', 0), 8080)
    .option('--max-body-mb <mb>', 'largest upload accepted, in MB', parseFloatFlag('--max-body-mb', 0.001), 20)
    .option('--max-side <n>', 'largest image side accepted, in pixels', parseIntFlag('--max-side', 1), 4096)
    .option('--tile <n>', 'images with a side longer than this are predicted in overlapping tiles', parseIntFlag('--tile', 64), 1024)
    .option('--threads <n>', 'ONNX Runtime threads (default: all cores)', parseIntFlag('--threads', 1))
    .option('--quiet', 'do not print a line per request')
    .action(async (o: ServeFlags) => {
      const server = await serve({
        model: o.model, host: o.host, port: o.port, maxBodyMb: o.maxBodyMb, maxSide: o.maxSide,
        tileSize: o.tile, threads: o.threads,
        log: o.quiet ? undefined : (line) => process.stdout.write(`${line}\n`),
      });
      const { arch } = server.model;
      process.stdout.write(`fcn serve: ${server.url} (${arch.name}, ${arch.numClasses} classes; Ctrl+C to stop)\n`);
      // Resolve the action (and let main exit) only once the server has closed cleanly.
      await new Promise<void>((resolve) => {
        let stopping = false;
        const stop = (signal: NodeJS.Signals) => {
          if (stopping) {
            process.stderr.write(`fcn serve: ${signal} again, exiting now\n`);
            process.exit(130);
          }
          stopping = true;
          process.stdout.write(`fcn serve: ${signal}, closing\n`);
          server.close().then(resolve, (err: unknown) => {
            process.stderr.write(`fcn serve: error while closing: ${String(err)}\n`);
            resolve();
          });
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
    });
}
