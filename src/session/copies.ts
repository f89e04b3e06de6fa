import type { FleetBus } from '../bus/protocol.js';
import { LRUCache } from 'lru-cache';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type {
  InitializeRequest,
  InitializeResult,
  JSONRPCRequest,
  MessageExtraInfo,
} from '@modelcontextprotocol/sdk/types.js';
import { FleetError, asError, storeUnavailable } from '../errors.js';
import type { EventLog } from '../events/event-log.js';
import type { Logger } from '../logger.js';
import type { FleetMetrics } from '../metrics.js';
import type { Ownership } from '../ownership/ownership.js';
import { newSessionId } from '../session-id.js';
import type {
  ClaimOutcome,
  Fence,
  Ownership as OwnershipOf,
  SessionRecord,
  SessionState,
  SessionStore,
} from '../store/session-store.js';
import type { StreamRegistry } from '../store/stream-registry.js';
import type { StreamRouter } from '../streams/stream-router.js';
import { RemoteSink } from '../streams/remote-sink.js';
import { STANDALONE_STREAM_ID } from '../transport/event-id.js';
import { FleetTransport } from '../transport/fleet-transport.js';
import type { AnyResponse } from '../transport/jsonrpc.js';
import { OutboundStream } from '../transport/outbound-stream.js';
import type { OutgoingRequests } from '../transport/outgoing-requests.js';
import type {
  JsonValue,
  ServerFactory,
  SessionCloseReason,
  SessionContext,
  SessionData,
  SessionOrigin,
} from '../types.js';
import { CopyLifecycle } from './copy-lifecycle.js';
import { LiveSession, type AnyProtocol } from './live-session.js';

/** What {@link Copies} needs. */
export interface CopiesDeps {
  factory: ServerFactory<JsonValue>;
  instanceId: string;
  ownership: Ownership;
  store: SessionStore;
  log: EventLog | undefined;
  registry: StreamRegistry;
  router: StreamRouter;
  bus: FleetBus;
  outgoing: OutgoingRequests<FleetTransport>;
  maxLive: number;
  liveIdleMs: number;
  logger: Logger;
  metrics: FleetMetrics;
  /** The session data API for a copy (fenced by its owner's epoch). */
  dataFor(sessionId: string, onFenced: () => void, fence: Fence): SessionData<JsonValue>;
  onError(err: Error, sessionId?: string): void;
}

const notFound = () => new FleetError('SESSION_NOT_FOUND', 'Session not found');

/**
 * The live copies this instance owns: each session it owns has exactly one here, and no other
 * instance has one. Streamable HTTP copies are a bounded cache (LRU plus idle eviction): evicting
 * one releases the session's ownership — the session lives on, and the next request makes a new
 * owner, which hydrates it from the store. Legacy copies live as long as their stream.
 */
export class Copies {
  private readonly live: LRUCache<string, LiveSession>;
  /** Evicted copies still answering requests: still the owner until they are idle. */
  private readonly lingering = new Map<string, LiveSession>();
  private readonly legacy = new Map<string, LiveSession>();
  private readonly claiming = new Map<string, Promise<LiveSession | undefined>>();
  /**
   * What a {@link touchOrClaim} found when it claimed nothing (the session owned elsewhere, or
   * gone), for the requests of the same principal that joined it: they route by that answer instead
   * of each asking the store again.
   */
  private readonly foundBy = new WeakMap<
    Promise<LiveSession | undefined>,
    { principal: string; state: SessionState | undefined }
  >();
  private closed = false;

  constructor(private readonly deps: CopiesDeps) {
    this.live = new LRUCache<string, LiveSession>({
      max: deps.maxLive,
      ttl: deps.liveIdleMs,
      ttlAutopurge: true,
      updateAgeOnGet: true,
      dispose: (copy, _key, reason) => {
        // Explicit removals (`delete`) close the copy themselves; 'set' never replaces a copy.
        if (reason === 'evict' || reason === 'expire') this.retire(copy);
      },
    });
  }

  /** Number of copies here (sessions this instance owns). */
  get size(): number {
    return this.live.size + this.lingering.size + this.legacy.size;
  }

  /** The copy of a session here (refreshing its place in the LRU), if this instance owns it. */
  get(sessionId: string): LiveSession | undefined {
    return this.live.get(sessionId) ?? this.lingering.get(sessionId) ?? this.legacy.get(sessionId);
  }

  /** Every copy here. */
  all(): LiveSession[] {
    return [...this.live.values(), ...this.lingering.values(), ...this.legacy.values()];
  }

  /** The copies of sessions this instance owns (not those being retired). */
  owned(): LiveSession[] {
    return [...this.live.values(), ...this.legacy.values()];
  }

  /** A running stream this instance produces for a session (a POST stream, or the standalone one). */
  findStream(sessionId: string, streamId: string): OutboundStream | undefined {
    const copy = this.live.peek(sessionId) ?? this.lingering.get(sessionId);
    if (!copy) return undefined;
    const s = streamId === STANDALONE_STREAM_ID ? copy.standalone : copy.streams.get(streamId);
    return s && !s.isEnded ? s : undefined;
  }

  /**
   * Creates a session from a client's `initialize`: builds the user's server, lets it answer, and
   * stores the record — owned by this instance — before the answer goes out, so any instance can
   * serve the next request. An initialize the server rejects creates nothing.
   */
  async create(
    principal: string,
    request: JSONRPCRequest,
    extra?: MessageExtraInfo,
  ): Promise<{ copy?: LiveSession; response: AnyResponse }> {
    this.assertOpen();
    const params = request.params as InitializeRequest['params'];
    const record: SessionRecord = {
      id: newSessionId(),
      principal,
      transport: 'streamable-http',
      protocolVersion: params.protocolVersion,
      initialize: params,
      createdAt: Date.now(),
      owner: this.deps.instanceId,
      epoch: 1,
    };
    const copy = await this.build(record, 1, 'initialize');
    const response = await (copy.transport as FleetTransport).call(request, extra);
    if ('error' in response) {
      await this.closeQuietly(copy, 'deleted');
      return { response };
    }
    record.protocolVersion = (response.result as InitializeResult).protocolVersion;
    copy.record = { ...copy.record, protocolVersion: record.protocolVersion };
    const token = this.deps.ownership.uncheckedToken();
    const at = Date.now();
    try {
      await this.deps.store.create(record);
    } catch (err) {
      await this.closeQuietly(copy, 'deleted');
      throw err instanceof FleetError ? err : storeUnavailable(err);
    }
    copy.checked(at, token);
    this.deps.ownership.track(record.id, 1);
    this.live.set(record.id, copy);
    this.deps.metrics.sessionCreated('streamable-http');
    this.deps.metrics.ownershipChange('created');
    return { copy, response };
  }

  /**
   * Claims a session whose ownership was `seen` (nobody, a dead or frozen owner, or this instance in
   * an earlier life) and hydrates it here. Resolves to the new copy, or undefined when another
   * instance won the claim. Concurrent claims of one session here share one.
   */
  claim(sessionId: string, principal: string, seen: OwnershipOf): Promise<LiveSession | undefined> {
    this.assertOpen();
    let pending = this.claiming.get(sessionId);
    if (!pending) {
      const started = this.claimOnce(sessionId, principal, seen).finally(() => {
        if (this.claiming.get(sessionId) === started) this.claiming.delete(sessionId);
      });
      this.claiming.set(sessionId, (pending = started));
    }
    return pending.then((copy) => {
      if (copy && copy.record.principal !== principal) throw notFound();
      return copy;
    });
  }

  /** Builds a legacy HTTP+SSE copy on `transport` (its record is stored by the caller). */
  async buildLegacy(record: SessionRecord, transport: Transport): Promise<LiveSession> {
    this.assertOpen();
    const copy = await this.build(record, record.epoch, 'initialize', transport);
    this.legacy.set(record.id, copy);
    this.deps.ownership.track(record.id, record.epoch);
    return copy;
  }

  /**
   * Another instance owns the session now (this copy was fenced off, or the store names another
   * owner): close the copy without writing anything for the session.
   */
  stepDown(copy: LiveSession, reason: SessionCloseReason = 'replaced'): void {
    if (!this.remove(copy)) return;
    this.deps.ownership.untrack(copy.id, copy.epoch);
    this.deps.metrics.ownershipChange(reason === 'replaced' ? 'replaced' : 'lost');
    this.deps.logger.debug({ sessionId: copy.id, reason }, 'copy stepped down');
    void copy.close(reason, true).catch((e: unknown) => this.deps.onError(asError(e), copy.id));
  }

  /** The session is gone (deleted, expired): close its copy here, if any. */
  drop(sessionId: string, reason: 'deleted' | 'expired'): void {
    const copy = this.get(sessionId);
    if (copy) this.stepDown(copy, reason);
  }

  /**
   * Hands a copy off (this instance is shutting down): once nothing is in flight, the session is
   * released (the next request anywhere makes a new owner) and the copy closed. Resolves then.
   */
  handoff(copy: LiveSession, why: 'drain' | 'rebalance' = 'drain'): Promise<void> {
    copy.handoff ??= (async () => {
      await copy.whenIdle();
      if (!this.remove(copy)) return;
      const released = await this.deps.ownership.release(copy.id, 'handoff').catch((err: unknown) => {
        this.deps.onError(asError(err), copy.id);
        return false;
      });
      if (released) this.deps.metrics.ownershipChange(why);
      await this.closeQuietly(copy, 'handoff');
    })();
    return copy.handoff;
  }

  /**
   * Shutdown after the grace period: copies still busy are closed now (their requests get an
   * error, logged so a resuming client sees it) and released.
   */
  async closeAll(): Promise<void> {
    this.closed = true;
    const copies = this.all();
    this.live.clear();
    this.lingering.clear();
    this.legacy.clear();
    await Promise.allSettled(
      copies.map(async (copy) => {
        await this.deps.ownership.release(copy.id, 'handoff').catch(() => false);
        await copy.close('shutdown');
      }),
    );
  }

  /** Whether any copy is handing off or busy (for shutdown). */
  get busy(): boolean {
    return this.all().some((c) => c.busy);
  }

  private async claimOnce(
    sessionId: string,
    principal: string,
    seen: OwnershipOf,
  ): Promise<LiveSession | undefined> {
    const token = this.deps.ownership.uncheckedToken();
    const at = Date.now();
    const outcome = await this.deps.ownership.claim(sessionId, seen, principal);
    if (outcome.status === 'gone') throw notFound();
    if (outcome.status === 'taken') return undefined;
    return this.adopt(outcome, seen.owner !== '', at, token);
  }

  /**
   * For a request at an instance with no copy of the session: refreshes its TTL and, when it has no
   * owner, claims and hydrates it here, in one store round trip ({@link SessionStore.touchOrClaim}).
   * Resolves to the new copy, or to the session's state when somebody owns it (maybe this instance,
   * through a claim still hydrating: {@link claim} joins that one). Undefined when it is gone.
   */
  async touchOrClaim(
    sessionId: string,
    principal: string,
  ): Promise<{ copy: LiveSession } | { state: SessionState } | undefined> {
    this.assertOpen();
    // Join a claim of the session under way here. When it found another owner (or none) for this
    // principal, that answer is this request's too: at most one round trip older than its own would
    // be, and a stale owner refuses the forward, which then asks the store again. Otherwise look
    // again: a claim started meanwhile by another request here is joined too, never run beside it.
    for (let pending; (pending = this.claiming.get(sessionId));) {
      const copy = await pending;
      if (copy && copy.record.principal !== principal) throw notFound();
      if (copy) return { copy };
      const found = this.foundBy.get(pending);
      if (found?.principal === principal) return found.state && { state: found.state };
    }
    const found: { principal: string; state: SessionState | undefined } = { principal, state: undefined };
    const claimed = (async () => {
      const token = this.deps.ownership.uncheckedToken();
      const at = Date.now();
      const outcome = await this.deps.ownership.touchOrClaim(sessionId, principal);
      if (outcome?.status !== 'claimed') {
        found.state = outcome?.state;
        return undefined;
      }
      return this.adopt(outcome, false, at, token);
    })().finally(() => {
      if (this.claiming.get(sessionId) === claimed) this.claiming.delete(sessionId);
    });
    // A concurrent request for the session here waits for this one rather than claiming too.
    this.claiming.set(sessionId, claimed);
    this.foundBy.set(claimed, found);
    const copy = await claimed;
    if (copy) return { copy };
    return found.state && { state: found.state };
  }

  /**
   * The claim of a session being built here, if one is under way (settles once the copy is live, or
   * undefined when the claim found another owner or failed).
   */
  whenClaimed(sessionId: string): Promise<LiveSession | undefined> | undefined {
    return this.claiming.get(sessionId)?.catch(() => undefined);
  }

  /** Hydrates the copy of a session this instance just claimed (`failover`: from a dead or frozen owner). */
  private async adopt(
    outcome: Extract<ClaimOutcome, { status: 'claimed' }>,
    failover: boolean,
    at: number,
    token: number | undefined,
  ): Promise<LiveSession> {
    const { record } = outcome;
    const origin: SessionOrigin = failover
      ? 'failover'
      : record.released === 'eviction' || record.released === 'recovered'
        ? record.released
        : 'handoff';
    this.deps.metrics.ownershipChange(origin === 'failover' ? 'failover' : 'claimed');
    try {
      const copy = await this.deps.metrics.hydration(this.hydrate(record, origin, outcome.standaloneHolder));
      // The claim was a check too: owned here at this epoch, TTL refreshed.
      copy.checked(at, token);
      return copy;
    } catch (err) {
      // Could not rebuild it here: give the session back so the next request can try elsewhere.
      await this.deps.ownership.release(record.id, 'eviction').catch(() => false);
      throw err;
    }
  }

  /**
   * Rebuilds a copy from the record: the factory builds a new server; the client's handshake is
   * replayed with synthetic ids (answers swallowed) — the SDK Server learns the client's
   * capabilities, info and protocol version only inside its initialize handler — then
   * `notifications/initialized` (if the client sent it), the logging level and the subscriptions.
   */
  private async hydrate(
    record: SessionRecord,
    origin: SessionOrigin,
    standaloneHolder: string | null | undefined,
  ): Promise<LiveSession> {
    const copy = await this.build(record, record.epoch, origin);
    const transport = copy.transport as FleetTransport;
    try {
      const init = await transport.call({ jsonrpc: '2.0', method: 'initialize', params: record.initialize });
      if ('error' in init) {
        throw new FleetError(
          'INTERNAL',
          `server factory rejected the stored initialize: ${init.error.message}`,
        );
      }
      if (record.initialized) transport.receive({ jsonrpc: '2.0', method: 'notifications/initialized' });
      if (record.logLevel) {
        await transport.call({
          jsonrpc: '2.0',
          method: 'logging/setLevel',
          params: { level: record.logLevel },
        });
      }
      for (const uri of record.subscriptions ?? []) {
        await transport.call({ jsonrpc: '2.0', method: 'resources/subscribe', params: { uri } });
      }
      // Read with the claim when the store can (an `attach` sent since then waits for this copy:
      // `whenClaimed`), else now.
      const holder =
        standaloneHolder !== undefined
          ? (standaloneHolder ?? undefined)
          : (await this.deps.registry.get(record.id, STANDALONE_STREAM_ID))?.instanceId;
      this.attachStandalone(copy, holder);
    } catch (err) {
      await this.closeQuietly(copy, 'shutdown');
      throw err;
    }
    if (this.closed) {
      await this.closeQuietly(copy, 'shutdown');
      throw new FleetError('SHUTTING_DOWN', 'Server is shutting down');
    }
    // One copy per session here: a copy left from an earlier claim (the store let this instance claim
    // again, so that one's epoch is fenced off) is closed, not dropped by the map unclosed.
    const earlier = this.live.peek(record.id);
    if (earlier) this.stepDown(earlier, 'replaced');
    this.live.set(record.id, copy);
    return copy;
  }

  /** Points a copy's standalone stream at the instance holding its GET connection (or nowhere). */
  attachStandalone(copy: LiveSession, holder: string | undefined): void {
    const stream = copy.standalone;
    if (!stream) return;
    const old = stream.currentSink;
    if (old) stream.detach(old);
    if (holder === undefined) return;
    if (holder === this.deps.instanceId) {
      const held = this.deps.router.get(copy.id, STANDALONE_STREAM_ID);
      if (held) stream.attach(held);
      return;
    }
    stream.attach(this.remoteSink(copy.id, STANDALONE_STREAM_ID, holder, (gone) => stream.detach(gone)));
  }

  /**
   * A sink delivering a stream produced here to the instance holding its connection; with `ack`, the
   * first delivery (at once if nothing else comes in this tick) also acknowledges that call.
   */
  remoteSink(
    sessionId: string,
    streamId: string,
    holder: string,
    onGone: (sink: RemoteSink) => void,
    ack?: string,
  ): RemoteSink {
    return new RemoteSink({
      ack,
      bus: this.deps.bus,
      from: this.deps.instanceId,
      holder,
      sessionId,
      streamId,
      logged: this.deps.log !== undefined,
      confirmGone: (id) => this.deps.ownership.confirmGone(id),
      onGone,
      onError: (err) => this.deps.onError(err, sessionId),
    });
  }

  /**
   * Builds the user's server for `record` with the factory and connects it to `transport` (a new
   * {@link FleetTransport} unless a legacy transport is given).
   */
  private async build(
    record: SessionRecord,
    epoch: number,
    origin: SessionOrigin,
    legacy?: Transport,
  ): Promise<LiveSession> {
    const deps = this.deps;
    const onError = (err: Error) => deps.onError(err, record.id);
    // The copy owns the transport but is built after it; the hooks read it when they run.
    const ref: { copy?: LiveSession } = {};
    const fence: Fence = { owner: deps.instanceId, epoch };
    const fenced = () => {
      if (ref.copy) this.stepDown(ref.copy, 'replaced');
    };
    const transport =
      legacy ??
      new FleetTransport(record.id, {
        outgoing: deps.outgoing,
        sendStandalone: (message) => {
          if (!ref.copy) return Promise.reject(new Error('session not ready'));
          return ref.copy.sendStandalone(message);
        },
        onError,
        onSettled: () => ref.copy?.checkIdle(),
      });
    const standalone =
      legacy === undefined
        ? new OutboundStream(record.id, STANDALONE_STREAM_ID, deps.log, {
            onError,
            fence: () => fence,
            onFenced: (reason) => {
              if (!ref.copy) return;
              if (reason === 'replaced') fenced();
              else this.stepDown(ref.copy, 'expired');
            },
          })
        : undefined;
    const lifecycle = new CopyLifecycle(onError);
    const ctx: SessionContext<JsonValue> = {
      era: 'legacy',
      sessionId: record.id,
      principal: record.principal,
      instanceId: deps.instanceId,
      transport: record.transport,
      origin,
      data: deps.dataFor(record.id, fenced, fence),
      signal: lifecycle.signal,
      onClose: (fn) => lifecycle.onClose(fn),
    };
    const server = await deps.factory(ctx);
    const protocol = toProtocol(server);
    const userOnError = protocol.onerror;
    protocol.onerror = (err) => {
      onError(err);
      userOnError?.(err);
    };
    await protocol.connect(transport);
    ref.copy = new LiveSession(
      record,
      epoch,
      fence,
      protocol,
      transport as LiveSession['transport'],
      lifecycle,
      standalone,
    );
    return ref.copy;
  }

  /** An evicted copy: released and closed once nothing is in flight (a running handler keeps it). */
  private retire(copy: LiveSession): void {
    this.lingering.set(copy.id, copy);
    void copy.whenIdle().then(async () => {
      if (this.lingering.get(copy.id) !== copy) return; // stepped down or closed meanwhile
      this.lingering.delete(copy.id);
      const released = await this.deps.ownership.release(copy.id, 'eviction').catch((err: unknown) => {
        this.deps.onError(asError(err), copy.id);
        return false;
      });
      if (released) this.deps.metrics.ownershipChange('evicted');
      await this.closeQuietly(copy, 'evicted');
    });
  }

  /** Removes a copy from wherever it is kept; false when it was not kept (any more). */
  private remove(copy: LiveSession): boolean {
    const id = copy.id;
    if (this.live.peek(id) === copy) {
      this.live.delete(id); // 'delete' disposal: no retirement
      return true;
    }
    if (this.lingering.get(id) === copy) return this.lingering.delete(id);
    if (this.legacy.get(id) === copy) return this.legacy.delete(id);
    return false;
  }

  /** Removes and closes a legacy copy (its stream ended). */
  async endLegacy(copy: LiveSession, reason: SessionCloseReason): Promise<void> {
    if (this.legacy.get(copy.id) === copy) this.legacy.delete(copy.id);
    this.deps.ownership.untrack(copy.id, copy.epoch);
    await this.closeQuietly(copy, reason);
  }

  private async closeQuietly(copy: LiveSession, reason: SessionCloseReason): Promise<void> {
    await copy.close(reason).catch((e: unknown) => this.deps.onError(asError(e), copy.id));
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
