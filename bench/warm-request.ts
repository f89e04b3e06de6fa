// Throughput and latency of a warm `tools/call echo` (raw HTTP POST on an initialized session):
// the SDK's stock transport (baseline) vs mcp-fleet embedded vs mcp-fleet with Redis, in JSON and
// SSE response modes. Each server runs in its own process; this process only generates load.
//
//   npx tsx bench/warm-request.ts
//
// Env: BENCH_SESSIONS (20), BENCH_REQUESTS (2000), BENCH_CONCURRENCY (20), BENCH_WARMUP (400),
// BENCH_ROUNDS (5), BENCH_RESUMABLE (0: mcp-fleet with `resumable: false`; the baseline never has
// an event store). Rounds are interleaved (A B C, B C A, C A B, ...); each column is the median over
// rounds, and the server's CPU time per request is read from the server process itself.
import { randomBytes } from 'node:crypto';
import { TestRedis } from '../test/helpers/redis-server.js';
import { startChild } from './lib/child.js';
import { HttpClient, openSessions, runLoad } from './lib/client.js';
import { MODES, VARIANT_LABEL, type Mode, type Variant } from './lib/servers.js';
import {
  KNOBS,
  measureRound,
  medians,
  type Round,
  interleavedRounds,
  printVsBaseline,
  type ChildTarget,
} from './lib/rounds.js';
import { printEnvironment } from './lib/stats.js';

const { SESSIONS, REQUESTS, CONCURRENCY, WARMUP, ROUNDS } = KNOBS;
const VARIANTS: readonly Variant[] = ['baseline', 'fleet', 'fleet-redis'];

type Target = ChildTarget;

function measure(t: Target, total: number): Promise<Round> {
  return measureRound(t.client, t.sessions, total, () => t.child.cpuMicros());
}

async function benchMode(mode: Mode, redis: TestRedis): Promise<void> {
  const keyPrefix = `bench${randomBytes(3).toString('hex')}:`;
  const targets: Target[] = [];
  try {
    for (const variant of VARIANTS) {
      const child = await startChild(variant, mode, { url: redis.url, keyPrefix });
      const client = new HttpClient(child.port, CONCURRENCY);
      targets.push({ child, client, sessions: [], rounds: [] });
    }
    for (const t of targets) {
      t.sessions = await openSessions(t.client, SESSIONS, Math.min(SESSIONS, CONCURRENCY));
      await runLoad(t.client, t.sessions, WARMUP, CONCURRENCY); // JIT, pools, caches
    }
    await interleavedRounds(targets, (t) => measure(t, REQUESTS));
  } finally {
    for (const t of targets) t.client.close();
    await Promise.all(targets.map((t) => t.child.stop()));
  }

  const summary = targets.map((t) => ({
    variant: t.child.variant,
    ...medians(t.rounds),
  }));
  const base = summary.find((s) => s.variant === 'baseline')!;
  console.log(`\n## ${mode === 'json' ? 'JSON responses (jsonResponse: true)' : 'SSE responses (default)'}`);
  printVsBaseline(
    summary.map((s) => ({ ...s, label: VARIANT_LABEL[s.variant] })),
    base,
  );
}

printEnvironment('warm tools/call echo');
console.log(
  `${SESSIONS} sessions, ${REQUESTS} requests per round at concurrency ${CONCURRENCY}, ` +
    `${WARMUP} warm-up requests, median of ${ROUNDS} interleaved rounds; mcp-fleet resumable: ` +
    `${process.env.BENCH_RESUMABLE === '0' ? 'false' : 'true (default)'}`,
);
const started = Date.now();
const redis = await TestRedis.start();
try {
  for (const mode of MODES) await benchMode(mode, redis);
} finally {
  await redis.stop();
}
console.log(
  `\nreq/s ratio > 1.00x: faster than the baseline. CPU/req ratio < 1.00x: cheaper than the baseline ` +
    `(server process only; redis-server's CPU is not counted). Took ${((Date.now() - started) / 1000).toFixed(1)} s.`,
);
