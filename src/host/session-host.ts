import { LRUCache } from 'lru-cache';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type {
  InitializeRequest,
  InitializeResult,
  JSONRPCMessage,
  JSONRPCRequest,
  LoggingLevel,
  MessageExtraInfo,
} from '@modelcontextprotocol/sdk/types.js';
import { FleetError, storeUnavailable, asError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { FleetMetrics } from '../metrics.js';
import { newSessionId } from '../session-id.js';
import type { SessionRecord, SessionStore, TransportKind } from '../store/session-store.js';
import type { JsonValue, ServerFactory, SessionCloseReason, SessionContext, SessionData } from '../types.js';
import { FleetTransport } from '../transport/fleet-transport.js';
import type { AnyResponse } from '../transport/jsonrpc.js';
import type { OutgoingRequests } from '../transport/outgoing-requests.js';
import { LiveSession, type AnyProtocol } from './live-session.js';
import { CopyLifecycle } from '../session/copy-lifecycle.js';
import type { OutboundStream } from '../transport/outbound-stream.js';

/** What the host needs from the rest of the fleet. */
export interface SessionHostDeps {
  factory: ServerFactory<JsonValue>;
  store: SessionStore;
  instanceId: string;
  outgoing: OutgoingRequests<FleetTransport>;
  maxLive: number;
  liveIdleMs: number;
  logger: Logger;
  metrics: FleetMetrics;
  dataFor(sessionId: string): SessionData<JsonValue>;
  /** Delivers a message that belongs to no request (see {@link TransportHooks.sendStandalone}). */
  sendStandalone(session: LiveSession, message: JSONRPCMessage): Promise<void>;
  onError(err: Error, sessionId?: string): void;
}

const notFound = () => new FleetError('SESSION_NOT_FOUND', 'Session not found');

/**
 * The live sessions of this instance: a bounded cache (LRU plus idle eviction) of user servers
 * connected to our transport, created on initialize or rebuilt from the store on demand
 * ("hydration"). Evicting a session from memory never ends it: the next request hydrates it again.
 */
export class SessionHost {
  private readonly live: LRUCache<string, LiveSession>;
  private readonly hydrating = new Map<string, Promise<LiveSession>>();
  private readonly lingering = new Set<LiveSession>();
  private closed = false;

  constructor(private readonly deps: SessionHostDeps) {
    this.live = new LRUCache<string, LiveSession>({
      max: deps.maxLive,
      ttl: deps.liveIdleMs,
      ttlAutopurge: true,
      updateAgeOnGet: true,
      dispose: (session, _key, reason) => {
        if (reason === 'set') return; // replaced by a newer copy of itself: nothing to do
        this.retire(session, session.closeReason ?? 'evicted');
      },
    });
  }

  /** Number of sessions in memory here. */
  get size(): number {
    return this.live.size;
  }

  /** The live copy of a session on this instance, without touching the store. */
  peek(sessionId: string): LiveSession | undefined {
    return this.live.peek(sessionId);
  }

  /**
   * A stream this instance produces for a session — in the live copy or in an evicted copy that still
   * has requests running (its streams are still being written).
   */
  findStream(sessionId: string, streamId: string): OutboundStream | undefined {
    const live = this.live.peek(sessionId)?.streams.get(streamId);
    if (live) return live;
    for (const s of this.lingering) {
      if (s.id === sessionId) {
        const found = s.streams.get(streamId);
        if (found) return found;
      }
    }
    return undefined;
  }

  /** Every live copy here (for broadcast handling and shutdown). */
  all(): LiveSession[] {
    return [...this.live.values()];
  }

  /**
   * Creates a session from a client's `initialize` request: builds the user's server, lets it answer,
   * and stores the record before the answer goes out (so any instance can serve the next request).
   * An initialize the server rejects creates nothing.
   */
  async initialize(
    principal: string,
    transport: TransportKind,
    request: JSONRPCRequest,
    extra?: MessageExtraInfo,
  ): Promise<{ session?: LiveSession; response: AnyResponse }> {
    this.assertOpen();
    const params = request.params as InitializeRequest['params'];
    const record: SessionRecord = {
      id: newSessionId(),
      principal,
      transport,
      protocolVersion: params.protocolVersion,
      initialize: params,
      createdAt: Date.now(),
      owner: this.deps.instanceId,
    };
    const session = await this.build(record);
    const response = await session.transport.call(request, extra);
    if ('error' in response) {
      await session.close().catch((e: unknown) => this.deps.onError(asError(e), record.id));
      return { response };
    }
    record.protocolVersion = (response.result as InitializeResult).protocolVersion;
    try {
      await this.deps.store.create(record);
    } catch (err) {
      await session.close().catch((e: unknown) => this.deps.onError(asError(e), record.id));
      throw storeUnavailable(err);
    }
    this.live.set(record.id, session);
    this.deps.metrics.sessionCreated('streamable-http');
    return { session, response };
  }

  /**
   * The session for a request of `principal`: the live copy (one store round trip to refresh its TTL
   * and confirm it still exists) or a fresh copy hydrated from the store. Another principal's session
   * is reported exactly like an unknown one.
   */
  async acquire(
    sessionId: string,
    principal: string,
    opts: { replayInitialized?: boolean } = {},
  ): Promise<LiveSession> {
    this.assertOpen();
    // A copy evicted (and closed) while this request waited for the store is not used: hydrate again.
    for (let attempt = 0; ; attempt++) {
      const session = await this.leaseOnce(sessionId, principal, opts.replayInitialized ?? true);
      if (!session.transport.isClosed) return session;
      this.release(session);
      if (attempt >= 2) throw new FleetError('INTERNAL', 'session copy closed while acquiring it');
    }
  }

  /** Ends a lease taken by {@link acquire} (once the request's messages are handed over). */
  release(session: LiveSession): void {
    if (session.leases > 0) session.leases--;
  }

  private async leaseOnce(
    sessionId: string,
    principal: string,
    replayInitialized: boolean,
  ): Promise<LiveSession> {
    const cached = this.live.get(sessionId);
    if (cached) {
      if (cached.record.principal !== principal) throw notFound();
      cached.leases++;
      let alive: boolean;
      try {
        alive = await this.deps.store.touch(sessionId);
      } catch (err) {
        cached.leases--;
        throw err;
      }
      if (!alive) {
        cached.leases--;
        this.drop(sessionId, 'expired');
        throw notFound();
      }
      return cached;
    }
    // Keyed by principal too: another principal's request must not fail (or refresh) a real one.
    const key = `${sessionId} ${principal}`;
    let pending = this.hydrating.get(key);
    if (!pending) {
      pending = this.deps.metrics
        .hydration(this.hydrate(sessionId, principal, replayInitialized))
        .finally(() => this.hydrating.delete(key));
      this.hydrating.set(key, pending);
    }
    const session = await pending;
    if (session.record.principal !== principal) throw notFound();
    session.leases++;
    return session;
  }

  /** Removes the local copy (the session itself is untouched unless the store says otherwise). */
  drop(sessionId: string, reason: SessionCloseReason = 'deleted'): void {
    const session = this.live.peek(sessionId);
    if (session) session.closeReason ??= reason;
    this.live.delete(sessionId);
  }

  /** Ends a session for good: removes it from the store; the caller broadcasts the deletion. */
  async end(sessionId: string, principal: string): Promise<void> {
    const cached = this.live.peek(sessionId);
    const record = cached?.record ?? (await this.deps.store.load(sessionId, principal));
    if (!record || record.principal !== principal || record.transport !== 'streamable-http') throw notFound();
    if (!(await this.deps.store.delete(sessionId))) throw notFound();
    this.drop(sessionId);
  }

  /** Replays a logging level set on another instance into the local copy. */
  async applyLogLevel(sessionId: string, level: LoggingLevel): Promise<void> {
    const session = this.live.peek(sessionId);
    if (!session) return;
    session.record = { ...session.record, logLevel: level };
    await session.transport.call({ jsonrpc: '2.0', method: 'logging/setLevel', params: { level } });
  }

  /** Replays subscription changes made on another instance into the local copy. */
  async applySubscriptions(sessionId: string, subscriptions: string[]): Promise<void> {
    const session = this.live.peek(sessionId);
    if (!session) return;
    const before = new Set(session.record.subscriptions ?? []);
    const after = new Set(subscriptions);
    session.record = { ...session.record, subscriptions };
    for (const uri of after) {
      if (!before.has(uri)) {
        await session.transport.call({ jsonrpc: '2.0', method: 'resources/subscribe', params: { uri } });
      }
    }
    for (const uri of before) {
      if (!after.has(uri)) {
        await session.transport.call({ jsonrpc: '2.0', method: 'resources/unsubscribe', params: { uri } });
      }
    }
  }

  /** Closes every local copy (sessions live on in the store). */
  async close(graceMs = 0): Promise<void> {
    this.closed = true;
    // Let running handlers finish (their answers go out on their open POST streams), within a bound.
    const deadline = Date.now() + graceMs;
    const busy = () => [...this.live.values(), ...this.lingering].some((s) => s.transport.inFlight > 0);
    while (busy() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    const sessions = [...this.live.values(), ...this.lingering];
    this.live.clear();
    this.lingering.clear();
    await Promise.allSettled(sessions.map((s) => s.close('shutdown')));
  }

  private async hydrate(
    sessionId: string,
    principal: string,
    replayInitialized: boolean,
  ): Promise<LiveSession> {
    const record = await this.deps.store.load(sessionId, principal);
    // A legacy HTTP+SSE session lives only on the instance holding its stream: never a Streamable copy.
    if (!record || record.transport !== 'streamable-http') throw notFound();
    const session = await this.build(record);
    // Replay the client's handshake with synthetic ids (responses swallowed): the SDK Server learns the
    // client's capabilities, info and protocol version only inside its initialize handler.
    const init = await session.transport.call({
      jsonrpc: '2.0',
      method: 'initialize',
      params: record.initialize,
    });
    if ('error' in init) {
      await session.close();
      throw new FleetError(
        'INTERNAL',
        `server factory rejected the stored initialize: ${init.error.message}`,
      );
    }
    // Skipped when the message that caused the hydration is the client's own `initialized`.
    if (replayInitialized) session.transport.receive({ jsonrpc: '2.0', method: 'notifications/initialized' });
    if (record.logLevel) {
      await session.transport.call({
        jsonrpc: '2.0',
        method: 'logging/setLevel',
        params: { level: record.logLevel },
      });
    }
    // Subscriptions made on other instances: the user's subscribe handler runs here too.
    for (const uri of record.subscriptions ?? []) {
      await session.transport.call({ jsonrpc: '2.0', method: 'resources/subscribe', params: { uri } });
    }
    if (this.closed) {
      await session.close();
      throw new FleetError('SHUTTING_DOWN', 'Server is shutting down');
    }
    this.live.set(sessionId, session);
    return session;
  }

  /**
   * Builds the user's server for `record` with the factory and connects it to `transport` (the
   * legacy HTTP+SSE transport uses this with its own transport; its sessions never enter this cache).
   */
  async connectServer(
    record: SessionRecord,
    transport: Transport,
  ): Promise<{ protocol: AnyProtocol; lifecycle: CopyLifecycle }> {
    const deps = this.deps;
    const lifecycle = new CopyLifecycle((err) => deps.onError(err, record.id));
    const ctx: SessionContext<JsonValue> = {
      sessionId: record.id,
      principal: record.principal,
      instanceId: deps.instanceId,
      transport: record.transport,
      data: deps.dataFor(record.id),
      signal: lifecycle.signal,
      onClose: (fn) => lifecycle.onClose(fn),
    };
    const server = await deps.factory(ctx);
    const protocol = toProtocol(server);
    const userOnError = protocol.onerror;
    protocol.onerror = (err) => {
      deps.onError(err, record.id);
      userOnError?.(err);
    };
    await protocol.connect(transport);
    return { protocol, lifecycle };
  }

  private async build(record: SessionRecord): Promise<LiveSession> {
    const deps = this.deps;
    // The transport is built before the session object that owns it; the hook reads it at send time.
    const ref: { session?: LiveSession } = {};
    const transport = new FleetTransport(record.id, {
      outgoing: deps.outgoing,
      sendStandalone: (message) => {
        if (!ref.session) return Promise.reject(new Error('session not ready'));
        return deps.sendStandalone(ref.session, message);
      },
      onError: (err) => deps.onError(err, record.id),
    });
    const { protocol, lifecycle } = await this.connectServer(record, transport);
    ref.session = new LiveSession(record, protocol, transport, lifecycle);
    return ref.session;
  }

  /** Closes an evicted copy once it has nothing in flight (a running handler keeps its copy alive). */
  private retire(session: LiveSession, reason: SessionCloseReason): void {
    const idle = () => session.transport.inFlight === 0 && session.leases === 0;
    if (idle()) {
      void session.close(reason).catch((e: unknown) => this.deps.onError(asError(e), session.id));
      return;
    }
    this.lingering.add(session);
    const timer = setInterval(() => {
      if (!idle() && !this.closed) return;
      clearInterval(timer);
      this.lingering.delete(session);
      void session.close(reason).catch((e: unknown) => this.deps.onError(asError(e), session.id));
    }, 1000);
    timer.unref();
  }

  private assertOpen(): void {
    if (this.closed) throw new FleetError('SHUTTING_DOWN', 'Server is shutting down');
  }
}

/** The SDK protocol of an `McpServer` (its `.server`) or of a `Server`. */
function toProtocol(server: unknown): AnyProtocol {
  const s = server as { server?: unknown; connect?: unknown; registerTool?: unknown };
  if (typeof s.registerTool === 'function' && s.server) return s.server as AnyProtocol;
  if (typeof s.connect === 'function') return server as AnyProtocol;
  throw new TypeError('server factory must return an SDK McpServer or Server');
}
