// Cost of a cold request (claim + hydration) vs a warm one. Two mcp-fleet instances (A and B,
// different instanceId) in this process share one Redis. Sessions are created on A, which then shuts
// down and hands them off; then, one session at a time, B serves its first request (cold: B claims
// the session, builds the McpServer and replays the handshake) and immediately a second one (warm:
// B's copy). Requests are sequential, so the latencies are not queueing delays, and cold and warm
// alternate, so noise hits both alike.
//
//   npx tsx bench/hydration.ts
//
// Env: BENCH_SESSIONS (500), BENCH_WARMUP_SESSIONS (30).
import { randomBytes } from 'node:crypto';
import { TestRedis } from '../test/helpers/redis-server.js';
import './lib/child.js'; // Ctrl-C cleanup (redis-server)
import { HttpClient, openSessions, timedEcho } from './lib/client.js';
import { MODES, standaloneContext, startFleet, type Mode } from './lib/servers.js';
import { buildDemoServer } from '../test/fixtures/demo-server.js';
import { ascending, fixed, mean, percentile, printEnvironment, printTable, ratio } from './lib/stats.js';

const N = Number(process.env.BENCH_SESSIONS ?? 500);
const WARMUP = Number(process.env.BENCH_WARMUP_SESSIONS ?? 30);

interface Result {
  mode: Mode;
  cold: number[];
  warm: number[];
  /** The server factory alone (what the cold request runs and a warm one does not), same process. */
  factory: number[];
}

async function benchMode(mode: Mode, redis: TestRedis): Promise<Result> {
  const keyPrefix = `bench${randomBytes(3).toString('hex')}:`;
  const b = await startFleet({ mode, redisUrl: redis.url, keyPrefix, instanceId: 'bench-b' });
  const onB = new HttpClient(b.port, 1);
  try {
    const pass = async (count: number) => {
      // The owner of the sessions until it shuts down: then each session has no owner, and B's first
      // request of it claims and hydrates it.
      const a = await startFleet({ mode, redisUrl: redis.url, keyPrefix, instanceId: 'bench-a' });
      const onA = new HttpClient(a.port, 10);
      const sessions = await openSessions(onA, count, 10);
      onA.close();
      await a.close();
      const cold: number[] = [];
      const warm: number[] = [];
      const factory: number[] = [];
      let id = 0;
      for (const s of sessions) {
        cold.push(await timedEcho(onB, s, ++id));
        warm.push(await timedEcho(onB, s, ++id));
        const t0 = performance.now();
        await buildDemoServer(standaloneContext(s)).close();
        factory.push(performance.now() - t0);
      }
      return { cold, warm, factory };
    };
    await pass(WARMUP); // JIT of both paths
    const measured = await pass(N);
    // Every session was hydrated on B (none existed there before its cold request).
    const liveOnB = await b.live();
    if (liveOnB !== WARMUP + N) throw new Error(`expected ${WARMUP + N} live sessions on B, got ${liveOnB}`);
    return { mode, ...measured };
  } finally {
    onB.close();
    await b.close();
  }
}

printEnvironment('hydration: cold vs warm request');
console.log(
  `${N} sessions created on instance A, which hands them off; each then called twice on instance B ` +
    `(after ${WARMUP} warm-up sessions)`,
);
const started = Date.now();
const redis = await TestRedis.start();
const results: Result[] = [];
try {
  for (const mode of MODES) results.push(await benchMode(mode, redis));
} finally {
  await redis.stop();
}
console.log();
printTable(
  [
    'mode',
    'cold p50 ms',
    'cold p99 ms',
    'warm p50 ms',
    'warm p99 ms',
    'factory p50 ms',
    'cold/warm p50',
    'cold/warm mean',
  ],
  results.map(({ mode, cold, warm, factory }) => {
    const c = ascending(cold);
    const w = ascending(warm);
    return [
      mode === 'json' ? 'JSON (jsonResponse: true)' : 'SSE (default)',
      fixed(percentile(c, 50)),
      fixed(percentile(c, 99)),
      fixed(percentile(w, 50)),
      fixed(percentile(w, 99)),
      fixed(percentile(ascending(factory), 50)),
      ratio(percentile(c, 50), percentile(w, 50)),
      ratio(mean(cold), mean(warm)),
    ];
  }),
);
console.log(
  `\ncold/warm: how many warm requests' time the first request of a session on a new owner costs ` +
    `(one round trip to refresh and claim it, the server factory, the handshake replay). factory: ` +
    `building the bench's McpServer (three tools) and closing it, timed alone in the same process: ` +
    `user code that every new owner runs. Took ${((Date.now() - started) / 1000).toFixed(1)} s.`,
);
