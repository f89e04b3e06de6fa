import type {
  JSONRPCMessage,
  LoggingLevel,
  MessageExtraInfo,
  RequestId,
} from '@modelcontextprotocol/sdk/types.js';
import { LoggingLevelSchema } from '@modelcontextprotocol/sdk/types.js';
import type { BusMessage, MessageBus } from './bus/message-bus.js';
import type { EventLog } from './events/event-log.js';
import type { LiveSession } from './host/live-session.js';
import type { SessionHost } from './host/session-host.js';
import type { StreamRouter } from './host/stream-router.js';
import type { Logger } from './logger.js';
import type { FleetMetrics } from './metrics.js';
import type { SessionStore } from './store/session-store.js';
import type { StreamRegistry } from './store/stream-registry.js';
import type { FleetTransport } from './transport/fleet-transport.js';
import { isNotification, isRequest, isResponse } from './transport/jsonrpc.js';
import { issuerOf, type OutgoingRequests } from './transport/outgoing-requests.js';
import type { ResolvedOptions } from './options.js';

/** Everything one instance runs on; shared by the HTTP fronts. */
export interface RuntimeParts {
  options: ResolvedOptions;
  store: SessionStore;
  bus: MessageBus;
  log: EventLog | undefined;
  registry: StreamRegistry;
  host: SessionHost;
  streams: StreamRouter;
  outgoing: OutgoingRequests<FleetTransport>;
  logger: Logger;
  metrics: FleetMetrics;
}

/**
 * Routes client messages to wherever they must go: the local copy of the session, or (for answers
 * to server→client requests and cancellations of requests running elsewhere) the instance that waits
 * for them. Also applies what other instances broadcast.
 */
export class Runtime {
  closing = false;
  /** Resolves when the store can take commands (waits briefly during a connect), else rejects with 503. */
  storeGate: () => Promise<void> = () => Promise.resolve();
  /** Handles the legacy HTTP+SSE transport's bus messages (`t` starting with `legacy-`); set by its routes. */
  legacy: ((msg: BusMessage) => void) | undefined;

  constructor(readonly parts: RuntimeParts) {}

  get instanceId(): string {
    return this.parts.options.instanceId;
  }

  /** Reports a non-fatal error: a log line with the session id. */
  onError(err: Error, sessionId?: string): void {
    this.parts.logger.warn({ err, sessionId }, err.message);
  }

  /** Delivers one client message of a session that this instance has live. */
  route(session: LiveSession, message: JSONRPCMessage, extra?: MessageExtraInfo): void {
    if (isResponse(message)) {
      this.routeAnswer(session.id, message.id ?? null, message);
      return;
    }
    if (isRequest(message)) {
      session.transport.receive(message, extra);
      return;
    }
    if (isNotification(message)) {
      if (message.method === 'notifications/cancelled') {
        const rid = message.params?.requestId as RequestId | undefined;
        if (rid === undefined) return;
        if (session.transport.handles(rid)) {
          session.transport.receive(message, extra);
          session.transport.cancelled(rid);
        } else {
          // Running on another instance (or already finished): whoever runs it aborts it.
          void this.parts.bus
            .broadcast({ t: 'cancel', sid: session.id, message, from: this.instanceId })
            .catch((e: unknown) => this.onError(asError(e), session.id));
        }
        return;
      }
      if (message.method === 'notifications/progress') {
        const token = message.params?.progressToken as RequestId | undefined;
        if (token !== undefined && issuerOf(token) !== undefined) {
          this.routeAnswer(session.id, token, message);
          return;
        }
      }
      session.transport.receive(message, extra);
    }
  }

  /**
   * Shares session-wide state changes before the request is handled, so that once the client has
   * its answer every instance applies them: `logging/setLevel` and resource subscriptions go to the
   * record and are broadcast to the live copies elsewhere.
   */
  async prepare(session: LiveSession, messages: JSONRPCMessage[]): Promise<void> {
    for (const m of messages) {
      if (!isRequest(m)) continue;
      if (m.method === 'logging/setLevel') await this.shareLogLevel(session, m.params?.level);
      else if (m.method === 'resources/subscribe' || m.method === 'resources/unsubscribe') {
        await this.shareSubscription(session, m.method, m.params?.uri);
      }
    }
  }

  /** Handles a message from the bus. */
  onBus(msg: BusMessage): void {
    const sid = typeof msg.sid === 'string' ? msg.sid : '';
    const { host } = this.parts;
    if (msg.t.startsWith('legacy-')) {
      this.legacy?.(msg);
      return;
    }
    switch (msg.t) {
      case 'deleted':
        host.drop(sid);
        this.parts.streams.dropSession(sid);
        return;
      case 'answer': {
        this.deliverAnswer(msg.message as JSONRPCMessage);
        return;
      }
      case 'cancel': {
        if (msg.from === this.instanceId) return;
        const live = host.peek(sid);
        const message = msg.message as JSONRPCMessage;
        const rid = (message as { params?: { requestId?: RequestId } }).params?.requestId;
        if (live && rid !== undefined && live.transport.handles(rid)) {
          live.transport.receive(message);
          live.transport.cancelled(rid);
        }
        return;
      }
      case 'setLevel':
        if (msg.from === this.instanceId) return;
        void host
          .applyLogLevel(sid, msg.level as LoggingLevel)
          .catch((e: unknown) => this.onError(asError(e), sid));
        return;
      case 'subscriptions': {
        if (msg.from === this.instanceId || !Array.isArray(msg.subscriptions)) return;
        void host
          .applySubscriptions(sid, msg.subscriptions as string[])
          .catch((e: unknown) => this.onError(asError(e), sid));
        return;
      }
      default:
        this.parts.streams.onBus(msg);
    }
  }

  /** An answer (response or progress) to a server→client request: deliver here or forward to its issuer. */
  private routeAnswer(sessionId: string, wireId: RequestId | null, message: JSONRPCMessage): void {
    const issuer = wireId === null ? undefined : issuerOf(wireId);
    if (issuer === undefined) {
      this.onError(
        new Error(`answer for a request this server never sent (id ${String(wireId)}); dropped`),
        sessionId,
      );
      return;
    }
    if (issuer === this.instanceId) {
      this.deliverAnswer(message);
      return;
    }
    this.parts.metrics.forwardedAnswer();
    void this.parts.bus
      .send(issuer, { t: 'answer', sid: sessionId, message })
      .then((n) => {
        if (n === 0)
          this.onError(
            new Error(`instance ${issuer} that awaits answer ${String(wireId)} is gone`),
            sessionId,
          );
      })
      .catch((e: unknown) => this.onError(asError(e), sessionId));
  }

  private deliverAnswer(message: JSONRPCMessage): void {
    const { outgoing } = this.parts;
    if (isResponse(message)) {
      const entry = message.id === null ? undefined : outgoing.take(String(message.id));
      if (!entry) {
        this.onError(new Error(`response ${String(message.id)} for a request nobody waits for; dropped`));
        return;
      }
      entry.owner.receive({ ...message, id: entry.originalId });
      return;
    }
    if (isNotification(message) && message.method === 'notifications/progress') {
      const token = String(message.params?.progressToken);
      const entry = outgoing.peek(token);
      if (!entry) return;
      entry.owner.receive({
        ...message,
        params: { ...message.params, progressToken: entry.originalId },
      } as JSONRPCMessage);
    }
  }

  private shareLogLevel(session: LiveSession, level: unknown): void {
    const parsed = LoggingLevelSchema.safeParse(level);
    if (!parsed.success) return; // the SDK answers the client with the validation error
    session.record = { ...session.record, logLevel: parsed.data };
    const { store, bus } = this.parts;
    void store
      .update(session.id, { logLevel: parsed.data })
      .then(() =>
        bus.broadcast({ t: 'setLevel', sid: session.id, level: parsed.data, from: this.instanceId }),
      )
      .catch((e: unknown) => this.onError(asError(e), session.id));
  }

  private shareSubscription(session: LiveSession, method: string, uri: unknown): void {
    if (typeof uri !== 'string') return;
    const current = new Set(session.record.subscriptions ?? []);
    if (method === 'resources/subscribe') current.add(uri);
    else current.delete(uri);
    const subscriptions = [...current];
    session.record = { ...session.record, subscriptions };
    const { store, bus } = this.parts;
    void store
      .update(session.id, { subscriptions })
      .then(() =>
        bus.broadcast({ t: 'subscriptions', sid: session.id, subscriptions, from: this.instanceId }),
      )
      .catch((e: unknown) => this.onError(asError(e), session.id));
  }
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}
