import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { silentLogger, type Logger } from './logger.js';
import type { MetricsRegistry } from './metrics.js';
import type { FleetOptions, JsonValue } from './types.js';

/** The rebalancing policy (the `rebalance` option, resolved). */
export interface RebalancePolicy {
  /** Share of the mean an instance may own beyond it before it hands sessions off (0.2: 20 %). */
  slack: number;
  /** A session is moved only after this long without a client message or a message to its client. */
  idleMs: number;
  /** Most sessions one instance hands off per second. */
  maxPerSecond: number;
  /** How often the shares are compared. */
  intervalMs: number;
}

/** {@link FleetOptions} with every default applied. */
export interface ResolvedOptions {
  instanceId: string;
  keyPrefix: string;
  path: string;
  ssePath: string;
  messagesPath: string;
  sessionTtlMs: number;
  maxSessionLifetimeMs: number;
  maxBodyBytes: number;
  maxSessionDataBytes: number;
  maxLiveSessions: number;
  liveSessionIdleMs: number;
  jsonResponse: boolean;
  resumable: boolean;
  maxEventsPerStream: number;
  endedStreamTtlMs: number;
  sseRetryMs: number;
  keepAliveMs: number;
  redisCommandTimeoutMs: number;
  redisPubSub: 'sharded' | 'classic';
  redisReplicasOnCreate: number;
  legacyPostTimeoutMs: number;
  streamHeartbeatMs: number;
  heartbeatMs: number;
  instanceTtlMs: number;
  ownerAckTimeoutMs: number;
  shutdownGraceMs: number;
  rebalance: RebalancePolicy | undefined;
  /** Recoveries per principal and minute, or undefined: recovery off. */
  recoverSessions: { maxPerMinute: number } | undefined;
  maxStreamBufferBytes: number;
  maxLegacySessions: number;
  allowedHosts: string[];
  allowedOrigins: string[];
  logger: Logger;
  metrics: MetricsRegistry | undefined;
}

function resolveRebalance(r: FleetOptions['rebalance']): RebalancePolicy | undefined {
  if (r === undefined || r === false) return undefined;
  const o = r === true ? {} : r;
  const p: RebalancePolicy = {
    slack: o.slack ?? 0.2,
    idleMs: o.idleMs ?? 5000,
    maxPerSecond: o.maxPerSecond ?? 10,
    intervalMs: o.intervalMs ?? 2000,
  };
  for (const [k, v] of Object.entries(p)) {
    if (!Number.isFinite(v) || v < 0 || (k !== 'slack' && k !== 'idleMs' && v === 0)) {
      throw new RangeError(`createFleet: \`rebalance.${k}\` must be a positive number`);
    }
  }
  return p;
}

/** Applies defaults and rejects nonsense early (a misconfiguration fails at start, not at the first request). */
export function resolveOptions<T extends JsonValue>(o: FleetOptions<T>): ResolvedOptions {
  if (typeof o.server !== 'function') throw new TypeError('createFleet: `server` must be a factory function');
  const r: ResolvedOptions = {
    instanceId: o.instanceId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
    keyPrefix: o.keyPrefix ?? 'mcp:',
    path: o.path ?? '/mcp',
    ssePath: o.ssePath ?? '/sse',
    messagesPath: o.messagesPath ?? '/messages',
    sessionTtlMs: o.sessionTtlMs ?? 3_600_000,
    maxSessionLifetimeMs: o.maxSessionLifetimeMs ?? 86_400_000,
    maxBodyBytes: o.maxBodyBytes ?? 4 * 1024 * 1024,
    maxSessionDataBytes: o.maxSessionDataBytes ?? 65_536,
    maxLiveSessions: o.maxLiveSessions ?? 1000,
    liveSessionIdleMs: o.liveSessionIdleMs ?? 600_000,
    jsonResponse: o.jsonResponse ?? false,
    resumable: o.resumable ?? true,
    maxEventsPerStream: o.maxEventsPerStream ?? 1000,
    endedStreamTtlMs: o.endedStreamTtlMs ?? 60_000,
    sseRetryMs: o.sseRetryMs ?? 1000,
    keepAliveMs: o.keepAliveMs ?? 15_000,
    redisCommandTimeoutMs: o.redisCommandTimeoutMs ?? 2000,
    redisPubSub: o.redisPubSub ?? 'sharded',
    redisReplicasOnCreate: o.redisReplicasOnCreate ?? 0,
    legacyPostTimeoutMs: o.legacyPostTimeoutMs ?? 5000,
    streamHeartbeatMs: o.streamHeartbeatMs ?? 10_000,
    heartbeatMs: o.heartbeatMs ?? 500,
    instanceTtlMs: o.instanceTtlMs ?? 2000,
    ownerAckTimeoutMs: o.ownerAckTimeoutMs ?? 1000,
    shutdownGraceMs: o.shutdownGraceMs ?? 5000,
    rebalance: resolveRebalance(o.rebalance),
    recoverSessions:
      o.recoverSessions === undefined || o.recoverSessions === false
        ? undefined
        : { maxPerMinute: (o.recoverSessions === true ? undefined : o.recoverSessions.maxPerMinute) ?? 10 },
    maxStreamBufferBytes: o.maxStreamBufferBytes ?? 8 * 1024 * 1024,
    maxLegacySessions: o.maxLegacySessions ?? 1000,
    allowedHosts: o.allowedHosts ?? [],
    allowedOrigins: o.allowedOrigins ?? [],
    logger: o.logger ?? silentLogger,
    metrics: o.metrics,
  };
  for (const k of [
    'sessionTtlMs',
    'maxSessionLifetimeMs',
    'maxBodyBytes',
    'maxSessionDataBytes',
    'maxLiveSessions',
    'liveSessionIdleMs',
    'maxEventsPerStream',
    'endedStreamTtlMs',
    'keepAliveMs',
    'redisCommandTimeoutMs',
    'legacyPostTimeoutMs',
    'streamHeartbeatMs',
    'heartbeatMs',
    'instanceTtlMs',
    'ownerAckTimeoutMs',
    'maxStreamBufferBytes',
    'maxLegacySessions',
  ] as const) {
    if (!Number.isFinite(r[k]) || r[k] <= 0)
      throw new RangeError(`createFleet: \`${k}\` must be a positive number`);
  }
  for (const k of ['sseRetryMs', 'shutdownGraceMs'] as const) {
    if (!Number.isFinite(r[k]) || r[k] < 0) throw new RangeError(`createFleet: \`${k}\` must be 0 or more`);
  }
  if (!Number.isInteger(r.redisReplicasOnCreate) || r.redisReplicasOnCreate < 0) {
    throw new RangeError('createFleet: `redisReplicasOnCreate` must be a whole number, 0 or more');
  }
  if (r.redisPubSub !== 'sharded' && r.redisPubSub !== 'classic') {
    throw new RangeError("createFleet: `redisPubSub` must be 'sharded' or 'classic'");
  }
  const recovery = r.recoverSessions?.maxPerMinute;
  if (recovery !== undefined && (!Number.isInteger(recovery) || recovery < 1)) {
    throw new RangeError('createFleet: `recoverSessions.maxPerMinute` must be a whole number, 1 or more');
  }
  if (r.instanceTtlMs < 2 * r.heartbeatMs) {
    throw new RangeError('createFleet: `instanceTtlMs` must be at least twice `heartbeatMs`');
  }
  if (r.metrics !== undefined && typeof r.metrics.registerMetric !== 'function') {
    throw new TypeError('createFleet: `metrics` must be a prom-client Registry');
  }
  if (!/^[\x21-\x7e]{1,100}$/.test(r.instanceId) || r.instanceId.includes('@')) {
    throw new RangeError('createFleet: `instanceId` must be 1-100 visible ASCII characters without "@"');
  }
  for (const p of [r.path, r.ssePath, r.messagesPath]) {
    if (!p.startsWith('/')) throw new RangeError(`createFleet: path ${p} must start with "/"`);
  }
  return r;
}
