// What a scale-out relieves: 3 mcp-fleet instances serve 200 sessions with steady, light traffic
// (client-side round robin per request); then 3 more instances join. Printed: each instance's CPU
// per second and the sessions it owns, before and after, with the `rebalance` policy off (sessions
// stay with the instances that created them: the new ones only forward) and on (idle sessions move
// until each instance owns its share). Same machine, same run; every instance in its own process.
//
//   npx tsx bench/scale-out.ts
//
// Each call is `spin` (BENCH_WORK_MS of CPU in the tool: the work a real tool does, on the owner).
//
// Env: BENCH_SESSIONS (200), BENCH_RATE (requests/s, 200), BENCH_WORK_MS (2), BENCH_WINDOW_MS (5000),
// BENCH_MODE (json).
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { RedisKeys } from '../src/redis/keys.js';
import { TestRedis } from '../test/helpers/redis-server.js';
import { startChild, type ServerChild } from './lib/child.js';
import { HttpClient, RoundRobin, openSessions, sessionHeaders, spinBody } from './lib/client.js';
import type { Mode } from './lib/servers.js';
import { fixed, printEnvironment, printTable } from './lib/stats.js';

const env = (name: string, dflt: number) => Number(process.env[name] ?? dflt);
const SESSIONS = env('BENCH_SESSIONS', 200);
const RATE = env('BENCH_RATE', 200);
const WORK_MS = env('BENCH_WORK_MS', 2);
const WINDOW_MS = env('BENCH_WINDOW_MS', 5000);
const MODE = (process.env.BENCH_MODE ?? 'json') as Mode;
/** Sessions idle this long may move (with the policy on); the traffic leaves each idle ~SESSIONS/RATE s. */
const IDLE_MS = 250;

/** Paced traffic over the sessions in turn, through whatever `target` says; counts failures. */
class Traffic {
  failures = 0;
  calls = 0;
  private stopped = false;
  private readonly done: Promise<void>;
  constructor(
    private target: RoundRobin,
    sessions: string[],
  ) {
    const started = performance.now();
    let next = 0;
    const worker = async () => {
      while (!this.stopped) {
        const due = started + (this.calls / RATE) * 1000;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, Math.min(wait, 20)));
        if (this.stopped || performance.now() < due) continue;
        this.calls++;
        const r = await this.target.post(
          spinBody(this.calls, WORK_MS),
          sessionHeaders(sessions[next++ % sessions.length]!),
        );
        if (r.status !== 200 || !r.body.includes('spun')) this.failures++;
      }
    };
    this.done = Promise.all(Array.from({ length: 20 }, worker)).then(() => undefined);
  }
  retarget(target: RoundRobin): void {
    this.target = target;
  }
  stop(): Promise<void> {
    this.stopped = true;
    return this.done;
  }
}

interface Phase {
  label: string;
  cpuPerSecond: number[];
  owned: number[];
}

async function ownedBy(
  admin: ReturnType<TestRedis['client']>,
  keys: RedisKeys,
  ids: string[],
): Promise<number[]> {
  const values = await admin.mget(...ids.map((id) => keys.instance(id)));
  return values.map((v) => (v ? Number((JSON.parse(v) as { owned?: number }).owned ?? 0) : 0));
}

async function measure(children: ServerChild[]): Promise<number[]> {
  const before = await Promise.all(children.map((c) => c.cpuMicros()));
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, WINDOW_MS));
  const after = await Promise.all(children.map((c) => c.cpuMicros()));
  const seconds = (performance.now() - t0) / 1000;
  return after.map((a, i) => (a - before[i]!) / 1000 / seconds); // CPU ms per second
}

async function run(redis: TestRedis, policy: boolean): Promise<Phase[]> {
  const redisOpts = { url: redis.url, keyPrefix: `bench${randomBytes(3).toString('hex')}:` };
  const keys = new RedisKeys(redisOpts.keyPrefix);
  const extra: Record<string, string> = policy ? { BENCH_REBALANCE: String(IDLE_MS) } : {};
  const admin = redis.client();
  const children: ServerChild[] = [];
  const clients: HttpClient[] = [];
  const ids: string[] = [];
  const phases: Phase[] = [];
  try {
    const add = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const id = `scale-${policy ? 'on' : 'off'}-${children.length}`;
        children.push(await startChild('fleet-redis', MODE, redisOpts, { ...extra, BENCH_INSTANCE_ID: id }));
        clients.push(new HttpClient(children.at(-1)!.port, 20));
        ids.push(id);
      }
      return new RoundRobin([...clients]);
    };
    const three = await add(3);
    const sessions = await openSessions(three, SESSIONS, 10);
    const traffic = new Traffic(three, sessions);
    await measure(children); // warm-up
    phases.push({
      label: '3 instances',
      cpuPerSecond: await measure(children),
      owned: await ownedBy(admin, keys, ids),
    });
    traffic.retarget(await add(3));
    if (policy) {
      // Until every instance owns its share (±25 %), at most 30 s.
      const deadline = Date.now() + 30_000;
      for (;;) {
        const owned = await ownedBy(admin, keys, ids);
        const mean = owned.reduce((a, b) => a + b, 0) / owned.length;
        if (owned.every((o) => Math.abs(o - mean) <= mean * 0.25) || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    await measure(children); // settle
    phases.push({
      label: `6 instances, rebalance ${policy ? 'on' : 'off'}`,
      cpuPerSecond: await measure(children),
      owned: await ownedBy(admin, keys, ids),
    });
    await traffic.stop();
    if (traffic.failures > 0) throw new Error(`${traffic.failures} of ${traffic.calls} calls failed`);
  } finally {
    for (const c of clients) c.close();
    await Promise.all(children.map((c) => c.stop()));
    admin.disconnect();
  }
  return phases;
}

printEnvironment('scale-out: CPU per instance before and after adding instances, rebalance off vs on');
console.log(
  `${SESSIONS} sessions, ${RATE} calls/s round robin per request, ${WORK_MS} ms of tool CPU each, ` +
    `${WINDOW_MS} ms windows, ${MODE} answers`,
);
const started = Date.now();
const redis = await TestRedis.start();
const phases: Phase[] = [];
try {
  const off = await run(redis, false);
  const on = await run(redis, true);
  phases.push(off[0]!, off[1]!, on[1]!);
} finally {
  await redis.stop();
}
console.log();
printTable(
  ['phase', 'CPU ms/s per instance', 'busiest', 'busiest / mean', 'sessions owned per instance'],
  phases.map((p) => {
    const mean = p.cpuPerSecond.reduce((a, b) => a + b, 0) / p.cpuPerSecond.length;
    const max = Math.max(...p.cpuPerSecond);
    return [
      p.label,
      p.cpuPerSecond.map((c) => fixed(c, 0)).join(' / '),
      fixed(max, 0),
      `${fixed(max / mean)}x`,
      p.owned.join(' / '),
    ];
  }),
);
console.log(
  `\nThe old instances are the first three. "busiest / mean" near 1.00x: the load is spread. Took ${((Date.now() - started) / 1000).toFixed(1)} s.`,
);
