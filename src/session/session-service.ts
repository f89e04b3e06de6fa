import type {
  JSONRPCMessage,
  JSONRPCRequest,
  MessageExtraInfo,
  RequestId,
} from '@modelcontextprotocol/sdk/types.js';
import { DEFAULT_NEGOTIATED_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS } from '../transport/schemas.js';
import { LRUCache } from 'lru-cache';
import type { FleetBus, BusMessageOf } from '../bus/protocol.js';
import { FleetError, asError, type FleetErrorCode, ERROR_TABLE } from '../errors.js';
import type { EventLog } from '../events/event-log.js';
import type { Logger } from '../logger.js';
import type { FleetMetrics } from '../metrics.js';
import type { ResolvedOptions } from '../options.js';
import type { Ownership } from '../ownership/ownership.js';
import { newSessionId } from '../session-id.js';
import type {
  Ownership as OwnershipOf,
  SessionRecord,
  SessionState as StoredState,
  SessionStore,
  TransportKind,
} from '../store/session-store.js';
import type { StreamRegistry } from '../store/stream-registry.js';
import type { ClientConnection } from '../transport/connection.js';
import { RemoteSink } from '../streams/remote-sink.js';
import type { StreamRouter } from '../streams/stream-router.js';
import {
  encodeEventId,
  newStreamId,
  producerOf,
  requestIdsOf,
  STANDALONE_STREAM_ID,
  type EventCursor,
} from '../transport/event-id.js';
import type { FleetTransport } from '../transport/fleet-transport.js';
import { isNotification, isRequest, isResponse, type AnyResponse } from '../transport/jsonrpc.js';
import { issuerOf, type OutgoingRequests } from '../transport/outgoing-requests.js';
import { END_MARKER, type StreamSink } from '../transport/outbound-stream.js';
import type { HeldStream } from '../streams/held-stream.js';
import { LOST_REQUEST_ERROR } from '../streams/stream-router.js';
import type { Principal } from '../types.js';
import { LegacyTransport } from '../transport/legacy-transport.js';
import type { Copies } from './copies.js';
import { CopyClosed, dispatchToCopy, Rejoin, type DispatchContext, type Reply } from './dispatch.js';
import { forwardableAuthInfo, forwardableHeaders, forwardedExtra } from './forwarded-extra.js';
import type { Forwarder, ForwardOutcome, ForwardRequest } from './forwarder.js';
import type { LiveSession } from './live-session.js';
import type { SessionState } from './session-state.js';

/** Stream id of a legacy session's one `GET /sse` stream in the {@link StreamRegistry}. */
export const LEGACY_STREAM_ID = 'sse';

/** Protocol version of the HTTP+SSE transport; stored until the client's `initialize` names its own. */
const LEGACY_PROTOCOL_VERSION = '2024-11-05';

/**
 * The stored `initialize` of a legacy session. The record is created at `GET /sse`, before the client
 * sent anything; the real handshake reaches only the owner's server, and a legacy session is never
 * hydrated elsewhere, so the placeholder is never replayed.
 */
const PENDING_INITIALIZE: SessionRecord['initialize'] = {
  protocolVersion: LEGACY_PROTOCOL_VERSION,
  capabilities: {},
  clientInfo: { name: '(legacy HTTP+SSE: initialize not stored)', version: '0' },
};

/** How often one request looks the owner up again (moved, handed off, replaced) before a 503. */
const MAX_ROUTE_ATTEMPTS = 6;

const notFound = () => new FleetError('SESSION_NOT_FOUND', 'Session not found');
const ownerGone = () =>
  new FleetError('OWNER_GONE', 'Session not found: the instance holding its stream is gone');

/** The HTTP side of one POST of a session (see {@link SessionService.post}). */
export interface PostResponder {
  /** Answers 202 Accepted (the messages held no request). */
  accepted(): void;
  /** The connection that carries the answers; created once, its head deferred until `open`. */
  connection(): ClientConnection;
  /** Whether the stream starts with a priming event (resumable, protocol 2025-11-25 or later). */
  readonly priming: boolean;
}

/** One POST of a session, parsed and checked by the HTTP front. */
export interface PostInput {
  sessionId: string;
  principal: Principal;
  messages: JSONRPCMessage[];
  extra: MessageExtraInfo;
  /** The request's `MCP-Protocol-Version` (what a recovered session is re-created with). */
  protocolVersion?: string | undefined;
}

/** Where a session's messages go right now. */
type Route = { kind: 'local'; copy: LiveSession } | { kind: 'remote'; seen: OwnershipOf };

/** A session's owner elsewhere as the store named it (see `SessionService.knownRoute`). */
interface KnownRoute {
  seen: OwnershipOf;
  principal: string;
  /** When the store check began, ms since the epoch, and the ownership token then. */
  at: number;
  token: number;
}

/** What the {@link SessionService} is built from (the composition root wires it). */
export interface SessionServiceDeps {
  options: ResolvedOptions;
  store: SessionStore;
  registry: StreamRegistry;
  log: EventLog | undefined;
  bus: FleetBus;
  ownership: Ownership;
  copies: Copies;
  forwarder: Forwarder;
  router: StreamRouter;
  state: SessionState;
  outgoing: OutgoingRequests<FleetTransport>;
  logger: Logger;
  metrics: FleetMetrics;
  /**
   * With rebalancing on: another instance that should claim a session without an owner instead of
   * this one (this one is above its fair share), or undefined for here.
   */
  placeFor?: ((exclude: ReadonlySet<string>) => string | undefined) | undefined;
  onError(err: Error, sessionId?: string): void;
}

/**
 * Serves a session's messages, wherever they arrive. Every session has one live copy in the fleet,
 * on its owner: messages arriving at the owner are dispatched to the copy here; messages arriving
 * anywhere else are forwarded to the owner (`handle`), whose answers come back over the bus to the
 * connection held here. An owner found dead (its process gone) or frozen (no acknowledgement, its
 * heartbeat expired) is replaced: this instance claims the session (compare-and-set on its epoch)
 * and hydrates a new copy. A legacy HTTP+SSE session is the same with the owner fixed to the
 * instance holding its stream (no failover: the stream cannot move).
 */
export class SessionService {
  private draining = false;
  private readonly releasedWaiters = new Map<string, Set<() => void>>();
  /** The owner each standalone stream held here was announced to. */
  private readonly announced = new Map<string, string>();
  private readonly legacyConnections = new Map<string, ClientConnection>();
  /** Recent forwarded calls answered here: a resent `handle` gets the same answer, not a second run. */
  private readonly recentCalls = new Map<string, BusMessageOf<'handled'>>();
  /** Forwarded calls being handled now (a resend meanwhile is dropped: the first one answers). */
  private readonly handling = new Set<string>();
  /** Requests admitted by the HTTP fronts and not finished (a drain waits for them). */
  private inFlight = 0;
  /** Session recoveries per principal in the current minute (`recoverSessions`). */
  private readonly recoveries = new LRUCache<string, { since: number; n: number }>({ max: 10_000 });
  /**
   * Sessions owned elsewhere that a POST here found recently (the owner it was forwarded to), so the
   * next POSTs forward without asking the store first: see {@link knownRoute}.
   */
  private readonly routes = new LRUCache<string, KnownRoute>({ max: 10_000 });
  private idleWaiters: Array<() => void> = [];
  private readonly dispatchContext: DispatchContext;

  constructor(private readonly deps: SessionServiceDeps) {
    this.dispatchContext = {
      log: deps.log,
      state: deps.state,
      sseRetryMs: deps.options.sseRetryMs,
      onFenced: (copy, reason) => deps.copies.stepDown(copy, reason),
      closeStandalone: (sid, retryMs) => this.closeStandalone(sid, retryMs),
      onError: deps.onError,
    };
  }

  private get me(): string {
    return this.deps.options.instanceId;
  }

  /** Whether this instance is shutting down (it hands sessions off and claims none). */
  get isDraining(): boolean {
    return this.draining;
  }

  // ---------------------------------------------------------------- Streamable HTTP

  /**
   * `initialize`: creates a session owned by this instance and returns the server's answer. While
   * draining, the session is handed off right after (the next request makes a new owner elsewhere).
   */
  async initialize(
    principal: Principal,
    request: JSONRPCRequest,
    extra: MessageExtraInfo,
  ): Promise<{ sessionId?: string; response: AnyResponse }> {
    const { copy, response } = await this.deps.copies.create(principal.id, request, extra);
    if (copy && this.draining) void this.deps.copies.handoff(copy);
    return { sessionId: copy?.id, response };
  }

  /**
   * `POST` of a session: answers to server→client requests go to the instance waiting for them; all
   * other messages go to the session's owner — dispatched here if this instance is the owner, else
   * forwarded — and `responder` gets a 202 or the stream of the answers.
   */
  /**
   * Counts a request from the moment the HTTP front has it (before its body is read) until its
   * answer is under way; call the returned function once. A drain waits for every request so
   * counted — also those that arrive while it runs — so none meets a closed fleet half-way.
   */
  admit(): () => void {
    this.inFlight++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.inFlight--;
      if (this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
    };
  }

  /**
   * After the drain: resolves once no admitted request is left (those that came in after the drain
   * are forwarded to the sessions' new owners), or at `deadline`.
   */
  async settle(deadline: number): Promise<void> {
    await beforeDeadline(
      (async () => {
        while (this.inFlight > 0) await this.whenIdle();
      })(),
      deadline,
    );
  }

  private whenIdle(): Promise<void> {
    return this.inFlight === 0 ? Promise.resolve() : new Promise<void>((r) => this.idleWaiters.push(r));
  }

  async post(input: PostInput, responder: PostResponder): Promise<void> {
    const { sessionId, principal } = input;
    let route =
      this.knownRoute(sessionId, principal.id) ??
      (await this.resolve(
        sessionId,
        principal.id,
        'streamable-http',
        input.protocolVersion,
        this.claimsHere,
      ));
    const answers = input.messages.filter((m) => isAnswer(m));
    const messages = answers.length === 0 ? input.messages : input.messages.filter((m) => !isAnswer(m));
    for (const a of answers) this.routeAnswer(sessionId, a);
    if (messages.length === 0) {
      if (route.kind === 'local') route.copy.unlease();
      responder.accepted();
      return;
    }
    const requestIds = messages.filter(isRequest).map((m) => m.id);
    const dead = new Set<string>();
    for (let attempt = 0; attempt < MAX_ROUTE_ATTEMPTS; attempt++) {
      if (route.kind === 'local') {
        const copy = route.copy;
        let rejoin: string | undefined;
        try {
          if (copy.handoff) {
            await this.awaitHandoff(copy);
          } else {
            await dispatchToCopy(
              this.dispatchContext,
              copy,
              messages,
              this.localReply(copy, responder, requestIds),
              input.extra,
            );
            this.deps.metrics.routed('local');
            // Claimed while draining (no peer could take it): handed off once its requests are done.
            if (this.draining) void this.deps.copies.handoff(copy);
            return;
          }
        } catch (err) {
          if (err instanceof Rejoin) rejoin = err.streamId;
          else if (!(err instanceof CopyClosed)) throw err;
        } finally {
          copy.unlease();
        }
        if (rejoin !== undefined) return this.rejoin(input, rejoin, responder);
        route = await this.resolve(sessionId, principal.id, 'streamable-http', input.protocolVersion);
        continue;
      }
      const { seen } = route;
      let target = seen.owner;
      let claim = false;
      if (target === '' || target === this.me || dead.has(target)) {
        // Above its fair share (rebalancing), this instance lets a less loaded peer claim it.
        const elsewhere = this.draining ? undefined : this.deps.placeFor?.(dead);
        if (!this.draining && elsewhere === undefined) {
          route = await this.claimOrResolve(sessionId, principal.id, seen, input.protocolVersion);
          continue;
        }
        // Shutting down: a live peer claims it instead.
        const peer = elsewhere ?? (await this.pickPeer(dead));
        if (!peer) {
          // Nobody to take it (a fleet of one, or every peer's heartbeat late): serve it here while
          // the drain lasts; the copy is handed off again once the request is done.
          route = await this.claimOrResolve(sessionId, principal.id, seen, input.protocolVersion);
          continue;
        }
        target = peer;
        claim = true;
      }
      const outcome = await this.forwardPost(target, seen, claim, input, messages, requestIds, responder);
      // The owner moved, went away or lost the session: the next POST asks the store again.
      if (outcome.kind !== 'accepted') this.routes.delete(sessionId);
      switch (outcome.kind) {
        case 'accepted':
          this.deps.metrics.routed('forwarded');
          return;
        case 'rejoin':
          return this.rejoin(input, outcome.streamId, responder);
        case 'error':
          // The owner found the session gone (the store lost it meanwhile): resolving again recovers
          // it when `recoverSessions` allows, else answers the same 404.
          if (outcome.code === 'SESSION_NOT_FOUND') break;
          throw new FleetError(knownCode(outcome.code), outcome.message);
        case 'dead':
        case 'unresponsive':
          this.deps.logger.info(
            { sessionId, owner: target, outcome: outcome.kind },
            'session owner unreachable: taking the session over',
          );
          dead.add(target);
          if (!claim) continue; // route stays: the claim path takes it over
          break;
        case 'draining':
          await this.waitReleased(sessionId, target);
          break;
        case 'not-owner':
          break;
      }
      route = await this.resolve(sessionId, principal.id, 'streamable-http', input.protocolVersion);
    }
    throw new FleetError('SESSION_MOVING', 'Service Unavailable: the session is moving between instances');
  }

  /**
   * Claims a session seen without a live owner and leases the new copy, or resolves again when
   * another instance won. A session gone meanwhile (the store lost it between the two steps) is
   * recovered like one the first look did not find, when `recoverSessions` allows it.
   */
  private async claimOrResolve(
    sessionId: string,
    principal: string,
    seen: OwnershipOf,
    recoverAs: string | undefined,
  ): Promise<Route> {
    let copy: LiveSession | undefined;
    try {
      copy = await this.deps.copies.claim(sessionId, principal, seen);
    } catch (err) {
      const gone = err instanceof FleetError && err.code === 'SESSION_NOT_FOUND';
      if (!gone) throw err;
    }
    return copy ? this.leased(copy) : this.resolve(sessionId, principal, 'streamable-http', recoverAs);
  }

  /**
   * A resent POST (a load balancer retried it after the instance that first got it died): its
   * requests still run on the owner, on `streamId`. This connection resumes that stream from its
   * start — the client gets every answer once, and nothing runs twice. Without an event log there is
   * nothing to resume from: the resend is refused as a duplicate.
   */
  private async rejoin(input: PostInput, streamId: string, responder: PostResponder): Promise<void> {
    if (!this.deps.log) {
      throw new FleetError('INVALID_REQUEST', 'Invalid Request: these requests are already running');
    }
    this.deps.logger.debug(
      { sessionId: input.sessionId, streamId },
      'resent POST resumes its running stream',
    );
    await this.resume(input.sessionId, input.principal, { streamId, seq: 0 }, responder.connection());
  }

  /** Forwards a POST's messages to `target`; holds the connection of their answers here. */
  private async forwardPost(
    target: string,
    seen: OwnershipOf,
    claim: boolean,
    input: PostInput,
    messages: JSONRPCMessage[],
    requestIds: RequestId[],
    responder: PostResponder,
  ): Promise<ForwardOutcome> {
    const request: ForwardRequest = {
      sid: input.sessionId,
      seen,
      claim,
      principal: input.principal.id,
      messages,
      headers: forwardableHeaders(input.extra.requestInfo?.headers ?? {}),
      authInfo: forwardableAuthInfo(input.extra.authInfo),
    };
    if (requestIds.length === 0) {
      const outcome = await this.deps.forwarder.forward(target, request);
      if (outcome.kind === 'accepted') responder.accepted();
      return outcome;
    }
    const streamId = newStreamId(target, requestIds);
    const resumable = this.resumable;
    const connection = responder.connection();
    // Held before sending: the owner's first events may arrive right behind its acknowledgement.
    const priming = responder.priming ? encodeEventId(streamId, 0) : undefined;
    const held = this.deps.router.holdForwarded(input.sessionId, streamId, connection, requestIds, priming);
    request.stream = { streamId, resumable, priming: responder.priming };
    let outcome: ForwardOutcome;
    try {
      outcome = await this.deps.forwarder.forward(target, request);
    } catch (err) {
      this.deps.router.unholdForwarded(held);
      throw err;
    }
    if (outcome.kind === 'accepted') {
      held.open();
      // Watched only now: the owner has the stream (a ping before would not find it yet).
      this.deps.router.watchForwarded(held, target);
    } else {
      this.deps.router.unholdForwarded(held);
    }
    return outcome;
  }

  /** `GET` without `Last-Event-ID`: the session's standalone stream, held here. */
  async openStandalone(
    sessionId: string,
    principal: Principal,
    connection: ClientConnection,
    priming: boolean,
    protocolVersion?: string,
  ): Promise<void> {
    const route = await this.resolve(sessionId, principal.id, 'streamable-http', protocolVersion);
    if (route.kind === 'local') route.copy.unlease();
    if (this.draining) {
      await this.redirect(sessionId, STANDALONE_STREAM_ID, connection, priming);
      return;
    }
    const { owner } = await this.deps.router.openStandalone(sessionId, connection, priming);
    this.announceStandalone(sessionId, owner);
  }

  /** `GET` with `Last-Event-ID`: takes over any stream of the session and replays what was missed. */
  async resume(
    sessionId: string,
    principal: Principal,
    cursor: EventCursor,
    connection: ClientConnection,
    protocolVersion?: string,
  ): Promise<void> {
    if (!this.deps.log) throw new FleetError('EVENT_ID_MALFORMED', 'Bad Request: streams are not resumable');
    const route = await this.resolve(sessionId, principal.id, 'streamable-http', protocolVersion);
    if (route.kind === 'local') route.copy.unlease();
    const { streamId, seq } = cursor;
    const producer = streamId === STANDALONE_STREAM_ID ? undefined : producerOf(streamId);
    if (streamId !== STANDALONE_STREAM_ID && producer === undefined) {
      throw new FleetError('SESSION_NOT_FOUND', 'Unknown stream');
    }
    if (this.draining) {
      if (seq > (await this.deps.log.lastSeq(sessionId, streamId))) {
        throw new FleetError('SESSION_NOT_FOUND', 'Unknown stream');
      }
      connection.open();
      connection.disconnect(this.deps.options.sseRetryMs); // resumed on another instance, same cursor
      return;
    }
    const holding = await this.deps.router.resume(sessionId, streamId, seq, connection, producer);
    if (!holding) return; // the stream had ended, and the client has all of it
    const { held } = holding;
    if (producer === undefined) {
      this.announceStandalone(sessionId, holding.owner);
      return;
    }
    if (producer === this.me) {
      if (!this.takeoverLocal(sessionId, streamId, held)) await this.abandon(held);
      return;
    }
    const n = await this.deps.bus
      .send(producer, { t: 'takeover', sid: sessionId, streamId, holder: this.me })
      .catch(() => 0);
    // Nobody subscribed: the producer is gone (or reconnecting: its pong or `stream-gone` will tell).
    if (n === 0 && (await this.deps.ownership.confirmGone(producer).catch(() => false))) {
      await this.abandon(held);
    }
  }

  /**
   * A forwarded or resumed stream whose producer is gone or no longer runs it: after what the log
   * has, each request the stream answers (its id says which, and a forwarded stream knows its own)
   * that got no response gets an error, logged with an end marker — so this and every later
   * resumption ends, and a producer that was only frozen cannot answer the client twice.
   */
  async abandon(held: HeldStream): Promise<void> {
    const log = this.deps.log;
    if (!log) return held.abort(LOST_REQUEST_ERROR);
    const { sessionId, streamId } = held;
    try {
      const events = await log.readAfter(sessionId, streamId, 0);
      if (!events.some((e) => e.data === END_MARKER)) {
        const answered = new Set<RequestId>();
        for (const e of events) {
          const id = responseIdOf(e.data);
          if (id !== undefined) answered.add(id);
        }
        const ids = new Set([...(requestIdsOf(streamId) ?? []), ...held.unanswered]);
        const missing = [...ids].filter((id) => !answered.has(id));
        const errors = missing.map((id) => JSON.stringify({ jsonrpc: '2.0', id, error: LOST_REQUEST_ERROR }));
        await log.append(sessionId, streamId, [...errors, END_MARKER]);
        if (missing.length > 0) {
          this.deps.logger.info(
            { sessionId, streamId, requests: missing },
            'requests lost with their instance',
          );
        }
      }
    } catch (err) {
      this.deps.onError(new Error(`could not end abandoned stream ${streamId}`, { cause: err }), sessionId);
      return held.abort(LOST_REQUEST_ERROR);
    }
    held.endAfterReplay();
  }

  /** `DELETE`: ends the session on every instance and removes all it stored. */
  async end(sessionId: string, principal: Principal): Promise<void> {
    const local = this.deps.copies.get(sessionId);
    const record = local?.record ?? (await this.deps.store.load(sessionId, principal.id));
    if (!record || record.principal !== principal.id || record.transport !== 'streamable-http')
      throw notFound();
    this.routes.delete(sessionId);
    if (!(await this.deps.store.delete(sessionId))) throw notFound();
    this.deps.copies.drop(sessionId, 'deleted');
    this.deps.router.dropSession(sessionId);
    await Promise.all([
      this.deps.log?.deleteSession(sessionId).catch((e: unknown) => this.deps.onError(asError(e), sessionId)),
      this.deps.bus.broadcast({ t: 'deleted', sid: sessionId, from: this.me }).catch((e: unknown) => {
        // The record is gone already: other instances find out at their next store round trip.
        this.deps.onError(asError(e), sessionId);
      }),
    ]);
  }

  // ---------------------------------------------------------------- legacy HTTP+SSE

  /**
   * `GET /sse`: creates a legacy session owned by this instance (its record and its transport
   * session record stored) on `connection`, and resolves to its id; the caller sends the endpoint.
   */
  async openLegacy(principal: Principal, connection: ClientConnection): Promise<string> {
    if (this.draining) throw new FleetError('SHUTTING_DOWN', 'Server is shutting down');
    // While the subscription is down, POSTs forwarded here would find no receiver and end the
    // session: wait for it a little (an instance just started), else 503.
    if (!(await this.deps.bus.whenUp(this.deps.options.redisCommandTimeoutMs))) {
      throw new FleetError('STORE_UNAVAILABLE', 'Session store unavailable');
    }
    if (this.legacyConnections.size >= this.deps.options.maxLegacySessions) {
      // Each legacy stream holds a live server for its whole life: bound them per instance.
      throw new FleetError(
        'TOO_MANY_STREAMS',
        'Service Unavailable: too many open SSE streams on this instance',
      );
    }
    const now = Date.now();
    const record: SessionRecord = {
      id: newSessionId(),
      principal: principal.id,
      transport: 'sse',
      protocolVersion: LEGACY_PROTOCOL_VERSION,
      initialize: PENDING_INITIALIZE,
      createdAt: now,
      owner: this.me,
      epoch: 1,
    };
    const ref: { copy?: LiveSession } = {};
    const transport = new LegacyTransport(record.id, connection, () => {
      if (ref.copy) void this.endLegacy(ref.copy, 'deleted', 'server closed');
    });
    ref.copy = await this.deps.copies.buildLegacy(record, transport);
    const copy = ref.copy;
    try {
      await this.deps.store.create(record);
      await this.deps.registry.claim({
        sessionId: record.id,
        streamId: LEGACY_STREAM_ID,
        transport: 'sse',
        instanceId: this.me,
        createdAt: now,
        lastSeenAt: now,
        active: true,
      });
    } catch (err) {
      await this.endLegacy(copy, 'deleted', 'setup failed');
      throw err instanceof FleetError
        ? err
        : new FleetError('STORE_UNAVAILABLE', 'Session store unavailable', { cause: err });
    }
    if (this.draining) {
      await this.endLegacy(copy, 'shutdown', 'instance shutting down');
      throw new FleetError('SHUTTING_DOWN', 'Server is shutting down');
    }
    this.legacyConnections.set(record.id, connection);
    this.deps.metrics.sessionCreated('sse');
    // Also runs at once when the client already went away during the setup above.
    connection.onceClosed(() => void this.endLegacy(copy, 'deleted', 'stream closed'));
    return record.id;
  }

  /**
   * `POST /messages`: delivers one message to the legacy session's server, wherever its stream is
   * held. Resolves once the owner has it; rejects with a 404 for an unknown, foreign or ended session
   * (an owner that is gone ends the session: its stream cannot move).
   */
  async postLegacy(
    sessionId: string,
    principal: Principal,
    message: JSONRPCMessage,
    extra: MessageExtraInfo,
  ): Promise<void> {
    const route = await this.resolve(sessionId, principal.id, 'sse');
    if (route.kind === 'local') {
      const copy = route.copy;
      try {
        if (!this.legacyConnections.has(sessionId)) throw ownerGone();
        copy.lastActivity = Date.now();
        copy.transport.receive(message, extra);
        return;
      } finally {
        copy.unlease();
      }
    }
    const owner = route.seen.owner;
    if (owner === '' || owner === this.me) {
      // The record names us (or nobody) but the stream is gone (it just closed, or we restarted).
      await this.markLegacyEnded(sessionId, owner, false);
      throw ownerGone();
    }
    const outcome = await this.deps.forwarder.forward(owner, {
      sid: sessionId,
      seen: route.seen,
      claim: false,
      principal: principal.id,
      messages: [message],
      headers: forwardableHeaders(extra.requestInfo?.headers ?? {}),
      authInfo: forwardableAuthInfo(extra.authInfo),
    });
    if (outcome.kind === 'accepted') return;
    if (outcome.kind === 'error') throw new FleetError(knownCode(outcome.code), outcome.message);
    await this.markLegacyEnded(sessionId, owner, outcome.kind === 'unresponsive');
    throw ownerGone();
  }

  /** Ends a legacy session held here: closes the stream and the server, removes both records. */
  private async endLegacy(
    copy: LiveSession,
    reason: 'deleted' | 'expired' | 'shutdown',
    why: string,
  ): Promise<void> {
    const id = copy.id;
    const connection = this.legacyConnections.get(id);
    if (copy.isClosed && !connection) return;
    this.legacyConnections.delete(id);
    this.deps.logger.debug({ sessionId: id, reason: why }, 'legacy session ended');
    // A stream never opened gets no head here: the request may still answer with an error status.
    if (connection?.opened) connection.end();
    const results = await Promise.allSettled([
      this.deps.copies.endLegacy(copy, reason),
      this.deps.store.delete(id),
      this.deps.registry.release(id, LEGACY_STREAM_ID, this.me),
    ]);
    for (const r of results) if (r.status === 'rejected') this.deps.onError(asError(r.reason), id);
  }

  /**
   * Ends a legacy session whose owner cannot take messages: removes its record and its transport
   * session record. After a timeout the owner may still be alive (just slow): it is told to end it.
   */
  private async markLegacyEnded(sessionId: string, owner: string, tellOwner: boolean): Promise<void> {
    const steps: Array<Promise<unknown>> = [
      this.deps.store.delete(sessionId),
      this.deps.registry.release(sessionId, LEGACY_STREAM_ID, owner),
    ];
    if (tellOwner) steps.push(this.deps.bus.send(owner, { t: 'end', sid: sessionId }));
    for (const r of await Promise.allSettled(steps)) {
      if (r.status === 'rejected') this.deps.onError(asError(r.reason), sessionId);
    }
  }

  /** Number of legacy streams held here. */
  get legacyCount(): number {
    return this.legacyConnections.size;
  }

  // ---------------------------------------------------------------- owner side of the bus

  /** Bus handler of `handle`: run forwarded messages on the copy here (claiming it if asked to). */
  async onHandle(msg: BusMessageOf<'handle'>): Promise<void> {
    const previous = this.recentCalls.get(msg.callId);
    if (previous) {
      this.ack(msg, previous);
      return;
    }
    // A resend while the first handling still runs (a slow hydration): that one acknowledges.
    if (this.handling.has(msg.callId)) return;
    this.handling.add(msg.callId);
    try {
      await this.handleOnce(msg);
    } finally {
      this.handling.delete(msg.callId);
    }
  }

  private async handleOnce(msg: BusMessageOf<'handle'>): Promise<void> {
    const answer = (outcome: BusMessageOf<'handled'>['outcome'], err?: FleetError, sent = false) => {
      const handled: BusMessageOf<'handled'> = { t: 'handled', callId: msg.callId, outcome };
      if (err) {
        handled.code = err.code;
        handled.message = err.message;
      }
      this.remember(msg.callId, handled);
      if (!sent) this.ack(msg, handled);
    };
    let copy: LiveSession | undefined;
    let leased = false;
    try {
      // After a pause, another instance may have taken our sessions: find out before acting.
      await this.deps.ownership.ensureCurrent();
      copy = this.deps.copies.get(msg.sid);
      if (copy && copy.epoch < msg.seen.epoch) {
        this.deps.copies.stepDown(copy, 'replaced'); // the sender saw a newer owner than this copy
        copy = undefined;
      }
      if (!copy) {
        if (this.draining || (msg.seen.owner !== this.me && !msg.claim)) return answer('not-owner');
        copy = await this.deps.copies.claim(msg.sid, msg.principal, msg.seen);
        if (!copy) return answer('not-owner');
      }
      if (copy.record.principal !== msg.principal) throw notFound();
      if (copy.handoff) {
        answer('draining');
        void copy.handoff.then(() =>
          this.deps.bus.send(msg.from, { t: 'released', sid: msg.sid }).catch(() => 0),
        );
        return;
      }
      copy.lease();
      leased = true;
      const extra = forwardedExtra(msg.headers, msg.authInfo);
      if (copy.record.transport === 'sse') {
        copy.lastActivity = Date.now();
        for (const m of msg.messages) copy.transport.receive(m, extra);
        answer('accepted');
        return;
      }
      await dispatchToCopy(this.dispatchContext, copy, msg.messages, this.remoteReply(msg, answer), extra);
    } catch (err) {
      if (err instanceof CopyClosed) return answer('not-owner');
      // Draining, this instance owns nothing it could still serve (its copies closed, its heartbeat
      // stopped): the sender resolves again and claims the session, without an error for its client.
      const closing =
        err instanceof FleetError && (err.code === 'SHUTTING_DOWN' || err.code === 'STORE_UNAVAILABLE');
      if (this.draining && closing) return answer('not-owner');
      if (err instanceof Rejoin) {
        const handled: BusMessageOf<'handled'> = {
          t: 'handled',
          callId: msg.callId,
          outcome: 'rejoin',
          streamId: err.streamId,
        };
        this.remember(msg.callId, handled);
        this.ack(msg, handled);
        return;
      }
      const fe =
        err instanceof FleetError ? err : new FleetError('INTERNAL', 'Internal error', { cause: err });
      if (!(err instanceof FleetError) || fe.status >= 500) this.deps.onError(asError(err), msg.sid);
      answer('error', fe);
    } finally {
      if (leased) copy?.unlease();
    }
  }

  /** Bus handler of `takeover`: a client resumed one of our streams elsewhere; deliver there now. */
  onTakeover(msg: BusMessageOf<'takeover'>): void {
    if (msg.holder === this.me) return;
    const stream = this.deps.copies.findStream(msg.sid, msg.streamId);
    if (!stream) {
      // Finished or unknown here: the holder replays what the log has and ends the connection.
      void this.deps.bus
        .send(msg.holder, { t: 'stream-gone', sid: msg.sid, streamId: msg.streamId })
        .catch((e: unknown) => this.deps.onError(asError(e), msg.sid));
      return;
    }
    const old = stream.currentSink;
    const sink = this.deps.copies.remoteSink(msg.sid, msg.streamId, msg.holder, (gone) =>
      stream.detach(gone),
    );
    stream.attach(sink);
    letGo(old, msg.holder);
    // What was logged before the switch is read from the log by the new holder.
    void this.deps.bus.send(msg.holder, { t: 'wake', sid: msg.sid, streamId: msg.streamId }).catch(() => 0);
  }

  /** Bus handler of `unheld`: the instance we delivered to does not hold that stream. */
  onUnheld(msg: BusMessageOf<'unheld'>): void {
    const stream = this.deps.copies.findStream(msg.sid, msg.streamId);
    const sink = stream?.currentSink;
    if (stream && sink instanceof RemoteSink && sink.holder === msg.holder) stream.detach(sink);
  }

  /** Bus handler of `attach`: the session's standalone stream is held by `holder` now. */
  onAttach(msg: BusMessageOf<'attach'>): void {
    const copy = this.deps.copies.get(msg.sid);
    if (!copy) {
      this.onceClaimed(msg.sid, () => this.onAttach(msg));
      return;
    }
    if (!copy.standalone) return;
    this.deps.copies.attachStandalone(copy, msg.holder);
    void this.deps.bus
      .send(msg.holder, { t: 'wake', sid: msg.sid, streamId: STANDALONE_STREAM_ID })
      .catch(() => 0);
  }

  /** Bus handler of `detach`: the standalone stream held by `holder` closed. */
  onDetach(msg: BusMessageOf<'detach'>): void {
    const copy = this.deps.copies.get(msg.sid);
    if (!copy) {
      this.onceClaimed(msg.sid, () => this.onDetach(msg));
      return;
    }
    const sink = copy.standalone?.currentSink;
    if (sink instanceof RemoteSink && sink.holder === msg.holder) copy.standalone!.detach(sink);
  }

  /** Bus handler of `ping`: which of these streams this instance no longer produces. */
  onPing(msg: BusMessageOf<'ping'>): void {
    const gone = msg.streams.filter((s) => !this.deps.copies.findStream(s.sid, s.streamId));
    void this.deps.bus.send(msg.from, { t: 'pong', nonce: msg.nonce, gone }).catch(() => 0);
  }

  /** Bus handler of `answer`: a client's answer to a server→client request sent from here. */
  onAnswer(msg: BusMessageOf<'answer'>): void {
    this.deliverAnswer(msg.sid, msg.message);
  }

  /** Bus handler of `released`: a draining owner let a session go; requests waiting for it go on. */
  onReleased(msg: BusMessageOf<'released'>): void {
    const waiters = this.releasedWaiters.get(msg.sid);
    if (!waiters) return;
    this.releasedWaiters.delete(msg.sid);
    for (const w of waiters) w();
  }

  /** Bus handler of `deleted`: drop everything of the session here. */
  onDeleted(msg: BusMessageOf<'deleted'>): void {
    this.routes.delete(msg.sid);
    if (msg.from === this.me) return;
    const copy = this.deps.copies.get(msg.sid);
    if (copy?.record.transport === 'sse') void this.endLegacy(copy, 'deleted', 'deleted elsewhere');
    else this.deps.copies.drop(msg.sid, 'deleted');
    this.deps.router.dropSession(msg.sid);
  }

  /** Bus handler of `end`: a legacy session was ended by an instance that gave up waiting for us. */
  onEnd(msg: BusMessageOf<'end'>): void {
    const copy = this.deps.copies.get(msg.sid);
    if (copy?.record.transport === 'sse')
      void this.endLegacy(copy, 'deleted', 'marked ended by another instance');
  }

  /** A standalone stream held here closed: its owner stops delivering to it. */
  onStandaloneClosed(sessionId: string): void {
    const owner = this.announced.get(sessionId);
    this.announced.delete(sessionId);
    const copy = this.deps.copies.get(sessionId);
    if (copy?.standalone) {
      const sink = copy.standalone.currentSink;
      if (sink && !(sink instanceof RemoteSink)) copy.standalone.detach(sink);
    }
    // Told elsewhere (also with a copy here: the registration named another owner, this copy is stale).
    if (owner && owner !== this.me) {
      void this.deps.bus.send(owner, { t: 'detach', sid: sessionId, holder: this.me }).catch(() => 0);
    }
  }

  // ---------------------------------------------------------------- heartbeat, shutdown

  /** Expires idle legacy sessions held here (driven by the stream heartbeat). */
  expireLegacy(): Array<{ sessionId: string; streamId: string }> {
    const { sessionTtlMs, maxSessionLifetimeMs } = this.deps.options;
    const now = Date.now();
    const held: Array<{ sessionId: string; streamId: string }> = [];
    for (const id of this.legacyConnections.keys()) {
      const copy = this.deps.copies.get(id);
      if (!copy) continue;
      if (now - copy.lastActivity >= sessionTtlMs || now - copy.record.createdAt >= maxSessionLifetimeMs) {
        void this.endLegacy(copy, 'expired', 'expired');
      } else {
        held.push({ sessionId: id, streamId: LEGACY_STREAM_ID });
      }
    }
    return held;
  }

  /**
   * Shutdown: no new ownership; sessions owned here are handed off once idle (within `graceMs`),
   * legacy sessions end, held GET streams close with a retry hint; what is still running at the end
   * of the grace period is answered with an error. Resolves when done.
   */
  async drain(graceMs: number): Promise<void> {
    this.draining = true;
    const deadline = Date.now() + graceMs;
    const streams = this.deps.router.drain(this.deps.options.sseRetryMs, graceMs);
    const legacy = [...this.legacyConnections.keys()].map((id) => {
      const copy = this.deps.copies.get(id);
      return copy ? this.endLegacy(copy, 'shutdown', 'instance shutting down') : Promise.resolve();
    });
    const handoffs = this.deps.copies.all().map((copy) => this.deps.copies.handoff(copy));
    await beforeDeadline(Promise.allSettled([...handoffs, ...legacy, streams]), deadline);
    // Requests that came in meanwhile (a load balancer still sends some) are forwarded to their new
    // owners: wait for them, and for those they let in, until none is left.
    await this.settle(deadline);
    await this.deps.copies.closeAll();
    this.deps.forwarder.close();
    await Promise.allSettled([streams]);
  }

  // ---------------------------------------------------------------- internals

  private get resumable(): boolean {
    return this.deps.options.resumable && !this.deps.options.jsonResponse;
  }

  /**
   * {@link resolveOnce}; with `recoverAs` (a Streamable HTTP request's protocol version) and
   * `recoverSessions` on, a session the store does not know is re-created under its id first.
   */
  private async resolve(
    sessionId: string,
    principal: string,
    kind: TransportKind,
    recoverAs?: string,
    claim = false,
  ): Promise<Route> {
    try {
      return await this.resolveOnce(sessionId, principal, kind, claim);
    } catch (err) {
      const notFound = err instanceof FleetError && err.code === 'SESSION_NOT_FOUND';
      if (!notFound || recoverAs === undefined || kind !== 'streamable-http') throw err;
      if (!(await this.recover(sessionId, principal, recoverAs))) throw err;
      return this.resolveOnce(sessionId, principal, kind, claim);
    }
  }

  /**
   * Whether a request here claims a session it finds without an owner, in the same store round trip
   * that finds it (`resolveOnce`'s `claim`). Not while draining (a peer claims it instead) nor with
   * rebalancing on (a less loaded peer may be the place: `post` asks `placeFor` first).
   */
  private get claimsHere(): boolean {
    return !this.draining && this.deps.placeFor === undefined;
  }

  /**
   * Re-creates a session the store does not know under the client's id, without an owner (the
   * request claims it next, as a session handed off), with a conservative client profile. False when
   * recovery is off, not allowed for this principal, or over its limit.
   */
  private async recover(sessionId: string, principal: string, protocolVersion: string): Promise<boolean> {
    const policy = this.deps.options.recoverSessions;
    if (!policy || principal === 'anonymous') return false;
    const now = Date.now();
    let window = this.recoveries.get(principal);
    if (!window || now - window.since >= 60_000)
      this.recoveries.set(principal, (window = { since: now, n: 0 }));
    if (window.n >= policy.maxPerMinute) {
      this.deps.logger.warn({ sessionId, principal }, 'session recovery refused: over the limit per minute');
      return false;
    }
    window.n++;
    const version = SUPPORTED_PROTOCOL_VERSIONS.includes(protocolVersion)
      ? protocolVersion
      : DEFAULT_NEGOTIATED_PROTOCOL_VERSION;
    const record: SessionRecord = {
      id: sessionId,
      principal,
      transport: 'streamable-http',
      protocolVersion: version,
      initialize: {
        protocolVersion: version,
        capabilities: {},
        clientInfo: { name: 'recovered', version: '0' },
      },
      initialized: true,
      createdAt: now,
      owner: '',
      epoch: 0,
      released: 'recovered',
    };
    try {
      await this.deps.store.create(record);
    } catch (err) {
      // Recovered meanwhile by another request (or it is another principal's: resolving tells).
      if (err instanceof FleetError && err.code === 'SESSION_EXISTS') return true;
      throw err;
    }
    this.deps.metrics.sessionRecovered();
    this.deps.logger.warn(
      { sessionId, principal, protocolVersion: version },
      'session recovered: the store did not know it; re-created with no client capabilities and empty data',
    );
    return true;
  }

  /**
   * Finds where a session's messages go, with one store round trip that also refreshes its TTL and
   * checks the principal: the copy here (leased: the caller must `unlease` it) when this instance
   * owns it, else the ownership the store has. Another principal's session is not found. With
   * `claim`, a Streamable HTTP session without an owner is claimed and hydrated here in that same
   * round trip.
   */
  private async resolveOnce(
    sessionId: string,
    principal: string,
    kind: TransportKind,
    claim = false,
  ): Promise<Route> {
    const copy = this.deps.copies.get(sessionId);
    if (copy) {
      if (copy.record.principal !== principal || copy.record.transport !== kind) throw notFound();
      const token = this.deps.ownership.uncheckedToken();
      const at = Date.now();
      if (kind === 'streamable-http' && this.checkedRecently(copy, token, at)) return this.leased(copy);
      copy.lease();
      let now: OwnershipOf | undefined;
      try {
        now = await this.deps.store.touch(sessionId, principal);
      } catch (err) {
        copy.unlease();
        throw err;
      }
      if (!now) {
        copy.unlease();
        if (copy.record.transport === 'sse')
          void this.endLegacy(copy, 'expired', 'record gone from the store');
        else this.deps.copies.drop(sessionId, 'expired');
        throw notFound();
      }
      if (now.owner === this.me && now.epoch === copy.epoch) {
        copy.checked(at, token);
        return { kind: 'local', copy };
      }
      copy.unlease();
      this.deps.copies.stepDown(copy, 'replaced'); // another instance took it over meanwhile
      return { kind: 'remote', seen: now };
    }
    // Not owned here: the ownership is all this instance needs (and the principal and transport).
    const token = this.deps.ownership.uncheckedToken();
    const at = Date.now();
    let state: StoredState | undefined;
    if (claim && kind === 'streamable-http') {
      const found = await this.deps.copies.touchOrClaim(sessionId, principal);
      if (found && 'copy' in found) return this.leased(found.copy);
      state = found?.state;
    } else {
      state = await this.deps.store.touch(sessionId, principal);
    }
    if (!state || state.transport !== kind) {
      this.routes.delete(sessionId);
      throw notFound();
    }
    const seen = { owner: state.owner, epoch: state.epoch };
    if (kind === 'streamable-http' && seen.owner !== '' && seen.owner !== this.me && token !== undefined) {
      this.routes.set(sessionId, { seen, principal, at, token });
    }
    return { kind: 'remote', seen };
  }

  /**
   * The owner of a session owned elsewhere, as a POST here found it in the store (TTL refreshed,
   * principal checked) less than {@link recheckMs} ago under the same ownership token: forwarded to
   * without asking again. Safe when stale: the owner checks the session against its own copy
   * (`handle` carries the epoch seen), and anything but an accepted forward drops the entry and asks
   * the store; a `deleted` broadcast drops it too. The store is asked again at least every
   * `recheckMs`, which keeps the session's TTL refreshed.
   */
  private knownRoute(sessionId: string, principal: string): Route | undefined {
    const known = this.routes.get(sessionId);
    if (!known) return undefined;
    const token = this.deps.ownership.uncheckedToken();
    if (
      known.principal !== principal ||
      token !== known.token ||
      Date.now() - known.at >= this.recheckMs ||
      this.deps.copies.get(sessionId) // a copy here now (claimed): its own check applies
    ) {
      this.routes.delete(sessionId);
      return undefined;
    }
    return { kind: 'remote', seen: known.seen };
  }

  /**
   * Whether a request may use the copy here without the store round trip that refreshes the TTL and
   * checks the ownership: a request found it current less than {@link recheckMs} ago under the same
   * ownership token (no other instance can have claimed it since: see `Ownership.uncheckedToken`),
   * and it is not near its maximum lifetime. The TTL is then refreshed at least every `recheckMs`.
   */
  private checkedRecently(copy: LiveSession, token: number | undefined, now: number): boolean {
    if (token === undefined || token !== copy.checkedToken) return false;
    if (this.deps.ownership.epochOf(copy.id) !== copy.epoch || copy.isClosed) return false;
    const recheckMs = this.recheckMs;
    return (
      now - copy.checkedAt < recheckMs &&
      now < copy.record.createdAt + this.deps.options.maxSessionLifetimeMs - recheckMs
    );
  }

  /** How long a store check of a copy here serves the requests after it: 1 s, or a tenth of the idle TTL. */
  private get recheckMs(): number {
    return Math.min(1000, this.deps.options.sessionTtlMs / 10);
  }

  private leased(copy: LiveSession): Route {
    copy.lease();
    return { kind: 'local', copy };
  }

  /** Waits (bounded by the grace period) for a copy here to finish its handoff. */
  private async awaitHandoff(copy: LiveSession): Promise<void> {
    copy.unlease(); // the handoff waits for our lease too
    try {
      await withTimeout(copy.handoff!, this.deps.options.shutdownGraceMs);
    } finally {
      copy.lease(); // balanced by the caller's unlease
    }
  }

  /** Waits until a draining owner released a session (or the grace period passed). */
  private waitReleased(sessionId: string, owner: string): Promise<void> {
    return withTimeout(
      new Promise<void>((resolve) => {
        let set = this.releasedWaiters.get(sessionId);
        if (!set) this.releasedWaiters.set(sessionId, (set = new Set()));
        set.add(resolve);
      }),
      this.deps.options.shutdownGraceMs,
    ).finally(() => this.deps.logger.debug({ sessionId, owner }, 'session released by its owner'));
  }

  /** A live peer to take sessions over while this instance drains. */
  private async pickPeer(exclude: Set<string>): Promise<string | undefined> {
    const peers = (await this.deps.ownership.peers()).filter((p) => !exclude.has(p.instanceId));
    if (peers.length === 0) return undefined;
    // The least loaded, so one drain does not pile everything onto one survivor.
    peers.sort((a, b) => a.owned - b.owned);
    const best = peers.filter((p) => p.owned === peers[0]!.owned);
    return best[Math.floor(Math.random() * best.length)]!.instanceId;
  }

  /** The reply of a POST that arrived here and runs on the copy here. */
  private localReply(copy: LiveSession, responder: PostResponder, requestIds: RequestId[]): Reply {
    const streamId = newStreamId(this.me, requestIds);
    let connection: ClientConnection | undefined;
    return {
      streamId,
      resumable: this.resumable,
      polling: responder.priming,
      accepted: () => responder.accepted(),
      open: () => {
        connection = responder.connection();
        connection.open(responder.priming ? encodeEventId(streamId, 0) : undefined);
        // A dropped connection is not a cancellation: the handler goes on, the log keeps its output.
        const conn = connection;
        conn.onceClosed(() => copy.streams.get(streamId)?.detach(conn));
        return conn;
      },
      closeStream: (retryMs) => connection?.disconnect(retryMs),
    };
  }

  /** The reply of messages forwarded by `msg.from`: acknowledgements and events over the bus. */
  private remoteReply(
    msg: BusMessageOf<'handle'>,
    answer: (outcome: 'accepted', err?: FleetError, sent?: boolean) => void,
  ): Reply {
    const stream = msg.stream;
    const streamId = stream?.streamId ?? newStreamId(this.me);
    return {
      streamId,
      resumable: stream?.resumable ?? false,
      polling: stream?.priming ?? false,
      accepted: () => answer('accepted'),
      open: () => {
        // The acknowledgement rides on the first delivery (a quick answer costs one write, not two).
        answer('accepted', undefined, true);
        const copy = this.deps.copies.get(msg.sid);
        return this.deps.copies.remoteSink(
          msg.sid,
          streamId,
          msg.from,
          (gone) => copy?.streams.get(streamId)?.detach(gone),
          msg.callId,
        );
      },
      closeStream: (retryMs) => {
        void this.deps.bus.send(msg.from, { t: 'poll', sid: msg.sid, streamId, retryMs }).catch(() => 0);
      },
    };
  }

  private ack(msg: BusMessageOf<'handle'>, handled: BusMessageOf<'handled'>): void {
    void this.deps.bus.send(msg.from, handled).catch((e: unknown) => this.deps.onError(asError(e), msg.sid));
  }

  private remember(callId: string, handled: BusMessageOf<'handled'>): void {
    this.recentCalls.set(callId, handled);
    // A resent call comes within the forwarder's wait; a few thousand answers cover that.
    if (this.recentCalls.size > 4096) {
      const oldest = this.recentCalls.keys().next().value;
      if (oldest !== undefined) this.recentCalls.delete(oldest);
    }
  }

  /**
   * Tells the session's owner that its standalone stream is held here now. `owner` was read with the
   * stream's registration: a claim before it is that owner, and a claim after it reads this holder
   * (an owner seen before the registration may have released the session and would drop the attach).
   */
  private announceStandalone(sessionId: string, owner: string): void {
    if (owner === this.me) this.attachHere(sessionId);
    else if (owner !== '') this.announceTo(owner, sessionId);
  }

  /** Points the copy here (or the one being claimed here, once built) at the standalone stream held here. */
  private attachHere(sessionId: string): void {
    const copy = this.deps.copies.get(sessionId);
    if (copy) {
      this.announced.set(sessionId, this.me);
      this.deps.copies.attachStandalone(copy, this.me);
      return;
    }
    this.onceClaimed(sessionId, () => this.attachHere(sessionId));
  }

  /**
   * Runs `again` once the copy that a claim under way here is building is live (its standalone
   * holder was read with the claim, so news about the GET stream since then is applied to it);
   * nothing when no claim is under way, or it built no copy.
   */
  private onceClaimed(sessionId: string, again: () => void): void {
    void this.deps.copies.whenClaimed(sessionId)?.then((claimed) => claimed && again());
  }

  private announceTo(owner: string, sessionId: string): void {
    this.announced.set(sessionId, owner);
    void this.deps.bus
      .send(owner, { t: 'attach', sid: sessionId, holder: this.me })
      .catch((e: unknown) => this.deps.onError(asError(e), sessionId));
  }

  /** Points a running local stream at `held` (a client resumed it here); false when it is not running. */
  private takeoverLocal(sessionId: string, streamId: string, held: StreamSink): boolean {
    const stream = this.deps.copies.findStream(sessionId, streamId);
    if (!stream) return false;
    const old = stream.currentSink;
    stream.attach(held);
    if (old !== held) letGo(old, this.me);
    return true;
  }

  /** `closeStandaloneSSEStream` of a handler: close the standalone connection wherever it is held. */
  private closeStandalone(sessionId: string, retryMs: number): void {
    const held = this.deps.router.get(sessionId, STANDALONE_STREAM_ID);
    if (held) {
      held.disconnect(retryMs);
      return;
    }
    const sink = this.deps.copies.get(sessionId)?.standalone?.currentSink;
    if (sink instanceof RemoteSink) {
      void this.deps.bus
        .send(sink.holder, { t: 'poll', sid: sessionId, streamId: STANDALONE_STREAM_ID, retryMs })
        .catch(() => 0);
    }
  }

  /** Draining: the stream is opened and closed at once with a retry hint, so the client goes elsewhere. */
  private async redirect(
    sessionId: string,
    streamId: string,
    connection: ClientConnection,
    priming: boolean,
  ): Promise<void> {
    const last = priming && this.deps.log ? await this.deps.log.lastSeq(sessionId, streamId) : undefined;
    connection.open(last === undefined ? undefined : encodeEventId(streamId, last));
    connection.disconnect(this.deps.options.sseRetryMs);
  }

  /** An answer (response or progress) to a server→client request: deliver here or forward to its issuer. */
  private routeAnswer(sessionId: string, message: JSONRPCMessage): void {
    const wireId = answerId(message);
    const issuer = wireId === undefined ? undefined : issuerOf(wireId);
    if (issuer === undefined) {
      this.deps.onError(
        new Error(`answer for a request this server never sent (id ${String(wireId)}); dropped`),
        sessionId,
      );
      return;
    }
    if (issuer === this.me) {
      this.deliverAnswer(sessionId, message);
      return;
    }
    this.deps.metrics.forwardedAnswer();
    void this.deps.bus
      .send(issuer, { t: 'answer', sid: sessionId, message })
      .then((n) => {
        if (n === 0) {
          this.deps.onError(
            new Error(`instance ${issuer} that awaits answer ${String(wireId)} is gone`),
            sessionId,
          );
        }
      })
      .catch((e: unknown) => this.deps.onError(asError(e), sessionId));
  }

  /** Hands an answer to the request waiting for it — only if it came from that request's session. */
  private deliverAnswer(sessionId: string, message: JSONRPCMessage): void {
    const { outgoing } = this.deps;
    if (isResponse(message)) {
      const wireId = message.id === null || message.id === undefined ? '' : String(message.id);
      const entry = outgoing.peek(wireId);
      if (!entry || entry.owner.sessionId !== sessionId) {
        this.deps.onError(
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
}

/** The id of a logged response, or undefined for any other event. */
function responseIdOf(data: string): RequestId | undefined {
  try {
    const m = JSON.parse(data) as JSONRPCMessage;
    return isResponse(m) && m.id !== null && m.id !== undefined ? m.id : undefined;
  } catch {
    return undefined;
  }
}

/** A client's answer to a server→client request: a response, or progress with one of our tokens. */
function isAnswer(m: JSONRPCMessage): boolean {
  if (isResponse(m)) return true;
  if (!isNotification(m) || m.method !== 'notifications/progress') return false;
  const token = m.params?.progressToken as RequestId | undefined;
  return token !== undefined && issuerOf(token) !== undefined;
}

function answerId(m: JSONRPCMessage): RequestId | undefined {
  if (isResponse(m)) return m.id ?? undefined;
  return (m as { params?: { progressToken?: RequestId } }).params?.progressToken;
}

/** The connection a stream wrote to before it was taken over: let it go. */
function letGo(old: StreamSink | undefined, newHolder: string): void {
  if (!old || old.closed) return;
  if (old instanceof RemoteSink) {
    old.release(newHolder);
    return;
  }
  const c = old as Partial<ClientConnection>;
  if (typeof c.disconnect === 'function') c.disconnect();
}

function knownCode(code: string): FleetErrorCode {
  return code in ERROR_TABLE ? (code as FleetErrorCode) : 'INTERNAL';
}

function withTimeout(p: Promise<void>, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    timer.unref();
    void p.finally(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Resolves when `work` settles or at `deadline` (epoch ms), whichever comes first. */
async function beforeDeadline(work: Promise<unknown>, deadline: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      work.then(
        () => undefined,
        () => undefined,
      ),
      new Promise<void>((r) => {
        timer = setTimeout(r, Math.max(0, deadline - Date.now()));
        timer.unref();
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
