// Spreading sessions after a scale-out (the `rebalance` option): 3 instances behind the round-robin
// proxy own 300 sessions with steady light traffic; 3 more join. With the policy on, owned sessions
// per instance end up within ±25 % of the mean with no failed request; with it off, nothing moves.
// A drained instance's sessions end up spread over the survivors.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { HttpClient, echoBody, isEchoResult, openSessions, sessionHeaders } from '../../bench/lib/client.js';
import { RedisKeys } from '../../src/redis/keys.js';
import { startCluster, type Instance } from '../helpers/instances.js';
import { startProxy, type Proxy } from '../helpers/proxy.js';
import { TestRedis } from '../helpers/redis-server.js';

const ENTRY = 'test/fixtures/demo-instance.ts';
const SESSIONS = 300;
/** Each session gets a call about this often (light, steady traffic), so sessions are idle between. */
const PER_SESSION_GAP_MS = 3000;
/** A session idle this long may be moved (the fixture's REBALANCE setting). */
const IDLE_MS = 400;
const TOLERANCE = 0.25;

/** Steady traffic: each tick calls `echo` on the next sessions in turn, through the proxy. */
class Traffic {
  readonly failures: string[] = [];
  calls = 0;
  private stopped = false;
  private readonly done: Promise<void>;

  constructor(client: HttpClient, sessions: string[]) {
    const perSecond = (sessions.length * 1000) / PER_SESSION_GAP_MS;
    const workers = 10;
    let next = 0;
    const started = performance.now();
    const worker = async () => {
      while (!this.stopped) {
        // Paced: the n-th call of the fleet goes out at n / perSecond seconds.
        const due = started + (this.calls / perSecond) * 1000;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, Math.min(wait, 50)));
        if (this.stopped || performance.now() < due) continue;
        const sid = sessions[next++ % sessions.length]!;
        this.calls++;
        try {
          const r = await client.post(echoBody(this.calls), sessionHeaders(sid));
          if (!isEchoResult(r)) {
            const at = `${Math.round(performance.now() - started)} ms`;
            const via = String(r.headers['x-proxy-target'] ?? '?');
            this.failures.push(`${sid.slice(0, 8)} at ${at} via ${via}: ${r.status} ${r.body.slice(0, 200)}`);
          }
        } catch (err) {
          this.failures.push(`${sid.slice(0, 8)}: ${(err as Error).message}`);
        }
      }
    };
    this.done = Promise.all(Array.from({ length: workers }, worker)).then(() => undefined);
  }

  stop(): Promise<void> {
    this.stopped = true;
    return this.done;
  }
}

/** Owner instance id of each session, from the records in Redis. */
async function owners(admin: Redis, keys: RedisKeys, sessions: string[]): Promise<string[]> {
  const p = admin.pipeline();
  for (const s of sessions) p.hget(keys.session(s), 'owner');
  return ((await p.exec()) ?? []).map(([, v]) => String(v ?? ''));
}

/** Owned sessions per instance (by pid), every instance listed (0 for none). */
function spread(list: string[], instances: Instance[]): Map<number, number> {
  const byPid = new Map<number, number>(instances.map((i) => [i.pid, 0]));
  for (const owner of list) {
    const pid = Number(/-(\d+)-[0-9a-f]{6}$/.exec(owner)?.[1]);
    if (byPid.has(pid)) byPid.set(pid, byPid.get(pid)! + 1);
  }
  return byPid;
}

const within = (counts: number[], tolerance: number) => {
  const mean = counts.reduce((a, b) => a + b, 0) / counts.length;
  return counts.every((c) => Math.abs(c - mean) <= mean * tolerance);
};

/** Polls `check` (an observable condition) every 250 ms for at most `timeoutMs`. */
async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 250));
  }
}

interface Deployment {
  redis: TestRedis;
  admin: Redis;
  keys: RedisKeys;
  env: Record<string, string>;
  instances: Instance[];
  proxy: Proxy;
  client: HttpClient;
  sessions: string[];
}

async function deploy(rebalance: boolean): Promise<Deployment> {
  const redis = await TestRedis.start();
  const prefix = TestRedis.prefix();
  const env: Record<string, string> = { REDIS_URL: redis.url, KEY_PREFIX: prefix };
  if (rebalance) env.REBALANCE = String(IDLE_MS);
  const instances = await startCluster(3, { entry: ENTRY, env, name: rebalance ? 'rebal' : 'norebal' });
  const proxy = await startProxy(instances.map((i) => i.url));
  const client = new HttpClient(proxy.port, 10);
  const sessions = await openSessions(client, SESSIONS, 10);
  return {
    redis,
    admin: redis.client(),
    keys: new RedisKeys(prefix),
    env,
    instances,
    proxy,
    client,
    sessions,
  };
}

async function teardown(d: Deployment | undefined): Promise<void> {
  if (!d) return;
  d.client.close();
  d.admin.disconnect();
  await d.proxy.close();
  await Promise.all(d.instances.map((i) => i.kill()));
  await d.redis.stop();
}

const fmt = (m: Map<number, number>) => [...m.values()].join(' / ');

describe('rebalancing after a scale-out (policy on)', () => {
  let d: Deployment | undefined;
  after(() => teardown(d));

  it('3 → 6 instances: owned sessions per instance within ±25 % of the mean, no failed request', async () => {
    d = await deploy(true);
    const traffic = new Traffic(d.client, d.sessions);
    const before = spread(await owners(d.admin, d.keys, d.sessions), d.instances);
    const added = await startCluster(3, { entry: ENTRY, env: d.env, name: 'rebal-new' });
    d.instances.push(...added);
    d.proxy.setTargets(d.instances.map((i) => i.url));
    const t0 = performance.now();
    const balanced = await until(async () => {
      const now = spread(await owners(d!.admin, d!.keys, d!.sessions), d!.instances);
      const counts = [...now.values()];
      return counts.reduce((a, b) => a + b, 0) >= SESSIONS * 0.8 && within(counts, TOLERANCE);
    }, 45_000);
    const took = performance.now() - t0;
    await traffic.stop();
    const final = spread(await owners(d.admin, d.keys, d.sessions), d.instances);
    console.log(
      `# before ${fmt(before)}; after adding 3 instances ${fmt(final)} (±25 % of the mean in ${(took / 1000).toFixed(1)} s); ` +
        `${traffic.calls} calls, ${traffic.failures.length} failed`,
    );
    assert.deepEqual(traffic.failures, [], 'no request failed while sessions moved');
    assert.ok(balanced, `not balanced in time: ${fmt(final)}`);
    // A handed-off session has no owner until its next request claims it: at most one each.
    const unowned = SESSIONS - [...final.values()].reduce((a, b) => a + b, 0);
    assert.ok(
      unowned >= 0 && unowned <= SESSIONS * 0.2,
      `${unowned} sessions waiting for their next request`,
    );
  });

  it('a drained instance hands its sessions off spread over the survivors', async () => {
    assert.ok(d, 'runs after the scale-out');
    const traffic = new Traffic(d.client, d.sessions);
    const victim = d.instances[0]!;
    const survivors = d.instances.slice(1);
    await victim.stop(); // SIGTERM: drains, hands off, exits
    d.proxy.setTargets(survivors.map((i) => i.url));
    const balanced = await until(async () => {
      const now = spread(await owners(d!.admin, d!.keys, d!.sessions), survivors);
      const counts = [...now.values()];
      return counts.reduce((a, b) => a + b, 0) >= SESSIONS * 0.8 && within(counts, TOLERANCE);
    }, 45_000);
    await traffic.stop();
    const final = spread(await owners(d.admin, d.keys, d.sessions), survivors);
    console.log(
      `# after draining one of 6: ${fmt(final)}; ${traffic.calls} calls, ${traffic.failures.length} failed`,
    );
    assert.deepEqual(traffic.failures, [], 'no request failed during the drain');
    assert.ok(balanced, `not spread over the survivors in time: ${fmt(final)}`);
  });
});

describe('no rebalancing (policy off, the default)', () => {
  let d: Deployment | undefined;
  after(() => teardown(d));

  it('3 → 6 instances: no session moves', async () => {
    d = await deploy(false);
    const traffic = new Traffic(d.client, d.sessions);
    const before = await owners(d.admin, d.keys, d.sessions);
    const added = await startCluster(3, { entry: ENTRY, env: d.env, name: 'norebal-new' });
    d.instances.push(...added);
    d.proxy.setTargets(d.instances.map((i) => i.url));
    // Every session served at least twice more, through every instance (observable: the calls made).
    const target = traffic.calls + SESSIONS * 2;
    assert.ok(await until(async () => traffic.calls >= target, 60_000), 'traffic went on');
    await traffic.stop();
    const now = await owners(d.admin, d.keys, d.sessions);
    assert.deepEqual(traffic.failures, []);
    assert.deepEqual(
      now.filter((o, i) => o !== before[i]),
      [],
      'no session changed owner',
    );
    const final = spread(now, d.instances);
    console.log(`# policy off, after adding 3 instances: ${fmt(final)}`);
    assert.equal(
      [...final.values()].slice(3).reduce((a, b) => a + b, 0),
      0,
      'the new instances own nothing',
    );
  });
});
