import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { Fleet } from 'mcp-fleet';
import type { AppLogger } from './logger.js';

/** Liveness probe path: the process is up (checks nothing external). */
export const LIVEZ_PATH = '/livez';
/** Readiness probe path: the session store answers and the instance is not shutting down. */
export const READYZ_PATH = '/readyz';
/** Prometheus scrape path (text format), when metrics are enabled. */
export const METRICS_PATH = '/metrics';

/** Options of {@link createRequestListener}. */
export interface RouterOptions {
  /** The fleet, once created (requests before that get 503). */
  fleet: () => Pick<Fleet, 'handler' | 'ready'> | undefined;
  /** `true` once shutdown started: readiness fails at once so the load balancer drains this instance. */
  shuttingDown: () => boolean;
  logger: AppLogger;
  /** Registry served at {@link METRICS_PATH}; `undefined` → that path goes to the fleet (404). */
  metrics?: Registry;
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

function pathOf(req: IncomingMessage): string {
  try {
    return new URL(req.url ?? '/', 'http://localhost').pathname;
  } catch {
    return ''; // unparseable target: let the fleet answer it (404)
  }
}

async function readiness(opts: RouterOptions, log: AppLogger): Promise<boolean> {
  const fleet = opts.fleet();
  if (fleet === undefined || opts.shuttingDown()) return false;
  try {
    return await fleet.ready();
  } catch (err) {
    log.warn({ err }, 'readiness check failed');
    return false;
  }
}

async function sendMetrics(res: ServerResponse, registry: Registry): Promise<void> {
  const text = await registry.metrics();
  res.writeHead(200, {
    'content-type': registry.contentType,
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text); // Node sends no body for HEAD
}

/**
 * The process's HTTP entry: `/livez` and `/readyz` probes, `/metrics` (when enabled), everything else to the
 * fleet's handler (which serves `/mcp`, `/sse`, `/messages` and 404s the rest).
 */
export function createRequestListener(opts: RouterOptions): RequestListener {
  const log = opts.logger;
  return (req, res) => {
    // While draining, end keep-alive connections after their current response: a client that reconnects on an
    // open connection would otherwise keep it busy until the drain timeout.
    if (opts.shuttingDown()) res.setHeader('connection', 'close');
    const path = pathOf(req);
    const metrics = path === METRICS_PATH ? opts.metrics : undefined;
    if (path === LIVEZ_PATH || path === READYZ_PATH || metrics !== undefined) {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        sendJson(res, 405, { error: 'method not allowed' }, { allow: 'GET, HEAD' });
        return;
      }
      if (path === LIVEZ_PATH) {
        sendJson(res, 200, { status: 'ok' });
        return;
      }
      if (metrics !== undefined) {
        sendMetrics(res, metrics).catch((err: unknown) => {
          log.error({ err }, 'metrics collection failed');
          if (!res.headersSent) sendJson(res, 500, { error: 'metrics collection failed' });
        });
        return;
      }
      readiness(opts, log).then(
        (ready) => sendJson(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not ready' }),
        (err: unknown) => {
          log.error({ err }, 'readiness probe failed');
          sendJson(res, 503, { status: 'not ready' });
        },
      );
      return;
    }
    const fleet = opts.fleet();
    if (fleet === undefined) {
      sendJson(
        res,
        503,
        { jsonrpc: '2.0', error: { code: -32603, message: 'Server is starting' }, id: null },
        { 'retry-after': '1' },
      );
      return;
    }
    try {
      fleet.handler(req, res);
    } catch (err) {
      log.error({ err }, 'request handler threw');
      if (!res.headersSent)
        sendJson(res, 500, { jsonrpc: '2.0', error: { code: -32603, message: 'Internal error' }, id: null });
      else res.destroy();
    }
  };
}
