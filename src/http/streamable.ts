import type { IncomingMessage, ServerResponse } from 'node:http';
import type { JSONRPCMessage, JSONRPCRequest, MessageExtraInfo } from '@modelcontextprotocol/sdk/types.js';
import {
  DEFAULT_NEGOTIATED_PROTOCOL_VERSION,
  InitializeRequestSchema,
  JSONRPCMessageSchema,
  SUPPORTED_PROTOCOL_VERSIONS,
} from '../transport/schemas.js';
import { FleetError } from '../errors.js';
import { isModernPost } from '../modern/envelope.js';
import { assertSessionId } from '../session-id.js';
import type { PostResponder } from '../session/session-service.js';
import type { Principal } from '../types.js';
import { decodeEventId } from '../transport/event-id.js';
import { isRequest } from '../transport/jsonrpc.js';
import type { ClientConnection } from '../transport/connection.js';
import { accepts, isJsonContentType, readBody } from './body.js';
import type { HttpContext } from './context.js';
import { JsonSink } from './json-sink.js';
import { SseSink } from './sse-sink.js';

const MAX_BATCH = 100;
/**
 * Deepest nesting of objects and arrays accepted in a message. `JSON.parse` takes thousands of levels
 * but `JSON.stringify` (storing the session, forwarding on the bus) and schema validation recurse and
 * fail far below that: such a message is refused here with a 400, not failed later as an outage.
 */
export const MAX_JSON_DEPTH = 128;

/** True when `text` (JSON) nests objects/arrays deeper than `limit`; a linear scan, no recursion. */
function nestsDeeperThan(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > limit) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

/** Parses and validates a POST body into JSON-RPC messages (400 on anything else). */
export function parseMessages(body: Buffer): { messages: JSONRPCMessage[]; batch: boolean } {
  let raw: unknown;
  const text = body.toString('utf8');
  try {
    raw = JSON.parse(text);
  } catch {
    throw new FleetError('PARSE_ERROR', 'Parse error: Invalid JSON');
  }
  if (nestsDeeperThan(text, MAX_JSON_DEPTH)) {
    throw new FleetError(
      'INVALID_REQUEST',
      `Invalid Request: JSON nested deeper than ${MAX_JSON_DEPTH} levels`,
    );
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
    return parsed.data as JSONRPCMessage;
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

/** Resumable streams start with a priming event: clients from 2025-11-25 on accept an empty data field. */
function primes(ctx: HttpContext, version: string): boolean {
  return ctx.options.resumable && !ctx.options.jsonResponse && version >= '2025-11-25';
}

/** `POST /mcp`: initialize, or any message of an existing session. */
export async function handlePost(
  ctx: HttpContext,
  req: IncomingMessage,
  res: ServerResponse,
  principal: Principal,
): Promise<void> {
  const opts = ctx.options;
  if (!isJsonContentType(req.headers['content-type'])) {
    throw new FleetError(
      'UNSUPPORTED_MEDIA_TYPE',
      'Unsupported Media Type: Content-Type must be application/json',
    );
  }
  const body = await readBody(req, opts.maxBodyBytes);
  const { messages, batch } = parseMessages(body);
  if (
    req.headers['mcp-session-id'] === undefined &&
    isModernPost(req.headers['mcp-protocol-version'], messages)
  ) {
    // 2026-07-28: no session; the SDK v2 serves it with a server built for this request.
    await ctx.modern.serve(req, res, body, batch ? messages : messages[0], principal);
    return;
  }
  const accept = req.headers.accept;
  if (!accepts(accept, 'application/json') || !accepts(accept, 'text/event-stream')) {
    throw new FleetError(
      'NOT_ACCEPTABLE',
      'Not Acceptable: Client must accept both application/json and text/event-stream',
    );
  }
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
    const { sessionId, response } = await ctx.service.initialize(principal, init, extra);
    const headers: Record<string, string> = sessionId ? { 'mcp-session-id': sessionId } : {};
    if (opts.jsonResponse) {
      res.writeHead(200, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(response));
      return;
    }
    const sink = new SseSink(res, { headers, keepAliveMs: opts.keepAliveMs });
    sink.write(response, undefined);
    sink.end();
    return;
  }

  const sessionId = sessionIdOf(req);
  const version = protocolVersionOf(req);
  const headers = { 'mcp-session-id': sessionId };
  const priming = primes(ctx, version);
  let connection: ClientConnection | undefined;
  const responder: PostResponder = {
    priming,
    accepted: () => {
      res.writeHead(202).end();
    },
    connection: () => {
      connection ??= opts.jsonResponse
        ? new JsonSink(res, headers, opts.keepAliveMs, batch)
        : new SseSink(res, {
            headers,
            keepAliveMs: opts.keepAliveMs,
            maxBufferBytes: opts.maxStreamBufferBytes,
            retryMs: priming ? opts.sseRetryMs : undefined,
            deferHead: true,
          });
      return connection;
    },
  };
  await ctx.service.post({ sessionId, principal, messages, extra, protocolVersion: version }, responder);
}

/** `GET /mcp`: the standalone stream, or the resumption of any stream with `Last-Event-ID`. */
export async function handleGet(
  ctx: HttpContext,
  req: IncomingMessage,
  res: ServerResponse,
  principal: Principal,
): Promise<void> {
  const opts = ctx.options;
  if (!accepts(req.headers.accept, 'text/event-stream')) {
    throw new FleetError('NOT_ACCEPTABLE', 'Not Acceptable: Client must accept text/event-stream');
  }
  const sessionId = sessionIdOf(req);
  const version = protocolVersionOf(req);
  const lastEventIdRaw = req.headers['last-event-id'];
  const lastEventId = Array.isArray(lastEventIdRaw) ? lastEventIdRaw[0] : lastEventIdRaw;
  const cursor = lastEventId !== undefined ? decodeEventId(lastEventId) : undefined;
  const priming = opts.resumable && version >= '2025-11-25';
  const sink = new SseSink(res, {
    headers: { 'mcp-session-id': sessionId },
    keepAliveMs: opts.keepAliveMs,
    maxBufferBytes: opts.maxStreamBufferBytes,
    retryMs: priming ? opts.sseRetryMs : undefined,
    deferHead: true,
  });
  if (cursor) await ctx.service.resume(sessionId, principal, cursor, sink, version);
  else await ctx.service.openStandalone(sessionId, principal, sink, priming, version);
}

/** `DELETE /mcp`: ends the session on every instance. */
export async function handleDelete(
  ctx: HttpContext,
  req: IncomingMessage,
  res: ServerResponse,
  principal: Principal,
): Promise<void> {
  const sessionId = sessionIdOf(req);
  protocolVersionOf(req);
  await ctx.service.end(sessionId, principal);
  res.writeHead(200).end();
}
