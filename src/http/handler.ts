import type { IncomingMessage, ServerResponse } from 'node:http';
import { FleetError, UnauthorizedError } from '../errors.js';
import type { HttpContext } from './context.js';
import type { FleetHandler, FleetOptions, JsonValue, Principal } from '../types.js';
import { sendError } from './respond.js';
import { handleDelete, handleGet, handlePost } from './streamable.js';

/** Handles one method of one path, once the caller is authenticated. */
export type RouteHandler = (
  ctx: HttpContext,
  req: IncomingMessage,
  res: ServerResponse,
  principal: Principal,
) => Promise<void>;

/** Extra paths served next to the MCP endpoint (the legacy HTTP+SSE transport). */
export type ExtraRoutes = Map<string, Partial<Record<string, RouteHandler>>>;

const ANONYMOUS: Principal = { id: 'anonymous' };

/**
 * The Node request handler: routes the MCP path (and the legacy SSE paths), checks Host/Origin,
 * authenticates, and turns every failure into a status and a JSON-RPC error body. Other paths go to
 * `next()` (Express/Connect) or get a 404.
 */
export function createHandler(
  ctx: HttpContext,
  authenticate: FleetOptions<JsonValue>['authenticate'],
  extra: ExtraRoutes = new Map(),
): FleetHandler {
  const opts = ctx.options;
  const routes: ExtraRoutes = new Map([
    [opts.path, { POST: handlePost, GET: handleGet, DELETE: handleDelete }],
    ...extra,
  ]);
  const fail = (
    req: IncomingMessage,
    res: ServerResponse,
    err: unknown,
    headers?: Record<string, string>,
  ) => {
    ctx.metrics.errorResponse(err);
    sendError(res, err, headers, req);
  };

  return (req, res, next) => {
    const path = pathOf(req.url);
    const methods = routes.get(path);
    if (!methods) {
      if (next) return next();
      fail(req, res, new FleetError('NOT_FOUND', 'Not Found'));
      return;
    }
    ctx.metrics.request(req, res, path);
    // Shutting down: a kept-alive connection must not bring the next request back here.
    if (ctx.draining()) res.setHeader('connection', 'close');
    if (!req.headers.host && req.httpVersion === '1.1') {
      // RFC 9112 §3.2 (Node refuses these itself unless `handleClientErrors` hands them here).
      fail(
        req,
        res,
        new FleetError('INVALID_REQUEST', 'Bad Request: an HTTP/1.1 request needs a Host header'),
      );
      return;
    }
    const route = methods[req.method ?? ''];
    if (!route) {
      fail(req, res, new FleetError('METHOD_NOT_ALLOWED', 'Method Not Allowed'), {
        allow: Object.keys(methods).join(', '),
      });
      return;
    }
    // Counted from now (a drain waits for it); a GET holds a stream, which the drain ends itself.
    const done = req.method === 'GET' ? undefined : ctx.service.admit();
    run(ctx, req, res, route, authenticate)
      .catch((err: unknown) => {
        if (!(err instanceof FleetError) || err.status >= 500) {
          ctx.logger.error({ err, path, method: req.method }, 'request failed');
        }
        fail(req, res, err);
      })
      .finally(done);
  };
}

async function run(
  ctx: HttpContext,
  req: IncomingMessage,
  res: ServerResponse,
  route: RouteHandler,
  authenticate: FleetOptions<JsonValue>['authenticate'],
): Promise<void> {
  if (ctx.closed()) throw new FleetError('SHUTTING_DOWN', 'Server is shutting down');
  checkHostAndOrigin(ctx, req);
  const principal = await principalOf(req, authenticate);
  await ctx.storeGate();
  await route(ctx, req, res, principal);
}

/** DNS-rebinding protection: a listed Host is required, a present Origin must be listed. */
function checkHostAndOrigin(ctx: HttpContext, req: IncomingMessage): void {
  const { allowedHosts, allowedOrigins } = ctx.options;
  if (allowedHosts.length > 0) {
    const host = req.headers.host;
    if (!host || !allowedHosts.includes(host)) {
      throw new FleetError('FORBIDDEN', `Forbidden: invalid Host header: ${host ?? '(none)'}`);
    }
  }
  const origin = req.headers.origin;
  if (allowedOrigins.length > 0 && origin !== undefined && !allowedOrigins.includes(origin)) {
    throw new FleetError('FORBIDDEN', `Forbidden: invalid Origin header: ${origin}`);
  }
}

async function principalOf(
  req: IncomingMessage,
  authenticate: FleetOptions<JsonValue>['authenticate'],
): Promise<Principal> {
  if (!authenticate) return ANONYMOUS;
  let p: Principal | string;
  try {
    p = await authenticate(req);
  } catch (err) {
    if (err instanceof FleetError) throw err;
    throw new UnauthorizedError(
      err instanceof Error && err.message ? `Unauthorized: ${err.message}` : 'Unauthorized',
    );
  }
  const principal = typeof p === 'string' ? { id: p } : p;
  if (!principal || typeof principal.id !== 'string' || principal.id.length === 0) {
    throw new UnauthorizedError('Unauthorized: no principal');
  }
  return principal;
}

function pathOf(url: string | undefined): string {
  const raw = url ?? '/';
  const q = raw.indexOf('?');
  return q === -1 ? raw : raw.slice(0, q);
}
