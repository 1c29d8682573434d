// Proxies, from the environment as curl, pip and Go read it: http_proxy / HTTP_PROXY for http URLs,
// https_proxy / HTTPS_PROXY for https ones, all_proxy / ALL_PROXY for both, no_proxy / NO_PROXY for
// the hosts that go direct. The routing itself is undici's EnvHttpProxyAgent (http URLs asked of the
// proxy in absolute form, https ones through a CONNECT tunnel so TLS runs end to end with the real
// host); this module only reads the variables the way the tools above do (lower case first, ALL_PROXY
// as the fallback, a malformed or non-http proxy is a usage error) and keeps loopback direct always
// (Go's rule), which a NO_PROXY list cannot say for all of 127.0.0.0/8.
import { isIP } from 'node:net';
import type { Agent, Dispatcher, EnvHttpProxyAgent } from 'undici';
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

export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1' || host === '0:0:0:0:0:0:0:1';
  return false;
}

interface NoProxyEntry {
  host: string;
  port: string;
}

/** no_proxy's entries: lower case, optional :port (IPv6 in brackets keeps its own colons), leading '*.' or '.' dropped. */
function noProxyEntries(noProxy: string): NoProxyEntry[] {
  const out: NoProxyEntry[] = [];
  for (let entry of noProxy.split(/[\s,]+/)) {
    entry = entry.trim().toLowerCase();
    if (!entry) continue;
    let port = '';
    const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(entry);
    if (m) {
      entry = m[1]!;
      port = m[2]!;
    }
    out.push({ host: entry.replace(/^\[|\]$/g, '').replace(/^\*?\./, ''), port });
  }
  return out;
}

/** True when `no_proxy` sends `host` (lower case, no brackets) on `port` direct. */
export function bypassesProxy(host: string, port: string, noProxy: string): boolean {
  return noProxyEntries(noProxy).some(
    (e) => e.host === '*' || ((!e.port || e.port === port) && (host === e.host || host.endsWith(`.${e.host}`))),
  );
}

function parseProxy(raw: string, names: string[]): URL {
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

function proxySetting(protocol: 'http:' | 'https:', env: Env): URL | undefined {
  const names = protocol === 'https:' ? ['https_proxy', 'HTTPS_PROXY'] : ['http_proxy', 'HTTP_PROXY'];
  const raw = envValue(env, ...names, 'all_proxy', 'ALL_PROXY');
  return raw ? parseProxy(raw, names) : undefined;
}

/** The proxy to use for `url`, or undefined to connect direct. A malformed proxy setting is a usage error. */
export function proxyFor(url: URL, env: Env = process.env): URL | undefined {
  const host = bareHostname(url).toLowerCase();
  if (isLoopback(host)) return undefined;
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  const noProxy = envValue(env, 'no_proxy', 'NO_PROXY');
  if (noProxy && bypassesProxy(host, port, noProxy)) return undefined;
  return proxySetting(url.protocol === 'https:' ? 'https:' : 'http:', env);
}

/** The Proxy-Authorization a proxy URL with user:password earns (what undici's ProxyAgent sends). */
export function proxyHeaders(proxy: URL): Record<string, string> {
  if (!proxy.username && !proxy.password) return {};
  const credentials = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
  return { 'proxy-authorization': `Basic ${Buffer.from(credentials).toString('base64')}` };
}

/** Where a proxy is, for messages (never its credentials). */
export function proxyName(proxy: URL): string {
  return `proxy ${proxy.host}`;
}

/** no_proxy rewritten so that undici's matcher (which compares IPv6 hosts with their brackets and
 *  honours '*' only alone) decides exactly as bypassesProxy does. */
function undiciNoProxy(noProxy: string): string {
  const entries = noProxyEntries(noProxy);
  if (entries.some((e) => e.host === '*')) return '*';
  return entries.map((e) => (e.host.includes(':') ? `[${e.host}]` : e.host) + (e.port ? `:${e.port}` : '')).join(',');
}

export interface ProxyDispatcher {
  dispatcher: Dispatcher;
  /** Closes every connection it opened. */
  destroy(): Promise<void>;
}

/**
 * The dispatcher every download goes through: EnvHttpProxyAgent fed the settings read as above,
 * with loopback origins sent to a direct Agent first, and `agentOpts` (timeouts, ...) on every
 * connection. Throws the usage error of a malformed setting. (undici is passed in: it is loaded only
 * when something is downloaded, so commands that merely look up a cached file start fast.)
 */
export function proxyDispatcher(undici: typeof import('undici'), agentOpts: Agent.Options, env: Env = process.env): ProxyDispatcher {
  const routed = new undici.EnvHttpProxyAgent({
    ...agentOpts,
    // '' (not undefined) means none: undici would otherwise read the variables itself
    httpProxy: proxySetting('http:', env)?.href ?? '',
    httpsProxy: proxySetting('https:', env)?.href ?? '',
    noProxy: undiciNoProxy(envValue(env, 'no_proxy', 'NO_PROXY') ?? ''),
    // http URLs in absolute form, as curl does; https always by CONNECT
    proxyTunnel: false,
  } as EnvHttpProxyAgent.Options);
  const direct = new undici.Agent(agentOpts);
  const loopbackDirect: Dispatcher.DispatcherComposeInterceptor = (dispatch) => (opts, handler) => {
    const origin = new URL(String(opts.origin));
    return isLoopback(bareHostname(origin).toLowerCase()) ? direct.dispatch(opts, handler) : dispatch(opts, handler);
  };
  return {
    dispatcher: routed.compose(loopbackDirect),
    destroy: async () => {
      await Promise.all([routed.destroy(), direct.destroy()]);
    },
  };
}
