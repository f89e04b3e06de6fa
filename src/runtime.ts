import type {
  JSONRPCMessage,
  LoggingLevel,
  MessageExtraInfo,
  RequestId,
} from '@modelcontextprotocol/sdk/types.js';
import { LoggingLevelSchema } from '@modelcontextprotocol/sdk/types.js';
import { FleetError, asError } from './errors.js';
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
   * Makes session-wide state changes stick on every instance: once the SDK has answered
   * `logging/setLevel` or `resources/(un)subscribe` successfully — and before the client sees the
   * answer — the change is written to the record and broadcast to the live copies elsewhere. A failed
   * write turns the answer into an error. Throws a 400 for subscriptions beyond the limits.
   */
  prepare(session: LiveSession, messages: JSONRPCMessage[]): void {
    for (const m of messages) {
      if (!isRequest(m)) continue;
      if (m.method === 'logging/setLevel') {
        const parsed = LoggingLevelSchema.safeParse(m.params?.level);
        if (!parsed.success) continue; // the SDK answers the client with the validation error
        this.afterSuccess(session, m.id, () => this.shareLogLevel(session, parsed.data));
      } else if (m.method === 'resources/subscribe' || m.method === 'resources/unsubscribe') {
        const uri = m.params?.uri;
        if (typeof uri !== 'string') continue; // the SDK answers with the validation error
        const subscribe = m.method === 'resources/subscribe';
        if (subscribe) {
          checkSubscription(session, uri);
          session.pendingSubscriptions.add(uri);
        }
        this.afterSuccess(
          session,
          m.id,
          () => this.shareSubscription(session, subscribe, uri),
          () => session.pendingSubscriptions.delete(uri),
        );
      }
    }
  }

  private afterSuccess(
    session: LiveSession,
    id: RequestId,
    persist: () => Promise<void>,
    settle: () => void = () => {},
  ): void {
    session.transport.whenAnswered(id, async (response) => {
      try {
        if (!('result' in response)) return response;
        await persist();
        return response;
      } catch (err) {
        this.onError(asError(err), session.id);
        return {
          jsonrpc: '2.0',
          id,
          error: { code: -32603, message: 'Session store unavailable: change not saved' },
        };
      } finally {
        settle();
      }
    });
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
        host.drop(sid, 'deleted');
        this.parts.streams.dropSession(sid);
        return;
      case 'answer': {
        this.deliverAnswer(sid, msg.message as JSONRPCMessage);
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
      this.deliverAnswer(sessionId, message);
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

  /** Hands an answer to the request waiting for it — only if it came from that request's session. */
  private deliverAnswer(sessionId: string, message: JSONRPCMessage): void {
    const { outgoing } = this.parts;
    if (isResponse(message)) {
      const wireId = message.id === null || message.id === undefined ? '' : String(message.id);
      const entry = outgoing.peek(wireId);
      if (!entry || entry.owner.sessionId !== sessionId) {
        this.onError(
          new Error(`response ${wireId} for a request nobody in this session waits for; dropped`),
          sessionId,
        );
        return;
      }
      outgoing.take(wireId);
      entry.owner.receive({ ...message, id: entry.originalId });
      return;
    }
    if (isNotification(message) && message.method === 'notifications/progress') {
      const token = String(message.params?.progressToken);
      const entry = outgoing.peek(token);
      if (!entry || entry.owner.sessionId !== sessionId) return;
      entry.owner.receive({
        ...message,
        params: { ...message.params, progressToken: entry.originalId },
      } as JSONRPCMessage);
    }
  }

  private async shareLogLevel(session: LiveSession, level: LoggingLevel): Promise<void> {
    await this.parts.store.update(session.id, { logLevel: level });
    session.record = { ...session.record, logLevel: level };
    await this.parts.bus
      .broadcast({ t: 'setLevel', sid: session.id, level, from: this.instanceId })
      .catch((e: unknown) => this.onError(asError(e), session.id)); // stored: a hydration still sees it
  }

  /**
   * Saves one subscription change. Saves of one copy run one after another, each on top of the last,
   * so a batch (or concurrent requests) of subscribes loses none of them.
   */
  private shareSubscription(session: LiveSession, subscribe: boolean, uri: string): Promise<void> {
    const save = async () => {
      const current = new Set(session.record.subscriptions ?? []);
      if (subscribe) current.add(uri);
      else current.delete(uri);
      const subscriptions = [...current];
      await this.parts.store.update(session.id, { subscriptions });
      session.record = { ...session.record, subscriptions };
      await this.parts.bus
        .broadcast({ t: 'subscriptions', sid: session.id, subscriptions, from: this.instanceId })
        .catch((e: unknown) => this.onError(asError(e), session.id));
    };
    const next = session.subscriptionSaves.then(save, save);
    session.subscriptionSaves = next.catch(() => undefined); // a failed save is reported by its request
    return next;
  }
}

/** Most resource subscriptions one session may hold, and the longest URI (each is replayed on hydration). */
export const MAX_SUBSCRIPTIONS = 256;
export const MAX_SUBSCRIPTION_URI = 2048;

function checkSubscription(session: LiveSession, uri: string): void {
  if (uri.length > MAX_SUBSCRIPTION_URI) {
    throw new FleetError(
      'INVALID_REQUEST',
      `Invalid Request: resource URI longer than ${MAX_SUBSCRIPTION_URI}`,
    );
  }
  const subs = new Set([...(session.record.subscriptions ?? []), ...session.pendingSubscriptions]);
  if (subs.size >= MAX_SUBSCRIPTIONS && !subs.has(uri)) {
    throw new FleetError(
      'INVALID_REQUEST',
      `Invalid Request: more than ${MAX_SUBSCRIPTIONS} resource subscriptions`,
    );
  }
}
