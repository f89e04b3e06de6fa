// The reference server's real footprint, the basis of the resource requests and limits in deploy/: the
// production tree (what the image runs: `node app/dist/main.js`, no tsx) with Redis and PostgreSQL,
// measured from outside through /proc: resident memory (VmRSS, and VmHWM, its peak) and CPU time
// (utime + stime), idle and while SDK clients open sessions and call tools.
//
//   npm run bench:footprint     (BENCH_SESSIONS=200, BENCH_CALLS=10 per session, BENCH_CONCURRENCY=20)
//
// Prints a table; nothing is asserted (timings belong in a benchmark, not in a test).
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { signToken } from '../app/auth.js';
import { seedDatabase } from '../app/db/seed.js';
import { freePort } from '../test/helpers/free-port.js';
import { startPostgres } from '../test/helpers/postgres.js';
import { TestRedis } from '../test/helpers/redis-server.js';

const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 200);
const CALLS = Number(process.env.BENCH_CALLS ?? 10);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 20);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TREE = join(ROOT, '.tmp', 'footprint-tree');
const TICKS_PER_SECOND = 100; // USER_HZ on Linux

interface Sample {
  rssMiB: number;
  peakMiB: number;
  cpuSeconds: number;
}

function sample(pid: number): Sample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  // Fields 14 and 15 of /proc/<pid>/stat (after the parenthesised command name): utime, stime.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return { rssMiB: kib('VmRSS') / 1024, peakMiB: kib('VmHWM') / 1024, cpuSeconds: ticks / TICKS_PER_SECOND };
}

const r = spawnSync(process.execPath, ['scripts/production-tree.mjs', TREE], { cwd: ROOT, stdio: 'inherit' });
if (r.status !== 0) process.exit(1);
const redis = await TestRedis.start();
const pg = await startPostgres();
await seedDatabase(pg.url);
const port = await freePort();
const child = spawn(process.execPath, ['app/dist/main.js'], {
  cwd: TREE,
  env: {
    PATH: process.env.PATH ?? '',
    ENVIRONMENT: 'production',
    SINGLE_INSTANCE: 'false',
    MCP_SERVER_HOST: '127.0.0.1',
    MCP_SERVER_PORT: String(port),
    REDIS_URL: redis.url,
    DATABASE_URL: pg.url,
    JWT_SECRET_KEY: 'footprint-bench-secret-'.padEnd(48, 'x'),
    LOG_LEVEL: 'warn',
  },
  stdio: ['ignore', 'inherit', 'inherit'],
});
const url = `http://127.0.0.1:${port}/mcp`;
const rows: Array<[string, Sample, string]> = [];
const redisClient = redis.client();
/** Redis's own count of the memory its data takes (INFO memory: used_memory), in MiB. */
async function redisMiB(): Promise<number> {
  const info = await redisClient.info('memory');
  return Number(/^used_memory:(\d+)/m.exec(info)?.[1] ?? 0) / 1024 / 1024;
}
try {
  // Authentication is on (production); the bench signs its own tokens like any client.
  const token = await signToken(
    { secret: 'footprint-bench-secret-'.padEnd(48, 'x'), algorithm: 'HS256' },
    { sub: 'bench' },
  );
  const headers = { authorization: `Bearer ${token}` };
  const open = async () => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const client = new Client({ name: 'footprint', version: '1.0.0' });
      try {
        await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } }));
        return client;
      } catch (err) {
        await client.close().catch(() => undefined);
        if (Date.now() > deadline) throw err;
        await new Promise((res) => setTimeout(res, 100));
      }
    }
  };
  const first = await open();
  await first.close();
  const idle = sample(child.pid!);
  const redisBefore = await redisMiB();
  rows.push(['idle (after start and one session)', idle, `Redis ${redisBefore.toFixed(1)} MiB`]);

  const clients: Client[] = [];
  const started = Date.now();
  let calls = 0;
  for (let i = 0; i < SESSIONS; i += CONCURRENCY) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(CONCURRENCY, SESSIONS - i) }, async () => {
        const c = await open();
        for (let k = 0; k < CALLS; k++) {
          await c.callTool(
            k % 2 === 0
              ? { name: 'calculator_multiply', arguments: { a: k, b: 7 } }
              : { name: 'postgres_query_employees', arguments: { department: 'Engineering', limit: 10 } },
          );
          calls++;
        }
        return c;
      }),
    );
    clients.push(...batch);
  }
  const seconds = (Date.now() - started) / 1000;
  const loaded = sample(child.pid!);
  const cpu = loaded.cpuSeconds - idle.cpuSeconds;
  rows.push([
    `${SESSIONS} sessions open, ${calls} calls (${CONCURRENCY} at once)`,
    loaded,
    `${(calls / seconds).toFixed(0)} calls/s, ${((cpu / seconds) * 1000).toFixed(0)} mCPU while loaded, ${((cpu / calls) * 1000).toFixed(2)} ms CPU per call; Redis +${((((await redisMiB()) - redisBefore) * 1024) / SESSIONS).toFixed(1)} KiB per session (record, data, event logs of ${CALLS} calls)`,
  ]);
  await Promise.all(clients.map((c) => c.close()));
  rows.push(['clients gone (sessions stay until their TTL)', sample(child.pid!), '']);
} finally {
  child.kill('SIGTERM');
  await new Promise((res) => child.once('exit', res));
  redisClient.disconnect();
  await redis.stop();
  await pg.stop();
  rmSync(TREE, { recursive: true, force: true });
}
console.log(`\nreference server footprint (node ${process.version}, production tree, Redis + PostgreSQL)\n`);
console.log('| moment | RSS MiB | peak RSS MiB | CPU s (total) | notes |');
console.log('|---|---|---|---|---|');
for (const [what, s, notes] of rows) {
  console.log(
    `| ${what} | ${s.rssMiB.toFixed(0)} | ${s.peakMiB.toFixed(0)} | ${s.cpuSeconds.toFixed(2)} | ${notes} |`,
  );
}
