import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KeyhubError } from '../errors';
import type { Logger } from '../logger';
import type { Registry } from './metrics';

/** Each check is "ok" or a short reason it is not (identifiers and codes only, never secrets). */
export interface Readiness {
  ready: boolean;
  checks: Record<string, string>;
}

export interface ObservabilityServerOptions {
  registry: Registry;
  readiness: () => Promise<Readiness>;
  /** Default 127.0.0.1: metrics name listeners and keys, so exposing them is a deliberate choice. */
  host?: string;
  /** 0 binds any free port (tests); disabling is the caller's business. */
  port: number;
  /** A readiness probe that hangs is itself a failure; default 5 s. */
  readinessTimeoutMs?: number;
}

export interface ObservabilityServer {
  host: string;
  port: number;
  url: string;
  close(): Promise<void>;
}

const ROUTES = new Set(['/metrics', '/healthz', '/readyz']);

function send(res: ServerResponse, status: number, contentType: string, body: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...extra });
  res.end(body);
}

function sendJson(res: ServerResponse, status: number, value: unknown, extra: Record<string, string> = {}): void {
  send(res, status, 'application/json; charset=utf-8', `${JSON.stringify(value)}\n`, extra);
}

async function readinessWithin(probe: () => Promise<Readiness>, timeoutMs: number): Promise<Readiness> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<Readiness>((resolve) => {
    timer = setTimeout(() => resolve({ ready: false, checks: { readiness: `no answer within ${timeoutMs} ms` } }), timeoutMs);
  });
  try {
    return await Promise.race([probe().catch((err: unknown): Readiness => ({ ready: false, checks: { readiness: KeyhubError.from(err).code } })), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * GET /metrics, /healthz and /readyz on plain node:http. Health says the
 * process answers; readiness says it can do its work (the callback decides
 * what that means) and is what a load balancer or orchestrator should gate on.
 */
export async function startObservabilityServer(options: ObservabilityServerOptions): Promise<ObservabilityServer> {
  const host = options.host ?? '127.0.0.1';
  const readinessTimeoutMs = options.readinessTimeoutMs ?? 5_000;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    // No URL parsing: the path is compared as a string, so no request line can make this throw.
    const path = (req.url ?? '/').split('?', 1)[0];
    if (!ROUTES.has(path)) {
      req.resume();
      return sendJson(res, 404, { error: 'not found' });
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      req.resume();
      return sendJson(res, 405, { error: 'method not allowed' }, { allow: 'GET, HEAD' });
    }
    if (path === '/healthz') return sendJson(res, 200, { status: 'ok' });
    if (path === '/readyz') {
      const r = await readinessWithin(options.readiness, readinessTimeoutMs);
      return sendJson(res, r.ready ? 200 : 503, { status: r.ready ? 'ready' : 'not_ready', checks: r.checks });
    }
    const body = await options.registry.metrics();
    send(res, 200, options.registry.contentType, body);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      // A collector that failed mid-scrape: answer 500 rather than leave the scraper hanging.
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
      else res.destroy();
    });
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      reject(new KeyhubError('CONFIG_INVALID', `cannot serve metrics and health on ${host}:${options.port}: ${err.code ?? err.message}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen(options.port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    host: address.address,
    port: address.port,
    url: `http://${urlHost}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Scrapers keep connections alive; without this close() would wait for their idle timeout.
        server.closeAllConnections();
      }),
  };
}

export interface HttpEndpoint {
  host: string;
  port: number;
  /** Set by the operator rather than defaulted. */
  explicit: boolean;
}

/** KEYHUB_HTTP_HOST and KEYHUB_HTTP_PORT; port 0 there means "no endpoint". */
export function httpEndpointFromEnv(defaultPort: number, env: NodeJS.ProcessEnv = process.env): HttpEndpoint | undefined {
  const raw = env.KEYHUB_HTTP_PORT?.trim();
  const port = raw ? Number(raw) : defaultPort;
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new KeyhubError('CONFIG_INVALID', `KEYHUB_HTTP_PORT must be a port number from 0 (off) to 65535, not "${raw}"`);
  if (port === 0) return undefined;
  return { host: env.KEYHUB_HTTP_HOST?.trim() || '127.0.0.1', port, explicit: Boolean(raw) };
}

/**
 * Starts the endpoint the environment asks for. An operator who set the port
 * gets a hard failure if it cannot be bound; the default port is best effort,
 * because several agents on one machine would otherwise fight over it and
 * metrics are not worth failing key delivery for.
 */
export async function serveObservabilityFromEnv(defaultPort: number, options: Omit<ObservabilityServerOptions, 'host' | 'port'>, logger: Logger): Promise<ObservabilityServer | undefined> {
  const endpoint = httpEndpointFromEnv(defaultPort);
  if (!endpoint) {
    logger.info('metrics and health endpoint disabled (KEYHUB_HTTP_PORT=0)');
    return undefined;
  }
  try {
    const server = await startObservabilityServer({ ...options, host: endpoint.host, port: endpoint.port });
    logger.info({ url: server.url }, 'metrics and health endpoint listening');
    return server;
  } catch (err) {
    if (endpoint.explicit) throw err;
    logger.warn({ code: KeyhubError.from(err).code, detail: (err as Error).message }, 'metrics and health endpoint not started; set KEYHUB_HTTP_PORT to choose a port');
    return undefined;
  }
}
