import type { ServerResponse } from 'node:http';
import { FleetError, UnauthorizedError } from '../errors.js';
import { errorBody } from '../transport/jsonrpc.js';

/** Turns any error into an HTTP status and a JSON-RPC error body with no id — the one place this happens. */
export function sendError(
  res: ServerResponse,
  err: unknown,
  extraHeaders: Record<string, string> = {},
): void {
  const fe = err instanceof FleetError ? err : new FleetError('INTERNAL', 'Internal error', { cause: err });
  if (res.headersSent) {
    // A stream already started: the status can't change any more, so end the connection.
    res.destroy();
    return;
  }
  const headers: Record<string, string> = { 'content-type': 'application/json', ...extraHeaders };
  if (fe instanceof UnauthorizedError) headers['www-authenticate'] = fe.wwwAuthenticate;
  if (fe.status === 503) headers['retry-after'] = '1';
  res.writeHead(fe.status, headers);
  res.end(errorBody(fe.rpcCode, fe.message));
}
