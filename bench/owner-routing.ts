// What one live copy per session costs: a warm `tools/call echo` that lands on the session's owner,
// one that lands on another instance (forwarded to the owner and answered back over the bus), and 3
// instances behind client-side round robin (2 of 3 requests forwarded) vs 1 instance — all against
// the SDK's stock transport measured in the same run. Every server runs in its own process.
//
//   npx tsx bench/owner-routing.ts
//
// Env: BENCH_SESSIONS (20), BENCH_REQUESTS (2000), BENCH_CONCURRENCY (20), BENCH_WARMUP (400),
// BENCH_ROUNDS (5), BENCH_MODE (sse | json; default both). Rounds are interleaved; each column is
// the median over rounds; server CPU is the sum over the server processes of a variant.
import { randomBytes } from 'node:crypto';
import { TestRedis } from '../test/helpers/redis-server.js';
import { startChild, type ServerChild } from './lib/child.js';
import { HttpClient, openSessions, RoundRobin, runLoad, type Poster } from './lib/client.js';
import { MODES, type Mode } from './lib/servers.js';
import { KNOBS, measureRound, medianCells, medians, type Round, interleavedRounds } from './lib/rounds.js';
import { printEnvironment, printTable, ratio } from './lib/stats.js';

const { SESSIONS, REQUESTS, CONCURRENCY, WARMUP, ROUNDS } = KNOBS;

/** One way of serving the load: where sessions are opened, where requests go, whose CPU counts. */
interface Target {
  label: string;
  children: ServerChild[];
  /** Where `initialize` goes (so the sessions' owners are known). */
  open: Poster;
  /** Where the measured requests go. */
  load: Poster;
  clients: HttpClient[];
  sessions: string[];
  rounds: Round[];
}

async function cpu(children: ServerChild[]): Promise<number> {
  const all = await Promise.all(children.map((c) => c.cpuMicros()));
  return all.reduce((a, b) => a + b, 0);
}

function measure(t: Target, total: number): Promise<Round> {
  return measureRound(t.load, t.sessions, total, () => cpu(t.children));
}

async function benchMode(mode: Mode, redis: TestRedis): Promise<void> {
  const pair = { url: redis.url, keyPrefix: `bench${randomBytes(3).toString('hex')}:` };
  const trio = { url: redis.url, keyPrefix: `bench${randomBytes(3).toString('hex')}:` };
  const targets: Target[] = [];
  const client = (c: ServerChild) => new HttpClient(c.port, CONCURRENCY);
  try {
    const baseline = await startChild('baseline', mode);
    const a = await startChild('fleet-redis', mode, pair);
    const b = await startChild('fleet-redis', mode, pair);
    const three = await Promise.all([0, 1, 2].map(() => startChild('fleet-redis', mode, trio)));
    const [cBase, cA, cB] = [client(baseline), client(a), client(b)];
    const cThree = three.map(client);
    const rr = new RoundRobin(cThree);
    const all: Array<Omit<Target, 'clients' | 'sessions' | 'rounds'>> = [
      { label: 'baseline: stock SDK transport', children: [baseline], open: cBase, load: cBase },
      { label: 'mcp-fleet + Redis, on the owner', children: [a, b], open: cA, load: cA },
      { label: 'mcp-fleet + Redis, forwarded', children: [a, b], open: cA, load: cB },
      { label: 'mcp-fleet + Redis, 3 instances round robin', children: three, open: rr, load: rr },
    ];
    targets.push(
      ...all.map((t) => ({
        ...t,
        clients: [] as HttpClient[],
        sessions: [] as string[],
        rounds: [] as Round[],
      })),
    );
    targets[0]!.clients.push(cBase);
    targets[1]!.clients.push(cA, cB);
    targets[3]!.clients.push(...cThree);
    for (const t of targets) {
      t.sessions = await openSessions(t.open, SESSIONS, Math.min(SESSIONS, CONCURRENCY));
      await runLoad(t.load, t.sessions, WARMUP, CONCURRENCY); // JIT, pools, caches
    }
    await interleavedRounds(targets, (t) => measure(t, REQUESTS));
  } finally {
    for (const t of targets) for (const c of t.clients) c.close();
    const children = new Set(targets.flatMap((t) => t.children));
    await Promise.all([...children].map((c) => c.stop()));
  }

  const summary = targets.map((t) => ({
    label: t.label,
    ...medians(t.rounds),
  }));
  const [base, owner] = summary;
  console.log(`\n## ${mode === 'json' ? 'JSON responses (jsonResponse: true)' : 'SSE responses (default)'}`);
  printTable(
    [
      'variant',
      'req/s',
      'p50 ms',
      'p99 ms',
      'server CPU µs/req',
      'req/s vs baseline',
      'CPU/req vs baseline',
      'req/s vs on the owner',
    ],
    summary.map((s) => [
      ...medianCells(s),
      ratio(s.rps, base!.rps),
      ratio(s.cpu, base!.cpu),
      ratio(s.rps, owner!.rps),
    ]),
  );
}

printEnvironment('one live copy per session: warm tools/call echo on the owner, forwarded, round robin');
console.log(
  `${SESSIONS} sessions, ${REQUESTS} requests per round at concurrency ${CONCURRENCY}, ` +
    `${WARMUP} warm-up requests, median of ${ROUNDS} interleaved rounds`,
);
const started = Date.now();
const redis = await TestRedis.start();
const modes = process.env.BENCH_MODE ? [process.env.BENCH_MODE as Mode] : MODES;
try {
  for (const mode of modes) await benchMode(mode, redis);
} finally {
  await redis.stop();
}
console.log(
  `\n"on the owner": sessions opened on instance A, requests to A; "forwarded": the same sessions, ` +
    `requests to instance B (each forwarded to A and answered back over the bus); CPU counts A and B. ` +
    `"3 instances round robin": sessions opened and requests sent round robin over three instances ` +
    `(two of three requests forwarded), CPU of all three. All on the same machine's cores, so more ` +
    `instances share the same CPU. Took ${((Date.now() - started) / 1000).toFixed(1)} s.`,
);
