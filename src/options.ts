import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { silentLogger, type Logger } from './logger.js';
import type { MetricsRegistry } from './metrics.js';
import type { FleetOptions, JsonValue } from './types.js';

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
  sseRetryMs: number;
  keepAliveMs: number;
  redisCommandTimeoutMs: number;
  legacyPostTimeoutMs: number;
  streamHeartbeatMs: number;
  heartbeatMs: number;
  instanceTtlMs: number;
  ownerAckTimeoutMs: number;
  shutdownGraceMs: number;
  maxStreamBufferBytes: number;
  maxLegacySessions: number;
  allowedHosts: string[];
  allowedOrigins: string[];
  logger: Logger;
  metrics: MetricsRegistry | undefined;
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
    sseRetryMs: o.sseRetryMs ?? 1000,
    keepAliveMs: o.keepAliveMs ?? 15_000,
    redisCommandTimeoutMs: o.redisCommandTimeoutMs ?? 2000,
    legacyPostTimeoutMs: o.legacyPostTimeoutMs ?? 5000,
    streamHeartbeatMs: o.streamHeartbeatMs ?? 10_000,
    heartbeatMs: o.heartbeatMs ?? 500,
    instanceTtlMs: o.instanceTtlMs ?? 2000,
    ownerAckTimeoutMs: o.ownerAckTimeoutMs ?? 1000,
    shutdownGraceMs: o.shutdownGraceMs ?? 5000,
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
