// A/B of two builds of the library: the warm `tools/call echo` load of warm-request.ts on each (both
// on one throwaway Redis, each server in its own process), rounds interleaved, medians of req/s and
// server CPU per request, B against A. For "did this change make it faster": build the old commit in
// a worktree (`git worktree add /tmp/old <commit> && cd /tmp/old && npm ci && npm run build:lib`), then
//
//   npx tsx bench/ab.ts /tmp/old/dist/src/index.js dist/src/index.js [sse|json]
//
// Knobs as warm-request.ts (BENCH_ROUNDS, BENCH_REQUESTS, …); BENCH_PROFILE=<dir> profiles both
// servers. Two identical builds differ by up to ~10 % here on a noisy machine: read small differences
// as none.
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { TestRedis } from '../test/helpers/redis-server.js';
import { startChild } from './lib/child.js';
import { HttpClient, openSessions, runLoad } from './lib/client.js';
import type { Mode } from './lib/servers.js';
import {
  KNOBS,
  interleavedRounds,
  measureRound,
  medians,
  printVsBaseline,
  type ChildTarget,
} from './lib/rounds.js';
import { printEnvironment } from './lib/stats.js';

const [libA, libB, mode = 'sse'] = process.argv.slice(2) as [string?, string?, Mode?];
if (!libA || !libB) throw new Error('usage: npx tsx bench/ab.ts <A index.js> <B index.js> [sse|json]');

interface Target extends ChildTarget {
  label: string;
}

printEnvironment(`A/B of two builds, warm tools/call echo, ${mode}`);
const redis = await TestRedis.start();
const targets: Target[] = [];
try {
  for (const [label, lib] of [
    ['A', libA],
    ['B', libB],
  ] as const) {
    const keyPrefix = `ab${randomBytes(3).toString('hex')}:`;
    const child = await startChild(
      'fleet-build',
      mode,
      { url: redis.url, keyPrefix },
      {
        BENCH_LIB: pathToFileURL(lib).href,
      },
    );
    const client = new HttpClient(child.port, KNOBS.CONCURRENCY);
    targets.push({ label: `${label}: ${lib}`, child, client, sessions: [], rounds: [] });
  }
  for (const t of targets) {
    t.sessions = await openSessions(t.client, KNOBS.SESSIONS, Math.min(KNOBS.SESSIONS, KNOBS.CONCURRENCY));
    await runLoad(t.client, t.sessions, KNOBS.WARMUP, KNOBS.CONCURRENCY);
  }
  await interleavedRounds(targets, (t) =>
    measureRound(t.client, t.sessions, KNOBS.REQUESTS, () => t.child.cpuMicros()),
  );
} finally {
  for (const t of targets) t.client.close();
  await Promise.all(targets.map((t) => t.child.stop()));
  await redis.stop();
}
const summary = targets.map((t) => ({ label: t.label, ...medians(t.rounds) }));
console.log('\nratios: B against A (the first row)');
printVsBaseline(summary, summary[0]!);
