#!/usr/bin/env node
// `mcp-fleet`: the administration command of a fleet (the package's `bin`). See `mcp-fleet --help`.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Cluster, Redis } from 'ioredis';
import type { RedisClient } from '../redis/client.js';
import { describeRedis } from '../redis/connection-log.js';
import type { TransportKind } from '../store/session-store.js';
import { FleetAdmin } from './admin.js';
import { formatDetails, formatPage, formatStats } from './format.js';

const HELP = `Usage: mcp-fleet [options] <command>

Commands:
  sessions list        live sessions, most recently used first
      --principal <id>     only this principal's
      --transport <kind>   only streamable-http or sse
      --owner <instance>   only those owned by this instance ("none": without an owner)
      --limit <n>          sessions per page (default 50)
      --cursor <c>         the next page (printed after a full page)
  sessions show <id>   a session's record (owner, epoch), held streams, event logs, data size and TTLs
  sessions end <id>    end a session as DELETE does, on every instance (record, data and logs removed;
                       its owner closes the live copy, its streams end)
  stats                sessions, instances alive, streams held

Options:
  --redis <url>        Redis of the fleet (default: $REDIS_URL, else redis://127.0.0.1:6379)
  --sentinels <h:p,…>  Redis behind Sentinel instead (default: $REDIS_SENTINELS), with
  --sentinel-name <n>  the master's name (default: $REDIS_SENTINEL_NAME, else "mymaster")
  --cluster <h:p,…>    a Redis Cluster instead, by seed nodes (default: $REDIS_CLUSTER_NODES)
  --pubsub <kind>      the fleet's redisPubSub on a Cluster: sharded (default) or classic
                       (Sentinel and Cluster nodes: ACL user and password from $REDIS_USERNAME and
                       $REDIS_PASSWORD; with --redis they are part of the URL)
  --prefix <p>         key prefix of the fleet (default: $MCP_FLEET_KEY_PREFIX, else "mcp:")
  --json               machine-readable output (one JSON document)
  -h, --help           this text
  -v, --version        the version

Exit codes: 0 done, 1 no such session, 2 usage error, 3 Redis unreachable or failing.`;

/** Exit codes of the command. */
const EXIT = { ok: 0, notFound: 1, usage: 2, redis: 3 } as const;

class UsageError extends Error {}

/** Runs the command line `argv` (without `node` and the script); resolves to the exit code. */
export async function runCli(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        redis: { type: 'string' },
        sentinels: { type: 'string' },
        'sentinel-name': { type: 'string' },
        cluster: { type: 'string' },
        pubsub: { type: 'string' },
        prefix: { type: 'string' },
        json: { type: 'boolean', default: false },
        principal: { type: 'string' },
        transport: { type: 'string' },
        owner: { type: 'string' },
        limit: { type: 'string' },
        cursor: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
        version: { type: 'boolean', short: 'v', default: false },
      },
    });
  } catch (err) {
    return usage((err as Error).message);
  }
  const { values: o, positionals: args } = parsed;
  if (o.help) {
    process.stdout.write(`${HELP}\n`);
    return EXIT.ok;
  }
  if (o.version) {
    process.stdout.write(`${packageVersion()}\n`);
    return EXIT.ok;
  }
  const prefix = o.prefix ?? env.MCP_FLEET_KEY_PREFIX ?? 'mcp:';
  let action: (admin: FleetAdmin) => Promise<number>;
  let redis: RedisClient;
  const pubsub = o.pubsub ?? 'sharded';
  try {
    if (pubsub !== 'sharded' && pubsub !== 'classic') {
      throw new UsageError(`--pubsub must be sharded or classic, not ${pubsub}`);
    }
    action = plan(args, o, o.json);
    redis = openRedis(o, env);
  } catch (err) {
    if (err instanceof UsageError) return usage(err.message);
    throw err;
  }

  let failure: Error | undefined; // the socket's own error: connect() rejects with a generic one
  redis.on('error', (err: Error) => (failure ??= err));
  try {
    await redis.connect();
  } catch (err) {
    const reason = (failure ?? (err as Error)).message;
    process.stderr.write(`mcp-fleet: Redis unreachable at ${describeRedis(redis)}: ${reason}\n`);
    redis.disconnect();
    return EXIT.redis;
  }
  try {
    return await action(new FleetAdmin(redis, prefix, undefined, pubsub));
  } catch (err) {
    if (err instanceof RangeError || (err as { code?: string }).code === 'SESSION_ID_MALFORMED') {
      return usage((err as Error).message);
    }
    const cause = (err as { cause?: unknown }).cause;
    const detail = cause instanceof Error ? `: ${cause.message}` : '';
    process.stderr.write(
      `mcp-fleet: Redis at ${describeRedis(redis)} failed: ${(err as Error).message}${detail}\n`,
    );
    return EXIT.redis;
  } finally {
    redis.disconnect();
  }
}

/** `host:port,host:port` as nodes; a usage error when malformed. */
function hostPorts(list: string, option: string): Array<{ host: string; port: number }> {
  return list.split(',').map((hp) => {
    const at = hp.trim().lastIndexOf(':');
    const host = hp.trim().slice(0, at);
    const port = Number(hp.trim().slice(at + 1));
    if (at <= 0 || !Number.isInteger(port) || port < 1 || port > 65_535) {
      throw new UsageError(`${option} must be a comma-separated list of host:port, not ${list}`);
    }
    return { host, port };
  });
}

/**
 * The client for the options: a Cluster, a Sentinel group or a URL (one of them). A command line
 * fails at once rather than waiting for Redis: no reconnection, no offline queue.
 */
function openRedis(
  o: {
    redis?: string | undefined;
    sentinels?: string | undefined;
    'sentinel-name'?: string | undefined;
    cluster?: string | undefined;
  },
  env: NodeJS.ProcessEnv,
): RedisClient {
  const given = [o.redis, o.sentinels, o.cluster].filter((v) => v !== undefined).length;
  if (given > 1) throw new UsageError('give only one of --redis, --sentinels, --cluster');
  const fromEnv = given === 0;
  const cluster = o.cluster ?? (fromEnv ? env.REDIS_CLUSTER_NODES : undefined);
  const sentinels = o.sentinels ?? (fromEnv && !cluster ? env.REDIS_SENTINELS : undefined);
  const once = {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 5000,
  };
  if (cluster) {
    return new Cluster(hostPorts(cluster, '--cluster'), {
      lazyConnect: true,
      clusterRetryStrategy: () => null,
      redisOptions: { maxRetriesPerRequest: 0, connectTimeout: 5000 },
    });
  }
  if (sentinels) {
    return new Redis({
      ...once,
      enableOfflineQueue: false,
      sentinels: hostPorts(sentinels, '--sentinels'),
      name: o['sentinel-name'] ?? env.REDIS_SENTINEL_NAME ?? 'mymaster',
      sentinelRetryStrategy: () => null,
    });
  }
  return new Redis(o.redis ?? env.REDIS_URL ?? 'redis://127.0.0.1:6379', {
    ...once,
    enableOfflineQueue: false,
  });
}

type Values = {
  principal?: string | undefined;
  transport?: string | undefined;
  owner?: string | undefined;
  limit?: string | undefined;
  cursor?: string | undefined;
};

/** What to do for these positionals, checked before connecting. */
function plan(args: string[], o: Values, json: boolean): (admin: FleetAdmin) => Promise<number> {
  const print = (human: string, value: unknown) =>
    process.stdout.write(`${json ? JSON.stringify(value, null, 2) : human}\n`);
  const [group, verb, id, ...rest] = args;
  if (group === 'stats' && args.length === 1) {
    return async (admin) => {
      const stats = await admin.stats();
      print(formatStats(stats), stats);
      return EXIT.ok;
    };
  }
  if (group !== 'sessions')
    throw new UsageError(args.length === 0 ? 'no command given' : `unknown command: ${args.join(' ')}`);
  if (verb === 'list' && id === undefined) {
    if (o.transport !== undefined && o.transport !== 'streamable-http' && o.transport !== 'sse') {
      throw new UsageError(`--transport must be streamable-http or sse, not ${o.transport}`);
    }
    const limit = o.limit === undefined ? 50 : Number(o.limit);
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > 10_000) {
      throw new UsageError(`--limit must be an integer from 1 to 10000, not ${o.limit}`);
    }
    const filters = {
      principal: o.principal,
      transport: o.transport as TransportKind | undefined,
      owner: o.owner === 'none' ? '' : o.owner,
      limit,
      cursor: o.cursor,
    };
    return async (admin) => {
      const page = await admin.listSessions(filters);
      print(formatPage(page), page);
      return EXIT.ok;
    };
  }
  if (verb === 'show' && id !== undefined && rest.length === 0) {
    return async (admin) => {
      const details = await admin.showSession(id);
      if (details === undefined) return notFound(id);
      print(formatDetails(details), details);
      return EXIT.ok;
    };
  }
  if (verb === 'end' && id !== undefined && rest.length === 0) {
    return async (admin) => {
      const ended = await admin.endSession(id);
      if (ended === undefined) return notFound(id);
      print(`Session ${id} ended (its owner was ${ended.owner || 'none'}).`, {
        ended: id,
        owner: ended.owner,
      });
      return EXIT.ok;
    };
  }
  throw new UsageError(`unknown command: ${args.join(' ')}`);
}

function notFound(id: string): number {
  process.stderr.write(`mcp-fleet: Session not found: ${id}\n`);
  return EXIT.notFound;
}

function usage(message: string): number {
  process.stderr.write(`mcp-fleet: ${message}\n\n${HELP}\n`);
  return EXIT.usage;
}

/** The version in the package's package.json (found upwards from this file, in src/ or dist/src/). */
function packageVersion(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (!existsSync(file)) continue;
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === 'mcp-fleet') return pkg.version ?? 'unknown';
  }
  return 'unknown';
}

process.exitCode = await runCli(process.argv.slice(2));
