// The store, registry, event log and bus contracts on Redis Sentinel and Redis Cluster (the same
// suites as on standalone), then what only these topologies have: a failover of the primary (or of
// a slot's master) under load, and, on Cluster, slots resharded under load.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { RedisBus } from '../../src/bus/redis-bus.js';
import { FleetError } from '../../src/errors.js';
import { RedisEventLog } from '../../src/events/redis-event-log.js';
import type { RedisClient } from '../../src/redis/client.js';
import { connectRedis, type RedisConnection } from '../../src/redis/connect.js';
import { RedisKeys, shardOf } from '../../src/redis/keys.js';
import { RedisInstanceRegistry } from '../../src/store/redis-instance-registry.js';
import { RedisSessionStore } from '../../src/store/redis-session-store.js';
import { RedisSpentTokens } from '../../src/store/redis-spent-tokens.js';
import { RedisStreamRegistry } from '../../src/store/redis-stream-registry.js';
import { TestRedis } from '../helpers/redis-server.js';
import { TestRedisCluster, TestRedisSentinel } from '../helpers/redis-topologies.js';
import { eventLogContract, fencedEventLogContract } from './suites/event-log.js';
import { instanceRegistryContract } from './suites/instance-registry.js';
import { Inbox, messageBusContract, until } from './suites/message-bus.js';
import { LONG, record, sessionStoreContract } from './suites/session-store.js';
import { redisExpiry, spentTokensContract } from './suites/spent-tokens.js';
import { streamRegistryContract } from './suites/stream-registry.js';

/** A running topology, two fail-fast clients on it (as createFleet opens them), a key prefix per test. */
interface Topology {
  c1: RedisClient;
  c2: RedisClient;
  keys: RedisKeys;
  /** Kills the master of `key`'s slot (the primary behind Sentinel); resolves once a replica took over. */
  killMasterOf(key: string): Promise<{ port: number; failoverMs: number }>;
  revive(port: number): Promise<void>;
}

async function open(connection: RedisConnection): Promise<RedisClient> {
  const { client } = connectRedis(connection);
  client.on('error', () => {}); // connection errors are expected while a master is killed
  if (client.status !== 'ready') await once(client, 'ready');
  return client;
}

function useTopology(kind: 'sentinel' | 'cluster'): Topology {
  const t = {} as Topology;
  let stop: () => Promise<void>;
  before(async () => {
    if (kind === 'sentinel') {
      const s = await TestRedisSentinel.start();
      const config = { sentinels: s.sentinelAddresses, name: s.name };
      t.c1 = await open(config);
      t.c2 = await open(config);
      t.killMasterOf = () => s.killPrimary();
      t.revive = (port) => s.revive(port);
      stop = () => s.stop();
    } else {
      const c = await TestRedisCluster.start();
      const config = { nodes: c.seeds };
      t.c1 = await open(config);
      t.c2 = await open(config);
      t.killMasterOf = (key) => c.killMasterOf(key);
      t.revive = (port) => c.revive(port);
      stop = () => c.stop();
    }
  });
  after(async () => {
    t.c1?.disconnect();
    t.c2?.disconnect();
    await stop?.();
  });
  beforeEach(() => {
    t.keys = new RedisKeys(TestRedis.prefix());
  });
  return t;
}

const isStoreUnavailable = (err: unknown) => err instanceof FleetError && err.code === 'STORE_UNAVAILABLE';

/** One call of the load: when it started (ms after the kill), how long it took, how it ended. */
interface Sample {
  at: number;
  ms: number;
  ok: boolean;
  err?: unknown;
}

/** Runs `op` back to back on `workers` workers until `stop()`; returns the samples. */
function load(workers: number, op: (i: number) => Promise<unknown>, t0: () => number) {
  const samples: Sample[] = [];
  let running = true;
  let n = 0;
  const loops = Array.from({ length: workers }, async () => {
    while (running) {
      const at = Date.now();
      try {
        await op(n++);
        samples.push({ at: at - t0(), ms: Date.now() - at, ok: true });
      } catch (err) {
        samples.push({ at: at - t0(), ms: Date.now() - at, ok: false, err });
        // A failed call is retried by the client after a short pause (as an SDK client would).
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  });
  return {
    samples,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

function contracts(t: Topology): void {
  describe('SessionStore contract', () => {
    sessionStoreContract((ttl) => ({
      a: new RedisSessionStore(t.c1, t.keys, ttl),
      b: new RedisSessionStore(t.c2, t.keys, ttl),
    }));
  });
  describe('StreamRegistry contract', () => {
    streamRegistryContract((heartbeatTtlMs) => ({
      a: new RedisStreamRegistry(t.c1, t.keys, { heartbeatTtlMs }),
      b: new RedisStreamRegistry(t.c2, t.keys, { heartbeatTtlMs }),
    }));
  });
  describe('EventLog contract', () => {
    eventLogContract((opts) => ({
      a: new RedisEventLog(t.c1, t.keys, opts),
      b: new RedisEventLog(t.c2, t.keys, opts),
    }));
    fencedEventLogContract(() => ({
      log: new RedisEventLog(t.c1, t.keys, { ttlMs: 60_000 }),
      store: new RedisSessionStore(t.c2, t.keys, LONG),
    }));
  });
  describe('InstanceRegistry contract', () => {
    instanceRegistryContract(() => ({
      a: new RedisInstanceRegistry(t.c1, t.keys),
      b: new RedisInstanceRegistry(t.c2, t.keys),
      expire: async (ttl) => {
        const deadline = Date.now() + ttl + 5000;
        while ((await t.c1.exists(t.keys.instance('dead'))) === 1) {
          if (Date.now() > deadline) throw new Error('the liveness key did not expire');
          await new Promise((r) => setTimeout(r, 25));
        }
      },
    }));
  });
  describe('SpentTokens contract', () => {
    spentTokensContract(() => ({
      a: new RedisSpentTokens(t.c1, t.keys),
      b: new RedisSpentTokens(t.c2, t.keys),
      expire: redisExpiry(t.c1, t.keys),
    }));
  });
  describe('MessageBus contract', () => {
    messageBusContract(() => {
      const keys = t.keys;
      return (onError) => new RedisBus(t.c1, keys, { onError });
    });
  });
}

/**
 * Sessions in the slot of the master about to die (all of them, behind Sentinel), created in the
 * stronger mode (WAIT 1) and left idle for a second; then 8 workers touch them while the master is
 * killed. Figures printed; asserted: failing calls fail fast, the store recovers on its own, and no
 * session is lost; a bus whose channel lives on that master is subscribed again and hears messages.
 */
function failover(t: Topology, kind: string): void {
  it('keeps every session through a failover, fails fast during it, recovers on its own', async () => {
    const strong = new RedisSessionStore(t.c1, t.keys, LONG, { replicasOnCreate: 1, commandTimeoutMs: 2000 });
    const plain = new RedisSessionStore(t.c2, t.keys, LONG, { commandTimeoutMs: 2000 });
    // 40 sessions in one shard (the victim's slot), 40 anywhere.
    const victim = record().id;
    const tag = t.keys.shardTag(shardOf(victim));
    const sameShard: string[] = [];
    while (sameShard.length < 40) {
      const id = record().id;
      if (shardOf(id) === shardOf(victim)) sameShard.push(id);
    }
    const ids = [victim, ...sameShard, ...Array.from({ length: 40 }, () => record().id)];
    for (const id of ids) await strong.create(record({ id }));
    // A bus whose instance channel is on the same master (on Cluster: same slot as the sessions).
    const instance = `bus${tag}-${randomBytes(3).toString('hex')}`;
    let resubscribed = 0;
    const bus = new RedisBus(t.c1, t.keys, { onResubscribed: () => resubscribed++ });
    const inbox = new Inbox();
    await bus.start(instance, inbox.receive);
    const sender = new RedisBus(t.c2, t.keys);
    assert.equal(await sender.send(instance, { t: 'before' }), 1);
    await new Promise((r) => setTimeout(r, 1000)); // idle for a second before the kill

    let killedAt = 0;
    const run = load(
      8,
      (i) => plain.touch(ids[i % ids.length]!),
      () => killedAt || Date.now(),
    );
    // Sessions created without WAIT while the master dies: how many asynchronous replication loses.
    const unsafe: string[] = [];
    const creating = load(
      1,
      async () => {
        const r = record();
        await plain.create(r);
        unsafe.push(r.id);
      },
      () => killedAt || Date.now(),
    );
    await new Promise((r) => setTimeout(r, 300));
    killedAt = Date.now();
    const { port, failoverMs } = await t.killMasterOf(t.keys.session(victim));
    // Recovered: a call on the victim's slot succeeds again.
    let recoveredMs = -1;
    const deadline = Date.now() + 15_000;
    while (recoveredMs < 0) {
      try {
        await plain.touch(victim);
        recoveredMs = Date.now() - killedAt;
      } catch (err) {
        assert.ok(isStoreUnavailable(err), String(err));
        assert.ok(Date.now() < deadline, 'the store recovers within 15 s of the failover');
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    await new Promise((r) => setTimeout(r, 300));
    await run.stop();
    await creating.stop();

    const failed = run.samples.filter((s) => !s.ok);
    for (const s of failed) assert.ok(isStoreUnavailable(s.err), `a failing call is a 503: ${String(s.err)}`);
    const lost: string[] = [];
    for (const id of ids) if ((await plain.load(id)) === undefined) lost.push(id);
    let unsafeLost = 0;
    for (const id of unsafe) if ((await plain.load(id)) === undefined) unsafeLost++;
    await until('the bus subscribed again', () => bus.isUp(), 15_000);
    assert.equal(await sender.send(instance, { t: 'after' }), 1);
    await inbox.waitFor(2);
    assert.deepEqual(
      inbox.messages.map((m) => m.t),
      ['before', 'after'],
    );
    const figures = {
      topology: kind,
      calls: run.samples.length,
      failedCalls: failed.length,
      failedCallP50Ms: pct(
        failed.map((s) => s.ms),
        50,
      ),
      failedCallMaxMs: Math.max(0, ...failed.map((s) => s.ms)),
      failoverMs,
      recoveredAfterKillMs: recoveredMs,
      recoveredAfterPromotionMs: recoveredMs - failoverMs,
      sessionsLost: lost.length,
      createdWithoutWait: unsafe.length,
      createdWithoutWaitLost: unsafeLost,
      busResubscribed: resubscribed,
    };
    console.log(`# ${kind} failover: ${JSON.stringify(figures)}`);
    assert.deepEqual(lost, [], 'no session created in the stronger mode is lost');
    assert.ok(resubscribed >= 1, 'onResubscribed told the fleet that messages may have been lost');
    // Fast 503s: not one command timeout (2 s) per call while the master is away.
    assert.ok(
      pct(
        failed.map((s) => s.ms),
        90,
      ) < 1000,
      `failing calls fail fast (p90 ${pct(
        failed.map((s) => s.ms),
        90,
      )} ms)`,
    );
    await bus.close();
    await sender.close();
    await t.revive(port);
  });
}

describe('on Redis Sentinel (primary, 2 replicas, 3 sentinels)', () => {
  const t = useTopology('sentinel');
  contracts(t);
  failover(t, 'sentinel');
});

describe('on Redis Cluster (3 masters, 3 replicas)', () => {
  const t = useTopology('cluster');
  contracts(t);
  describe('MessageBus contract, classic pub/sub', () => {
    messageBusContract(() => {
      const keys = t.keys;
      return (onError) => new RedisBus(t.c1, keys, { onError, pubsub: 'classic' });
    });
  });
  failover(t, 'cluster');
});
