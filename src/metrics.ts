import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, Gauge, Histogram } from 'prom-client';
import type { MessageBus } from './bus/message-bus.js';
import { BUS_KINDS, type BusMessage, type FleetBus } from './bus/protocol.js';
import { FleetError } from './errors.js';
import type { FleetOptions } from './types.js';

/** The prom-client registry of the `metrics` option. */
export type MetricsRegistry = NonNullable<FleetOptions['metrics']>;

/** What the gauges read when scraped (set once the parts they read exist). */
export interface GaugeSources {
  /** Sessions held in this instance's memory (live copies plus legacy sessions). */
  liveSessions(): number;
  /** SSE connections held here with a record in the stream registry. */
  heldStreams(): number;
  /** Sessions owned here. */
  ownedSessions(): number;
}

/** The paths whose requests are measured, as resolved from the options. */
export interface MeasuredPaths {
  path: string;
  ssePath: string;
  messagesPath: string;
}

/** Label values of `method`: anything else a client sends is `other` (labels must stay bounded). */
const METHODS = new Set(['GET', 'POST', 'DELETE', 'HEAD', 'OPTIONS', 'PUT', 'PATCH']);

/** Label values of the bus message type: the kinds of the protocol (anything else is `other`). */
const BUS_TYPES = new Set<string>(BUS_KINDS);

/** Why a session's ownership changed on this instance (`mcp_fleet_ownership_changes_total`). */
export type OwnershipChange =
  'created' | 'claimed' | 'failover' | 'drain' | 'rebalance' | 'evicted' | 'replaced' | 'lost';

const PREFIX = 'mcp_fleet_';

/**
 * The fleet's Prometheus metrics. This base class is the no-op variant used without the `metrics`
 * option: every method does nothing (or returns its argument), so call sites never branch.
 * {@link FleetMetrics.create} returns the recording variant when a registry is given.
 */
export class FleetMetrics {
  /**
   * The recording variant registered in `registry`, or the no-op variant. Throws when the registry
   * already has one of the metric names (each fleet needs its own registry).
   */
  static create(registry: MetricsRegistry | undefined, paths: MeasuredPaths): FleetMetrics {
    return registry ? new PromFleetMetrics(registry, paths) : new FleetMetrics();
  }

  /** Sets what the gauges read. */
  watch(_sources: GaugeSources): void {}

  /** Measures one request on a served path: counted, and timed to its response head. */
  request(_req: IncomingMessage, _res: ServerResponse, _path: string): void {}

  /** A session was created (initialize, or a legacy `GET /sse`). */
  sessionCreated(_transport: 'streamable-http' | 'sse'): void {}

  /** A session unknown to the store was re-created under its client's id (`recoverSessions`). */
  sessionRecovered(): void {}

  /** Counts the outcome of one hydration; resolves or rejects as `hydration` does. */
  hydration<T>(hydration: Promise<T>): Promise<T> {
    return hydration;
  }

  /** The bus, counting the messages it publishes. */
  bus(bus: MessageBus): FleetBus {
    return bus;
  }

  /** A decoded bus message arrived (counted by type). */
  busReceived(_m: BusMessage): void {}

  /** An answer to a server→client request was forwarded to the instance that waits for it. */
  forwardedAnswer(): void {}

  /** A session's ownership changed here (see {@link OwnershipChange}). */
  ownershipChange(_reason: OwnershipChange): void {}

  /** A POST's messages ran on the copy here (`local`) or were forwarded to the owner (`forwarded`). */
  routed(_kind: 'local' | 'forwarded'): void {}

  /** An error ended a request (see `mcp_fleet_errors_total`). */
  errorResponse(_err: unknown): void {}
}

/** The recording variant: every metric is registered in the given registry only. */
class PromFleetMetrics extends FleetMetrics {
  private readonly requests: Counter<'method' | 'path_kind' | 'status'>;
  private readonly duration: Histogram<'method' | 'path_kind'>;
  private readonly sessionsCreated: Counter<'transport'>;
  private readonly sessionsRecovered: Counter;
  private readonly hydrations: Counter<'outcome'>;
  private readonly busMessages: Counter<'direction' | 'type'>;
  private readonly forwardedAnswers: Counter;
  private readonly ownershipChanges: Counter<'reason'>;
  private readonly routes: Counter<'route'>;
  private readonly storeErrors: Counter;
  private readonly errors: Counter<'code'>;
  private sources: GaugeSources | undefined;

  constructor(
    registry: MetricsRegistry,
    private readonly paths: MeasuredPaths,
  ) {
    super();
    const names = [
      'http_requests_total',
      'http_request_duration_seconds',
      'sessions_created_total',
      'hydrations_total',
      'live_sessions',
      'held_streams',
      'bus_messages_total',
      'forwarded_answers_total',
      'ownership_changes_total',
      'routed_posts_total',
      'owned_sessions',
      'store_errors_total',
      'errors_total',
    ].map((n) => PREFIX + n);
    // Checked before registering anything, so a collision leaves the registry as it was.
    const taken = names.find((n) => registry.getSingleMetric(n) !== undefined);
    if (taken !== undefined) {
      throw new Error(
        `createFleet: the metrics registry already has ${taken}; each fleet needs its own prom-client Registry`,
      );
    }
    const registers = [registry];
    this.requests = new Counter({
      name: `${PREFIX}http_requests_total`,
      help: 'HTTP requests on the MCP and legacy SSE paths, by status of the response head (0: the client left before any answer)',
      labelNames: ['method', 'path_kind', 'status'] as const,
      registers,
    });
    this.duration = new Histogram({
      name: `${PREFIX}http_request_duration_seconds`,
      help: 'Time from request to response head; for streaming (SSE) answers the time until the stream opened, not its lifetime',
      labelNames: ['method', 'path_kind'] as const,
      registers,
    });
    this.sessionsCreated = new Counter({
      name: `${PREFIX}sessions_created_total`,
      help: 'Sessions created on this instance',
      labelNames: ['transport'] as const,
      registers,
    });
    this.sessionsRecovered = new Counter({
      name: `${PREFIX}sessions_recovered_total`,
      help: 'Sessions the store did not know, re-created under their client id (recoverSessions)',
      registers,
    });
    this.hydrations = new Counter({
      name: `${PREFIX}hydrations_total`,
      help: 'Live copies of sessions rebuilt from the store on this instance, by outcome',
      labelNames: ['outcome'] as const,
      registers,
    });
    const sources = () => this.sources;
    new Gauge({
      name: `${PREFIX}live_sessions`,
      help: "Sessions held in this instance's memory (live copies and legacy HTTP+SSE sessions)",
      registers,
      collect() {
        this.set(sources()?.liveSessions() ?? 0);
      },
    });
    new Gauge({
      name: `${PREFIX}held_streams`,
      help: 'SSE connections this instance holds with a record in the stream registry (GET, resumed and legacy streams)',
      registers,
      collect() {
        this.set(sources()?.heldStreams() ?? 0);
      },
    });
    this.busMessages = new Counter({
      name: `${PREFIX}bus_messages_total`,
      help: 'Messages published to (out) and received from (in) the inter-instance bus, by message type',
      labelNames: ['direction', 'type'] as const,
      registers,
    });
    this.forwardedAnswers = new Counter({
      name: `${PREFIX}forwarded_answers_total`,
      help: 'Client answers to server-to-client requests forwarded to the instance that issued them',
      registers,
    });
    this.ownershipChanges = new Counter({
      name: `${PREFIX}ownership_changes_total`,
      help: 'Sessions this instance started owning (created, claimed, failover) or stopped owning (drain, rebalance, evicted, replaced, lost)',
      labelNames: ['reason'] as const,
      registers,
    });
    this.routes = new Counter({
      name: `${PREFIX}routed_posts_total`,
      help: 'POSTs of a session answered by the copy on this instance (local) or forwarded to its owner (forwarded)',
      labelNames: ['route'] as const,
      registers,
    });
    new Gauge({
      name: `${PREFIX}owned_sessions`,
      help: 'Sessions whose one live copy this instance runs (Streamable HTTP and legacy)',
      registers,
      collect() {
        this.set(sources()?.ownedSessions() ?? 0);
      },
    });
    this.storeErrors = new Counter({
      name: `${PREFIX}store_errors_total`,
      help: 'Requests answered 503 because the session store was unreachable or too slow',
      registers,
    });
    this.errors = new Counter({
      name: `${PREFIX}errors_total`,
      help: 'Requests ended by an error, by mcp-fleet error code',
      labelNames: ['code'] as const,
      registers,
    });
  }

  override watch(sources: GaugeSources): void {
    this.sources = sources;
  }

  override request(req: IncomingMessage, res: ServerResponse, path: string): void {
    const method = METHODS.has(req.method ?? '') ? req.method! : 'other';
    const labels = { method, path_kind: this.kindOf(path, method) };
    const started = performance.now();
    let done = false;
    const record = (status: number) => {
      if (done) return;
      done = true;
      this.requests.inc({ ...labels, status: String(status) });
      if (status !== 0) this.duration.observe(labels, (performance.now() - started) / 1000);
    };
    // Node has no "head sent" event; every head goes through writeHead (an implicit one too, via
    // `_implicitHeader`), so the instance's writeHead is wrapped (as the `on-headers` package does).
    const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => ServerResponse;
    res.writeHead = ((...args: unknown[]) => {
      record(typeof args[0] === 'number' ? args[0] : res.statusCode);
      return writeHead(...args);
    }) as ServerResponse['writeHead'];
    res.once('close', () => record(res.headersSent ? res.statusCode : 0));
  }

  override sessionCreated(transport: 'streamable-http' | 'sse'): void {
    this.sessionsCreated.inc({ transport });
  }

  override sessionRecovered(): void {
    this.sessionsRecovered.inc();
  }

  override hydration<T>(hydration: Promise<T>): Promise<T> {
    hydration.then(
      () => this.hydrations.inc({ outcome: 'ok' }),
      (err: unknown) =>
        this.hydrations.inc({
          outcome: err instanceof FleetError && err.code === 'SESSION_NOT_FOUND' ? 'not_found' : 'error',
        }),
    );
    return hydration;
  }

  override bus(bus: MessageBus): FleetBus {
    return {
      start: (instanceId, onMessage) => bus.start(instanceId, onMessage),
      send: (instanceId, m) => {
        this.busCount('out', m);
        return bus.send(instanceId, m);
      },
      broadcast: (m) => {
        this.busCount('out', m);
        return bus.broadcast(m);
      },
      isUp: () => bus.isUp(),
      whenUp: (ms) => bus.whenUp(ms),
      close: () => bus.close(),
    };
  }

  override busReceived(m: BusMessage): void {
    this.busCount('in', m);
  }

  private busCount(direction: 'in' | 'out', m: BusMessage): void {
    this.busMessages.inc({ direction, type: BUS_TYPES.has(m.t) ? m.t : 'other' });
  }

  override forwardedAnswer(): void {
    this.forwardedAnswers.inc();
  }

  override ownershipChange(reason: OwnershipChange): void {
    this.ownershipChanges.inc({ reason });
  }

  override routed(kind: 'local' | 'forwarded'): void {
    this.routes.inc({ route: kind });
  }

  override errorResponse(err: unknown): void {
    const code = err instanceof FleetError ? err.code : 'INTERNAL';
    // A modern client probing a fleet of v1 servers is told to fall back: part of the protocol.
    if (code === 'ERA_UNSUPPORTED') return;
    this.errors.inc({ code });
    if (code === 'STORE_UNAVAILABLE') this.storeErrors.inc();
  }

  /** `mcp`, `sse` or `messages`; the stream and the messages may share one path (told apart by method). */
  private kindOf(path: string, method: string): 'mcp' | 'sse' | 'messages' {
    const { ssePath, messagesPath } = this.paths;
    if (path === messagesPath && (method === 'POST' || path !== ssePath)) return 'messages';
    if (path === ssePath) return 'sse';
    return 'mcp';
  }
}
