import type { Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { FleetError } from '../errors.js';
import { errorBody } from '../transport/jsonrpc.js';
import { sendError } from './respond.js';

/** How long a rejected connection keeps reading what the client still sends before it closes. */
const LINGER_MS = 5000;

/** Node's parser and timeout errors, as the status a client gets. */
function statusOf(code: string | undefined): [number, string] {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return [431, 'Request Header Fields Too Large'];
    case 'ERR_HTTP_REQUEST_TIMEOUT':
    case 'ERR_HTTP_HEADERS_TIMEOUT':
      return [408, 'Request Timeout'];
    default:
      return [400, 'Bad Request'];
  }
}

/**
 * Answers the requests Node's HTTP server rejects before any handler sees them (unparseable request,
 * headers too large, a slow sender past `requestTimeout`, no `Host`, which the fleet's handler then
 * refuses) like every other error of the fleet: a status and a JSON-RPC error body. Then it keeps reading what the client still sends, up to
 * 5 s, before it closes: closing a socket with unread data resets it, and the reset can destroy the
 * answer before the client reads it (Node's default handler closes at once).
 *
 * ```ts
 * const server = http.createServer(fleet.handler);
 * handleClientErrors(server);
 * ```
 */
export function handleClientErrors(server: Server): void {
  // Node answers an HTTP/1.1 request without Host with an empty 400 of its own; the fleet's
  // handler refuses it instead, with a body.
  (server as Server & { requireHostHeader: boolean }).requireHostHeader = false;
  // Node reports the same broken connection again for the data that keeps arriving: answered once.
  const answered = new WeakSet<Duplex>();
  // An `Expect` other than 100-continue: Node's own answer is an empty 417.
  server.on('checkExpectation', (req, res) => {
    sendError(
      res,
      new FleetError('EXPECTATION_FAILED', `Expectation Failed: ${String(req.headers.expect)}`),
      {},
      req,
    );
  });
  server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
    if (answered.has(socket)) return;
    // The handler already answers on this connection (the request broke after it began): let that
    // answer finish, then close.
    const current = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (current?.headersSent) {
      answered.add(socket);
      setTimeout(() => socket.destroy(), LINGER_MS).unref();
      return;
    }
    if (err.code === 'ECONNRESET' || err.code === 'EPIPE' || !socket.writable) {
      socket.destroy();
      return;
    }
    answered.add(socket);
    const [status, reason] = statusOf(err.code);
    const body = errorBody(-32600, `${reason}: ${err.code ?? 'malformed request'}`);
    // HTTP/1.1 even for an HTTP/1.0 client: the status line is all a client reads here.
    socket.end(
      `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
    socket.on('data', () => {}); // read and drop
    socket.resume();
  });
}
