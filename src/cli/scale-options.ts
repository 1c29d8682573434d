// Flags shared by the commands that scale out (--queue, --shard, --merge): parsed by the library's
// parsers, with their errors put in the flag's name (usage errors, exit 2).
import { FcnError } from '../util/errors.js';
import { parseQueueUrl } from '../queue/url.js';
import { parseShard, type Shard } from '../queue/shard.js';
import { checkQueueName } from '../queue/jobs.js';
import { printable } from '../util/text.js';

function asFlag<T>(flag: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof FcnError) throw new FcnError(`${flag}: ${err.message}`, 2);
    throw err;
  }
}

/** Commander parser for --queue: checks the address, keeps the text. */
export function queueFlag(value: string): string {
  asFlag('--queue', () => parseQueueUrl(value));
  return value;
}

/** Commander parser for a queue name flag (the worker's --name, the producers' --queue-name). */
export function queueNameFlag(flag: string): (value: string) => string {
  return (value) => asFlag(flag, () => checkQueueName(value));
}

export function shardFlag(value: string): Shard {
  return asFlag('--shard', () => parseShard(value));
}

export const QUEUE_HELP = 'run on `fcn worker` processes through a BullMQ queue on Redis: redis[s]://[USER:PASSWORD@]HOST:PORT[/DB]';
export const SHARD_HELP = 'only shard K of N of the inputs (by a hash of each file stem / id: stable under reordering), for job arrays';

/** A producer's onNoWorkers: one stderr line saying the jobs wait for a worker on `queueName`. */
export function noWorkerNotice(queueName: string): (seconds: number) => void {
  return (seconds) => {
    process.stderr.write(`fcn: no worker on queue '${printable(queueName)}' for ${seconds} s; the jobs wait until one starts\n`);
  };
}
