// Redis addresses for the work queue: redis[s]://[USER:PASSWORD@]HOST:PORT[/DB], as ioredis and
// BullMQ take them. Parsed here once so a bad address is one line (exit 2) before anything connects.
import { isIP } from 'node:net';
import { FcnError } from '../util/errors.js';

export interface QueueConnection {
  host: string;
  port: number;
  username?: string;
  password?: string;
  db: number;
  /** rediss:// — TLS to the server (ioredis verifies its certificate against the host name). */
  tls: boolean;
  /** The address without its password, for messages and logs. */
  display: string;
}

const EXPECTED = 'expected redis[s]://[USER:PASSWORD@]HOST:PORT[/DB]';

function bad(url: string, why: string): FcnError {
  return new FcnError(`queue '${redact(url)}': ${why}; ${EXPECTED}`, 2);
}

/**
 * The address with any password replaced by '***' (never print a credential). The user information
 * ends at the last '@' before the host, so a password that was not percent-encoded (it may hold '/',
 * ':' or '@') is hidden whole, even in an address too broken to parse.
 */
export function redact(url: string): string {
  const m = /^([a-z][a-z0-9+.-]*:\/\/)(.*)$/is.exec(url);
  if (!m) return url.includes('@') ? '***@' + url.slice(url.lastIndexOf('@') + 1) : url;
  const rest = m[2]!;
  const at = rest.lastIndexOf('@');
  if (at < 0) return url;
  const userinfo = rest.slice(0, at);
  const colon = userinfo.indexOf(':');
  // no ':' means the whole user information may be a token (redis://TOKEN@host): hide it too
  return m[1] + (colon < 0 ? '***' : `${userinfo.slice(0, colon)}:***`) + rest.slice(at);
}

function unencoded(url: string): string {
  return /^[a-z]+:\/\/[^/?#]*[/?#].*@/i.test(url) ? " (a password with '/', '?', '#' or '@' must be percent-encoded: %2F, %3F, %23, %40)" : '';
}

export function parseQueueUrl(url: string): QueueConnection {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw bad(url, `not a URL${unencoded(url)}`);
  }
  // an '@' after the host's end: user information with an unencoded '/', '?' or '#' (never quote it)
  if (/[/?#].*@/.test(url.replace(/^[a-z]+:\/\//i, ''))) throw bad(url, `not a URL${unencoded(url)}`);
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw bad(url, `scheme '${u.protocol.replace(/:$/, '')}' is not redis or rediss`);
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) throw bad(url, 'no host');
  const port = u.port === '' ? 6379 : Number(u.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw bad(url, `port '${u.port}' is not 1..65535`);
  const path = u.pathname.replace(/^\//, '');
  if (path !== '' && !/^\d+$/.test(path)) throw bad(url, `database '${path}' is not a number`);
  const db = path === '' ? 0 : Number(path);
  if (db > 65535) throw bad(url, `database ${db} is out of range`);
  if (u.search || u.hash) throw bad(url, 'query strings and fragments are not supported');
  const username = u.username ? decodeURIComponent(u.username) : undefined;
  const password = u.password ? decodeURIComponent(u.password) : undefined;
  return { host, port, username, password, db, tls: u.protocol === 'rediss:', display: redact(url) };
}

/** ioredis options for a connection BullMQ can block on (workers need maxRetriesPerRequest: null). */
export function redisOptions(c: QueueConnection): Record<string, unknown> {
  return {
    host: c.host,
    port: c.port,
    db: c.db,
    ...(c.username !== undefined ? { username: c.username } : {}),
    ...(c.password !== undefined ? { password: c.password } : {}),
    // TLS checks the certificate against the host; SNI carries names only (RFC 6066), never an IP address
    ...(c.tls ? { tls: isIP(c.host) ? {} : { servername: c.host } } : {}),
    maxRetriesPerRequest: null,
  };
}
