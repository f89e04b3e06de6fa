import type { IncomingMessage, ServerResponse } from 'node:http';
import { FleetError, UnauthorizedError } from '../errors.js';
import { errorBody } from '../transport/jsonrpc.js';

/**
 * How long an error answer sent before the request body was read waits for the rest of the body
 * before the connection closes (a lingering close, as nginx does).
 */
const LINGER_MS = 5000;

/**
 * Turns any error into an HTTP status and a JSON-RPC error body with no id — the one place this
 * happens. With `req` still sending its body (an answer that does not need it: 404, 405, 413, 401 …)
 * the answer goes out at once but the connection ends only once the body has arrived (at most
 * {@link LINGER_MS}): closing a socket with unread data resets it, and the reset can destroy the
 * answer on its way to the client.
 */
export function sendError(
  res: ServerResponse,
  err: unknown,
  extraHeaders: Record<string, string> = {},
  req?: IncomingMessage,
): void {
  const fe = err instanceof FleetError ? err : new FleetError('INTERNAL', 'Internal error', { cause: err });
  if (res.headersSent) {
    // A stream already started: the status can't change any more, so end the connection.
    res.destroy();
    return;
  }
  const body = errorBody(fe.rpcCode, fe.message, null, fe.data);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
    ...extraHeaders,
  };
  if (fe instanceof UnauthorizedError) headers['www-authenticate'] = fe.wwwAuthenticate;
  if (fe.status === 503) headers['retry-after'] = '1';
  res.writeHead(fe.status, headers);
  if (!req || req.complete || req.destroyed) {
    res.end(body);
    return;
  }
  res.flushHeaders(); // a HEAD answer has no body to carry the head out
  res.write(body);
  const finish = () => {
    clearTimeout(timer);
    if (!res.writableEnded) res.end();
  };
  const timer = setTimeout(finish, LINGER_MS);
  timer.unref();
  req.once('end', finish);
  req.once('close', finish);
  req.resume();
}
