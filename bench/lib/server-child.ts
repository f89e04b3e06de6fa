// A server under test in its own process (forked by child.ts), so the load generator never shares an
// event loop with it and every variant starts from a fresh heap. Argv: <variant> <mode>; env
// BENCH_REDIS_URL and BENCH_KEY_PREFIX for the Redis variant. Talks to the parent over IPC.
import { startVariant, type Mode, type Variant } from './servers.js';
import type { ChildReply, ChildRequest } from './child.js';

const [variant, mode] = process.argv.slice(2) as [Variant, Mode];
const redisUrl = process.env.BENCH_REDIS_URL;
const redis = redisUrl ? { url: redisUrl, keyPrefix: process.env.BENCH_KEY_PREFIX ?? 'bench:' } : undefined;
const gc = (globalThis as { gc?: () => void }).gc;

const send = (m: ChildReply) => process.send!(m);
const server = await startVariant(variant, mode, redis);

async function fullGc(): Promise<void> {
  if (!gc) throw new Error('run with --expose-gc');
  // Several passes with turns of the event loop in between, so weak refs and finalizers settle.
  for (let i = 0; i < 4; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 20));
  }
}

process.on('message', (m: ChildRequest) => {
  void (async () => {
    if (m.type === 'cpu') {
      const u = process.cpuUsage();
      send({ type: 'cpu', micros: u.user + u.system });
    } else if (m.type === 'heap') {
      await fullGc();
      const mem = process.memoryUsage();
      send({ type: 'heap', heapUsed: mem.heapUsed, rss: mem.rss, live: await server.live() });
    } else if (m.type === 'stop') {
      await server.close();
      process.disconnect();
      process.exit(0);
    }
  })().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
});
// Never outlive the parent.
process.on('disconnect', () => process.exit(0));
send({ type: 'ready', port: server.port });
