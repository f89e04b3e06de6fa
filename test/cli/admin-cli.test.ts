// The `mcp-fleet` admin command against a running fleet: two instances (separate processes) on one real
// Redis — standalone, and a Cluster (sessions on every master) — sessions of two principals over both
// transports, held GET streams; the command runs as a process, as an operator runs it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startInstance, type Instance } from '../helpers/instances.js';
import { connectClient } from '../helpers/mcp-client.js';
import { Redis } from 'ioredis';
import { RedisKeys } from '../../src/redis/keys.js';
import { TestRedis } from '../helpers/redis-server.js';
import { TestRedisCluster } from '../helpers/redis-topologies.js';
import { SseReader } from '../helpers/sse-reader.js';
import { waitFor } from '../helpers/wait.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `mcp-fleet <args>` (from src/, as the package's bin runs dist/) with only the given environment. */
function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

interface Summary {
  id: string;
  principal: string;
  transport: string;
  owner: string;
  epoch: number;
  client: string;
  expiresAt: number;
}

/** A running Redis: the instances' environment, the CLI's options for it, and how to stop it. */
interface Topology {
  env: Record<string, string>;
  args: string[];
  /** KEYS on every master (a test may list keys; the CLI never does). */
  keys(pattern: string): Promise<string[]>;
  stop(): Promise<void>;
}

async function keysOn(clients: Redis[], pattern: string): Promise<string[]> {
  try {
    return (await Promise.all(clients.map((c) => c.keys(pattern)))).flat();
  } finally {
    for (const c of clients) c.disconnect();
  }
}

const TOPOLOGIES: Array<[string, () => Promise<Topology>]> = [
  [
    'standalone Redis',
    async () => {
      const r = await TestRedis.start();
      return {
        env: { REDIS_URL: r.url },
        args: ['--redis', r.url],
        keys: (pattern) => keysOn([r.client()], pattern),
        stop: () => r.stop(),
      };
    },
  ],
  [
    'Redis Cluster',
    async () => {
      const c = await TestRedisCluster.start();
      return {
        env: c.env,
        args: ['--cluster', c.env.REDIS_CLUSTER_NODES!],
        keys: async (pattern) =>
          keysOn(
            (await c.masters()).map((port) => new Redis(port, '127.0.0.1')),
            pattern,
          ),
        stop: () => c.stop(),
      };
    },
  ],
];

for (const [topology, startRedis] of TOPOLOGIES)
  describe(`mcp-fleet admin CLI on ${topology}`, () => {
    let redis: Topology;
    let prefix: string;
    let a: Instance;
    let b: Instance;
    const streamable: Array<{ client: Client; transport: StreamableHTTPClientTransport; principal: string }> =
      [];
    let legacy: SseReader;
    let legacyId: string;
    /** Runs the command with this fleet's Redis and prefix (`--json` parsed when asked for). */
    const run = (args: string[]) => cli([...redis.args, '--prefix', prefix, ...args]);
    const json = async <T>(args: string[]): Promise<T> => {
      const r = await run([...args, '--json']);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as T;
    };

    before(async () => {
      redis = await startRedis();
      prefix = TestRedis.prefix();
      const env = { ...redis.env, KEY_PREFIX: prefix };
      [a, b] = await Promise.all([
        startInstance({
          entry: 'test/fixtures/demo-instance.ts',
          name: 'cli-a',
          env: { ...env, INSTANCE_ID: 'cli-a' },
        }),
        startInstance({
          entry: 'test/fixtures/demo-instance.ts',
          name: 'cli-b',
          env: { ...env, INSTANCE_ID: 'cli-b' },
        }),
      ]);
      // alice: two sessions on A; bob: one on B. The demo fixture's principal is the bearer token.
      for (const [url, principal] of [
        [a.url, 'alice'],
        [a.url, 'alice'],
        [b.url, 'bob'],
      ] as const) {
        const c = await connectClient(url, { token: principal, name: `client-${principal}` });
        streamable.push({ ...c, principal });
        await c.client.callTool({ name: 'increment', arguments: { by: 2 } }); // session data: {"count":2}
      }
      // carol: a legacy HTTP+SSE session on B (GET /sse read as it comes).
      const res = await fetch(new URL('/sse', b.url), {
        headers: { accept: 'text/event-stream', authorization: 'Bearer carol' },
      });
      legacy = new SseReader(res);
      const endpoint = await legacy.next();
      assert.equal(endpoint?.event, 'endpoint');
      legacyId = new URL(endpoint.data, b.url).searchParams.get('sessionId')!;
      // Every Streamable client holds its standalone GET stream once initialized: wait until all are recorded.
      await waitFor('the three GET streams and the legacy stream to be held', async () => {
        const s = await json<{ streams: number }>(['stats']);
        return s.streams >= 4;
      });
    });

    after(async () => {
      for (const c of streamable) await c.client.close().catch(() => undefined);
      await legacy?.cancel();
      await Promise.all([a?.stop(), b?.stop()]);
      await redis?.stop();
    });

    it('sessions list: every session with principal, transport, owner and epoch; filters', async () => {
      const all = await json<{ sessions: Summary[] }>(['sessions', 'list']);
      assert.equal(all.sessions.length, 4);
      const ids = new Set(all.sessions.map((s) => s.id));
      for (const c of streamable) assert.ok(ids.has(c.transport.sessionId!));
      const byPrincipal = (p: string) => all.sessions.filter((s) => s.principal === p);
      assert.deepEqual(
        byPrincipal('alice').map((s) => [s.transport, s.owner, s.epoch, s.client]),
        [
          ['streamable-http', 'cli-a', 1, 'client-alice 1.2.3'],
          ['streamable-http', 'cli-a', 1, 'client-alice 1.2.3'],
        ],
      );
      assert.deepEqual(
        byPrincipal('carol').map((s) => [s.transport, s.owner]),
        [['sse', 'cli-b']],
      );

      const alice = await json<{ sessions: Summary[] }>(['sessions', 'list', '--principal', 'alice']);
      assert.deepEqual(
        alice.sessions.map((s) => s.principal),
        ['alice', 'alice'],
      );
      const sse = await json<{ sessions: Summary[] }>(['sessions', 'list', '--transport', 'sse']);
      assert.deepEqual(
        sse.sessions.map((s) => s.principal),
        ['carol'],
      );
      const onB = await json<{ sessions: Summary[] }>(['sessions', 'list', '--owner', 'cli-b']);
      assert.deepEqual(onB.sessions.map((s) => s.principal).sort(), ['bob', 'carol']);
      const unowned = await json<{ sessions: Summary[] }>(['sessions', 'list', '--owner', 'none']);
      assert.deepEqual(unowned.sessions, []);

      const human = await run(['sessions', 'list']);
      assert.equal(human.code, 0, human.stderr);
      const lines = human.stdout.trimEnd().split('\n');
      assert.match(lines[0]!, /^SESSION +PRINCIPAL +TRANSPORT +OWNER +EPOCH +CLIENT +CREATED +EXPIRES IN$/);
      assert.equal(lines.at(-1), '4 sessions');
      for (const id of ids) assert.ok(human.stdout.includes(id), `${id} listed`);
    });

    it('sessions list pages with a cursor: every session once, most recently used first', async () => {
      // The order is by expiry (last use): a session used while paging moves ahead of the cursor and
      // may be missed. The live fleet's background work uses them (on a loaded Cluster most of the
      // four moved within the 5 s this takes), so the assertion is about the ones that sat still.
      const before = new Map(
        (await json<{ sessions: Summary[] }>(['sessions', 'list'])).sessions.map((s) => [s.id, s.expiresAt]),
      );
      const seen: string[] = [];
      let cursor: string | undefined;
      for (let pages = 0; pages < 10; pages++) {
        const page = await json<{ sessions: Summary[]; next?: string }>([
          'sessions',
          'list',
          '--limit',
          '1',
          ...(cursor ? ['--cursor', cursor] : []),
        ]);
        seen.push(...page.sessions.map((s) => s.id));
        cursor = page.next;
        if (!cursor) break;
      }
      const after = (await json<{ sessions: Summary[] }>(['sessions', 'list'])).sessions;
      const unmoved = after.filter((s) => before.get(s.id) === s.expiresAt).map((s) => s.id);
      assert.equal(before.size, 4);
      for (const id of unmoved) assert.ok(seen.includes(id), `${id} listed`);
      for (const id of seen) assert.ok(before.has(id), `${id} is one of the sessions`);
      assert.equal(new Set(seen).size, seen.length, 'no session twice');
      // (On a static set, every session exactly once across page sizes and ties: admin-paging.test.ts.)
      const human = await run(['sessions', 'list', '--limit', '2']);
      assert.match(human.stdout, /2 sessions; next page: --cursor \S+\n$/);
      const bad = await run(['sessions', 'list', '--cursor', 'nonsense']);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /malformed cursor/);
    });

    it('sessions show: record with owner and epoch, held streams, event logs, data size and TTLs', async () => {
      const bob = streamable[2]!;
      const id = bob.transport.sessionId!;
      const d = await json<{
        record: { principal: string; owner: string; epoch: number; initialized: boolean };
        ownerAlive: boolean;
        ttlMs: { session: number; data: number | null };
        data: { bytes: number; version: number } | null;
        streams: Array<{ streamId: string; instanceId: string; ttlMs: number }>;
        logs: Array<{ streamId: string; events: number; ttlMs: number }>;
        memoryBytes: number | null;
      }>(['sessions', 'show', id]);
      assert.equal(d.record.principal, 'bob');
      assert.equal(d.record.owner, 'cli-b');
      assert.equal(d.record.epoch, 1);
      assert.equal(d.record.initialized, true);
      assert.equal(d.ownerAlive, true);
      assert.ok(d.ttlMs.session > 3_000_000, `session TTL ${d.ttlMs.session}`); // default idle TTL 1 h
      assert.ok(d.ttlMs.data !== null && d.ttlMs.data > 0);
      assert.deepEqual(d.data, { bytes: JSON.stringify({ count: 2 }).length, version: 1 });
      const standalone = d.streams.find((s) => s.streamId === 'standalone');
      assert.ok(standalone, JSON.stringify(d.streams));
      assert.equal(standalone.instanceId, 'cli-b');
      assert.ok(standalone.ttlMs > 0);
      // The tool call's POST stream keeps an event log (the standalone stream's has no event yet); it
      // was answered and ended in one append, so it is a sealed log (a list) and counts as such.
      assert.ok(
        d.logs.length >= 1 && d.logs.every((l) => l.events > 0 && l.ttlMs > 0),
        JSON.stringify(d.logs),
      );
      const sealed = d.logs.find((l) => l.streamId !== 'standalone');
      assert.equal(sealed?.events, 2, `the answer and the end marker: ${JSON.stringify(d.logs)}`);
      assert.ok(d.memoryBytes !== null && d.memoryBytes > 0);

      const human = await run(['sessions', 'show', id]);
      assert.equal(human.code, 0, human.stderr);
      assert.match(human.stdout, /^owner +cli-b$/m);
      assert.match(human.stdout, /^data +11 bytes, version 1, expires in /m);
      assert.match(human.stdout, /^standalone +cli-b +streamable-http /m);

      const missing = await run(['sessions', 'show', 'no-such-session']);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /Session not found: no-such-session/);
    });

    it('stats: sessions by transport, instances alive with what they own and hold', async () => {
      const s = await json<{
        sessions: number;
        byTransport: Record<string, number>;
        unowned: number;
        instances: Array<{ instanceId: string; owned: number; heldStreams: number; draining: boolean }>;
        streams: number;
      }>(['stats']);
      assert.equal(s.sessions, 4);
      assert.deepEqual(s.byTransport, { 'streamable-http': 3, sse: 1 });
      assert.equal(s.unowned, 0);
      assert.deepEqual(
        s.instances.map((i) => [i.instanceId, i.draining]),
        [
          ['cli-a', false],
          ['cli-b', false],
        ],
      );
      assert.equal(
        s.instances.reduce((n, i) => n + i.heldStreams, 0),
        s.streams,
      );
      const human = await run(['stats']);
      assert.match(human.stdout, /^sessions +4 \(streamable-http 3, sse 1\)$/m);
      assert.match(human.stdout, /^instances alive +2$/m);
      assert.match(human.stdout, /^cli-a +\S+( \S+)? +\d+ +\d+ +no +\d+$/m);
    });

    it('sessions end: the session ends on every instance, as with DELETE', async () => {
      const bob = streamable[2]!;
      const id = bob.transport.sessionId!;
      const before = await json<{ streams: number }>(['stats']);
      // Ended from the command line while bob's client talks to A, which forwards to the owner B.
      const ended = await run(['sessions', 'end', id]);
      assert.equal(ended.code, 0, ended.stderr);
      assert.equal(ended.stdout.trim(), `Session ${id} ended (its owner was cli-b).`);
      const viaA = await connectClient(a.url, { token: 'bob', sessionId: id });
      await assert.rejects(viaA.client.callTool({ name: 'whoami', arguments: {} }), /404|Session not found/);
      await viaA.client.close();
      await assert.rejects(bob.client.callTool({ name: 'whoami', arguments: {} }), /404|Session not found/);
      // The owner closed the copy and its GET stream: the stream's record is released.
      await waitFor("the ended session's GET stream to be released", async () => {
        const s = await json<{ streams: number }>(['stats']);
        return s.streams === before.streams - 1;
      });
      const list = await json<{ sessions: Summary[] }>(['sessions', 'list']);
      assert.ok(!list.sessions.some((s) => s.id === id));
      const left = await redis.keys(`${new RedisKeys(prefix).session(id).replace(/:session$/, '')}*`);
      assert.deepEqual(left, [], 'record, data, logs and stream records removed');

      const again = await run(['sessions', 'end', id]);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /Session not found/);
    });

    it('sessions end on a legacy session: its owner ends the SSE stream', async () => {
      const sse = await json<{ sessions: Summary[] }>(['sessions', 'list', '--transport', 'sse']);
      assert.deepEqual(
        sse.sessions.map((s) => s.id),
        [legacyId],
      );
      const r = await run(['sessions', 'end', legacyId]);
      assert.equal(r.code, 0, r.stderr);
      // The owner (B) closes the stream: the reader sees its end (keep-alive comments are skipped).
      while ((await legacy.next(15_000)) !== undefined);
      assert.equal(legacy.done, true);
      const post = await fetch(new URL(`/messages?sessionId=${legacyId}`, a.url), {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer carol' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
      });
      assert.equal(post.status, 404);
    });

    it('fails clearly: unreachable Redis (exit 3), usage errors (exit 2)', async () => {
      const down = await cli(['--redis', 'redis://127.0.0.1:1', 'stats']);
      assert.equal(down.code, 3);
      assert.match(
        down.stderr,
        /^mcp-fleet: Redis unreachable at redis:\/\/127\.0\.0\.1:1\/0: connect ECONNREFUSED/,
      );
      const fromEnv = await cli(['stats', '--json'], { ...redis.env, MCP_FLEET_KEY_PREFIX: prefix });
      assert.equal(fromEnv.code, 0, fromEnv.stderr);
      assert.equal((JSON.parse(fromEnv.stdout) as { sessions: number }).sessions, 2);
      for (const args of [
        [],
        ['sessions'],
        ['sessions', 'show'],
        ['bogus'],
        ['sessions', 'list', '--limit', '0'],
      ]) {
        const r = await cli(args);
        assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, /Usage: mcp-fleet/);
      }
      const help = await cli(['--help']);
      assert.equal(help.code, 0);
      assert.match(help.stdout, /sessions list/);
    });
  });
