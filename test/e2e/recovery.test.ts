// Session recovery (`recoverSessions`, opt-in): after Redis lost its data, clients that keep their
// dead session id (the SDK client and the Inspector never re-initialize) work again — on 2 instances
// behind the proxy, with the official SDK client — while recovery stays bounded: off by default,
// per principal and minute, never across principals, never for `anonymous`.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Registry } from 'prom-client';
import { createFleet, type Fleet } from '../../src/index.js';
import { buildDemoServer } from '../fixtures/demo-server.js';
import { startCluster, type Instance } from '../helpers/instances.js';
import { connectClient, textOf } from '../helpers/mcp-client.js';
import { startProxy, type Proxy } from '../helpers/proxy.js';
import { waitFor } from '../helpers/wait.js';
import { scanKeys, TestRedis } from '../helpers/redis-server.js';

type Connected = Awaited<ReturnType<typeof connectClient>>;

interface WhoAmI {
  instanceId: string;
  sessionId: string;
  principal: string;
  origin: string;
  client: { name: string };
  capabilities: Record<string, unknown>;
}

async function whoami(c: Connected): Promise<WhoAmI> {
  return JSON.parse(textOf(await c.client.callTool({ name: 'whoami', arguments: {} }))) as WhoAmI;
}

async function status404(p: Promise<unknown>): Promise<void> {
  await assert.rejects(p, (err: unknown) => err instanceof StreamableHTTPError && err.code === 404);
}

describe('session recovery after Redis lost its data: 2 instances, 10 SDK clients', () => {
  let redis: TestRedis;
  let instances: Instance[];
  let proxy: Proxy;
  const clients: Connected[] = [];

  before(async () => {
    redis = await TestRedis.start();
    instances = await startCluster(2, {
      entry: 'test/fixtures/demo-instance.ts',
      env: { REDIS_URL: redis.url, KEY_PREFIX: TestRedis.prefix(), RECOVER_SESSIONS: '1', LOG: 'warn' },
      name: 'recovery',
    });
    proxy = await startProxy(instances.map((i) => i.url));
    for (let i = 0; i < 10; i++) clients.push(await connectClient(proxy.url, { token: `user${i}` }));
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.client.close().catch(() => {})));
    await proxy?.close();
    await Promise.all((instances ?? []).map((i) => i.kill()));
    await redis?.stop();
  });

  it('every client works again with its own session id, none re-initialized', async () => {
    const before = await Promise.all(clients.map(whoami));
    await redis.restart(); // no persistence: every session is gone
    const db = redis.client();
    try {
      const keys = await scanKeys(db, '');
      const sids = before.map((w) => w.sessionId);
      assert.deepEqual(
        keys.filter((k) => sids.some((sid) => k.includes(sid))),
        [],
        'Redis came back without the sessions',
      );
    } finally {
      db.disconnect();
    }
    // The next call of each client: answered (after at most a few 503s while the instances reconnect).
    const after = await Promise.all(
      clients.map(async (c) => {
        for (let attempt = 0; ; attempt++) {
          try {
            return await whoami(c);
          } catch (err) {
            const retryable = err instanceof StreamableHTTPError && err.code === 503;
            if (!retryable || attempt >= 50) throw err;
            await new Promise((r) => setTimeout(r, 100));
          }
        }
      }),
    );
    for (const [i, w] of after.entries()) {
      assert.equal(w.sessionId, before[i]!.sessionId, 'the same session id');
      assert.equal(clients[i]!.transport.sessionId, before[i]!.sessionId, 'the client never re-initialized');
      assert.equal(w.principal, `user${i}`);
      assert.equal(w.origin, 'recovered');
      assert.equal(w.client.name, 'recovered', 'a conservative client profile');
      assert.deepEqual(w.capabilities, {}, 'no client capabilities assumed');
    }
    // Each session was recovered once, by one instance, and said so.
    const logged = instances.map((i) => (i.output().match(/session recovered/g) ?? []).length);
    assert.equal(
      logged.reduce((a, b) => a + b, 0),
      10,
      `one log line per recovered session (${logged.join(' + ')})`,
    );
    // Working sessions again: more calls, no more recoveries.
    for (const c of clients) {
      assert.equal(textOf(await c.client.callTool({ name: 'echo', arguments: { text: 'x' } })), 'x');
    }
    const again = instances.map((i) => (i.output().match(/session recovered/g) ?? []).length);
    assert.deepEqual(again, logged);
  });
});

describe('session recovery: its bounds', () => {
  let redis: TestRedis;
  const servers: Array<{ fleet: Fleet; server: Server; url: string; registry: Registry }> = [];

  before(async () => {
    redis = await TestRedis.start();
  });
  after(async () => {
    for (const s of servers) {
      s.server.close();
      await s.fleet.close();
    }
    await redis.stop();
  });

  async function serve(
    recoverSessions: boolean | { maxPerMinute: number },
  ): Promise<(typeof servers)[number]> {
    const registry = new Registry();
    const fleet = createFleet({
      server: (ctx) => buildDemoServer(ctx),
      redis: redis.url,
      keyPrefix: TestRedis.prefix(),
      recoverSessions,
      metrics: registry,
      authenticate: (req) => req.headers.authorization?.slice('Bearer '.length) || 'anonymous',
    });
    const server = createServer(fleet.handler);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const s = {
      fleet,
      server,
      url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
      registry,
    };
    servers.push(s);
    return s;
  }

  /**
   * A session whose record the store then lost, as in a Redis restart: its keys deleted and the
   * fleet's command connection dropped (a restart drops it; the owner then checks its copies in the
   * store again), once the fleet is ready again.
   */
  async function lostSession(s: (typeof servers)[number], token?: string): Promise<Connected> {
    const c = await connectClient(s.url, token === undefined ? {} : { token });
    const db = redis.client();
    try {
      const keys = (await scanKeys(db, '')).filter((k) => k.includes(c.transport.sessionId!));
      assert.ok(keys.length > 0);
      await db.del(...keys);
      await db.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
    } finally {
      db.disconnect();
    }
    await waitFor('the fleet to reconnect', () => s.fleet.ready());
    return c;
  }

  it('is off by default: a lost session is a 404', async () => {
    const s = await serve(false);
    const c = await lostSession(s, 'alice');
    await status404(whoami(c));
    await c.client.close();
  });

  it('at most maxPerMinute per principal; counted in mcp_fleet_sessions_recovered_total', async () => {
    const s = await serve({ maxPerMinute: 2 });
    const { registry } = s;
    const lost = [await lostSession(s, 'bob'), await lostSession(s, 'bob'), await lostSession(s, 'bob')];
    assert.equal((await whoami(lost[0]!)).origin, 'recovered');
    assert.equal((await whoami(lost[1]!)).origin, 'recovered');
    await status404(whoami(lost[2]!));
    // Another principal has its own allowance.
    const carol = await lostSession(s, 'carol');
    assert.equal((await whoami(carol)).origin, 'recovered');
    const metric = await registry.getSingleMetricAsString('mcp_fleet_sessions_recovered_total');
    assert.match(metric, /^mcp_fleet_sessions_recovered_total 3$/m);
    for (const c of [...lost, carol]) await c.client.close().catch(() => {});
  });

  it('never for another principal, and never for anonymous', async () => {
    const s = await serve(true);
    const { url } = s;
    const dave = await lostSession(s, 'dave');
    assert.equal((await whoami(dave)).principal, 'dave');
    // Mallory names dave's (recovered) session id: still dave's, a 404 for her.
    const mallory = await connectClient(url, { token: 'mallory', sessionId: dave.transport.sessionId });
    await status404(whoami(mallory));
    assert.equal((await whoami(dave)).principal, 'dave');
    const anonymous = await lostSession(s);
    await status404(whoami(anonymous));
    for (const c of [dave, mallory, anonymous]) await c.client.close().catch(() => {});
  });
});
