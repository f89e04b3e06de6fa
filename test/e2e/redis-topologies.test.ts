// Redis failing over under load: 3 instances behind the round-robin proxy, 20 SDK clients calling
// tools back to back, sessions created in the stronger mode (WAIT 1) and idle for a second. Then
// Sentinel's primary, or the Cluster master serving most sessions, is killed (SIGKILL). Figures are
// printed: calls failed during the switch, how long until every session worked again, sessions
// lost. Asserted: no call hangs, every failure is a 503 the client may retry, every session works
// again within a bound, and none is lost. On Cluster, slots holding sessions, the instances' bus
// channels and the broadcast channel are also resharded under load: not one call may fail.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import calculateSlot from 'cluster-key-slot';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { RedisKeys } from '../../src/redis/keys.js';
import { startInstance, type Instance } from '../helpers/instances.js';
import { connectClient, textOf } from '../helpers/mcp-client.js';
import { startProxy, type Proxy } from '../helpers/proxy.js';
import { TestRedis } from '../helpers/redis-server.js';
import { TestRedisCluster, TestRedisSentinel } from '../helpers/redis-topologies.js';

const ENTRY = 'test/fixtures/demo-instance.ts';
const CLIENTS = 20;
/** A call with no answer after this long is a hang. */
const HANG_MS = 10_000;
/** Every session works again within this long of the new master being promoted (a liveness bound, not a
 * speed target: the figure is printed; a loaded 2-core machine took 5.7 s on Cluster once, 1.5–4 s usually). */
const RECOVERY_BOUND_MS = 10_000;
/** Slots moved in the reshard: the lowest of the master serving slot 0 (redis-cli takes them in order). */
const RESHARD_SLOTS = 4000;

const now = () => performance.now();

interface Call {
  start: number;
  end: number;
  ok: boolean;
  message?: string;
  status?: number;
}

interface Load {
  sid: string;
  client: Client;
  calls: Call[];
}

/** Each client calls `echo` back to back until `stop()`; a failed call is retried after 50 ms. */
function runLoad(loads: Load[]) {
  let running = true;
  const loops = loads.map(async (l, i) => {
    for (let k = 0; running; k++) {
      const start = now();
      const text = `c${i}-${k}`;
      try {
        const r = await l.client.callTool({ name: 'echo', arguments: { text } }, undefined, {
          timeout: HANG_MS,
        });
        if (textOf(r) !== text) throw new Error(`wrong answer ${textOf(r)}`);
        l.calls.push({ start, end: now(), ok: true });
      } catch (err) {
        const status = (err as { code?: unknown }).code;
        l.calls.push({
          start,
          end: now(),
          ok: false,
          message: err instanceof Error ? err.message : String(err),
          status: typeof status === 'number' ? status : undefined,
        });
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  });
  return async () => {
    running = false;
    await Promise.all(loops);
  };
}

const hung = (c: Call) => /timed out|RequestTimeout/i.test(c.message ?? '') || c.end - c.start >= HANG_MS;
const isNotFound = (c: Call) => c.status === 404 || /Session not found/i.test(c.message ?? '');

/** An instance id whose bus channel hashes below `maxSlot` (so the reshard moves it). */
function instanceIdBelow(prefix: string, name: string, maxSlot: number): string {
  for (let i = 0; ; i++) {
    const id = `${name}-${i}`;
    if (calculateSlot(new RedisKeys(prefix).instanceChannel(id)) < maxSlot) return id;
  }
}

/** A key prefix whose broadcast channel hashes below `maxSlot`. */
function prefixBelow(maxSlot: number): string {
  for (;;) {
    const p = TestRedis.prefix();
    if (calculateSlot(new RedisKeys(p).broadcastChannel()) < maxSlot) return p;
  }
}

interface Running {
  env: Record<string, string>;
  /** Kills the master the most sessions live on (the primary, behind Sentinel). */
  kill(sessionIds: string[], keys: RedisKeys): Promise<{ failoverMs: number; affected: number }>;
  stop(): Promise<void>;
}

function scenario(name: string, start: () => Promise<Running>, reshard?: () => TestRedisCluster): void {
  describe(`3 instances on ${name}, 20 clients`, () => {
    let redis: Running;
    let instances: Instance[] = [];
    let proxy: Proxy;
    let loads: Load[] = [];
    const prefix = prefixBelow(RESHARD_SLOTS);
    const keys = new RedisKeys(prefix);

    before(async () => {
      redis = await start();
      const env = { ...redis.env, KEY_PREFIX: prefix, REDIS_REPLICAS_ON_CREATE: '1' };
      instances = await Promise.all(
        [0, 1, 2].map((i) =>
          startInstance({
            entry: ENTRY,
            name: `topo-${i}`,
            env: { ...env, INSTANCE_ID: instanceIdBelow(prefix, `topo${i}`, RESHARD_SLOTS) },
          }),
        ),
      );
      proxy = await startProxy(instances.map((i) => i.url));
      const connect = async (i: number): Promise<Load> => {
        const { client, transport } = await connectClient(proxy.url, { token: `user${i}`, name: `c${i}` });
        return { client, sid: transport.sessionId!, calls: [] };
      };
      loads = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => connect(i)));
      // Session ids are random: about one in four lives in the slots a reshard moves, so 20 of them
      // miss those slots once in a few hundred runs. One more client at a time until one is there.
      const inMoved = (l: Load) => calculateSlot(keys.session(l.sid)) < RESHARD_SLOTS;
      while (reshard && !loads.some(inMoved) && loads.length < CLIENTS + 50) {
        loads.push(await connect(loads.length));
      }
    });

    after(async () => {
      await Promise.all(loads.map((l) => l.client.close().catch(() => {})));
      await proxy?.close();
      await Promise.all(instances.map((i) => i.kill()));
      await redis?.stop();
    });

    if (reshard) {
      it('a reshard of the slots of sessions and bus channels under load: zero failed calls', async () => {
        for (const l of loads) l.calls = [];
        const cluster = reshard();
        const stop = runLoad(loads);
        await new Promise((r) => setTimeout(r, 500));
        const masters = await cluster.masters();
        const from = await cluster.masterOfSlot(0);
        const to = masters.find((p) => p !== from)!;
        const moved = loads.filter((l) => calculateSlot(keys.session(l.sid)) < RESHARD_SLOTS).length;
        const t0 = now();
        await cluster.reshard(from, to, RESHARD_SLOTS);
        const reshardMs = now() - t0;
        await new Promise((r) => setTimeout(r, 1000));
        await stop();
        const calls = loads.flatMap((l) => l.calls);
        const failed = calls.filter((c) => !c.ok);
        console.log(
          `# ${name} reshard: ${JSON.stringify({
            slotsMoved: RESHARD_SLOTS,
            sessionsInMovedSlots: moved,
            reshardMs: Math.round(reshardMs),
            calls: calls.length,
            failed: failed.length,
            slowestCallMs: Math.round(Math.max(...calls.map((c) => c.end - c.start))),
          })}`,
        );
        assert.ok(moved > 0, 'some sessions live in the moved slots');
        assert.deepEqual(
          failed.map((c) => c.message),
          [],
          'no call fails during the reshard',
        );
      });
    }

    it('kill the master under load: fast 503s only, every session back within the bound, none lost', async () => {
      // Sessions were created in the stronger mode; idle for a second before the kill.
      await new Promise((r) => setTimeout(r, 1000));
      for (const l of loads) l.calls = [];
      const stop = runLoad(loads);
      await new Promise((r) => setTimeout(r, 500));
      const killedAt = now();
      const { failoverMs, affected } = await redis.kill(
        loads.map((l) => l.sid),
        keys,
      );
      const promotedAt = killedAt + failoverMs;
      // Every session has had a successful call started after the promotion.
      const deadline = promotedAt + RECOVERY_BOUND_MS + 5_000;
      while (loads.some((l) => !l.calls.some((c) => c.ok && c.start >= promotedAt)) && now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      await new Promise((r) => setTimeout(r, 1000));
      await stop();

      const calls = loads.flatMap((l) => l.calls);
      const failed = calls.filter((c) => !c.ok);
      const backAfter = loads.map((l) => {
        const lastFail = l.calls.filter((c) => !c.ok).at(-1);
        const firstOk = l.calls.find((c) => c.ok && (!lastFail || c.start >= lastFail.end));
        return firstOk ? Math.max(0, firstOk.end - killedAt) : Infinity;
      });
      const lost = loads.filter((l) => l.calls.some(isNotFound));
      const figures = {
        sessionsOnKilledMaster: affected,
        failoverMs: Math.round(failoverMs),
        calls: calls.length,
        failed: failed.length,
        failedCallMaxMs: Math.round(Math.max(0, ...failed.map((c) => c.end - c.start))),
        allBackAfterKillMs: Math.round(Math.max(...backAfter)),
        allBackAfterPromotionMs: Math.round(Math.max(...backAfter) - failoverMs),
        sessionsLost: lost.length,
        hangs: calls.filter(hung).length,
      };
      console.log(`# ${name} failover: ${JSON.stringify(figures)}`);
      assert.equal(figures.hangs, 0, 'no call hangs');
      assert.deepEqual(
        lost.map((l) => l.sid),
        [],
        'no session is lost',
      );
      for (const c of failed) assert.equal(c.status, 503, `a failed call is a 503: ${c.message}`);
      assert.ok(
        figures.allBackAfterPromotionMs < RECOVERY_BOUND_MS,
        `every session works again within ${RECOVERY_BOUND_MS} ms of the promotion`,
      );
    });
  });
}

scenario('Redis Sentinel', async () => {
  const s = await TestRedisSentinel.start();
  return {
    env: s.env,
    kill: async (sids) => ({ ...(await s.killPrimary()), affected: sids.length }),
    stop: () => s.stop(),
  };
});

let cluster: TestRedisCluster;
scenario(
  'Redis Cluster',
  async () => {
    cluster = await TestRedisCluster.start();
    return {
      env: cluster.env,
      kill: async (sids, keys) => {
        const byMaster = new Map<number, string[]>();
        for (const sid of sids) {
          const port = await cluster.masterOf(keys.session(sid));
          byMaster.set(port, [...(byMaster.get(port) ?? []), sid]);
        }
        const [, most] = [...byMaster].sort((a, b) => b[1].length - a[1].length)[0]!;
        return { ...(await cluster.killMasterOf(keys.session(most[0]!))), affected: most.length };
      },
      stop: () => cluster.stop(),
    };
  },
  () => cluster,
);
