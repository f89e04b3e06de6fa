import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach } from 'node:test';
import { Redis } from 'ioredis';
import { RedisKeys } from '../../src/redis/keys.js';
import { freePort } from './free-port.js';

const INSTALL_HINT =
  'redis-server is required by the test suite and was not found on PATH. ' +
  'Install it with `apt-get install redis-server` (Debian/Ubuntu) or `brew install redis` (macOS).';

/** Fails (never skips) when the binary is missing. */
export function assertRedisInstalled(): void {
  const r = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new Error(INSTALL_HINT);
}

const started = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of started) p.kill('SIGKILL');
});

/**
 * A throwaway redis-server on a free port, that a test may kill, pause and restart: with no
 * persistence (a restart comes back empty), or with `{ persistence: true }` an AOF fsynced on every
 * write in a temporary directory (a restart comes back with everything).
 */
export class TestRedis {
  private proc: ChildProcess | undefined;
  private constructor(
    readonly port: number,
    private readonly dir: string | undefined,
  ) {}

  /** `redis://127.0.0.1:<port>` */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(opts: { persistence?: boolean } = {}): Promise<TestRedis> {
    assertRedisInstalled();
    const dir = opts.persistence ? mkdtempSync(join(tmpdir(), 'mcp-fleet-redis-')) : undefined;
    const r = new TestRedis(await freePort(), dir);
    await r.spawn();
    return r;
  }

  private async spawn(): Promise<void> {
    const proc = spawn(
      'redis-server',
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        ...(this.dir
          ? ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', this.dir]
          : ['--appendonly', 'no']),
        '--loglevel',
        'warning',
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    this.proc = proc;
    started.add(proc);
    proc.once('exit', () => started.delete(proc));
    await this.waitReady();
  }

  private async waitReady(): Promise<void> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const c = new Redis(this.port, '127.0.0.1', {
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      });
      c.on('error', () => {}); // connection refused while starting is expected; retried below
      try {
        await c.connect();
        await c.ping();
        c.disconnect();
        return;
      } catch {
        c.disconnect();
        if (Date.now() > deadline) throw new Error(`redis-server on port ${this.port} did not start`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  /** A new client to this server (the caller closes it). */
  client(): Redis {
    return new Redis(this.port, '127.0.0.1', { maxRetriesPerRequest: 1 });
  }

  /** A random key prefix, so tests never need FLUSHDB. */
  static prefix(): string {
    return `t${randomBytes(4).toString('hex')}:`;
  }

  /** Stops the server abruptly (SIGKILL) and waits for it to exit. */
  async kill(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
  }

  /** Freezes the server (SIGSTOP): connections stay open but nothing answers. */
  pause(): void {
    this.proc?.kill('SIGSTOP');
  }

  /** Unfreezes a paused server. */
  resume(): void {
    this.proc?.kill('SIGCONT');
  }

  /** Starts the server again on the same port (after kill), empty. */
  async restart(): Promise<void> {
    await this.kill();
    await this.spawn();
  }

  async stop(): Promise<void> {
    this.resume();
    await this.kill();
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Every key under `prefix` (SCAN, fine in tests), to assert what a store left behind. */
export async function scanKeys(client: Redis, prefix: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    found.push(...batch);
  } while (cursor !== '0');
  return found;
}

/** A server and two clients for one `describe` block, and a fresh key prefix for each test. */
export interface RedisPair {
  server: TestRedis;
  c1: Redis;
  c2: Redis;
  keys: RedisKeys;
}

/**
 * Registers the hooks of a Redis-backed contract suite: starts a {@link TestRedis} with two clients
 * before the block and stops it after; gives every test a random key prefix instead of FLUSHDB. The
 * fields are read inside tests (they are set by the hooks).
 */
export function useRedisPair(): RedisPair {
  const pair = {} as RedisPair;
  before(async () => {
    pair.server = await TestRedis.start();
    pair.c1 = pair.server.client();
    pair.c2 = pair.server.client();
  });
  after(async () => {
    pair.c1?.disconnect();
    pair.c2?.disconnect();
    await pair.server?.stop();
  });
  beforeEach(() => {
    pair.keys = new RedisKeys(TestRedis.prefix());
  });
  return pair;
}
