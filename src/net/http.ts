// The HTTP client under the downloader: undici with its redirect and retry interceptors, connect /
// headers / body timeouts, and the environment's proxy (proxy.ts). What is added here is only what
// a user reads: every failure becomes one DownloadError line saying which peer (host or proxy) and
// what went wrong, classified so callers can add advice or decide to resume.
import { STATUS_CODES } from 'node:http';
import type { Dispatcher, RetryHandler } from 'undici';
import { FcnError } from '../util/errors.js';
import { proxyDispatcher, proxyFor, proxyName, type ProxyDispatcher } from './proxy.js';

/** Why a download failed, for callers that want to add advice (the CLI does for 'unreachable'). */
export type DownloadFailure = 'unreachable' | 'timeout' | 'http' | 'connection-lost' | 'redirect' | 'hash' | 'size' | 'disk';

export class DownloadError extends FcnError {
  constructor(message: string, readonly reason: DownloadFailure) {
    super(message, 1);
    this.name = 'DownloadError';
  }
}

export interface HttpOptions {
  /** Connect, headers and idle-body timeout, in milliseconds. */
  timeoutMs: number;
  maxRedirects: number;
  /** Retries of a transient answer (429, 500, 502, 503, 504), honouring Retry-After. */
  retries: number;
  retryDelayMs: number;
  log: (line: string) => void;
}

export interface HttpResponse {
  /** The URL that answered, after redirects. */
  url: URL;
  status: number;
  statusText: string;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData['body'];
}

const TRANSIENT = [429, 500, 502, 503, 504];
const USER_AGENT = 'fcn-download/0.2 (undici)';

function statusLine(status: number): string {
  return `HTTP ${status} ${STATUS_CODES[status] ?? ''}`.trimEnd();
}

export function seconds(ms: number): string {
  return `${+(ms / 1000).toFixed(3)} s`;
}

/** Milliseconds a Retry-After header asks for (seconds or an HTTP date), if it says. */
function retryAfterMs(header: string | string[] | undefined): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (!value) return undefined;
  const s = Number(value);
  const ms = Number.isFinite(s) ? s * 1000 : new Date(value).getTime() - Date.now();
  return Number.isFinite(ms) && ms >= 0 ? ms : undefined;
}

export function parseHttpUrl(text: string, what = 'URL'): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new FcnError(`${what} '${text}' is not a valid URL`, 2);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new FcnError(`${what} '${text}' is not an http or https URL`, 2);
  return url;
}

/** Drops a response body not wanted (and the error that destroying it emits). */
export function discard(body: HttpResponse['body']): void {
  body.on('error', () => {});
  body.destroy();
}

/** One GET at a time through one dispatcher; close() when done so no keep-alive socket holds the process. */
export class HttpClient {
  private readonly dispatcher: Dispatcher;
  private readonly agent: ProxyDispatcher;

  /** undici is loaded here, on the first download, not by every command that imports src/net (it costs ~0.3 s). */
  static async open(opts: HttpOptions): Promise<HttpClient> {
    return new HttpClient(await import('undici'), opts);
  }

  private constructor(private readonly undici: typeof import('undici'), private readonly opts: HttpOptions) {
    const { interceptors } = undici;
    this.agent = proxyDispatcher(undici, { connect: { timeout: opts.timeoutMs }, headersTimeout: opts.timeoutMs, bodyTimeout: opts.timeoutMs });
    const retry: RetryHandler.RetryCallback = (err, { state }, next) => {
      const { statusCode, headers } = err as Error & { statusCode?: number; headers?: Record<string, string | string[]> };
      if (statusCode === undefined || !TRANSIENT.includes(statusCode) || state.counter > opts.retries) {
        next(err);
        return;
      }
      const wait = Math.min(retryAfterMs(headers?.['retry-after']) ?? opts.retryDelayMs * 2 ** (state.counter - 1), 60_000);
      opts.log(`${statusLine(statusCode)}; trying again in ${seconds(wait)} (retry ${state.counter} of ${opts.retries})`);
      setTimeout(() => next(null), wait);
    };
    // interceptors wrap from the first (innermost) to the last: redirects outside, so each hop retries on its own
    this.dispatcher = this.agent.dispatcher.compose(
      interceptors.retry({ retry, statusCodes: TRANSIENT, errorCodes: [], maxRetries: opts.retries }),
      interceptors.redirect({ maxRedirections: opts.maxRedirects }),
    );
  }

  /** GET `url` (redirects followed), resolved at the final response's headers. Any status comes back but a redirect. */
  async get(url: URL, headers: Record<string, string>): Promise<HttpResponse> {
    let res: Dispatcher.ResponseData;
    try {
      res = await this.undici.request(url, {
        dispatcher: this.dispatcher,
        method: 'GET',
        headers: { 'user-agent': USER_AGENT, 'accept-encoding': 'identity', ...headers },
      });
    } catch (err) {
      throw this.failure(err, url);
    }
    const history = (res.context as { history?: URL[] } | undefined)?.history;
    const final = history?.at(-1) ?? url;
    const response: HttpResponse = {
      url: final,
      status: res.statusCode,
      statusText: (res as { statusText?: string }).statusText || STATUS_CODES[res.statusCode] || '',
      headers: res.headers,
      body: res.body,
    };
    if (res.statusCode >= 300 && res.statusCode < 400 && res.statusCode !== 304) {
      discard(res.body);
      if (!res.headers.location) throw new DownloadError(`${final.href}: HTTP ${res.statusCode} redirect without a Location header`, 'redirect');
      throw new DownloadError(`${url.href}: more than ${this.opts.maxRedirects} redirects`, 'redirect');
    }
    return response;
  }

  async close(): Promise<void> {
    await this.agent.destroy();
  }

  /** One line for anything undici or the network threw while talking to `url` (or its proxy). */
  failure(err: unknown, url: URL): DownloadError {
    if (err instanceof DownloadError) return err;
    const e = err as NodeJS.ErrnoException & { statusCode?: number };
    const code = e?.code ?? '';
    const msg = e instanceof Error ? e.message : String(err);
    const proxy = (() => {
      try {
        return proxyFor(url);
      } catch {
        return undefined;
      }
    })();
    // with a proxy in the way, every connection this process makes is to the proxy
    const peer = proxy ? `proxy ${proxy.host}` : `host ${url.host}`;
    const fail = (text: string, reason: DownloadFailure) => new DownloadError(text, reason);
    const tunnel = /^Proxy response \((\d+)\) !== 200/.exec(msg);
    if (proxy && tunnel) return fail(`${proxyName(proxy)} refused the tunnel to ${url.host}: ${statusLine(Number(tunnel[1]))}`, 'unreachable');
    if (proxy && /\(407\)/.test(msg)) return fail(`${proxyName(proxy)} wants other credentials for ${url.host}: ${statusLine(407)}`, 'unreachable');
    // undici stops a Location that points at itself before the hop count runs out
    if (/^Redirect loop detected/.test(msg)) return fail(`${url.href}: more than ${this.opts.maxRedirects} redirects (a loop)`, 'redirect');
    if (code === 'UND_ERR_REQ_RETRY') {
      // the transient answers given up on, or a partial answer undici's checks refused
      const status = statusLine(e.statusCode ?? 0);
      return fail(TRANSIENT.includes(e.statusCode ?? 0) ? `${url.href}: ${status}` : `${url.href}: ${msg} (${status})`, 'http');
    }
    const s = seconds(this.opts.timeoutMs);
    if (code === 'UND_ERR_CONNECT_TIMEOUT') return fail(`cannot reach ${peer}: no connection within ${s}`, 'unreachable');
    if (code === 'UND_ERR_HEADERS_TIMEOUT') return fail(`host ${url.host} did not answer within ${s}`, 'timeout');
    if (code === 'UND_ERR_BODY_TIMEOUT') return fail(`download from ${url.host} stalled: no data for ${s}`, 'timeout');
    if (/^(ENOTFOUND|EAI_)/.test(code)) return fail(`cannot reach ${proxy ? `proxy ${proxy.hostname}` : `host ${url.hostname}`}: DNS lookup failed (${code})`, 'unreachable');
    if (code === 'ECONNREFUSED') return fail(`cannot reach ${peer}: connection refused`, 'unreachable');
    if (code === 'ETIMEDOUT') return fail(`cannot reach ${peer}: connection timed out`, 'unreachable');
    if (/^E(NET|HOST)(UNREACH|DOWN)$|^EADDRNOTAVAIL$/.test(code)) return fail(`cannot reach ${peer}: network unreachable (${code})`, 'unreachable');
    if (/^(ECONNRESET|EPIPE|UND_ERR_SOCKET|UND_ERR_RES_CONTENT_LENGTH_MISMATCH|ERR_STREAM_PREMATURE_CLOSE)$/.test(code)) {
      return fail(`connection to ${url.host} lost (${code})`, 'connection-lost');
    }
    if (/^(ERR_TLS|ERR_SSL|CERT_|UNABLE_TO|DEPTH_ZERO|SELF_SIGNED|UND_ERR_PRX_TLS)/.test(code)) return fail(`TLS error with ${url.host}: ${msg}`, 'unreachable');
    return fail(`download from ${url.host} failed: ${msg}${code ? ` (${code})` : ''}`, 'connection-lost');
  }
}
