// Edges of ownership found in review: a copy that lost its session must never write unfenced, and
// a forwarded call resent while the target is still hydrating runs once and is answered. Fleets run
// in this process through the public API, on a real redis-server; the SDK client.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { createFleet, type Fleet, type FleetOptions } from '../../src/index.js';
import { RedisKeys } from '../../src/redis/keys.js';
import { RedisSessionStore } from '../../src/store/redis-session-store.js';
import { connectClient, initBody, rawPost, textOf } from '../helpers/mcp-client.js';
import { SseReader } from '../helpers/sse-reader.js';
import { waitFor } from '../helpers/wait.js';
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
  await waitFor('fleet ready', () => fleet.ready(), 5000);
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

/** A session initialized on `a`, which then shuts down and hands it off: nobody owns it. */
async function releasedSession(a: Served): Promise<{ sid: string; headers: Record<string, string> }> {
  const init = await rawPost(`${a.url}/mcp`, initBody());
  const sid = init.headers.get('mcp-session-id')!;
  const headers = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
  await rawPost(
    `${a.url}/mcp`,
    JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    headers,
  );
  await a.close();
  return { sid, headers };
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
      await waitFor('the stale write to be tried', () => staleWrite !== undefined, 5000);
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
      // b's hydration of the session waits until the forwarder on a has resent the call to it (it
      // resends after 300 ms without an acknowledgement, and b acknowledges once the copy is built).
      let hydrate!: () => void;
      const hydrating = new Promise<void>((r) => (hydrate = r));
      // s2's call keeps a draining until the test lets it end.
      let slowStarted!: () => void;
      const slowRunning = new Promise<void>((r) => (slowStarted = r));
      let endSlow!: () => void;
      const slowEnds = new Promise<void>((r) => (endSlow = r));
      const metrics = new Registry();
      const make = (instanceId: string, registry?: Registry) =>
        serve({
          redis: redis.url,
          keyPrefix,
          instanceId,
          jsonResponse,
          metrics: registry,
          ownerAckTimeoutMs: 300,
          // b stays alive for a's verdicts through event-loop stalls of a loaded machine (with the 2 s
          // default a late heartbeat once made a judge b gone and serve the call itself).
          instanceTtlMs: 10_000,
          server: async (ctx) => {
            if (ctx.origin !== 'initialize') await hydrating;
            const s = new McpServer({ name: 'edges', version: '1.0.0' });
            s.registerTool('echo', { description: 'notes where it ran' }, async () => {
              runs.push(ctx.instanceId);
              return { content: [{ type: 'text', text: `ran on ${ctx.instanceId}` }] };
            });
            s.registerTool('slow', { description: 'keeps the instance draining' }, async () => {
              slowStarted();
              await slowEnds;
              return { content: [{ type: 'text', text: 'slow' }] };
            });
            return s;
          },
        });
      const a = await make('resend-a');
      const b = await make('resend-b', metrics);
      const s1 = await connectClient(a.url);
      const s2 = await connectClient(a.url);
      const sid1 = s1.transport.sessionId!;
      const store = new RedisSessionStore(admin, new RedisKeys(keyPrefix), {
        idleMs: 3_600_000,
        maxLifetimeMs: 86_400_000,
      });
      /** The forwarded calls b has received (`handle` messages, resends included). */
      const handled = async () => {
        const m = await metrics.getSingleMetric('mcp_fleet_bus_messages_total')!.get();
        return m.values.find((v) => v.labels.direction === 'in' && v.labels.type === 'handle')?.value ?? 0;
      };
      try {
        const slow = s2.client.callTool({ name: 'slow', arguments: {} }).catch(() => undefined);
        await slowRunning;
        // a drains (s2's call keeps it draining); s1 is released, and its next call makes b claim it.
        const closing = a.close();
        await waitFor('a to release s1', async () => (await store.peek(sid1))?.owner === '');
        const call = s1.client.callTool({ name: 'echo', arguments: {} }, undefined, { timeout: 10_000 });
        await waitFor('the call resent to b while b hydrates', async () => (await handled()) >= 2);
        hydrate();
        const r = await call;
        assert.equal(textOf(r), 'ran on resend-b');
        assert.deepEqual(runs, ['resend-b'], 'the tool ran once');
        endSlow();
        await slow;
        await closing;
      } finally {
        hydrate();
        endSlow();
        await s1.client.close().catch(() => {});
        await s2.client.close().catch(() => {});
        await b.close();
      }
    });
  }

  it("a standalone GET opened while its session is being hydrated on its new owner gets the server's notifications", async () => {
    // The new owner reads the GET stream's holder in its claim step; a holder that registers after
    // the claim tells the owner (`attach`), which must not be lost while the copy is still built.
    const keyPrefix = TestRedis.prefix();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const options = (instanceId: string): FleetOptions => ({
      redis: redis.url,
      keyPrefix,
      instanceId,
      // No periodic catch-up of the GET stream from the log within the test: only the attach delivers.
      streamHeartbeatMs: 600_000,
      server: async (ctx) => {
        if (ctx.instanceId === 'hydrate-b' && ctx.origin !== 'initialize') await gate;
        const s = new McpServer({ name: 'edges', version: '1.0.0' });
        s.registerTool('notify', { description: 'tells the standalone stream' }, async () => {
          s.sendToolListChanged();
          return { content: [{ type: 'text', text: 'told' }] };
        });
        return s;
      },
    });
    const a = await serve(options('hydrate-a'));
    const b = await serve(options('hydrate-b'));
    const c = await serve(options('hydrate-c'));
    const keys = new RedisKeys(keyPrefix);
    const store = new RedisSessionStore(admin, keys, { idleMs: 3_600_000, maxLifetimeMs: 86_400_000 });
    const watcher = redis.client();
    let reader: SseReader | undefined;
    try {
      const { sid, headers } = await releasedSession(a);
      assert.equal((await store.peek(sid))?.owner, '');
      // Everything b is told over the bus, seen by a second subscriber of its channel.
      const toB: string[] = [];
      watcher.on('message', (_channel: string, payload: string) => toB.push(payload));
      await watcher.subscribe(keys.instanceChannel('hydrate-b'));
      const call = rawPost(
        `${b.url}/mcp`,
        JSON.stringify({
          jsonrpc: '2.0',
          id: 2,
          method: 'tools/call',
          params: { name: 'notify', arguments: {} },
        }),
        headers,
      );
      await waitFor('b to claim the session', async () => (await store.peek(sid))?.owner === 'hydrate-b');
      const get = await fetch(`${c.url}/mcp`, { headers: { ...headers, accept: 'text/event-stream' } });
      assert.equal(get.status, 200);
      reader = new SseReader(get);
      await waitFor('c to tell b that it holds the GET stream', () =>
        toB.some((m) => (JSON.parse(m) as { t?: string }).t === 'attach'),
      );
      release(); // b's copy is built only now, after the attach arrived
      const answered = await call;
      assert.equal(answered.status, 200);
      assert.match(answered.text, /told/);
      for (;;) {
        const ev = await reader.next();
        assert.ok(ev, 'the GET stream ended without the notification');
        if (ev.data === '') continue; // the priming event
        assert.equal((JSON.parse(ev.data) as { method?: string }).method, 'notifications/tools/list_changed');
        break;
      }
    } finally {
      release();
      await reader?.cancel();
      watcher.disconnect();
      await c.close();
      await b.close();
      await a.close();
    }
  });

  it('concurrent first requests of a released session on one instance build one copy, and all are answered', async () => {
    const keyPrefix = TestRedis.prefix();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const built: string[] = [];
    const options = (instanceId: string): FleetOptions => ({
      redis: redis.url,
      keyPrefix,
      instanceId,
      server: async (ctx) => {
        if (ctx.origin !== 'initialize') {
          built.push(ctx.instanceId);
          await gate; // the other requests arrive while the copy is being built
        }
        const s = new McpServer({ name: 'edges', version: '1.0.0' });
        s.registerTool('where', { description: 'names the instance' }, async () => ({
          content: [{ type: 'text', text: ctx.instanceId }],
        }));
        return s;
      },
    });
    const a = await serve(options('once-a'));
    const b = await serve(options('once-b'));
    const store = new RedisSessionStore(admin, new RedisKeys(keyPrefix), {
      idleMs: 3_600_000,
      maxLifetimeMs: 86_400_000,
    });
    try {
      const { sid, headers } = await releasedSession(a);
      const calls = Array.from({ length: 8 }, (_, i) =>
        rawPost(
          `${b.url}/mcp`,
          JSON.stringify({
            jsonrpc: '2.0',
            id: i + 2,
            method: 'tools/call',
            params: { name: 'where', arguments: {} },
          }),
          headers,
        ),
      );
      await waitFor('b to claim the session', async () => (await store.peek(sid))?.owner === 'once-b');
      release();
      for (const r of await Promise.all(calls)) {
        assert.equal(r.status, 200, r.text);
        assert.match(r.text, /once-b/);
      }
      assert.deepEqual(built, ['once-b'], 'one copy built, on b');
      assert.deepEqual(await store.peek(sid), { owner: 'once-b', epoch: 2, transport: 'streamable-http' });
      assert.equal((await b.fleet.health()).liveSessions, 1);
    } finally {
      release();
      await b.close();
      await a.close();
    }
  });
});
