// A warm `tools/call echo` (raw HTTP POST on an initialized session) on one mcp-fleet instance with
// its state on standalone Redis (the baseline), behind Sentinel, and on a Redis Cluster (3 masters,
// 3 replicas), all measured in the same run, in JSON and SSE response modes. Goal: Cluster within
// 1.2x of standalone. Each server runs in its own process; this process only generates load.
//
//   npx tsx bench/redis-topology.ts
//
// Env: BENCH_SESSIONS (20), BENCH_REQUESTS (2000), BENCH_CONCURRENCY (20), BENCH_WARMUP (400),
// BENCH_ROUNDS (5). Rounds are interleaved; each column is the median over rounds.
import { randomBytes } from 'node:crypto';
import { TestRedis } from '../test/helpers/redis-server.js';
import { TestRedisCluster, TestRedisSentinel } from '../test/helpers/redis-topologies.js';
import { startChild } from './lib/child.js';
import { HttpClient, openSessions, runLoad } from './lib/client.js';
import { MODES, type Mode } from './lib/servers.js';
import {
  KNOBS,
  measureRound,
  medianCells,
  medians,
  interleavedRounds,
  type ChildTarget,
} from './lib/rounds.js';
import { printEnvironment, printTable, ratio } from './lib/stats.js';

const { SESSIONS, REQUESTS, CONCURRENCY, WARMUP, ROUNDS } = KNOBS;

interface Target extends ChildTarget {
  label: string;
}

const hostPorts = (nodes: Array<{ host: string; port: number }>) =>
  nodes.map((n) => `${n.host}:${n.port}`).join(',');

async function benchMode(mode: Mode, topologies: Array<[string, string]>): Promise<void> {
  const keyPrefix = `bench${randomBytes(3).toString('hex')}:`;
  const targets: Target[] = [];
  try {
    for (const [label, url] of topologies) {
      const child = await startChild('fleet-redis', mode, { url, keyPrefix });
      targets.push({
        label,
        child,
        client: new HttpClient(child.port, CONCURRENCY),
        sessions: [],
        rounds: [],
      });
    }
    for (const t of targets) {
      t.sessions = await openSessions(t.client, SESSIONS, Math.min(SESSIONS, CONCURRENCY));
      await runLoad(t.client, t.sessions, WARMUP, CONCURRENCY);
    }
    await interleavedRounds(targets, (t) =>
      measureRound(t.client, t.sessions, REQUESTS, () => t.child.cpuMicros()),
    );
  } finally {
    for (const t of targets) t.client.close();
    await Promise.all(targets.map((t) => t.child.stop()));
  }
  const summary = targets.map((t) => ({
    label: t.label,
    ...medians(t.rounds),
  }));
  const base = summary[0]!;
  console.log(`\n## ${mode === 'json' ? 'JSON responses (jsonResponse: true)' : 'SSE responses (default)'}`);
  printTable(
    ['Redis', 'req/s', 'p50 ms', 'p99 ms', 'server CPU µs/req', 'p50 vs standalone', 'req/s vs standalone'],
    summary.map((s) => [...medianCells(s), ratio(s.p50, base.p50), ratio(s.rps, base.rps)]),
  );
}

printEnvironment('warm tools/call echo by Redis topology');
console.log(
  `${SESSIONS} sessions, ${REQUESTS} requests per round at concurrency ${CONCURRENCY}, ` +
    `${WARMUP} warm-up requests, median of ${ROUNDS} interleaved rounds; one mcp-fleet instance`,
);
const started = Date.now();
const standalone = await TestRedis.start();
const sentinel = await TestRedisSentinel.start();
const cluster = await TestRedisCluster.start();
try {
  const topologies: Array<[string, string]> = [
    ['standalone (baseline)', standalone.url],
    [
      'Sentinel (primary + 2 replicas)',
      `sentinel://${sentinel.name}@${hostPorts(sentinel.sentinelAddresses)}`,
    ],
    ['Cluster (3 masters + 3 replicas)', `cluster://${hostPorts(cluster.seeds)}`],
  ];
  for (const mode of MODES) await benchMode(mode, topologies);
} finally {
  await Promise.all([standalone.stop(), sentinel.stop(), cluster.stop()]);
}
console.log(
  `\np50 ratio < 1.20x and req/s ratio > 0.83x: within the 1.2x goal for a warm request. ` +
    `Took ${((Date.now() - started) / 1000).toFixed(1)} s.`,
);
