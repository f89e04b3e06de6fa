// A/B of two builds of the library: the same warm `tools/call echo` load on each (both on one
// throwaway Redis, each server in its own process), rounds interleaved (A B, B A, …), medians of
// req/s and server CPU per request. For "did this change make it faster": build the old commit in a
// worktree (`git worktree add /tmp/old <commit> && cd /tmp/old && npm ci && npm run build:lib`), then
//
//   npx tsx bench/ab.ts /tmp/old/dist/src/index.js dist/src/index.js [sse|json]
//
// Env: ROUNDS (8), N (requests per round, 3000), PROF=<dir> (CPU profiles of both servers). Two
// identical builds differ by up to ~10 % here on a noisy machine: read small differences as none.
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { TestRedis } from '../test/helpers/redis-server.js';
import './lib/child.js'; // Ctrl-C cleanup (redis-server)
import { HttpClient, openSessions, runLoad } from './lib/client.js';
const [libA, libB, mode = 'sse'] = process.argv.slice(2) as [string, string, string];
const redis = await TestRedis.start();
async function start(lib: string) {
  const p = fork(
    new URL('./lib/ab-child.ts', import.meta.url).pathname,
    [new URL(lib, `file://${process.cwd()}/`).href, mode],
    {
      execArgv: [
        ...process.execArgv,
        ...(process.env.PROF ? ['--cpu-prof', '--cpu-prof-dir=' + process.env.PROF] : []),
      ],
      env: {
        ...process.env,
        BENCH_REDIS_URL: redis.url,
        BENCH_KEY_PREFIX: `ab${randomBytes(3).toString('hex')}:`,
      },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  const port = await new Promise<number>((r) => p.once('message', (m: { port: number }) => r(m.port)));
  const cpu = () =>
    new Promise<number>((r) => {
      p.once('message', (m: { micros: number }) => r(m.micros));
      p.send({ type: 'cpu' });
    });
  const client = new HttpClient(port, 20);
  const sessions = await openSessions(client, 20, 20);
  await runLoad(client, sessions, 1000, 20);
  return { p, cpu, client, sessions, rps: [] as number[], cpr: [] as number[] };
}
const A = await start(libA),
  B = await start(libB);
const rounds = Number(process.env.ROUNDS ?? 8),
  N = Number(process.env.N ?? 3000);
for (let i = 0; i < rounds; i++)
  for (const t of i % 2 ? [A, B] : [B, A]) {
    const c0 = await t.cpu();
    const t0 = performance.now();
    await runLoad(t.client, t.sessions, N, 20);
    const ms = performance.now() - t0;
    const c1 = await t.cpu();
    t.rps.push((N / ms) * 1000);
    t.cpr.push((c1 - c0) / N);
  }
const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
console.log(
  `${mode}: A rps ${med(A.rps).toFixed(0)} cpu ${med(A.cpr).toFixed(0)} | B rps ${med(B.rps).toFixed(0)} cpu ${med(B.cpr).toFixed(0)} | B/A rps ${(med(B.rps) / med(A.rps)).toFixed(3)} cpu ${(med(B.cpr) / med(A.cpr)).toFixed(3)}`,
);
for (const t of [A, B]) {
  t.client.close();
  t.p.send({ type: 'stop' });
  await new Promise((r) => t.p.once('exit', r));
}
await redis.stop();
