import { FleetError } from '../errors.js';
import type { Logger } from '../logger.js';
import { isCluster, type RedisClient } from './client.js';

/**
 * Where a client connects, for log lines: `redis://host:port/db`, `rediss://…` with TLS, the socket
 * path, the Sentinel group, or the Cluster's seed nodes. Never the user name or password.
 */
export function describeRedis(redis: RedisClient): string {
  if (isCluster(redis)) {
    // Driver seam: ioredis keeps the seed nodes it was given in a field its types call private.
    const seeds = (
      redis as unknown as { startupNodes?: Array<string | number | { host?: string; port?: number }> }
    ).startupNodes;
    const nodes = (seeds ?? []).map((n) =>
      typeof n === 'object' ? `${n.host ?? 'localhost'}:${n.port ?? 6379}` : String(n),
    );
    return `cluster ${nodes.join(',') || '(no seed nodes)'}${redis.options.redisOptions?.tls ? ' (TLS)' : ''}`;
  }
  const o = redis.options;
  if (o.sentinels && o.sentinels.length > 0) {
    const nodes = o.sentinels.map((s) => `${s.host ?? 'localhost'}:${s.port ?? 26379}`).join(',');
    return `sentinel ${nodes} (master ${o.name ?? 'mymaster'})`;
  }
  if (o.path) return `unix:${o.path}`;
  return `${o.tls ? 'rediss' : 'redis'}://${o.host ?? 'localhost'}:${o.port ?? 6379}/${o.db ?? 0}`;
}

/** What {@link logRedisOutages} returns. */
export interface OutageWatch {
  /** True from the line saying Redis is unreachable until the one saying it reconnected. */
  readonly down: boolean;
  /**
   * Whether `err` is part of a known outage. A call failing because the connection dropped can reject
   * before the client emits `close` (ioredis fails its queued commands first): when the connection is
   * not ready and `err` is an outage error, the outage line is logged now, with `err` as its reason.
   */
  covers(err: unknown): boolean;
  /** Removes the listeners (the client may be the caller's and outlive the fleet). */
  stop(): void;
}

/**
 * Logs the outages of a Redis connection in words an operator acts on: one `warn` when it fails
 * ("Redis unreachable at …", with the driver's reason) and one `info` when it is back ("Redis
 * reconnected at … after N s"), instead of one line per reconnection attempt. Nothing is logged once
 * `closed()` is true (the fleet closing its own connection is no outage).
 */
export function logRedisOutages(redis: RedisClient, logger: Logger, closed: () => boolean): OutageWatch {
  const where = describeRedis(redis);
  let downSince: number | undefined;
  const lost = (reason: string, err?: unknown) => {
    if (downSince !== undefined || closed()) return;
    downSince = Date.now();
    logger.warn(
      { err, redis: where },
      `Redis unreachable at ${where}: ${reason}; requests answer 503 until it is back`,
    );
  };
  const onError = (err: Error) => lost(err.message || String(err), err);
  const onClose = () => lost('connection closed');
  const onReady = () => {
    if (downSince === undefined || closed()) return;
    const seconds = ((Date.now() - downSince) / 1000).toFixed(1);
    downSince = undefined;
    logger.info(
      { redis: where, downSeconds: Number(seconds) },
      `Redis reconnected at ${where} after ${seconds} s`,
    );
  };
  redis.on('error', onError);
  redis.on('close', onClose);
  redis.on('ready', onReady);
  return {
    get down() {
      return downSince !== undefined;
    },
    covers(err) {
      if (!isOutageError(err)) return false;
      if (downSince === undefined && redis.status !== 'ready') lost(innermostMessage(err), err);
      return downSince !== undefined;
    },
    stop() {
      redis.off('error', onError);
      redis.off('close', onClose);
      redis.off('ready', onReady);
    },
  };
}

function innermostMessage(err: unknown): string {
  let e = err;
  for (let depth = 0; e instanceof Error && e.cause instanceof Error && depth < 5; depth++) e = e.cause;
  return e instanceof Error ? e.message : String(e);
}

/** Socket error codes of a Redis server that is away (not of a bug). */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);

/**
 * True when an error (or one of its causes) only says that the store is away or too slow: while an
 * outage is logged, such errors of every part are repeats of that one line.
 */
export function isOutageError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof FleetError && e.code === 'STORE_UNAVAILABLE') return true;
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return true;
    if (e.message === 'Connection is closed.' || e.name === 'MaxRetriesPerRequestError') return true;
  }
  return false;
}
