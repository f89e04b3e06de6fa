// Edges of ownership found in review: a copy that lost its session must never write unfenced, and
// a forwarded call resent while the target is still hydrating runs once and is answered. Fleets run
// in this process through the public API, on a real redis-server; the SDK client.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { Redis } from 'ioredis';
import { createFleet, type Fleet, type FleetOptions } from '../../src/index.js';
import { RedisKeys } from '../../src/redis/keys.js';
import { RedisSessionStore } from '../../src/store/redis-session-store.js';
import { connectClient, textOf } from '../helpers/mcp-client.js';
import { TestRedis } from '../helpers/redis-server.js';

interface Served {
  fleet: Fleet;
  url: string;
  close(): Promise<void>;
}

async function serve(options: FleetOptions): Promise<Served> {
  const fleet = createFleet(options);
  const server: Server = createServer(fleet.handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const deadline = Date.now() + 5000;
  while (!(await fleet.ready())) {
    assert.ok(Date.now() < deadline, 'fleet ready');
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    fleet,
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    async close() {
      await fleet.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

describe('ownership edges', () => {
  let redis: TestRedis;
  let admin: Redis;
  before(async () => {
    redis = await TestRedis.start();
    admin = redis.client();
  });
  after(async () => {
    admin?.disconnect();
    await redis?.stop();
  });

  it('a copy whose session was taken over cannot write ctx.data (its fence is fixed when it is built)', async () => {
    const keyPrefix = TestRedis.prefix();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let atGate!: () => void;
    const reached = new Promise<void>((r) => (atGate = r));
    let staleWrite: string | undefined;
    const a = await serve({
      redis: redis.url,
      keyPrefix,
      instanceId: 'edge-a',
      server: (ctx) => {
        const s = new McpServer({ name: 'edges', version: '1.0.0' }, { capabilities: { logging: {} } });
        s.registerTool('work', { description: 'waits, logs, then writes data' }, async (extra) => {
          atGate();
          await gate;
          // A fenced write (the log message): refused, so the copy steps down and is forgotten.
          await extra
            .sendNotification({ method: 'notifications/message', params: { level: 'info', data: 'x' } })
            .catch(() => {});
          await ctx.data.set({ by: 'the stale copy' }).then(
            () => (staleWrite = 'succeeded'),
            (err: unknown) => (staleWrite = `refused: ${(err as Error).message}`),
          );
          return { content: [{ type: 'text', text: 'done' }] };
        });
        return s;
      },
    });
    const { client, transport } = await connectClient(a.url);
    try {
      const sid = transport.sessionId!;
      const call = client.callTool({ name: 'work', arguments: {} }).catch((e: unknown) => e);
      await reached;
      // Another instance takes the session over (as after edge-a froze) and writes, fenced by epoch 2.
      const store = new RedisSessionStore(admin, new RedisKeys(keyPrefix), {
        idleMs: 3_600_000,
        maxLifetimeMs: 86_400_000,
      });
      const claimed = await store.claim(sid, 'edge-b', { owner: 'edge-a', epoch: 1 });
      assert.equal(claimed.status, 'claimed');
      await store.setData(sid, JSON.stringify({ by: 'the new owner' }), undefined, {
        owner: 'edge-b',
        epoch: 2,
      });
      release();
      await call;
      const deadline = Date.now() + 5000;
      while (staleWrite === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.match(staleWrite ?? 'no write attempted', /^refused/);
      assert.equal((await store.getData(sid))?.json, JSON.stringify({ by: 'the new owner' }));
    } finally {
      await client.close().catch(() => {});
      await a.close();
    }
  });

  for (const jsonResponse of [false, true]) {
    it(`a call resent while its target still hydrates runs once and is answered (jsonResponse: ${jsonResponse})`, async () => {
      const keyPrefix = TestRedis.prefix();
      const runs: string[] = [];
      const make = (instanceId: string) =>
        serve({
          redis: redis.url,
          keyPrefix,
          instanceId,
          jsonResponse,
          // The forwarder resends after 300 ms without an acknowledgement; hydration takes 900 ms.
          ownerAckTimeoutMs: 300,
          // b stays alive for a's verdicts through event-loop stalls of a loaded machine (with the 2 s
          // default a late heartbeat once made a judge b gone and serve the call itself).
          instanceTtlMs: 10_000,
          server: async (ctx) => {
            if (ctx.origin !== 'initialize') await new Promise((r) => setTimeout(r, 900));
            const s = new McpServer({ name: 'edges', version: '1.0.0' });
            s.registerTool('echo', { description: 'notes where it ran' }, async () => {
              runs.push(ctx.instanceId);
              return { content: [{ type: 'text', text: `ran on ${ctx.instanceId}` }] };
            });
            s.registerTool('slow', { description: 'keeps the instance draining' }, async () => {
              await new Promise((r) => setTimeout(r, 3000));
              return { content: [{ type: 'text', text: 'slow' }] };
            });
            return s;
          },
        });
      const a = await make('resend-a');
      const b = await make('resend-b');
      const s1 = await connectClient(a.url);
      const s2 = await connectClient(a.url);
      try {
        const slow = s2.client.callTool({ name: 'slow', arguments: {} }).catch(() => undefined);
        await new Promise((r) => setTimeout(r, 100));
        // a drains (s2's call keeps it draining); s1 is released, and its next call makes b claim it.
        const closing = a.close();
        await new Promise((r) => setTimeout(r, 200));
        const r = await s1.client.callTool({ name: 'echo', arguments: {} }, undefined, { timeout: 10_000 });
        assert.equal(textOf(r), 'ran on resend-b');
        assert.deepEqual(runs, ['resend-b'], 'the tool ran once');
        await slow;
        await closing;
      } finally {
        await s1.client.close().catch(() => {});
        await s2.client.close().catch(() => {});
        await b.close();
      }
    });
  }
});
