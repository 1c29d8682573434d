// Proxies for the downloader, from the environment as curl, pip and Go read it: http_proxy /
// HTTP_PROXY for http URLs, https_proxy / HTTPS_PROXY for https ones, all_proxy / ALL_PROXY for both,
// no_proxy / NO_PROXY for the hosts that go direct. http URLs are asked of the proxy in absolute
// form; https ones go through a CONNECT tunnel, so TLS still runs end to end with the real host.
// Loopback hosts never go through a proxy (Go's rule). Only http:// proxies are spoken.
import http from 'node:http';
import { isIP } from 'node:net';
import type { Socket } from 'node:net';
import { FcnError } from '../util/errors.js';

type Env = Record<string, string | undefined>;

/** A URL's host name without the brackets an IPv6 literal carries in URLs ('[::1]' -> '::1'). */
export function bareHostname(url: URL): string {
  return url.hostname.replace(/^\[|\]$/g, '');
}

function envValue(env: Env, ...names: string[]): string | undefined {
  for (const name of names) {
    const v = env[name]?.trim();
    if (v) return v;
  }
  return undefined;
}

function isLoopback(host: string): boolean {
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1' || host === '0:0:0:0:0:0:0:1';
  return false;
}

/** True when `no_proxy` sends `host` (lower case, no brackets) on `port` direct. */
export function bypassesProxy(host: string, port: string, noProxy: string): boolean {
  for (let entry of noProxy.split(/[\s,]+/)) {
    entry = entry.trim().toLowerCase();
    if (!entry) continue;
    if (entry === '*') return true;
    // an optional :port (IPv6 entries in brackets keep theirs inside)
    let entryPort = '';
    const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(entry);
    if (m) {
      entry = m[1]!;
      entryPort = m[2]!;
    }
    entry = entry.replace(/^\[|\]$/g, '');
    if (entryPort && entryPort !== port) continue;
    const bare = entry.replace(/^\*?\./, '');
    if (host === bare || host.endsWith(`.${bare}`)) return true;
  }
  return false;
}

/** The proxy to use for `url`, or undefined to connect direct. A malformed proxy setting is a usage error. */
export function proxyFor(url: URL, env: Env = process.env): URL | undefined {
  const host = bareHostname(url).toLowerCase();
  if (isLoopback(host)) return undefined;
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  const noProxy = envValue(env, 'no_proxy', 'NO_PROXY');
  if (noProxy && bypassesProxy(host, port, noProxy)) return undefined;
  const names = url.protocol === 'https:' ? ['https_proxy', 'HTTPS_PROXY'] : ['http_proxy', 'HTTP_PROXY'];
  const raw = envValue(env, ...names, 'all_proxy', 'ALL_PROXY');
  if (!raw) return undefined;
  let proxy: URL;
  try {
    proxy = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`);
  } catch {
    throw new FcnError(`proxy setting '${raw}' (${names.join('/')} or all_proxy) is not a valid URL`, 2);
  }
  if (proxy.protocol !== 'http:') {
    throw new FcnError(`proxy '${raw}': only http:// proxies are supported (${proxy.protocol.slice(0, -1)} is not)`, 2);
  }
  return proxy;
}

/** Proxy-Authorization for a proxy URL with user:password, else nothing. */
export function proxyHeaders(proxy: URL): Record<string, string> {
  if (!proxy.username && !proxy.password) return {};
  const credentials = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
  return { 'proxy-authorization': `Basic ${Buffer.from(credentials).toString('base64')}` };
}

/** Where a proxy is, for messages (never its credentials). */
export function proxyName(proxy: URL): string {
  return `proxy ${proxy.host}`;
}

export class TunnelError extends Error {
  constructor(message: string, readonly status?: number) {
    super(message);
  }
}

/**
 * Opens a CONNECT tunnel through `proxy` to `target`'s host and port; resolves with the raw socket
 * (the caller runs TLS over it). `timeoutMs` bounds the whole exchange.
 */
export function connectTunnel(proxy: URL, target: URL, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const authority = `${target.hostname}:${target.port || '443'}`;
    const req = http.request({
      host: bareHostname(proxy),
      port: proxy.port || 80,
      method: 'CONNECT',
      path: authority,
      headers: { host: authority, ...proxyHeaders(proxy) },
      agent: false,
    });
    const timer = setTimeout(() => {
      req.destroy(new TunnelError(`cannot reach host ${target.host} through ${proxyName(proxy)}: no tunnel within ${+(timeoutMs / 1000).toFixed(3)} s`));
    }, timeoutMs);
    req.once('connect', (res, socket) => {
      clearTimeout(timer);
      if (res.statusCode === 200) {
        resolve(socket);
        return;
      }
      socket.destroy();
      reject(new TunnelError(`${proxyName(proxy)} refused the tunnel to ${target.host}: HTTP ${res.statusCode}${res.statusMessage ? ` ${res.statusMessage}` : ''}`, res.statusCode));
    });
    req.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end();
  });
}
