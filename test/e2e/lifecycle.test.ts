// What the factory's server sees of its copy's life (ctx.signal, ctx.onClose): why each copy ends —
// deleted, expired, evicted, handed off, replaced — in process, on real Redis.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { createFleet, type Fleet, type FleetOptions, type SessionCloseReason } from '../../src/index.js';
import { RedisKeys } from '../../src/redis/keys.js';
import { RedisSessionStore } from '../../src/store/redis-session-store.js';
import { initBody, rawPost } from '../helpers/mcp-client.js';
import { TestRedis } from '../helpers/redis-server.js';
import { waitFor as until } from '../helpers/wait.js';

/** Every copy the factory built, by session: how it ended (and whether its signal said so too). */
type Ended = Map<string, Array<{ reason: SessionCloseReason; signal: unknown }>>;

interface Served {
  fleet: Fleet;
  url: string;
  ended: Ended;
  built: Map<string, number>;
  /** How each copy came to be (ctx.origin), in order, by session. */
  origins: Map<string, string[]>;
  close(): Promise<void>;
}

async function serve(opts: Partial<FleetOptions>): Promise<Served> {
  const ended: Ended = new Map();
  const built = new Map<string, number>();
  const origins = new Map<string, string[]>();
  const fleet = createFleet({
    ...opts,
    server: (ctx) => {
      built.set(ctx.sessionId, (built.get(ctx.sessionId) ?? 0) + 1);
      origins.set(ctx.sessionId, [...(origins.get(ctx.sessionId) ?? []), ctx.origin]);
      ctx.onClose((reason) => {
        const list = ended.get(ctx.sessionId) ?? [];
        list.push({ reason, signal: ctx.signal.aborted ? ctx.signal.reason : 'not aborted' });
        ended.set(ctx.sessionId, list);
      });
      const s = new McpServer({ name: 'lifecycle', version: '1.0.0' });
      s.registerTool('ping', { description: 'answers pong' }, async () => ({
        content: [{ type: 'text', text: 'pong' }],
      }));
      return s;
    },
  });
  const server: Server = createServer(fleet.handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/mcp`;
  let closed: Promise<void> | undefined;
  return {
    fleet,
    url,
    ended,
    built,
    origins,
    close: () =>
      (closed ??= (async () => {
        await fleet.close();
        await new Promise<void>((r) => server.close(() => r()));
      })()),
  };
}

async function initialize(url: string): Promise<string> {
  const r = await rawPost(url, initBody());
  assert.equal(r.status, 200, r.text);
  const sid = r.headers.get('mcp-session-id')!;
  const n = await rawPost(url, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }), {
    'mcp-session-id': sid,
  });
  assert.equal(n.status, 202);
  return sid;
}

const call = (id: number) =>
  JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'ping' } });
const headersOf = (sid: string) => ({ 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' });

describe('session lifecycle on ctx', () => {
  let redis: TestRedis;
  before(async () => {
    redis = await TestRedis.start();
  });
  after(async () => {
    await redis?.stop();
  });

  it('deleted: DELETE ends the copy; the signal is aborted with the same reason', async () => {
    const s = await serve({ redis: redis.url, keyPrefix: TestRedis.prefix() });
    try {
      const sid = await initialize(s.url);
      assert.equal((await rawPost(s.url, call(1), headersOf(sid))).status, 200);
      const del = await fetch(s.url, { method: 'DELETE', headers: headersOf(sid) });
      assert.equal(del.status, 200);
      await until('onClose', () => s.ended.has(sid));
      assert.deepEqual(s.ended.get(sid), [{ reason: 'deleted', signal: 'deleted' }]);
    } finally {
      await s.close();
    }
  });

  it('expired: a copy whose session is gone from the store ends with a request within the recheck interval', async () => {
    const prefix = TestRedis.prefix();
    // Idle TTL 3 s: the owner checks the store at least every 300 ms (a tenth).
    const s = await serve({ redis: redis.url, keyPrefix: prefix, sessionTtlMs: 3000 });
    const admin = redis.client();
    try {
      const sid = await initialize(s.url);
      // As Redis does when the idle TTL runs out (which the owner's refreshes prevent: a hand-made DEL).
      await admin.del(new RedisKeys(prefix).session(sid));
      let id = 1;
      await until(
        'a 404',
        async () => (await rawPost(s.url, call(id++), headersOf(sid))).status === 404,
        3000,
      );
      await until('onClose', () => s.ended.has(sid));
      assert.deepEqual(s.ended.get(sid), [{ reason: 'expired', signal: 'expired' }]);
    } finally {
      admin.disconnect();
      await s.close();
    }
  });

  it('evicted: beyond maxLiveSessions the oldest copy ends; the session lives on and is rebuilt', async () => {
    const s = await serve({ redis: redis.url, keyPrefix: TestRedis.prefix(), maxLiveSessions: 1 });
    try {
      const first = await initialize(s.url);
      const second = await initialize(s.url); // evicts the first copy
      await until('onClose', () => s.ended.has(first));
      assert.deepEqual(s.ended.get(first), [{ reason: 'evicted', signal: 'evicted' }]);
      assert.equal(s.ended.has(second), false);
      // The session itself lives on: the next request builds a new copy (and evicts the second).
      assert.equal((await rawPost(s.url, call(1), headersOf(first))).status, 200);
      assert.equal(s.built.get(first), 2);
      assert.deepEqual(s.origins.get(first), ['initialize', 'eviction'], 'the factory is told why');
    } finally {
      await s.close();
    }
  });

  it('handoff: close() hands every session off; another instance takes it with the next request', async () => {
    const prefix = TestRedis.prefix();
    const a = await serve({ redis: redis.url, keyPrefix: prefix, instanceId: 'life-a' });
    const b = await serve({ redis: redis.url, keyPrefix: prefix, instanceId: 'life-b' });
    try {
      const sid = await initialize(a.url);
      await a.close();
      assert.deepEqual(a.ended.get(sid), [{ reason: 'handoff', signal: 'handoff' }]);
      assert.equal((await rawPost(b.url, call(1), headersOf(sid))).status, 200, 'no error after a handoff');
      assert.equal(b.built.get(sid), 1);
      assert.deepEqual(b.origins.get(sid), ['handoff'], 'the new owner is told it was handed off');
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('replaced: a copy whose session another instance claimed ends without writing, and forwards', async () => {
    const prefix = TestRedis.prefix();
    // Idle TTL 3 s: the owner checks the store at least every 300 ms. Another instance claims a
    // session only once its owner looks dead or frozen; here the claim is made by hand while A runs,
    // so A learns at its next check (a real claim lands only after A stopped beating: see
    // Ownership.uncheckedToken).
    const a = await serve({ redis: redis.url, keyPrefix: prefix, instanceId: 'life-c', sessionTtlMs: 3000 });
    const b = await serve({ redis: redis.url, keyPrefix: prefix, instanceId: 'life-d', sessionTtlMs: 3000 });
    const admin = redis.client();
    const store = new RedisSessionStore(admin, new RedisKeys(prefix), {
      idleMs: 60_000,
      maxLifetimeMs: 600_000,
    });
    try {
      const sid = await initialize(a.url);
      // B takes the session over, as after finding A frozen (B's copy is built by its next request).
      const claimed = await store.claim(sid, 'life-d', { owner: 'life-c', epoch: 1 });
      assert.equal(claimed.status, 'claimed');
      let id = 1;
      await until(
        'the request to run on the new owner',
        async () => {
          const r = await rawPost(a.url, call(id++), headersOf(sid));
          assert.equal(r.status, 200, r.text);
          assert.match(r.text, /pong/);
          return b.built.get(sid) === 1;
        },
        3000,
      );
      await until('onClose', () => a.ended.has(sid));
      assert.deepEqual(a.ended.get(sid), [{ reason: 'replaced', signal: 'replaced' }]);
      assert.equal(b.built.get(sid), 1, 'the request ran on the new owner');
      assert.deepEqual(b.origins.get(sid), ['failover'], 'a take-over is a failover for the new owner');
      assert.deepEqual(a.origins.get(sid), ['initialize']);
    } finally {
      admin.disconnect();
      await Promise.all([a.close(), b.close()]);
    }
  });
});
