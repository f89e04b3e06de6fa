import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { ConnectionOptions } from 'node:tls';
import type { RedisClient } from './client.js';

/** A Redis behind Sentinel: the sentinels to ask, and the name of the monitored master. */
export interface RedisSentinelConfig {
  /** The sentinels (at least one reachable). */
  sentinels: Array<{ host: string; port: number }>;
  /** The master's name in the sentinels' configuration (`sentinel monitor <name> …`). */
  name: string;
  /** ACL user and password of the Redis servers. */
  username?: string | undefined;
  password?: string | undefined;
  /** ACL user and password of the sentinels, when they require one. */
  sentinelUsername?: string | undefined;
  sentinelPassword?: string | undefined;
  /** TLS to the Redis servers (and to the sentinels), `true` for the defaults. */
  tls?: boolean | ConnectionOptions | undefined;
  /** Database number. @default 0 */
  db?: number | undefined;
}

/** A Redis Cluster: some of its nodes to start from (the rest is discovered). */
export interface RedisClusterConfig {
  /** Seed nodes, as `{ host, port }` or `host:port`. */
  nodes: Array<{ host: string; port: number } | string>;
  /** ACL user and password of every node. */
  username?: string | undefined;
  password?: string | undefined;
  /** TLS to every node, `true` for the defaults (ElastiCache with in-transit encryption). */
  tls?: boolean | ConnectionOptions | undefined;
}

/**
 * What the `redis` option takes: a URL (`redis://[user:password@]host:port[/db]`, `rediss://` for
 * TLS), a Sentinel or Cluster configuration, or an ioredis `Redis` or `Cluster` client.
 */
export type RedisConnection = string | RedisSentinelConfig | RedisClusterConfig | Redis | Cluster;

/** Which kind of Redis deployment a client talks to. */
export type RedisTopology = 'standalone' | 'sentinel' | 'cluster';

/** The command connection of a fleet. */
export interface Connected {
  client: RedisClient;
  topology: RedisTopology;
  /** Whether mcp-fleet opened it (and so closes it). */
  owned: boolean;
}

/**
 * Reconnect quickly, backing off to 500 ms, forever: after a failover the new primary is found within
 * half a second of being promoted (an attempt against a dead address costs next to nothing).
 */
const retryStrategy = (attempt: number) => Math.min(50 * 2 ** attempt, 500);

/**
 * Options of the connections mcp-fleet opens itself: no offline queue and one retry, so a request
 * fails with a 503 at once while Redis is away instead of piling up behind a dead socket.
 */
const FAIL_FAST: RedisOptions = { enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy };

function tlsOption(tls: boolean | ConnectionOptions | undefined): ConnectionOptions | undefined {
  if (tls === undefined || tls === false) return undefined;
  return tls === true ? {} : tls;
}

/** Opens (or adopts) the command connection for the `redis` option. */
export function connectRedis(option: RedisConnection): Connected {
  if (option instanceof Redis) {
    return { client: option, topology: option.options.sentinels ? 'sentinel' : 'standalone', owned: false };
  }
  if (option instanceof Cluster) return { client: option, topology: 'cluster', owned: false };
  if (typeof option === 'string') {
    if (!/^rediss?:\/\//.test(option)) {
      throw new TypeError(
        'createFleet: `redis` must be a redis:// or rediss:// URL (or a configuration object)',
      );
    }
    return { client: new Redis(option, FAIL_FAST), topology: 'standalone', owned: true };
  }
  if ('sentinels' in option) {
    if (!Array.isArray(option.sentinels) || option.sentinels.length === 0 || !option.name) {
      throw new TypeError('createFleet: a Sentinel `redis` configuration needs `sentinels` and `name`');
    }
    const tls = tlsOption(option.tls);
    const client = new Redis({
      ...FAIL_FAST,
      sentinels: option.sentinels,
      name: option.name,
      username: option.username,
      password: option.password,
      sentinelUsername: option.sentinelUsername,
      sentinelPassword: option.sentinelPassword,
      db: option.db,
      ...(tls ? { tls, sentinelTLS: tls, enableTLSForSentinelMode: true } : {}),
      // Fail over to the new master at once (a READONLY reply means we write to a demoted one).
      reconnectOnError: (err) => /READONLY/.test(err.message),
      sentinelRetryStrategy: retryStrategy,
    });
    return { client, topology: 'sentinel', owned: true };
  }
  if ('nodes' in option) {
    if (!Array.isArray(option.nodes) || option.nodes.length === 0) {
      throw new TypeError('createFleet: a Cluster `redis` configuration needs seed `nodes`');
    }
    const tls = tlsOption(option.tls);
    const client = new Cluster(
      option.nodes,
      clusterOptions({ username: option.username, password: option.password, tls }),
    );
    return { client, topology: 'cluster', owned: true };
  }
  throw new TypeError(
    'createFleet: `redis` must be a URL, a Sentinel or Cluster configuration, or an ioredis client',
  );
}

/** Options of a Cluster client mcp-fleet opens (the command connection, fail fast). */
function clusterOptions(node: {
  username?: string | undefined;
  password?: string | undefined;
  tls?: ConnectionOptions | undefined;
}): ClusterOptions {
  return {
    // Unlike the standalone client, queue: a node connection that is still connecting (the first
    // commands to each master, a promoted replica, a node a slot was resharded to) would otherwise
    // fail every command sent meanwhile. The store gate refuses requests while the whole cluster
    // connection is down, and every call is bounded by the command timeout.
    enableOfflineQueue: true,
    clusterRetryStrategy: retryStrategy,
    // The slot map is refreshed on MOVED and every 2 s, so a promoted replica is found quickly.
    slotsRefreshInterval: 2000,
    // A slot whose master is down (connection closed, CLUSTERDOWN while the cluster fails over) fails
    // the command at once, a 503 the client retries, instead of ioredis retrying it for a second or
    // more; MOVED, ASK and TRYAGAIN (a slot being resharded) are still followed and retried.
    retryDelayOnFailover: 0,
    retryDelayOnClusterDown: 0,
    retryDelayOnTryAgain: 50,
    maxRedirections: 16,
    redisOptions: {
      maxRetriesPerRequest: 1,
      // A dead node's address may not even refuse (a pod gone from the network): give up in 1 s.
      connectTimeout: 1000,
      username: node.username,
      password: node.password,
      ...(node.tls ? { tls: node.tls } : {}),
    },
    ...(node.tls ? { dnsLookup: (address, callback) => callback(null, address) } : {}),
  };
}
