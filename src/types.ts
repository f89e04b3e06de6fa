import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import type { RedisConnection } from './redis/connect.js';
import type { OpenMetricsContentType, PrometheusContentType, Registry } from 'prom-client';
import type { Logger } from './logger.js';
import type { FleetNotifier, ServerEvent } from './modern/event-bus.js';
import type { FleetRequestState, RequestStateOptions } from './modern/request-state.js';

/** The SDK v2's `ServerEventBus`, structurally (no v2 import for users of the v1 line). */
export interface FleetServerEventBus {
  publish(event: ServerEvent): void;
  subscribe(listener: (event: ServerEvent) => void): () => void;
}

/** A JSON value, as stored in a session's application data. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/**
 * Who made a request, as returned by {@link FleetOptions.authenticate}. Every session is bound to the
 * principal that initialized it; a request from another principal sees the session as not found.
 */
export interface Principal {
  /** Stable identifier of the caller (e.g. a JWT `sub`). Sessions are bound to it. */
  id: string;
  /** Passed to SDK handlers as `extra.authInfo`. */
  authInfo?: AuthInfo | undefined;
}

/** A versioned snapshot of a session's application data. */
export interface SessionDataSnapshot<T> {
  value: T | undefined;
  /** Increases by one on every write; 0 when nothing was ever written. */
  version: number;
}

/**
 * A session's application data: one small JSON document per session, visible from every instance
 * and expiring with the session (the original design's `SessionData.data`).
 */
export interface SessionData<T extends JsonValue = JsonValue> {
  /** The current document, or `undefined` when nothing was written yet. */
  get(): Promise<T | undefined>;
  /** The current document and its version. */
  snapshot(): Promise<SessionDataSnapshot<T>>;
  /** Replaces the document unconditionally. Resolves to the new version. */
  set(value: T): Promise<number>;
  /**
   * Read-modify-write with optimistic concurrency: `fn` gets the current document and returns the
   * next one; when another instance wrote in between, `fn` runs again on the fresh value. Resolves to
   * the value that was written. Throws `FleetError('DATA_CONFLICT')` after `maxAttempts` (default 32).
   */
  update(
    fn: (current: T | undefined) => T | Promise<T>,
    options?: { maxAttempts?: number | undefined },
  ): Promise<T>;
  /** Removes the document (the session itself lives on). */
  clear(): Promise<void>;
}

/**
 * Why a live copy of a session ended (see {@link SessionContext.onClose}):
 * - `deleted`: the client ended the session (`DELETE`, or its legacy stream closed) — the session is gone;
 * - `expired`: the session outlived its idle TTL or maximum lifetime — the session is gone;
 * - `evicted`: this instance dropped the copy from memory (LRU or idle) — the session lives on;
 * - `handoff`: the copy was handed off (this instance is shutting down) — the session lives on;
 * - `replaced`: another instance took the session over (this copy was fenced off) — the session lives on;
 * - `shutdown`: the instance closed without handing the copy off;
 * - `done`: a server built for one 2026-07-28 request (no session) finished that request.
 */
export type SessionCloseReason =
  'deleted' | 'expired' | 'evicted' | 'handoff' | 'replaced' | 'shutdown' | 'done';

/**
 * How this copy of a session came to be (see {@link SessionContext.origin}):
 * - `initialize`: the session is new (a client's `initialize`, or a legacy `GET /sse`);
 * - `handoff`: its previous owner handed it off (shut down, or rebalanced its sessions);
 * - `eviction`: its previous copy was evicted from an instance's memory (possibly this one);
 * - `failover`: its previous owner died or froze, and this instance took the session over;
 * - `recovered`: the store had lost the session (`recoverSessions`): re-created under the client's id
 *   with a conservative client profile (no capabilities); its data starts empty.
 * In every case but `initialize` the factory's server starts from the session's record and data only.
 */
export type SessionOrigin = 'initialize' | 'handoff' | 'eviction' | 'failover' | 'recovered' | 'request';

/** What the server factory gets for each session it builds. */
export interface SessionContext<T extends JsonValue = JsonValue> {
  /**
   * `legacy`: a session of the 2025 era (`initialize`, `Mcp-Session-Id`, legacy SSE) — one live copy
   * in the fleet. `modern`: one 2026-07-28 request (no session): the server is built for it alone
   * (SDK v2 servers only), `sessionId` is `''`, `origin` is `request`, `data` rejects, and `signal`/
   * `onClose` end with the request (`done`).
   */
  readonly era: 'legacy' | 'modern';
  /** The session id (`Mcp-Session-Id` or the legacy `sessionId`); `''` in the modern era. */
  readonly sessionId: string;
  /** The principal the session is bound to (`anonymous` when no `authenticate` hook is set). */
  readonly principal: string;
  /** The instance building this copy of the session. */
  readonly instanceId: string;
  /** Which transport the session uses. */
  readonly transport: 'streamable-http' | 'sse';
  /** How this copy came to be: a new session, or which way the session reached this instance. */
  readonly origin: SessionOrigin;
  /** The session's application data, shared by all instances. */
  readonly data: SessionData<T>;
  /**
   * Aborted when this copy of the session ends; `signal.reason` is the {@link SessionCloseReason}.
   * Pass it to work that must stop with the copy (timers, connections, subprocesses).
   */
  readonly signal: AbortSignal;
  /**
   * Runs `fn` once when this copy ends, after the SDK server was closed, with the reason. Use it for
   * per-session cleanup (`server-everything`'s `cleanup()`, a browser, a database transaction); for
   * `evicted`, `handoff` and `replaced` the session lives on and the next copy is built by the factory
   * elsewhere, so persist what must survive in {@link data} before then.
   */
  onClose(fn: (reason: SessionCloseReason) => void): void;
}

/**
 * An SDK server: `McpServer` or `Server` of the v1 line (`@modelcontextprotocol/sdk`) or of the v2
 * line (`@modelcontextprotocol/server`), told apart at run time. Only v2 servers serve 2026-07-28.
 */
export interface SdkServer {
  connect(transport: never): Promise<void>;
  close(): Promise<void>;
}

/**
 * A validated access token as the SDK's handlers see it (`extra.authInfo` in v1, `ctx.http.authInfo`
 * in v2) — the same shape in both lines, declared here so either SDK alone will do.
 */
export interface AuthInfo {
  /** The access token. */
  token: string;
  /** The client id the token was issued to. */
  clientId: string;
  /** Its scopes. */
  scopes: string[];
  /** Expiry, seconds since the epoch. */
  expiresAt?: number;
  /** The RFC 8707 resource it is valid for. */
  resource?: URL;
  /** Anything else the issuer attached. */
  extra?: Record<string, unknown>;
}

/**
 * A new, unmodified SDK server per session (2025 era), and per request (2026-07-28, v2 servers:
 * `ctx.era === 'modern'`).
 */
export type ServerFactory<T extends JsonValue = JsonValue> = (
  ctx: SessionContext<T>,
) => SdkServer | Promise<SdkServer>;

/** Node request handler, usable with `http.createServer` and as Express/Connect middleware. */
export type FleetHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  next?: (err?: unknown) => void,
) => void;

/** Options of {@link createFleet}. */
export interface FleetOptions<T extends JsonValue = JsonValue> {
  /** Builds the user's MCP server for a session (called on initialize and when an instance hydrates it). */
  server: ServerFactory<T>;
  /**
   * Where the shared state lives: a URL (`redis://[user:password@]host:port[/db]`, `rediss://` for
   * TLS), a Sentinel configuration (`{ sentinels, name }`), a Cluster configuration (`{ nodes }`), or
   * an ioredis `Redis` or `Cluster` client (mcp-fleet never closes a client it did not open, and opens
   * its own subscriber connections next to it). Omitted: in-memory parts, one instance only.
   * @default undefined
   */
  redis?: RedisConnection | undefined;
  /** Prefix of every Redis key and channel. @default 'mcp:' */
  keyPrefix?: string | undefined;
  /**
   * Name of this instance in logs, records and bus channels; must be unique among running instances
   * (a restarted process should get a new one). @default `${hostname}-${pid}-${6 random hex}`
   */
  instanceId?: string | undefined;
  /** Path of the Streamable HTTP endpoint. @default '/mcp' */
  path?: string | undefined;
  /** Path of the legacy HTTP+SSE stream endpoint. @default '/sse' */
  ssePath?: string | undefined;
  /** Path of the legacy HTTP+SSE message endpoint. @default '/messages' */
  messagesPath?: string | undefined;
  /**
   * Resolves the caller. Throw (or reject) to answer 401; throw an `UnauthorizedError` to set the
   * `WWW-Authenticate` header. Omitted: every caller is `anonymous`.
   * @default undefined
   */
  authenticate?: ((req: IncomingMessage) => Principal | string | Promise<Principal | string>) | undefined;
  /** Sliding idle time-to-live of a session. @default 3_600_000 (1 hour) */
  sessionTtlMs?: number | undefined;
  /** Absolute maximum lifetime of a session, however active. @default 86_400_000 (24 hours) */
  maxSessionLifetimeMs?: number | undefined;
  /** Largest accepted request body in bytes; larger → 413. @default 4_194_304 (4 MiB) */
  maxBodyBytes?: number | undefined;
  /** Largest application data document per session in bytes (serialized). @default 65_536 */
  maxSessionDataBytes?: number | undefined;
  /** Most live sessions this instance keeps in memory (LRU beyond). @default 1000 */
  maxLiveSessions?: number | undefined;
  /** A live session unused this long is evicted from memory (not ended). @default 600_000 (10 min) */
  liveSessionIdleMs?: number | undefined;
  /** Answer requests with a single JSON body instead of an SSE stream when possible. @default false */
  jsonResponse?: boolean | undefined;
  /** Keep a capped, resumable event log for every SSE stream. @default true */
  resumable?: boolean | undefined;
  /** Events kept per stream in the event log (approximate cap). @default 1000 */
  maxEventsPerStream?: number | undefined;
  /**
   * How long a finished stream's log is kept after its last event (its answer), so a client whose
   * connection dropped can still reconnect and read it; a live stream's log lives as long as its
   * session. @default 60_000
   */
  endedStreamTtlMs?: number | undefined;
  /** `retry` field (ms) sent with the priming event of each SSE stream. @default 1000 */
  sseRetryMs?: number | undefined;
  /**
   * Bytes an SSE connection may buffer for a client that does not read; beyond it the connection is
   * cut (a Streamable HTTP client resumes from the event log; a legacy session ends). @default 8_388_608 (8 MiB)
   */
  maxStreamBufferBytes?: number | undefined;
  /** Legacy HTTP+SSE streams (each holds a live server) this instance accepts; more → 503. @default 1000 */
  maxLegacySessions?: number | undefined;
  /** Interval of SSE keep-alive comments on idle streams. @default 15_000 */
  keepAliveMs?: number | undefined;
  /** A Redis command that takes longer than this fails the request with 503. @default 2_000 */
  redisCommandTimeoutMs?: number | undefined;
  /**
   * Pub/sub between instances on a Redis Cluster: `sharded` (SPUBLISH/SSUBSCRIBE, Redis 7 or later:
   * each message stays within one shard) or `classic` (for older servers: every message crosses the
   * whole cluster). Ignored on standalone and Sentinel. @default 'sharded'
   */
  redisPubSub?: 'sharded' | 'classic' | undefined;
  /**
   * Durability of new sessions: after writing a session, wait until this many replicas have it
   * (`WAIT`) before answering `initialize`, so a failover of the primary right after cannot lose it;
   * not replicated within a second → 503 (the client retries). 0: rely on asynchronous replication
   * (a session created in the last few milliseconds before a primary dies can be lost). @default 0
   */
  redisReplicasOnCreate?: number | undefined;
  /**
   * Legacy HTTP+SSE: how long a `POST /messages` waits for the instance holding the stream to accept
   * the message before answering 404 (owner gone). @default 5000
   */
  legacyPostTimeoutMs?: number | undefined;
  /** How often an instance renews the records of the streams it holds (they expire after 3×). @default 10_000 */
  streamHeartbeatMs?: number | undefined;
  /**
   * How often this instance renews its liveness in the store. Sessions it owns are taken over by
   * another instance when it does not answer and its liveness has expired (see `instanceTtlMs`).
   * @default 500
   */
  heartbeatMs?: number | undefined;
  /**
   * An instance whose liveness was not renewed for this long counts as dead or frozen: the next
   * request of a session it owns makes a new owner (a process that is gone is found at once, without
   * waiting for this). At least twice `heartbeatMs`. @default 2000
   */
  instanceTtlMs?: number | undefined;
  /**
   * How long an instance waits for a session's owner to acknowledge forwarded messages before it
   * checks the owner's liveness (and takes the session over if it expired). @default 1000
   */
  ownerAckTimeoutMs?: number | undefined;
  /**
   * `close()` waits this long for running handlers to answer on their open POST streams; requests
   * still unanswered then get a JSON-RPC error. @default 5000
   */
  shutdownGraceMs?: number | undefined;
  /**
   * Spreads sessions over the fleet after a scale-out (off by default: a moved session loses its
   * process state — its timers and in-memory stores; its data, capabilities, logging level and
   * subscriptions move with it). With it on, an instance that owns more than its fair share (the
   * fleet's sessions over its live instances) by more than `slack` hands off sessions that have been
   * idle (nothing in flight, no message either way) for `idleMs`, at most `maxPerSecond`; they are
   * claimed by the instance serving their next request, or by the least loaded one when that
   * instance is itself above its share. `true` takes the defaults.
   * @default false
   */
  /**
   * The `requestState` key ring for multi-round-trip requests of SDK v2 servers (see
   * `fleet.requestState`): keys shared by every instance, newest first; optional binding and
   * single-use mode. Without it, `fleet.requestState` rejects. @default undefined
   */
  requestState?: RequestStateOptions | undefined;
  rebalance?:
    | boolean
    | undefined
    | {
        /** @default 0.2 */
        slack?: number | undefined;
        /** @default 5000 */
        idleMs?: number | undefined;
        /** @default 10 */
        maxPerSecond?: number | undefined;
        /** How often an instance compares its share with the fleet's. @default 2000 */
        intervalMs?: number | undefined;
      };
  /**
   * Session recovery, off by default: a request naming a well-formed session id the store does not
   * know (its Redis data was lost, or it expired) re-creates that session for the request's principal
   * instead of answering 404 — for clients that never re-initialize after a 404 (the SDK client and
   * the Inspector keep the dead id). The new session has a conservative client profile (the request's
   * protocol version, no client capabilities: no sampling, elicitation or roots; clientInfo
   * `recovered`), empty data, and `ctx.origin` `recovered`; each recovery counts in
   * `mcp_fleet_sessions_recovered_total` and logs a warning. At most `maxPerMinute` recoveries per
   * principal and instance (more → 404). Never for the principal `anonymous` (no `authenticate`).
   * Risks: what the server kept for the session is gone; a client may pick its session id (it is
   * bound to that client's principal, so another principal still gets 404); a session ended by
   * `DELETE` comes back if its client keeps using the id.
   * @default false
   */
  recoverSessions?: boolean | undefined | { maxPerMinute?: number | undefined };
  /** Allowed `Host` header values (DNS-rebinding protection); empty → not checked. @default [] */
  allowedHosts?: string[] | undefined;
  /** Allowed `Origin` header values; empty → not checked. A present, unlisted Origin → 403. @default [] */
  allowedOrigins?: string[] | undefined;
  /** pino-compatible logger. @default a silent logger */
  logger?: Logger | undefined;
  /**
   * A prom-client registry to register mcp-fleet's metrics in (names start with `mcp_fleet_`; no label
   * holds a session id): HTTP requests by method, path kind and status, their time to the response
   * head (for SSE answers the time until the stream opened, not its lifetime), sessions created,
   * hydrations by outcome, live sessions, held streams, bus messages, forwarded answers and errors by
   * code. Each fleet needs its own registry: one that already has these names makes `createFleet` throw.
   * Expose it yourself, e.g. `res.end(await registry.metrics())` with `registry.contentType`.
   * @default undefined (no metrics)
   */
  metrics?: Registry<PrometheusContentType> | Registry<OpenMetricsContentType> | undefined;
}

/** Health of this instance's view of the fleet. */
export interface FleetHealth {
  /** `ok` when the session store answered, else `error`. */
  store: 'ok' | 'error';
  /** Live (not expired) sessions in the store, counted without `KEYS`; `null` when unreachable. */
  sessions: number | null;
  /** Open transport streams across the fleet; `null` when unreachable. */
  transportSessions: number | null;
  /** Sessions whose one live copy runs on this instance (legacy SSE sessions included). */
  liveSessions: number;
  /** Live instances of the fleet (this one included); `null` when unreachable. */
  instances: number | null;
  /** `true` once `close()` was called. */
  closing: boolean;
}

/** Options of {@link Fleet.close}. */
export interface FleetCloseOptions {
  /** The HTTP server `handler` is mounted on: closed first, and waited for (see `close`). */
  server?: HttpServer | undefined;
}

/** What {@link createFleet} returns. */
export interface Fleet<T extends JsonValue = JsonValue> {
  /** Serves `POST`/`GET`/`DELETE` on the MCP path and the legacy SSE paths; `next()` or 404 for others. */
  readonly handler: FleetHandler;
  /** This instance's id. */
  readonly instanceId: string;
  /**
   * Tells every client that something changed — `subscriptions/listen` streams (2026-07-28) on every
   * instance, and 2025-era sessions (their GET stream; `resourceUpdated` only to sessions subscribed
   * to the URI) — once each. Call it from any instance, e.g. in a tool that changed the tool list.
   */
  readonly notify: FleetNotifier;
  /**
   * The fleet's `ServerEventBus` (the SDK v2 interface: `publish`/`subscribe`), shared by all
   * instances over Redis: what `notify` publishes on; the 2026 listeners subscribe to it.
   */
  readonly events: FleetServerEventBus;
  /**
   * The fleet's `requestState` codec (option `requestState`): give `verify` to the SDK v2 server
   * (`new McpServer(info, { requestState: { verify: fleet.requestState.verify } })`) and return
   * `inputRequired({ …, requestState: await fleet.requestState.mint(payload, ctx) })` from a handler;
   * the retry verifies on any instance.
   */
  readonly requestState: FleetRequestState;
  /** Application data of any session, for code outside a handler (e.g. an admin endpoint). */
  sessionData(sessionId: string): SessionData<T>;
  /** Store reachability and session counts (no `KEYS`). */
  health(): Promise<FleetHealth>;
  /** `true` when the store is reachable and the fleet is not closing (for a readiness probe). */
  ready(): Promise<boolean>;
  /**
   * Graceful shutdown, idempotent: hands off every session this instance owns, ends its open streams
   * (clients resume elsewhere), keeps forwarding requests that still arrive, then closes the
   * connections it opened. With `server`, it also stops that HTTP server from accepting connections
   * and waits (within `shutdownGraceMs`) until the connections it had are gone, so a request that a
   * load balancer sent just before the shutdown is served, not refused.
   */
  close(options?: FleetCloseOptions): Promise<void>;
}
