import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  InitializeRequestSchema,
  JSONRPCMessageSchema,
  SUPPORTED_PROTOCOL_VERSIONS,
  DEFAULT_NEGOTIATED_PROTOCOL_VERSION,
  type JSONRPCMessage,
  type JSONRPCRequest,
  type MessageExtraInfo,
} from '@modelcontextprotocol/sdk/types.js';
import { asError, FleetError } from '../errors.js';
import { assertSessionId } from '../session-id.js';
import type { Runtime } from '../runtime.js';
import type { Principal } from '../types.js';
import { decodeEventId, encodeEventId, newStreamId } from '../transport/event-id.js';
import { isNotification, isRequest } from '../transport/jsonrpc.js';
import type { LiveSession } from '../host/live-session.js';
import { OutboundStream } from '../transport/outbound-stream.js';
import { accepts, isJsonContentType, readBody } from './body.js';
import { JsonSink } from './json-sink.js';
import { SseSink } from './sse-sink.js';

const MAX_BATCH = 100;

/** Parses and validates a POST body into JSON-RPC messages (400 on anything else). */
export function parseMessages(body: Buffer): { messages: JSONRPCMessage[]; batch: boolean } {
  let raw: unknown;
  try {
    raw = JSON.parse(body.toString('utf8'));
  } catch {
    throw new FleetError('PARSE_ERROR', 'Parse error: Invalid JSON');
  }
  const batch = Array.isArray(raw);
  const items = batch ? (raw as unknown[]) : [raw];
  if (items.length === 0) throw new FleetError('INVALID_REQUEST', 'Invalid Request: empty batch');
  if (items.length > MAX_BATCH) {
    throw new FleetError('INVALID_REQUEST', `Invalid Request: batch must not exceed ${MAX_BATCH} messages`);
  }
  const messages = items.map((item) => {
    const parsed = JSONRPCMessageSchema.safeParse(item);
    if (!parsed.success)
      throw new FleetError('INVALID_REQUEST', 'Invalid Request: not a JSON-RPC 2.0 message');
    return parsed.data;
  });
  return { messages, batch };
}

/** The session id header: required (400), well-formed (400) — checked before any store access. */
function sessionIdOf(req: IncomingMessage): string {
  const raw = req.headers['mcp-session-id'];
  const id = Array.isArray(raw) ? raw[0] : raw;
  if (!id) throw new FleetError('SESSION_ID_REQUIRED', 'Bad Request: Mcp-Session-Id header is required');
  assertSessionId(id);
  return id;
}

/** Validates `MCP-Protocol-Version` (400 when unsupported); absent means 2025-03-26. */
function protocolVersionOf(req: IncomingMessage): string {
  const v = req.headers['mcp-protocol-version'];
  const version = Array.isArray(v) ? v[0] : v;
  if (version === undefined) return DEFAULT_NEGOTIATED_PROTOCOL_VERSION;
  if (!SUPPORTED_PROTOCOL_VERSIONS.includes(version)) {
    throw new FleetError(
      'UNSUPPORTED_PROTOCOL_VERSION',
      `Bad Request: Unsupported protocol version: ${version} (supported versions: ${SUPPORTED_PROTOCOL_VERSIONS.join(', ')})`,
    );
  }
  return version;
}

function requestInfo(req: IncomingMessage): MessageExtraInfo['requestInfo'] {
  const headers: Record<string, string | string[] | undefined> = { ...req.headers };
  return { headers } as MessageExtraInfo['requestInfo'];
}

/** `POST /mcp`: initialize, or any message of an existing session. */
export async function handlePost(
  rt: Runtime,
  req: IncomingMessage,
  res: ServerResponse,
  principal: Principal,
): Promise<void> {
  const opts = rt.parts.options;
  const accept = req.headers.accept;
  if (!accepts(accept, 'application/json') || !accepts(accept, 'text/event-stream')) {
    throw new FleetError(
      'NOT_ACCEPTABLE',
      'Not Acceptable: Client must accept both application/json and text/event-stream',
    );
  }
  if (!isJsonContentType(req.headers['content-type'])) {
    throw new FleetError(
      'UNSUPPORTED_MEDIA_TYPE',
      'Unsupported Media Type: Content-Type must be application/json',
    );
  }
  const { messages, batch } = parseMessages(await readBody(req, opts.maxBodyBytes));
  const extra: MessageExtraInfo = { authInfo: principal.authInfo, requestInfo: requestInfo(req) };

  const init = messages.find((m) => isRequest(m) && m.method === 'initialize') as JSONRPCRequest | undefined;
  if (init) {
    if (messages.length > 1) {
      throw new FleetError('INVALID_REQUEST', 'Invalid Request: Only one initialization request is allowed');
    }
    if (!InitializeRequestSchema.safeParse(init).success) {
      throw new FleetError(
        'INVALID_REQUEST',
        'Invalid Request: initialize needs protocolVersion, capabilities and clientInfo',
      );
    }
    await handleInitialize(rt, res, principal, init, extra);
    return;
  }

  const sessionId = sessionIdOf(req);
  const version = protocolVersionOf(req);
  // The client's own `initialized` must not be preceded by a replayed one on a cold instance.
  const replayInitialized = !messages.some(
    (m) => isNotification(m) && m.method === 'notifications/initialized',
  );
  const session = await rt.parts.host.acquire(sessionId, principal.id, { replayInitialized });
  try {
    dispatch(rt, res, session, messages, batch, version, extra);
  } finally {
    rt.parts.host.release(session);
  }
}

/** Hands a session's messages to its live copy and opens the answer (202, SSE stream or JSON body). */
function dispatch(
  rt: Runtime,
  res: ServerResponse,
  session: LiveSession,
  messages: JSONRPCMessage[],
  batch: boolean,
  version: string,
  extra: MessageExtraInfo,
): void {
  const opts = rt.parts.options;
  const sessionId = session.id;
  const ids = new Set<unknown>();
  for (const m of messages) {
    if (!isRequest(m)) continue;
    // A request id still in flight (or twice in one batch) would steal the other request's stream.
    if (ids.has(m.id) || session.transport.handles(m.id)) {
      throw new FleetError(
        'INVALID_REQUEST',
        `Invalid Request: request id ${JSON.stringify(m.id)} is already in use`,
      );
    }
    ids.add(m.id);
  }
  rt.prepare(session, messages);

  const requests = messages.filter(isRequest);
  if (requests.length === 0) {
    for (const m of messages) rt.route(session, m, extra);
    res.writeHead(202).end();
    return;
  }

  const headers = { 'mcp-session-id': sessionId };
  const streamId = newStreamId(rt.instanceId);
  const resumable = opts.resumable && !opts.jsonResponse;
  const stream = new OutboundStream(
    sessionId,
    streamId,
    resumable ? rt.parts.log : undefined,
    (err) => rt.onError(err, sessionId),
    (s) => session.streams.delete(s.streamId),
  );
  session.streams.set(streamId, stream);
  // Resumable streams start with a priming event (clients from 2025-11-25 on accept an empty data field).
  const priming = resumable && version >= '2025-11-25';
  const sink = opts.jsonResponse
    ? new JsonSink(res, headers, opts.keepAliveMs, batch)
    : new SseSink(res, {
        headers,
        keepAliveMs: opts.keepAliveMs,
        maxBufferBytes: opts.maxStreamBufferBytes,
        primingEventId: priming ? encodeEventId(streamId, 0) : undefined,
        retryMs: priming ? opts.sseRetryMs : undefined,
        // A dropped connection is not a cancellation: the handler goes on, the log keeps its output.
        onClose: () => stream.detach(sink),
      });
  stream.attach(sink);
  for (const r of requests) session.transport.bind(r.id, stream);
  for (const m of messages) {
    if (isRequest(m) && priming && sink instanceof SseSink) {
      rt.route(session, m, {
        ...extra,
        closeSSEStream: () => sink.disconnect(opts.sseRetryMs),
        closeStandaloneSSEStream: () => {
          rt.parts.streams
            .disconnectStandalone(sessionId, opts.sseRetryMs)
            .catch((e: unknown) => rt.onError(asError(e), sessionId));
        },
      });
    } else {
      rt.route(session, m, extra);
    }
  }
}

async function handleInitialize(
  rt: Runtime,
  res: ServerResponse,
  principal: Principal,
  init: JSONRPCRequest,
  extra: MessageExtraInfo,
): Promise<void> {
  const { session, response } = await rt.parts.host.initialize(principal.id, 'streamable-http', init, extra);
  const headers: Record<string, string> = session ? { 'mcp-session-id': session.id } : {};
  if (rt.parts.options.jsonResponse) {
    res.writeHead(200, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(response));
    return;
  }
  const sink = new SseSink(res, { headers, keepAliveMs: rt.parts.options.keepAliveMs });
  sink.write(response, undefined);
  sink.end();
}

/** `GET /mcp`: the standalone stream, or the resumption of any stream with `Last-Event-ID`. */
export async function handleGet(
  rt: Runtime,
  req: IncomingMessage,
  res: ServerResponse,
  principal: Principal,
): Promise<void> {
  const opts = rt.parts.options;
  if (!accepts(req.headers.accept, 'text/event-stream')) {
    throw new FleetError('NOT_ACCEPTABLE', 'Not Acceptable: Client must accept text/event-stream');
  }
  const sessionId = sessionIdOf(req);
  const version = protocolVersionOf(req);
  const lastEventIdRaw = req.headers['last-event-id'];
  const lastEventId = Array.isArray(lastEventIdRaw) ? lastEventIdRaw[0] : lastEventIdRaw;
  const cursor = lastEventId !== undefined ? decodeEventId(lastEventId) : undefined;
  // Validates the session and its principal (and refreshes its TTL); streams live in the router.
  rt.parts.host.release(await rt.parts.host.acquire(sessionId, principal.id));

  const headers = { 'mcp-session-id': sessionId };
  const sink = new SseSink(res, {
    headers,
    keepAliveMs: opts.keepAliveMs,
    maxBufferBytes: opts.maxStreamBufferBytes,
    retryMs: opts.resumable && version >= '2025-11-25' ? opts.sseRetryMs : undefined,
    deferHead: true,
  });
  if (cursor) await rt.parts.streams.resume(sessionId, cursor.streamId, cursor.seq, sink);
  else await rt.parts.streams.openStandalone(sessionId, sink, opts.resumable && version >= '2025-11-25');
}

/** `DELETE /mcp`: ends the session on every instance. */
export async function handleDelete(
  rt: Runtime,
  req: IncomingMessage,
  res: ServerResponse,
  principal: Principal,
): Promise<void> {
  const sessionId = sessionIdOf(req);
  protocolVersionOf(req);
  await rt.parts.host.end(sessionId, principal.id);
  rt.parts.streams.dropSession(sessionId);
  await rt.parts.bus.broadcast({ t: 'deleted', sid: sessionId, from: rt.instanceId }).catch((e: unknown) => {
    // The record is gone already: other instances find out at their next store round trip.
    rt.onError(asError(e), sessionId);
  });
  res.writeHead(200).end();
}
