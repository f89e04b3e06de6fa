import type { JSONRPCMessage, MessageExtraInfo, RequestId } from '@modelcontextprotocol/sdk/types.js';
import { FleetError } from '../errors.js';
import type { EventLog } from '../events/event-log.js';
import type { FleetTransport } from '../transport/fleet-transport.js';
import { isNotification, isRequest } from '../transport/jsonrpc.js';
import { OutboundStream, type StreamSink } from '../transport/outbound-stream.js';
import type { LiveSession } from './live-session.js';
import type { SessionState } from './session-state.js';

/**
 * Where the answers to one POST go: the HTTP response on this instance, or — for messages forwarded
 * by another instance — that instance's connection, over the bus.
 */
export interface Reply {
  /** Id of the stream that carries the answers (chosen by the instance holding the connection). */
  readonly streamId: string;
  /** Whether the stream is logged (resumable). */
  readonly resumable: boolean;
  /** Whether the handlers may close the connection for polling (`closeSSEStream`). */
  readonly polling: boolean;
  /** The messages hold no request: they were accepted (202). */
  accepted(): void;
  /** The messages hold requests: opens the stream their answers go to. */
  open(): StreamSink;
  /** Closes the connection with a retry hint; the client resumes (SSE polling). */
  closeStream(retryMs: number): void;
}

/** What {@link dispatchToCopy} needs besides the copy. */
export interface DispatchContext {
  log: EventLog | undefined;
  state: SessionState;
  sseRetryMs: number;
  /** The copy's append was refused: it must step down (`replaced`) or its session is gone. */
  onFenced(copy: LiveSession, reason: 'replaced' | 'expired'): void;
  /** Closes the session's standalone connection, wherever it is held (handlers' `closeStandaloneSSEStream`). */
  closeStandalone(sessionId: string, retryMs: number): void;
  onError(err: Error, sessionId?: string): void;
}

/**
 * Hands a session's client requests and notifications to its one live copy (on the owner), and
 * opens the answer: 202 when there is no request, else a stream bound to each request. Resolves once
 * the messages are dispatched (and a `notifications/initialized` among them is recorded).
 */
export async function dispatchToCopy(
  ctx: DispatchContext,
  copy: LiveSession,
  messages: JSONRPCMessage[],
  reply: Reply,
  extra: MessageExtraInfo,
): Promise<void> {
  // A copy closing (stepped down, handed off, evicted) ended its streams already: one registered now
  // would never be answered. The caller looks for the session's owner again.
  if (copy.isClosed) throw new CopyClosed();
  const transport = copy.transport as FleetTransport;
  const rejoin = rejoinOf(transport, messages);
  if (rejoin !== undefined) throw new Rejoin(rejoin);
  const ids = new Set<RequestId>();
  for (const m of messages) {
    if (!isRequest(m)) continue;
    // A request id still in flight (or twice in one batch) would steal the other request's stream.
    if (ids.has(m.id) || transport.handles(m.id)) {
      throw new FleetError(
        'INVALID_REQUEST',
        `Invalid Request: request id ${JSON.stringify(m.id)} is already in use`,
      );
    }
    ids.add(m.id);
  }
  const recorded = ctx.state.prepare(copy, messages);
  copy.lastActivity = Date.now();

  if (ids.size === 0) {
    for (const m of messages) deliver(transport, m, extra);
    await recorded;
    reply.accepted();
    return;
  }

  const sessionId = copy.id;
  const stream = new OutboundStream(sessionId, reply.streamId, reply.resumable ? ctx.log : undefined, {
    onError: (err) => ctx.onError(err, sessionId),
    onEnded: (s) => {
      if (copy.streams.get(s.streamId) === s) copy.streams.delete(s.streamId);
    },
    fence: () => copy.fence,
    onFenced: (reason) => ctx.onFenced(copy, reason),
    fresh: true,
  });
  copy.streams.set(reply.streamId, stream);
  stream.attach(reply.open());
  for (const m of messages) if (isRequest(m)) transport.bind(m.id, stream, m);
  const polling: MessageExtraInfo = reply.polling
    ? {
        ...extra,
        closeSSEStream: () => reply.closeStream(ctx.sseRetryMs),
        closeStandaloneSSEStream: () => ctx.closeStandalone(sessionId, ctx.sseRetryMs),
      }
    : extra;
  for (const m of messages) deliver(transport, m, isRequest(m) ? polling : extra);
  await recorded;
}

/**
 * The messages are a POST sent again (a load balancer retried it after the first instance died, or
 * the client did): the same requests, still running here on one stream. The sender then resumes
 * that stream from its start instead of running them twice.
 */
export class Rejoin extends Error {
  constructor(readonly streamId: string) {
    super(`rejoin stream ${streamId}`);
  }
}

/** The copy was closing when messages reached it: route them again (they did not run). */
export class CopyClosed extends Error {
  constructor() {
    super('the copy is closing');
  }
}

/** The stream a resent POST's requests all run on, if the messages are exactly such a resend. */
function rejoinOf(transport: FleetTransport, messages: JSONRPCMessage[]): string | undefined {
  let streamId: string | undefined;
  for (const m of messages) {
    if (!isRequest(m)) return undefined;
    const running = transport.running(m.id);
    if (!running?.request || JSON.stringify(running.request) !== JSON.stringify(m)) return undefined;
    if (streamId !== undefined && running.stream.streamId !== streamId) return undefined;
    streamId = running.stream.streamId;
  }
  return streamId;
}

/** Delivers one client message to the copy's SDK Protocol. */
function deliver(transport: FleetTransport, message: JSONRPCMessage, extra: MessageExtraInfo): void {
  if (isNotification(message) && message.method === 'notifications/cancelled') {
    const rid = message.params?.requestId as RequestId | undefined;
    // A cancellation of a request that finished (or never ran) here has nothing to stop.
    if (rid === undefined || !transport.handles(rid)) return;
    transport.receive(message, extra);
    transport.cancelled(rid);
    return;
  }
  transport.receive(message, extra);
}
