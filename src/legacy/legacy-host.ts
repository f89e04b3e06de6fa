import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import type { InitializeRequest, JSONRPCMessage, MessageExtraInfo } from '@modelcontextprotocol/sdk/types.js';
import type { BusMessage } from '../bus/message-bus.js';
import { FleetError, storeUnavailable, asError } from '../errors.js';
import type { AnyProtocol } from '../host/live-session.js';
import { SseSink } from '../http/sse-sink.js';
import type { Runtime } from '../runtime.js';
import { newSessionId } from '../session-id.js';
import type { SessionRecord } from '../store/session-store.js';
import type { Principal, SessionCloseReason } from '../types.js';
import type { CopyLifecycle } from '../session/copy-lifecycle.js';
import { LegacyTransport } from './legacy-transport.js';

/** Stream id of a legacy session's one `GET /sse` stream in the {@link StreamRegistry}. */
export const LEGACY_STREAM_ID = 'sse';

/** Protocol version of the HTTP+SSE transport; stored until the client's `initialize` names its own. */
const LEGACY_PROTOCOL_VERSION = '2024-11-05';

/**
 * The stored `initialize` of a legacy session. The record is created at `GET /sse`, before the client
 * sent anything; the real handshake reaches only the owner's server, and a legacy session is never
 * hydrated elsewhere, so the placeholder is never replayed.
 */
const PENDING_INITIALIZE: InitializeRequest['params'] = {
  protocolVersion: LEGACY_PROTOCOL_VERSION,
  capabilities: {},
  clientInfo: { name: '(legacy HTTP+SSE: initialize not stored)', version: '0' },
};

/**
 * Bus messages of the legacy transport (JSON over the instance channels):
 * - `legacy-post` → owner: a client message POSTed to another instance. The owner answers with
 *   `legacy-ack` to `ackTo`, `ok: true` once its server has the message, `ok: false` if it does not
 *   hold the session (any more).
 * - `legacy-ack` → the POSTing instance.
 * - `legacy-end` → owner: the session was marked ended because the owner did not answer in time;
 *   if the owner is alive after all, it closes the stream.
 */
interface LegacyPost extends BusMessage {
  t: 'legacy-post';
  sid: string;
  principal: string;
  message: JSONRPCMessage;
  authInfo?: AuthInfo;
  headers: Record<string, string | string[] | undefined>;
  ackTo: string;
  ackId: string;
}

/** One legacy session on the instance that holds its stream. */
interface LegacySession {
  readonly record: SessionRecord;
  readonly sink: SseSink;
  readonly transport: LegacyTransport;
  protocol?: AnyProtocol;
  lifecycle?: CopyLifecycle;
  /** Last client message (ms since the epoch): the idle TTL slides from here, as in the store. */
  lastActivity: number;
  ended: boolean;
}

/** Outcome of waiting for an owner's `legacy-ack`. */
type AckOutcome = 'accepted' | 'refused' | 'timeout';

/** How often a request waiting for the bus subscription checks it. */
const BUS_POLL_MS = 20;

const notFound = () => new FleetError('SESSION_NOT_FOUND', 'Session not found');
const ownerGone = () =>
  new FleetError('OWNER_GONE', 'Session not found: the instance holding its stream is gone');

/**
 * The legacy HTTP+SSE transport across instances. The instance that gets `GET /sse` owns the session:
 * it runs the user's server and writes everything to that stream. `POST /messages` works on every
 * instance: the owner delivers locally, any other instance forwards the message over the bus and
 * answers `202` only once the owner acknowledged it. No ack within `legacyPostTimeoutMs` (or no owner
 * on the bus at all) means the owner is gone: `404`, and the session is marked ended.
 */
export class LegacyHost {
  private readonly sessions = new Map<string, LegacySession>();
  private readonly acks = new Map<string, (outcome: AckOutcome) => void>();
  private readonly forwarding = new Set<Promise<unknown>>();
  private readonly ackPrefix = randomBytes(6).toString('hex');
  private ackSeq = 0;
  private readonly timer: NodeJS.Timeout;
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly rt: Runtime,
    /** Whether this instance's bus channel is subscribed right now. */
    private readonly busUp: () => boolean,
  ) {
    // One timer for the registry heartbeat and the idle sweep: no per-session timers.
    this.timer = setInterval(() => this.tick(), rt.parts.options.streamHeartbeatMs);
    this.timer.unref();
  }

  /** Number of legacy streams this instance holds. */
  get size(): number {
    return this.sessions.size;
  }

  /**
   * `GET /sse`: creates a session owned by this instance, with its record in the store and its
   * transport session record in the registry, and sends the `endpoint` event.
   */
  async open(res: ServerResponse, principal: Principal, endpointPath: string): Promise<void> {
    // While the subscription is down, POSTs forwarded here would find no receiver and end the session.
    await this.whenBusUp();
    const { store, registry, host, options } = this.rt.parts;
    const now = Date.now();
    const record: SessionRecord = {
      id: newSessionId(),
      principal: principal.id,
      transport: 'sse',
      protocolVersion: LEGACY_PROTOCOL_VERSION,
      initialize: PENDING_INITIALIZE,
      createdAt: now,
      owner: this.rt.instanceId,
    };
    // The head waits until the session exists, so a failure below is still a plain error response.
    if (this.sessions.size >= options.maxLegacySessions) {
      // Each legacy stream holds a live server for its whole life: bound them per instance.
      throw new FleetError(
        'TOO_MANY_STREAMS',
        'Service Unavailable: too many open SSE streams on this instance',
      );
    }
    const sink = new SseSink(res, {
      keepAliveMs: options.keepAliveMs,
      maxBufferBytes: options.maxStreamBufferBytes,
      deferHead: true,
    });
    const session: LegacySession = {
      record,
      sink,
      transport: new LegacyTransport(record.id, sink, () => void this.end(session, 'server closed')),
      lastActivity: now,
      ended: false,
    };
    const connected = await host.connectServer(record, session.transport);
    session.protocol = connected.protocol;
    session.lifecycle = connected.lifecycle;
    try {
      await store.create(record);
      await registry.claim({
        sessionId: record.id,
        streamId: LEGACY_STREAM_ID,
        transport: 'sse',
        instanceId: this.rt.instanceId,
        createdAt: now,
        lastSeenAt: now,
        active: true,
      });
    } catch (err) {
      session.ended = true; // nothing was announced yet: undo quietly
      await this.teardown(session);
      throw storeUnavailable(err);
    }
    if (this.closed) {
      await this.end(session, 'instance shutting down');
      throw new FleetError('SHUTTING_DOWN', 'Server is shutting down');
    }
    this.sessions.set(record.id, session);
    this.rt.parts.metrics.sessionCreated('sse');
    // Also runs at once when the client already went away during the setup above.
    sink.onceClosed(() => void this.end(session, 'stream closed'));
    sink.open();
    const query = `sessionId=${encodeURIComponent(record.id)}`;
    sink.raw(`event: endpoint\ndata: ${endpointPath}?${query}\n\n`);
  }

  /**
   * `POST /messages`: delivers `message` to the session's server, wherever its stream is held. Resolves
   * once the owner has the message; rejects with a 404 for an unknown, foreign or ended session.
   */
  async post(
    sessionId: string,
    principal: Principal,
    message: JSONRPCMessage,
    extra: MessageExtraInfo,
  ): Promise<void> {
    const held = this.sessions.get(sessionId);
    if (held && !held.ended) {
      // Held here: the principal is checked in memory, so another principal's request never slides
      // the session's TTL in the store.
      if (held.record.principal !== principal.id) throw notFound();
      if (!(await this.rt.parts.store.touch(sessionId))) {
        // Removed from the store (marked ended by an instance that gave up waiting for our ack).
        await this.end(held, 'record gone from the store');
        throw notFound();
      }
      if (this.deliver(sessionId, principal.id, message, extra)) return;
      throw ownerGone(); // ended while the store answered
    }
    // Not held here. Another principal's session is not refreshed (nor revealed) by this load.
    const record = await this.rt.parts.store.load(sessionId, principal.id);
    if (!record || record.transport !== 'sse' || record.principal !== principal.id) throw notFound();
    if (record.owner === this.rt.instanceId) {
      // The record names us but the stream is gone (it just closed, or we restarted under the same id).
      await this.markEnded(record, false);
      throw ownerGone();
    }
    const forward = this.forward(record, principal, message, extra);
    this.forwarding.add(forward);
    try {
      await forward;
    } finally {
      this.forwarding.delete(forward);
    }
  }

  /** Handles a `legacy-*` bus message. */
  onBus(msg: BusMessage): void {
    switch (msg.t) {
      case 'legacy-post': {
        const m = msg as LegacyPost;
        const extra: MessageExtraInfo = { authInfo: m.authInfo, requestInfo: { headers: m.headers ?? {} } };
        const ok =
          typeof m.sid === 'string' &&
          typeof m.message === 'object' &&
          m.message !== null &&
          this.deliver(m.sid, m.principal, m.message, extra);
        if (typeof m.ackTo !== 'string') return;
        void this.rt.parts.bus
          .send(m.ackTo, { t: 'legacy-ack', ackId: m.ackId, ok })
          .catch((e: unknown) => this.rt.onError(asError(e), m.sid));
        return;
      }
      case 'legacy-ack':
        this.acks.get(String(msg.ackId))?.(msg.ok === true ? 'accepted' : 'refused');
        return;
      case 'legacy-end': {
        const session = this.sessions.get(String(msg.sid));
        if (session) void this.end(session, 'marked ended by another instance');
        return;
      }
    }
  }

  /**
   * Ends every legacy session held here (legacy clients cannot resume a stream elsewhere). POSTs
   * waiting for an owner's ack finish first, so their answers stay truthful. Idempotent; bounded by
   * `legacyPostTimeoutMs` plus one store round trip.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      clearInterval(this.timer);
      await Promise.allSettled([...this.forwarding]);
      await Promise.allSettled([...this.sessions.values()].map((s) => this.end(s, 'instance shutting down')));
    })();
    return this.closing;
  }

  /** Hands a message to a session held here; false when it is not (or not for this principal). */
  private deliver(
    sessionId: string,
    principal: string,
    message: JSONRPCMessage,
    extra: MessageExtraInfo,
  ): boolean {
    const session = this.sessions.get(sessionId);
    if (!session || session.ended || session.record.principal !== principal) return false;
    session.lastActivity = Date.now();
    session.transport.receive(message, extra);
    return true;
  }

  /** Sends a message to the owner and waits for its ack (at most `legacyPostTimeoutMs`). */
  private async forward(
    record: SessionRecord,
    principal: Principal,
    message: JSONRPCMessage,
    extra: MessageExtraInfo,
  ): Promise<void> {
    await this.whenBusUp(); // the ack comes back on our own channel
    const ackId = `${this.ackPrefix}-${++this.ackSeq}`;
    // Registered before sending: the ack may arrive before PUBLISH's own reply does.
    const outcome = new Promise<AckOutcome>((resolve) => {
      const timer = setTimeout(() => settle('timeout'), this.rt.parts.options.legacyPostTimeoutMs);
      const settle = (o: AckOutcome) => {
        clearTimeout(timer);
        this.acks.delete(ackId);
        resolve(o);
      };
      this.acks.set(ackId, settle);
    });
    const post: LegacyPost = {
      t: 'legacy-post',
      sid: record.id,
      principal: principal.id,
      message,
      // The bearer token stays here: pub/sub is readable by anything allowed to SUBSCRIBE or MONITOR.
      authInfo: extra.authInfo ? { ...extra.authInfo, token: '' } : undefined,
      headers: forwardableHeaders(extra.requestInfo?.headers ?? {}),
      ackTo: this.rt.instanceId,
      ackId,
    };
    let receivers: number;
    try {
      receivers = await this.rt.parts.bus.send(record.owner, post);
    } catch (err) {
      // The bus (Redis) failed, not the owner: a 503 the client may retry; the session stays.
      this.acks.get(ackId)?.('refused');
      throw storeUnavailable(err);
    }
    if (receivers === 0) {
      this.acks.get(ackId)?.('refused');
      await this.markEnded(record, false);
      throw ownerGone();
    }
    const result = await outcome;
    if (result === 'accepted') return;
    await this.markEnded(record, result === 'timeout');
    throw ownerGone();
  }

  /**
   * Ends a session whose owner cannot take messages: removes its record and its transport session
   * record. After a timeout the owner may still be alive (just slow): it is told to close the stream.
   */
  private async markEnded(record: SessionRecord, tellOwner: boolean): Promise<void> {
    const { store, registry, bus } = this.rt.parts;
    const steps: Array<Promise<unknown>> = [
      store.delete(record.id),
      registry.release(record.id, LEGACY_STREAM_ID, record.owner),
    ];
    if (tellOwner) steps.push(bus.send(record.owner, { t: 'legacy-end', sid: record.id }));
    for (const r of await Promise.allSettled(steps)) {
      if (r.status === 'rejected') this.rt.onError(asError(r.reason), record.id);
    }
    this.rt.parts.logger.debug({ sessionId: record.id, owner: record.owner }, 'legacy session marked ended');
  }

  /** Ends a session held here: closes the stream and the server, removes both records. Idempotent. */
  private async end(session: LegacySession, reason: string): Promise<void> {
    if (session.ended) return;
    session.ended = true;
    this.rt.parts.logger.debug({ sessionId: session.record.id, reason }, 'legacy session ended');
    const closeReason: SessionCloseReason =
      reason === 'expired' ? 'expired' : reason === 'instance shutting down' ? 'shutdown' : 'deleted';
    await this.teardown(session, closeReason);
  }

  private async teardown(session: LegacySession, closeReason: SessionCloseReason = 'deleted'): Promise<void> {
    const id = session.record.id;
    if (this.sessions.get(id) === session) this.sessions.delete(id);
    // A stream never opened gets no head here: the request may still answer with an error status.
    if (session.sink.opened) session.sink.end();
    const { store, registry } = this.rt.parts;
    const results = await Promise.allSettled([
      session.protocol?.close().finally(() => session.lifecycle?.end(closeReason)),
      store.delete(id),
      registry.release(id, LEGACY_STREAM_ID, this.rt.instanceId),
    ]);
    for (const r of results) if (r.status === 'rejected') this.rt.onError(asError(r.reason), id);
  }

  /**
   * Resolves once this instance's bus channel is subscribed, waiting at most `redisCommandTimeoutMs`
   * (the first subscription at start, or a resubscription in progress); a 503 otherwise, so requests
   * fail fast while Redis is away, as the store's do.
   */
  private async whenBusUp(): Promise<void> {
    if (this.busUp()) return;
    const deadline = Date.now() + this.rt.parts.options.redisCommandTimeoutMs;
    while (!this.busUp()) {
      if (this.closed || Date.now() >= deadline) {
        throw storeUnavailable(new Error('message bus not subscribed'));
      }
      await new Promise((r) => setTimeout(r, BUS_POLL_MS));
    }
  }

  /** Renews the transport session records of held streams and ends sessions past their TTL. */
  private tick(): void {
    const { sessionTtlMs, maxSessionLifetimeMs } = this.rt.parts.options;
    const now = Date.now();
    const held: Array<{ sessionId: string; streamId: string }> = [];
    for (const s of this.sessions.values()) {
      if (now - s.lastActivity >= sessionTtlMs || now - s.record.createdAt >= maxSessionLifetimeMs) {
        void this.end(s, 'expired');
      } else {
        held.push({ sessionId: s.record.id, streamId: LEGACY_STREAM_ID });
      }
    }
    if (held.length === 0) return;
    this.rt.parts.registry
      .heartbeat(held, this.rt.instanceId)
      .catch((err: unknown) => this.rt.onError(new Error('legacy stream heartbeat failed', { cause: err })));
  }
}

/**
 * Header names never published on the bus: pub/sub messages can be read by anything allowed to
 * SUBSCRIBE (or MONITOR) on the Redis server, so credentials must not travel in them.
 */
const SENSITIVE_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie']);
/** Parts of header names that suggest a credential (`x-api-key`, `x-auth-token`, `x-client-secret`…). */
const SENSITIVE_PARTS = ['token', 'secret', 'key', 'auth', 'cookie', 'passw', 'credential'];

/**
 * The request headers a forwarded `legacy-post` carries to the owner: all but the sensitive ones
 * above. So on the owner, `extra.requestInfo.headers` of a message POSTed to another instance lacks
 * them (`Authorization` included), while a message POSTed to the owner itself has every header; the
 * principal check happened where the request arrived, and `extra.authInfo` is forwarded without its
 * `token` (an empty string), so handlers must not rely on the raw token of a legacy message.
 */
export function forwardableHeaders(
  headers: Record<string, string | string[] | undefined>,
): Record<string, string | string[] | undefined> {
  const out: Record<string, string | string[] | undefined> = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (SENSITIVE_HEADERS.has(lower) || SENSITIVE_PARTS.some((part) => lower.includes(part))) continue;
    out[name] = value;
  }
  return out;
}
