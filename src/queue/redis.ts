// The first contact with Redis, before a worker or producer starts: one connection that must answer
// PING and select the address's database within a bounded time. BullMQ's own connections reconnect
// for ever, so a wrong address, password or database would otherwise hang a run without a word.
import { Redis } from 'ioredis';
import { FcnError, errorMessage } from '../util/errors.js';
import { redisOptions, type QueueConnection } from './url.js';

/** What to do about a Redis failure, from its message (ioredis passes the server's reply text on). */
function hint(message: string, conn: QueueConnection): string {
  if (/^WRONGPASS/.test(message)) return 'wrong user name or password';
  if (/^NOAUTH/.test(message)) return 'the server wants a password: redis[s]://[USER]:PASSWORD@HOST:PORT (percent-encode special characters)';
  if (/DB index is out of range/i.test(message)) return `the server has no database ${conn.db} (its 'databases' setting is lower; the default is 16: 0..15)`;
  if (/ECONNREFUSED/.test(message)) return 'nothing listens there: is redis-server running, on that host and port?';
  if (/ENOTFOUND|EAI_AGAIN/.test(message)) return `host '${conn.host}' not found`;
  if (/ETIMEDOUT/.test(message)) return conn.tls ? 'no TLS answer in time: does this server speak TLS (rediss://), or plain redis:// only?' : 'no answer in time';
  if (/altnames|does not match certificate/i.test(message)) return `the server's certificate is not for '${conn.host}': connect by a name or address it lists`;
  if (/self[- ]signed|unable to (get|verify)|certificate (has expired|is not yet valid)|CERT_/i.test(message)) {
    return "the server's certificate is not trusted here: NODE_EXTRA_CA_CERTS=ca.pem adds the CA that signed it";
  }
  if (/wrong version number|packet length|unknown protocol|EPROTO/i.test(message)) return conn.tls ? 'the server does not speak TLS: use redis://' : 'TLS error';
  if (/ECONNRESET/.test(message) && !conn.tls) return 'the server closed the connection at once: does it speak TLS only (rediss://)?';
  return '';
}

/**
 * Checks that Redis answers at `conn` and that its database exists, within about `timeoutMs`, so a
 * wrong address is one line (exit 1) naming the cause instead of endless reconnecting.
 */
export async function checkRedis(conn: QueueConnection, timeoutMs = 5000): Promise<void> {
  const client = new Redis({ ...redisOptions(conn), db: 0, maxRetriesPerRequest: 0, connectTimeout: timeoutMs, retryStrategy: () => null, lazyConnect: true });
  // ioredis reports the cause (refused, wrong password, TLS) as an 'error' event and then rejects
  // with 'Connection is closed': keep the first cause for the message
  let cause: string | undefined;
  client.on('error', (err: unknown) => { cause ??= errorMessage(err); });
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`connect ETIMEDOUT (no answer in ${timeoutMs} ms)`)), timeoutMs + 1000);
  });
  try {
    await Promise.race([(async () => {
      await client.connect();
      await client.ping();
      // selected here, not by the connection options, so that a missing database is an error and
      // not a silent fallback to database 0
      if (conn.db !== 0) await client.select(conn.db);
    })(), deadline]);
  } catch (err) {
    const message = (cause ?? errorMessage(err)).split('\n')[0]!;
    const why = hint(message, conn);
    throw new FcnError(`queue ${conn.display}: cannot use Redis (${message})${why ? `: ${why}` : ''}`);
  } finally {
    clearTimeout(timer);
    client.disconnect();
  }
}
