// Heap per live session: N sessions (initialize + notifications/initialized) against the SDK's stock
// transport (baseline), mcp-fleet embedded and mcp-fleet with Redis; each server in its own process,
// measured after a full GC before and after creating the N sessions.
//
//   node --expose-gc --import tsx bench/memory-per-session.ts
//
// (`npx tsx bench/memory-per-session.ts` works too: the server processes are always started with
// --expose-gc.) Env: BENCH_SESSIONS (500; `npm run bench:memory-10k` opens 10,000), BENCH_WARMUP_SESSIONS
// (20), BENCH_MODE (sse | json), BENCH_CALLS (1000: tool calls after the sessions are open, for the
// Redis bytes each call leaves behind, with Redis only).
import { randomBytes } from 'node:crypto';
import { TestRedis } from '../test/helpers/redis-server.js';
import { startChild } from './lib/child.js';
import { HttpClient, openSessions, timedEcho } from './lib/client.js';
import { VARIANT_LABEL, type Mode, type Variant } from './lib/servers.js';
import { fixed, printEnvironment, printTable, ratio } from './lib/stats.js';

const N = Number(process.env.BENCH_SESSIONS ?? 500);
const WARMUP = Number(process.env.BENCH_WARMUP_SESSIONS ?? 20);
const MODE = (process.env.BENCH_MODE ?? 'sse') as Mode;
const CALLS = Number(process.env.BENCH_CALLS ?? 1000);
const CONCURRENCY = 10;
const VARIANTS: readonly Variant[] = ['baseline', 'fleet', 'fleet-redis'];

// mcp-fleet keeps at most 1000 live sessions by default (`maxLiveSessions`, then it evicts the least
// recently used from memory): raised here so that every session of the run stays live.
const MAX_LIVE = String(N + WARMUP);

interface Row {
  variant: Variant;
  perSession: number;
  rssPerSession: number;
  live: number;
  redisPerSession?: number;
  /** Redis bytes one `tools/call` leaves behind (its answer's log, kept `endedStreamTtlMs`). */
  redisPerCall?: number;
}

async function redisUsedMemory(redis: TestRedis): Promise<number> {
  const c = redis.client();
  try {
    const info = await c.info('memory');
    return Number(/used_memory:(\d+)/.exec(info)?.[1]);
  } finally {
    c.disconnect();
  }
}

async function measure(variant: Variant, redis: TestRedis): Promise<Row> {
  const keyPrefix = `bench${randomBytes(3).toString('hex')}:`;
  const child = await startChild(
    variant,
    MODE,
    { url: redis.url, keyPrefix },
    { BENCH_MAX_LIVE_SESSIONS: MAX_LIVE },
  );
  const client = new HttpClient(child.port, CONCURRENCY);
  try {
    await openSessions(client, WARMUP, CONCURRENCY); // loads and compiles every code path first
    const before = await child.heap();
    const redisBefore = await redisUsedMemory(redis);
    const ids = await openSessions(client, N, CONCURRENCY);
    const after = await child.heap();
    const redisAfter = await redisUsedMemory(redis);
    if (after.live - before.live !== N) {
      throw new Error(`${variant}: expected ${N} more live sessions, got ${after.live - before.live}`);
    }
    let redisPerCall: number | undefined;
    if (variant === 'fleet-redis' && CALLS > 0) {
      let next = 0;
      const worker = async () => {
        while (next < CALLS) {
          const i = next++;
          await timedEcho(client, ids[i % ids.length]!, i + 2);
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      redisPerCall = ((await redisUsedMemory(redis)) - redisAfter) / CALLS;
    }
    return {
      variant,
      perSession: (after.heapUsed - before.heapUsed) / N,
      rssPerSession: (after.rss - before.rss) / N,
      live: after.live,
      redisPerSession: variant === 'fleet-redis' ? (redisAfter - redisBefore) / N : undefined,
      redisPerCall,
    };
  } finally {
    client.close();
    await child.stop();
  }
}

printEnvironment('heap per live session');
console.log(`${N} sessions (after ${WARMUP} warm-up sessions), ${MODE} mode, heapUsed after full GC`);
const started = Date.now();
const redis = await TestRedis.start();
const rows: Row[] = [];
try {
  for (const v of VARIANTS) rows.push(await measure(v, redis));
} finally {
  await redis.stop();
}
const base = rows.find((r) => r.variant === 'baseline')!;
const kib = (b: number) => fixed(b / 1024, 1);
console.log();
printTable(
  ['variant', 'heap KiB/session', 'RSS KiB/session', 'Redis KiB/session', 'heap vs baseline'],
  rows.map((r) => [
    VARIANT_LABEL[r.variant],
    kib(r.perSession),
    kib(r.rssPerSession),
    r.redisPerSession === undefined ? '-' : kib(r.redisPerSession),
    ratio(r.perSession, base.perSession),
  ]),
);
const perCall = rows.find((r) => r.redisPerCall !== undefined)?.redisPerCall;
if (perCall !== undefined) {
  console.log(
    `\nRedis per tool call (${CALLS} calls, ${MODE} answers, on the sessions above): ${fixed(perCall, 0)} bytes, ` +
      `kept until the stream's log expires (endedStreamTtlMs after its end).`,
  );
}
console.log(
  `\nheap ratio < 1.00x: a live session costs less heap than with the stock transport. RSS is noisier ` +
    `(allocator pages); Redis is redis-server's used_memory. Took ${((Date.now() - started) / 1000).toFixed(1)} s.`,
);
