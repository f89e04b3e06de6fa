import type { IncomingMessage } from 'node:http';
import type { MessageExtraInfo } from '@modelcontextprotocol/sdk/types.js';
import { FleetError } from '../errors.js';
import { accepts, isJsonContentType, readBody } from '../http/body.js';
import type { HttpContext } from '../http/context.js';
import type { ExtraRoutes, RouteHandler } from '../http/handler.js';
import { SseSink } from '../http/sse-sink.js';
import { parseMessages } from '../http/streamable.js';
import { assertSessionId } from '../session-id.js';

/**
 * The legacy HTTP+SSE transport's routes (`GET <ssePath>`, `POST <messagesPath>`), served by the same
 * session service as Streamable HTTP: the instance that gets `GET /sse` owns the session; a
 * `POST /messages` on any other instance is forwarded to it.
 */
export function legacyRoutes(ctx: HttpContext): ExtraRoutes {
  const { ssePath, messagesPath } = ctx.options;

  const openStream: RouteHandler = async (c, req, res, principal) => {
    if (!accepts(req.headers.accept, 'text/event-stream')) {
      throw new FleetError('NOT_ACCEPTABLE', 'Not Acceptable: Client must accept text/event-stream');
    }
    // The head waits until the session exists, so a failure is still a plain error response.
    const sink = new SseSink(res, {
      keepAliveMs: c.options.keepAliveMs,
      maxBufferBytes: c.options.maxStreamBufferBytes,
      deferHead: true,
    });
    const sessionId = await c.service.openLegacy(principal, sink);
    sink.open();
    const endpoint = endpointPath(req, ssePath, messagesPath);
    sink.raw(`event: endpoint\ndata: ${endpoint}?sessionId=${encodeURIComponent(sessionId)}\n\n`);
  };

  const postMessage: RouteHandler = async (c, req, res, principal) => {
    const sessionId = sessionIdOf(req.url);
    if (!isJsonContentType(req.headers['content-type'])) {
      throw new FleetError(
        'UNSUPPORTED_MEDIA_TYPE',
        'Unsupported Media Type: Content-Type must be application/json',
      );
    }
    const { messages, batch } = parseMessages(await readBody(req, c.options.maxBodyBytes));
    // The 2024-11-05 transport carries one message per POST (the SDK's own server rejects arrays too).
    if (batch) throw new FleetError('INVALID_REQUEST', 'Invalid Request: batches are not supported here');
    const extra: MessageExtraInfo = {
      authInfo: principal.authInfo,
      requestInfo: { headers: { ...req.headers } } as MessageExtraInfo['requestInfo'],
    };
    await c.service.postLegacy(sessionId, principal, messages[0]!, extra);
    res.writeHead(202).end();
  };

  const routes: ExtraRoutes = new Map();
  routes.set(ssePath, { GET: openStream });
  // Both on one path is allowed (some deployments serve the stream and the messages at one URL).
  routes.set(messagesPath, { ...routes.get(messagesPath), POST: postMessage });
  return routes;
}

/**
 * The session id from the query: `sessionId` (TypeScript SDK) or `session_id` (Python SDK). Required
 * (400) and well-formed (400), checked before any store access.
 */
function sessionIdOf(url: string | undefined): string {
  const raw = url ?? '';
  const q = raw.indexOf('?');
  const params = new URLSearchParams(q === -1 ? '' : raw.slice(q + 1));
  const id = params.get('sessionId') ?? params.get('session_id');
  if (!id) {
    throw new FleetError('SESSION_ID_REQUIRED', 'Bad Request: sessionId query parameter is required');
  }
  assertSessionId(id);
  return id;
}

/**
 * The message endpoint as announced in the `endpoint` event: a relative URI, as the SDK sends it.
 * When mounted under a prefix (Express `app.use('/mcp-legacy', fleet.handler)` strips it from
 * `req.url`), the prefix is taken from `originalUrl` so the client POSTs where the handler is.
 */
function endpointPath(req: IncomingMessage, ssePath: string, messagesPath: string): string {
  const original = (req as IncomingMessage & { originalUrl?: unknown }).originalUrl;
  if (typeof original !== 'string') return messagesPath;
  const q = original.indexOf('?');
  const path = q === -1 ? original : original.slice(0, q);
  return path.endsWith(ssePath) ? path.slice(0, path.length - ssePath.length) + messagesPath : messagesPath;
}
