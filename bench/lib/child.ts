// Parent side of server-child.ts, plus cleanup on Ctrl-C for every benchmark.
import { fork, type ChildProcess } from 'node:child_process';
import type { Mode, Variant } from './servers.js';

export type ChildRequest = { type: 'cpu' } | { type: 'heap' } | { type: 'stop' };
export type ChildReply =
  | { type: 'ready'; port: number }
  | { type: 'cpu'; micros: number }
  | { type: 'heap'; heapUsed: number; rss: number; live: number };

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});
// Without these, Ctrl-C skips 'exit' handlers (and TestRedis's, which kills redis-server).
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));

export interface ServerChild {
  variant: Variant;
  port: number;
  /** Server process CPU time (user + system) so far, in µs. */
  cpuMicros(): Promise<number>;
  /** Heap after a full GC (the child runs with --expose-gc), and the sessions it holds. */
  heap(): Promise<{ heapUsed: number; rss: number; live: number }>;
  stop(): Promise<void>;
}

/** Forks a server process (same loader flags as this one, plus --expose-gc) and waits until it listens. */
export async function startChild(
  variant: Variant,
  mode: Mode,
  redis?: { url: string; keyPrefix: string },
  extraEnv: Record<string, string> = {},
): Promise<ServerChild> {
  // BENCH_PROFILE=<dir>: every server process writes a CPU profile there when it stops (see
  // bench/README.md, "Profiling").
  const profile = process.env.BENCH_PROFILE
    ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`]
    : [];
  const execArgv = [...process.execArgv.filter((a) => a !== '--expose-gc'), '--expose-gc', ...profile];
  const env = { ...process.env, ...extraEnv };
  if (redis) {
    env.BENCH_REDIS_URL = redis.url;
    env.BENCH_KEY_PREFIX = redis.keyPrefix;
  }
  const proc = fork(new URL('./server-child.ts', import.meta.url).pathname, [variant, mode], {
    execArgv,
    env,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  children.add(proc);
  proc.once('exit', () => children.delete(proc));

  const next = <T extends ChildReply['type']>(type: T): Promise<Extract<ChildReply, { type: T }>> =>
    new Promise((resolve, reject) => {
      const onMessage = (m: ChildReply) => {
        if (m.type !== type) return;
        cleanup();
        resolve(m as Extract<ChildReply, { type: T }>);
      };
      const onExit = (code: number | null) => {
        cleanup();
        reject(new Error(`${variant} server exited (${code}) while waiting for ${type}`));
      };
      const cleanup = () => {
        proc.off('message', onMessage);
        proc.off('exit', onExit);
      };
      proc.on('message', onMessage);
      proc.once('exit', onExit);
    });
  const ask = <T extends 'cpu' | 'heap'>(type: T) => {
    const reply = next(type);
    proc.send({ type });
    return reply;
  };

  const { port } = await next('ready');
  return {
    variant,
    port,
    cpuMicros: async () => (await ask('cpu')).micros,
    heap: async () => {
      const { heapUsed, rss, live } = await ask('heap');
      return { heapUsed, rss, live };
    },
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.send({ type: 'stop' });
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
