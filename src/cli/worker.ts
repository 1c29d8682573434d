// fcn worker --queue redis[s]://[USER:PASSWORD@]HOST:PORT[/DB] --model FILE [--name fcn] [--concurrency 1]
import { Command } from 'commander';
import { startQueueWorker } from '../queue/worker.js';
import { parseQueueUrl } from '../queue/url.js';
import { shortIdentity, DEFAULT_QUEUE_NAME } from '../queue/jobs.js';
import { parseIntFlag } from './options.js';
import { printable } from '../util/text.js';
import { queueFlag, queueNameFlag } from './scale-options.js';

export function command(): Command {
  return new Command('worker')
    .description('segment images for `fcn predict|eval --queue`: takes jobs from a BullMQ queue on Redis until stopped (SIGTERM finishes the job in hand; a second one hands it back)')
    .requiredOption('--queue <url>', 'Redis: redis[s]://[USER:PASSWORD@]HOST:PORT[/DB]', queueFlag)
    .requiredOption('--model <file>', 'the model to serve; jobs made for another model are refused')
    .option('--name <name>', 'queue name (producers use the same)', queueNameFlag('--name'), DEFAULT_QUEUE_NAME)
    .option('--concurrency <n>', 'jobs at once in this process', parseIntFlag('--concurrency', 1), 1)
    .option('--threads <n>', 'ONNX Runtime threads (default: all cores)', parseIntFlag('--threads', 1))
    .option('--lock-ms <n>', 'job lock: a worker that dies is noticed, and its job given to another, after about this long', parseIntFlag('--lock-ms', 1000), 30000)
    .option('--quiet', 'no line per failed job')
    .action(async (o: { queue: string; model: string; name: string; concurrency: number; threads?: number; lockMs: number; quiet?: boolean }) => {
      const conn = parseQueueUrl(o.queue);
      const worker = await startQueueWorker({
        queue: o.queue, name: o.name, model: o.model, concurrency: o.concurrency, threads: o.threads, lockDurationMs: o.lockMs,
        onJob: (e) => { if (!e.ok && !o.quiet) process.stderr.write(`fcn worker: job ${e.id} (${printable(e.source)}) failed: ${printable(e.error ?? '')}\n`); },
      });
      process.stderr.write(`fcn worker: serving ${o.model} (model ${shortIdentity(worker.identity)}) on ${conn.display} queue '${o.name}', pid ${process.pid}\n`);
      await new Promise<void>((resolve) => {
        let signals = 0;
        const stop = (sig: string) => {
          signals++;
          if (signals === 1) {
            process.stderr.write(`fcn worker: ${sig}: finishing the job in hand (send it again to hand it back now)\n`);
            void worker.close().then(resolve);
          } else {
            process.stderr.write(`fcn worker: ${sig}: handing the job in hand back to the queue\n`);
            worker.handBack();
          }
        };
        process.on('SIGTERM', () => stop('SIGTERM'));
        process.on('SIGINT', () => stop('SIGINT'));
      });
      process.stderr.write(`fcn worker: stopped after ${worker.stats.done} jobs (${worker.stats.failed} failed)\n`);
    });
}
