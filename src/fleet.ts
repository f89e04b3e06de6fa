import { Redis } from 'ioredis';
import { MemoryBus, MemoryBusHub } from './bus/memory-bus.js';
import type { MessageBus } from './bus/message-bus.js';
import { RedisBus } from './bus/redis-bus.js';
import type { EventLog } from './events/event-log.js';
import { MemoryEventLog } from './events/memory-event-log.js';
import { RedisEventLog } from './events/redis-event-log.js';
import { asError, storeUnavailable } from './errors.js';
import { createHandler } from './http/handler.js';
import { legacyRoutes } from './legacy/routes.js';
import { SessionHost } from './host/session-host.js';
import { StreamRouter } from './host/stream-router.js';
import { FleetMetrics } from './metrics.js';
import { resolveOptions } from './options.js';
import { assertSessionId } from './session-id.js';
import { RedisKeys } from './redis/keys.js';
import { Runtime } from './runtime.js';
import { createSessionData } from './session-data.js';
import { MemorySessionStore } from './store/memory-session-store.js';
import { MemoryStreamRegistry } from './store/memory-stream-registry.js';
import { RedisSessionStore } from './store/redis-session-store.js';
import { RedisStreamRegistry } from './store/redis-stream-registry.js';
import type { SessionStore } from './store/session-store.js';
import type { StreamRegistry } from './store/stream-registry.js';
import type { FleetTransport } from './transport/fleet-transport.js';
import { OutgoingRequests } from './transport/outgoing-requests.js';
import type { Fleet, FleetHealth, FleetOptions, JsonValue, ServerFactory, SessionData } from './types.js';

/**
 * Serves an MCP server built with the official SDK from any number of instances: every instance
 * answers every request of every session, with session state in Redis (or in memory, for one
 * instance, when `redis` is omitted).
 *
 * ```ts
 * const fleet = createFleet({ server: () => buildMyMcpServer(), redis: process.env.REDIS_URL });
 * http.createServer(fleet.handler).listen(9100);
 * ```
 */
export function createFleet<T extends JsonValue = JsonValue>(options: FleetOptions<T>): Fleet<T> {
  const opts = resolveOptions(options);
  const logger = opts.logger.child({ instanceId: opts.instanceId });
  // Non-fatal problems of every part: one warn line, with the session id where there is one.
  const report = (err: unknown, sessionId?: string) => logger.warn({ err, sessionId }, asError(err).message);
  const onError = (err: unknown) => report(err);
  // Before any connection is opened: a registry that already has our metrics throws here.
  const metrics = FleetMetrics.create(opts.metrics, opts);

  // Connection roles: this one runs commands and fails fast while Redis is away (no offline queue,
  // so requests get a 503 at once instead of piling up); the bus duplicates it for subscriptions.
  let redis: Redis | undefined;
  let ownsRedis = false;
  if (typeof options.redis === 'string') {
    redis = new Redis(options.redis, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 2000),
    });
    redis.on('error', (err: Error) => logger.debug({ err }, 'redis connection error'));
    ownsRedis = true;
  } else if (options.redis) {
    redis = options.redis;
  }

  const keys = new RedisKeys(opts.keyPrefix);
  const ttl = { idleMs: opts.sessionTtlMs, maxLifetimeMs: opts.maxSessionLifetimeMs };
  const timeout = { commandTimeoutMs: opts.redisCommandTimeoutMs };
  const heartbeatTtlMs = opts.streamHeartbeatMs * 3;
  const eventTtlMs = opts.sessionTtlMs;

  const store: SessionStore = redis
    ? new RedisSessionStore(redis, keys, ttl, timeout)
    : new MemorySessionStore(ttl);
  const rawBus = redis
    ? new RedisBus(redis, keys, { ...timeout, onError })
    : new MemoryBus(new MemoryBusHub(), { onError });
  const bus: MessageBus = metrics.bus(rawBus);
  const registry: StreamRegistry = redis
    ? new RedisStreamRegistry(redis, keys, { ...timeout, heartbeatTtlMs })
    : new MemoryStreamRegistry({ heartbeatTtlMs });
  let log: EventLog | undefined;
  if (opts.resumable) {
    log = redis
      ? new RedisEventLog(redis, keys, { ...timeout, maxEvents: opts.maxEventsPerStream, ttlMs: eventTtlMs })
      : new MemoryEventLog({ maxEvents: opts.maxEventsPerStream, ttlMs: eventTtlMs });
  }

  const outgoing = new OutgoingRequests<FleetTransport>(opts.instanceId);
  const dataFor = (sessionId: string): SessionData<T> =>
    createSessionData<T>(store, sessionId, opts.maxSessionDataBytes);

  // The host and the stream router need each other; the host's hook reads the router at send time.
  const late: { streams?: StreamRouter } = {};
  const host = new SessionHost({
    factory: options.server as ServerFactory<JsonValue>,
    store,
    instanceId: opts.instanceId,
    outgoing,
    maxLive: opts.maxLiveSessions,
    liveIdleMs: opts.liveSessionIdleMs,
    logger,
    metrics,
    dataFor: dataFor as (id: string) => SessionData<JsonValue>,
    sendStandalone: (session, message) => late.streams!.sendStandalone(session, message),
    onError: report,
  });
  const streams = new StreamRouter({
    instanceId: opts.instanceId,
    host,
    bus,
    registry,
    log,
    logger,
    heartbeatMs: opts.streamHeartbeatMs,
    touchSession: (sid) => store.touch(sid),
    onError: report,
  });
  late.streams = streams;
  const rt = new Runtime({
    options: opts,
    store,
    bus,
    log,
    registry,
    host,
    streams,
    outgoing,
    logger,
    metrics,
  });
  if (redis) rt.storeGate = () => waitReady(redis, opts.redisCommandTimeoutMs);

  // Subscribed right now: false until the first subscription (Redis may be down at start; the bus
  // waits for it) and again while the subscriber reconnects, so a readiness probe takes us out then.
  const busUp = (): boolean => rawBus.isUp();
  bus
    .start(opts.instanceId, (m) => rt.onBus(m))
    .catch((err: unknown) => {
      // Rejects only when closed before subscribing, or when the client's retryStrategy gave up.
      if (!rt.closing) logger.error({ err }, 'message bus failed to start');
    });

  // Legacy sessions are reachable only over the bus: no stream is opened (503) while it is down.
  const legacy = legacyRoutes(rt, busUp);
  const handler = createHandler(
    rt,
    options.authenticate as FleetOptions<JsonValue>['authenticate'],
    legacy.routes,
  );
  metrics.watch({
    liveSessions: () => host.size + legacy.size,
    heldStreams: () => streams.heldCount + legacy.size,
  });

  let closing: Promise<void> | undefined;
  const fleet: Fleet<T> = {
    handler,
    instanceId: opts.instanceId,
    sessionData(sessionId: string): SessionData<T> {
      assertSessionId(sessionId); // a malformed id never reaches the store (nor breaks a hash tag)
      return dataFor(sessionId);
    },
    async health(): Promise<FleetHealth> {
      const [sessions, transportSessions] = await Promise.all([
        store.count().catch(() => null),
        registry.count().catch(() => null),
      ]);
      return {
        store: sessions === null ? 'error' : 'ok',
        sessions,
        transportSessions,
        liveSessions: host.size + legacy.size,
        closing: rt.closing,
      };
    },
    async ready(): Promise<boolean> {
      // Not ready until subscribed: answers and forwarded messages for this instance would be lost.
      if (rt.closing || !busUp()) return false;
      try {
        await store.ping();
        return true;
      } catch {
        return false; // unreachable store: not ready (the reason is logged by the driver)
      }
    },
    close(): Promise<void> {
      closing ??= (async () => {
        rt.closing = true;
        try {
          // Not waiting for the bus to start: it may wait for Redis forever; bus.close() ends that.
          // Clients resume their streams on other instances (the retry hint says when).
          await streams.drain(opts.sseRetryMs);
          await legacy.close();
          await host.close(opts.shutdownGraceMs);
        } finally {
          await Promise.allSettled([bus.close(), log?.close(), registry.close(), store.close()]);
          if (ownsRedis) redis?.disconnect();
        }
      })();
      return closing;
    },
  };
  return fleet;
}

/**
 * Resolves once the command connection is ready, waiting at most `timeoutMs` (first connect or a
 * reconnect in progress); rejects with a 503 otherwise, so requests fail fast while Redis is away.
 */
function waitReady(redis: Redis, timeoutMs: number): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  if (redis.status === 'end') return Promise.reject(storeUnavailable(new Error('Redis connection closed')));
  // One shared wait per connection, however many requests arrive while it (re)connects.
  let readyWait = readyWaits.get(redis);
  if (!readyWait) {
    readyWait = new Promise<void>((resolve) => redis.once('ready', resolve)).finally(() =>
      readyWaits.delete(redis),
    );
    readyWaits.set(redis, readyWait);
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(storeUnavailable(new Error(`Redis not connected (${redis.status})`)));
    }, timeoutMs);
    void readyWait.then(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

const readyWaits = new WeakMap<Redis, Promise<void>>();
