import { BusDispatcher } from './bus/dispatcher.js';
import { MemoryBus, MemoryBusHub } from './bus/memory-bus.js';
import type { MessageBus } from './bus/message-bus.js';
import { RedisBus } from './bus/redis-bus.js';
import { systemClock } from './clock.js';
import type { EventLog } from './events/event-log.js';
import { MemoryEventLog } from './events/memory-event-log.js';
import { RedisEventLog } from './events/redis-event-log.js';
import { asError } from './errors.js';
import { registerInternals } from './fleet-internals.js';
import { connectionsGone } from './http/connections.js';
import type { HttpContext } from './http/context.js';
import { createHandler } from './http/handler.js';
import { legacyRoutes } from './legacy/routes.js';
import { FleetEventBus, notificationOf } from './modern/event-bus.js';
import { ModernEra } from './modern/modern-era.js';
import { RequestStateRing } from './modern/request-state.js';
import { MemorySpentTokens } from './store/memory-spent-tokens.js';
import { RedisSpentTokens } from './store/redis-spent-tokens.js';
import { FleetMetrics } from './metrics.js';
import { resolveOptions } from './options.js';
import { Ownership } from './ownership/ownership.js';
import { connectRedis } from './redis/connect.js';
import { logRedisOutages } from './redis/connection-log.js';
import { StoreGate } from './redis/gate.js';
import { RedisKeys } from './redis/keys.js';
import { Copies } from './session/copies.js';
import { Forwarder } from './session/forwarder.js';
import { Rebalancer } from './session/rebalancer.js';
import { SessionService } from './session/session-service.js';
import { SessionState } from './session/session-state.js';
import { assertSessionId } from './session-id.js';
import { createSessionData } from './session-data.js';
import type { InstanceRegistry } from './store/instance-registry.js';
import { MemoryInstanceRegistry } from './store/memory-instance-registry.js';
import { MemorySessionStore } from './store/memory-session-store.js';
import { MemoryStreamRegistry } from './store/memory-stream-registry.js';
import { RedisInstanceRegistry } from './store/redis-instance-registry.js';
import { RedisSessionStore } from './store/redis-session-store.js';
import { RedisStreamRegistry } from './store/redis-stream-registry.js';
import type { SessionStore } from './store/session-store.js';
import type { StreamRegistry } from './store/stream-registry.js';
import { StreamRouter } from './streams/stream-router.js';
import type { FleetTransport } from './transport/fleet-transport.js';
import { OutgoingRequests } from './transport/outgoing-requests.js';
import type {
  Fleet,
  FleetCloseOptions,
  FleetHealth,
  FleetOptions,
  JsonValue,
  ServerFactory,
  SessionData,
} from './types.js';

/**
 * Serves an MCP server built with the official SDK from any number of instances: every instance
 * answers every request of every session, each session runs in one live copy (on its owner), and
 * session state lives in Redis (or in memory, for one instance, when `redis` is omitted).
 *
 * ```ts
 * const fleet = createFleet({ server: () => buildMyMcpServer(), redis: process.env.REDIS_URL });
 * http.createServer(fleet.handler).listen(9100);
 * ```
 */
export function createFleet<T extends JsonValue = JsonValue>(options: FleetOptions<T>): Fleet<T> {
  const opts = resolveOptions(options);
  const me = opts.instanceId;
  const logger = opts.logger.child({ instanceId: me });
  // Before any connection is opened: a registry that already has our metrics throws here.
  const metrics = FleetMetrics.create(opts.metrics, opts);

  // Connection roles: this one runs commands and fails fast while Redis is away (no offline queue,
  // so requests get a 503 at once instead of piling up); the bus opens its own for subscriptions.
  const connection = options.redis === undefined ? undefined : connectRedis(options.redis);
  const redis = connection?.client;
  const gate = redis && new StoreGate(redis, opts.redisCommandTimeoutMs);
  if (connection?.owned) {
    connection.client.on('error', (err: Error) => logger.debug({ err }, 'redis connection error'));
  }
  // One line when Redis goes away and one when it is back (not one per reconnection attempt).
  const outage = redis ? logRedisOutages(redis, logger, () => closing !== undefined) : undefined;
  // A dropped connection may mean a restarted or failed-over Redis that lost records: the copies
  // here check the store again before acting as owners (Ownership.uncheckedToken). On a Cluster one
  // node's connection can drop while the client stays up. Removed on close: the client may be the
  // caller's and outlive the fleet.
  const drops = connection?.topology === 'cluster' ? ['close', '-node', 'node error'] : ['close'];
  const disrupted = () => late.owner?.disrupted();
  for (const event of drops) redis?.on(event, disrupted);
  // Non-fatal problems of every part: one warn line, with the session id where there is one; while a
  // Redis outage is logged, its repeats (every part's failed calls, reconnection attempts) are debug.
  const report = (err: unknown, sessionId?: string) =>
    (outage?.covers(err) ? logger.debug : logger.warn).call(logger, { err, sessionId }, asError(err).message);

  const keys = new RedisKeys(opts.keyPrefix);
  const ttl = { idleMs: opts.sessionTtlMs, maxLifetimeMs: opts.maxSessionLifetimeMs };
  const timeout = { commandTimeoutMs: opts.redisCommandTimeoutMs };
  const heartbeatTtlMs = opts.streamHeartbeatMs * 3;
  const eventTtlMs = opts.sessionTtlMs;

  // The ownership, stream and legacy code below react to bus messages through this dispatcher.
  const dispatcher = new BusDispatcher(
    (err) => report(err),
    (m) => metrics.busReceived(m),
  );

  let store: SessionStore;
  let registry: StreamRegistry;
  let instances: InstanceRegistry;
  let log: EventLog | undefined;
  let rawBus: MessageBus;
  if (redis) {
    store = new RedisSessionStore(redis, keys, ttl, {
      ...timeout,
      replicasOnCreate: opts.redisReplicasOnCreate,
    });
    registry = new RedisStreamRegistry(redis, keys, { ...timeout, heartbeatTtlMs });
    instances = new RedisInstanceRegistry(redis, keys, timeout);
    if (opts.resumable) {
      log = new RedisEventLog(redis, keys, {
        ...timeout,
        maxEvents: opts.maxEventsPerStream,
        ttlMs: eventTtlMs,
        endedTtlMs: opts.endedStreamTtlMs,
      });
    }
    rawBus = new RedisBus(redis, keys, {
      ...timeout,
      pubsub: opts.redisPubSub,
      onError: report,
      // Messages to us were lost while unsubscribed; others may have taken sessions over meanwhile.
      onResubscribed: () => {
        late.owner?.disrupted(true);
        late.router?.catchUp();
        late.owner?.revalidate().catch((err: unknown) => report(err));
      },
      onUnsubscribed: () => late.owner?.disrupted(),
    });
  } else {
    const memoryStore = new MemorySessionStore(ttl);
    store = memoryStore;
    registry = new MemoryStreamRegistry({ heartbeatTtlMs, sessionOwner: (sid) => memoryStore.ownerOf(sid) });
    instances = new MemoryInstanceRegistry();
    if (opts.resumable) {
      log = new MemoryEventLog({
        maxEvents: opts.maxEventsPerStream,
        ttlMs: eventTtlMs,
        endedTtlMs: opts.endedStreamTtlMs,
        checkFence: (sid, fence) => memoryStore.checkFence(sid, fence),
      });
    }
    rawBus = new MemoryBus(new MemoryBusHub(), { onError: report });
  }
  const bus = metrics.bus(rawBus);

  const outgoing = new OutgoingRequests<FleetTransport>(me);
  // Parts built later that the callbacks of earlier ones reach when they run.
  const late: {
    owner?: Ownership;
    copies?: Copies;
    service?: SessionService;
    router?: StreamRouter;
    rebalancer?: Rebalancer;
  } = {};
  let lastStreamBeat = 0;
  const owner = new Ownership({
    instanceId: me,
    store,
    instances,
    clock: systemClock,
    heartbeatMs: opts.heartbeatMs,
    instanceTtlMs: opts.instanceTtlMs,
    draining: () => late.service?.isDraining ?? false,
    subscribed: () => bus.isUp(),
    // A claim started while unsubscribed: confirming the owner gone (1.5 beats and two reads), then
    // the claim itself, each read bounded by the command timeout.
    resubscribeSettleMs: opts.instanceTtlMs + 1.5 * opts.heartbeatMs + 3 * opts.redisCommandTimeoutMs,
    onLost: (sid, reason) => {
      const copy = late.copies?.get(sid);
      if (copy) late.copies!.stepDown(copy, reason);
    },
    onTick: () => {
      void forwarder.tick().catch((err: unknown) => report(err));
      void late.rebalancer?.tick();
      // The stream records and legacy sessions beat at their own, slower pace.
      const now = Date.now();
      if (now - lastStreamBeat < opts.streamHeartbeatMs) return;
      lastStreamBeat = now;
      void router.heartbeat().catch((err: unknown) => report(err));
      const legacy = late.service?.expireLegacy() ?? [];
      if (legacy.length > 0) {
        registry.heartbeat(legacy, me).catch((err: unknown) => {
          report(new Error('legacy stream heartbeat failed', { cause: err }));
        });
      }
    },
    onError: (err) => report(err),
  });
  late.owner = owner;
  const forwarder = new Forwarder({
    instanceId: me,
    bus,
    clock: systemClock,
    alive: (ids) => owner.alive(ids),
    confirmGone: (id) => owner.confirmGone(id),
    ackTimeoutMs: opts.ownerAckTimeoutMs,
    maxWaitMs: Math.max(opts.instanceTtlMs * 4, 10_000),
    onError: (err) => report(err),
  });
  const router = new StreamRouter({
    instanceId: me,
    bus,
    registry,
    log,
    touchSession: async (sid) => (await store.touch(sid)) !== undefined,
    watchProducer: (producer, sid, streamId, onLost) => forwarder.watch(producer, sid, streamId, onLost),
    onStandaloneClosed: (sid) => late.service?.onStandaloneClosed(sid),
    onProducerGone: (held) => void late.service?.abandon(held),
    onAcknowledged: (callId) => forwarder.onHandled({ t: 'handled', callId, outcome: 'accepted' }),
    isReachable: async (id) =>
      (await bus.send(id, { t: 'ping', from: me, nonce: 'reach', streams: [] }).catch(() => 1)) > 0 ||
      !(await owner.confirmGone(id).catch(() => false)),
    onError: report,
  });
  late.router = router;
  const dataFor = (sessionId: string): SessionData<T> =>
    createSessionData<T>(store, sessionId, opts.maxSessionDataBytes);
  const copies = new Copies({
    factory: options.server as ServerFactory<JsonValue>,
    instanceId: me,
    ownership: owner,
    store,
    log,
    registry,
    router,
    bus,
    outgoing,
    maxLive: opts.maxLiveSessions,
    liveIdleMs: opts.liveSessionIdleMs,
    logger,
    metrics,
    dataFor: (sid, onFenced, fence) =>
      createSessionData<JsonValue>(store, sid, opts.maxSessionDataBytes, {
        fence: () => fence,
        onFenced,
      }),
    onError: report,
  });
  late.copies = copies;
  const state = new SessionState({
    store,
    onFenced: (copy) => copies.stepDown(copy, 'replaced'),
    onError: report,
  });
  const rebalancer = opts.rebalance
    ? new Rebalancer({
        instanceId: me,
        policy: opts.rebalance,
        clock: systemClock,
        instances: () => instances.list(),
        copies: () => copies.all(),
        handoff: (copy) => void copies.handoff(copy, 'rebalance'),
        draining: () => late.service?.isDraining ?? false,
        onError: (err) => report(err),
      })
    : undefined;
  late.rebalancer = rebalancer;
  const service = new SessionService({
    placeFor: rebalancer ? (exclude) => rebalancer.placeFor(exclude) : undefined,
    options: opts,
    store,
    registry,
    log,
    bus,
    ownership: owner,
    copies,
    forwarder,
    router,
    state,
    outgoing,
    logger,
    metrics,
    onError: report,
  });
  late.service = service;

  // One publish (fleet.notify, or the SDK v2's bus through createMcpHandler) reaches the 2026 listeners
  // of every instance and the 2025 sessions each instance owns.
  const events = new FleetEventBus({
    broadcast: (event) => bus.broadcast({ t: 'event', from: me, event }),
    toSessions: (event) => {
      const { method, params } = notificationOf(event);
      for (const copy of copies.owned()) {
        if (event.kind === 'resource_updated' && !copy.record.subscriptions?.includes(event.uri)) continue;
        copy.transport
          .send({ jsonrpc: '2.0', method, ...(params ? { params } : {}) })
          .catch((err: unknown) => report(err, copy.id));
      }
    },
    onError: report,
  });
  const requestState = new RequestStateRing(options.requestState, {
    principalNow: () => modern.principalNow(),
    spent: redis ? new RedisSpentTokens(redis, keys, timeout) : new MemorySpentTokens(),
  });
  const modern = new ModernEra({
    factory: options.server as ServerFactory,
    instanceId: me,
    bus: events,
    jsonResponse: opts.jsonResponse,
    maxBodyBytes: opts.maxBodyBytes,
    onError: report,
  });

  dispatcher.on('handle', (m) => void service.onHandle(m));
  dispatcher.on('handled', (m) => forwarder.onHandled(m));
  dispatcher.on('deliver', (m) => router.onDeliver(m));
  dispatcher.on('wake', (m) => router.onWake(m));
  dispatcher.on('stream-gone', (m) => router.onStreamGone(m));
  dispatcher.on('poll', (m) => router.onPoll(m));
  dispatcher.on('release', (m) => router.onRelease(m));
  dispatcher.on('unheld', (m) => service.onUnheld(m));
  dispatcher.on('takeover', (m) => service.onTakeover(m));
  dispatcher.on('attach', (m) => service.onAttach(m));
  dispatcher.on('detach', (m) => service.onDetach(m));
  dispatcher.on('answer', (m) => service.onAnswer(m));
  dispatcher.on('ping', (m) => {
    if (m.nonce !== 'reach') service.onPing(m);
  });
  dispatcher.on('pong', (m) => forwarder.onPong(m));
  dispatcher.on('released', (m) => service.onReleased(m));
  dispatcher.on('deleted', (m) => service.onDeleted(m));
  dispatcher.on('end', (m) => service.onEnd(m));
  dispatcher.on('event', (m) => {
    if (m.from !== me) events.received(m.event);
  });

  let closed = false;
  bus
    .start(me, (m) => dispatcher.dispatch(m))
    // The heartbeat starts once Redis answers (an instance is listed as alive when it can be reached)
    // on the command connection too: the subscriber's may be up first, and a beat sent while this one
    // is still connecting fails at once (no offline queue), leaving the instance unlisted for a beat.
    .then(() => gate?.connected())
    .then(() => owner.start())
    .catch((err: unknown) => {
      // Rejects only when closed before subscribing, or when the client's retryStrategy gave up.
      if (!closed) logger.error({ err }, 'message bus failed to start');
    });

  const ctx: HttpContext = {
    options: opts,
    service,
    modern,
    metrics,
    logger,
    storeGate: gate ? () => gate.admit() : () => Promise.resolve(),
    closed: () => closed,
    draining: () => closing !== undefined,
  };
  const handler = createHandler(
    ctx,
    options.authenticate as FleetOptions<JsonValue>['authenticate'],
    legacyRoutes(ctx),
  );
  metrics.watch({
    liveSessions: () => copies.size,
    heldStreams: () => router.heldCount + service.legacyCount,
    ownedSessions: () => owner.size,
  });

  let closing: Promise<void> | undefined;
  const fleet: Fleet<T> = {
    handler,
    instanceId: me,
    notify: events.notify,
    events,
    requestState,
    sessionData(sessionId: string): SessionData<T> {
      assertSessionId(sessionId); // a malformed id never reaches the store (nor breaks a hash tag)
      return dataFor(sessionId);
    },
    async health(): Promise<FleetHealth> {
      const [sessions, transportSessions, live] = await Promise.all([
        store.count().catch(() => null),
        registry.count().catch(() => null),
        instances.list().catch(() => null),
      ]);
      return {
        store: sessions === null ? 'error' : 'ok',
        sessions,
        transportSessions,
        liveSessions: copies.size,
        instances: live === null ? null : live.length,
        closing: closing !== undefined,
      };
    },
    async ready(): Promise<boolean> {
      // Not ready until subscribed (answers and forwarded messages for this instance would be lost)
      // and listed in the instance registry (the others could not tell it alive).
      if (closing || !bus.isUp() || !owner.listed) return false;
      try {
        await store.ping();
        return true;
      } catch {
        return false; // unreachable store: not ready (the reason is logged by the driver)
      }
    },
    close(options: FleetCloseOptions = {}): Promise<void> {
      const { server } = options;
      if (server) {
        server.close(); // no new connections (a load balancer sends them elsewhere)
        server.closeIdleConnections();
      }
      closing ??= (async () => {
        const deadline = Date.now() + opts.shutdownGraceMs;
        try {
          // Sessions owned here are handed off; clients resume their streams on other instances.
          await Promise.all([service.drain(opts.shutdownGraceMs), modern.close()]);
          if (server) {
            // A connection accepted before the listener closed may bring its request only now (a
            // busy proxy): it is served — forwarded to the session's new owner — not refused.
            server.closeIdleConnections();
            await connectionsGone(server, deadline);
          }
          await service.settle(deadline);
        } finally {
          closed = true;
          await owner.close();
          await Promise.allSettled([
            bus.close(),
            log?.close(),
            registry.close(),
            store.close(),
            instances.close(),
          ]);
          outage?.stop();
          gate?.stop();
          for (const event of drops) redis?.off(event, disrupted);
          if (connection?.owned) connection.client.disconnect();
        }
      })();
      return closing;
    },
  };
  registerInternals(fleet, {
    redis,
    keyPrefix: opts.keyPrefix,
    instanceId: me,
    commandTimeoutMs: opts.redisCommandTimeoutMs,
    isAlive: async (id) => (await instances.read([id]))[0] !== undefined,
  });
  return fleet;
}
