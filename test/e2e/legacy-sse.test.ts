// Legacy HTTP+SSE (2024-11-05) across instances: separate processes behind the round-robin proxy that
// sends every request to the next instance, real Redis, the SDK's SSEClientTransport.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Redis } from 'ioredis';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  type ClientCapabilities,
} from '@modelcontextprotocol/sdk/types.js';
import { createFleet, type Fleet } from '../../src/index.js';
import { RedisKeys } from '../../src/redis/keys.js';
import { RedisStreamRegistry } from '../../src/store/redis-stream-registry.js';
import { buildDemoServer } from '../fixtures/demo-server.js';
import { startCluster, startInstance, type Instance } from '../helpers/instances.js';
import { rawPost, textOf } from '../helpers/mcp-client.js';
import { startProxy, type Proxy } from '../helpers/proxy.js';
import { TestRedis } from '../helpers/redis-server.js';
import { SseReader } from '../helpers/sse-reader.js';
import { waitFor } from '../helpers/wait.js';

const ENTRY = 'test/fixtures/demo-instance.ts';
/** FleetOptions.legacyPostTimeoutMs default: the documented bound on waiting for the owner's ack. */
const LEGACY_POST_TIMEOUT_MS = 5000;

interface SseClient {
  client: Client;
  transport: SSEClientTransport;
  /** Errors the SDK client reported (transport and protocol). */
  errors: Error[];
  sessionId: string;
  /** Instance id of the owner, as the session's server reports it. */
  owner: string;
}

/** An SDK client over SSEClientTransport, initialized; asks `whoami` for its session id and owner. */
async function connectSse(
  baseUrl: string,
  opts: { token?: string; capabilities?: ClientCapabilities; name?: string } = {},
): Promise<SseClient> {
  const headers: Record<string, string> = opts.token ? { authorization: `Bearer ${opts.token}` } : {};
  const transport = new SSEClientTransport(new URL('/sse', baseUrl), { requestInit: { headers } });
  const client = new Client(
    { name: opts.name ?? 'legacy-client', version: '1.0.0' },
    { capabilities: opts.capabilities ?? {} },
  );
  const errors: Error[] = [];
  client.onerror = (e) => errors.push(e);
  await client.connect(transport);
  const who = JSON.parse(textOf(await client.callTool({ name: 'whoami', arguments: {} })));
  return { client, transport, errors, sessionId: who.sessionId, owner: who.instanceId };
}

/** The pid in a default instance id (`<hostname>-<pid>-<6 random hex>`). */
const pidOf = (instanceId: string) => Number(/-(\d+)-[0-9a-f]{6}$/.exec(instanceId)?.[1]);

const notification = JSON.stringify({
  jsonrpc: '2.0',
  method: 'notifications/cancelled',
  params: { requestId: 'nothing-running' },
});

describe('legacy HTTP+SSE across instances', () => {
  let redis: TestRedis;
  let env: Record<string, string>;
  let instances: Instance[];
  let proxy: Proxy;
  let redisClient: Redis;
  let registry: RedisStreamRegistry;

  before(async () => {
    redis = await TestRedis.start();
    const prefix = TestRedis.prefix();
    env = { REDIS_URL: redis.url, KEY_PREFIX: prefix };
    instances = await startCluster(3, { entry: ENTRY, env, name: 'legacy' });
    proxy = await startProxy(instances.map((i) => i.url));
    redisClient = redis.client();
    registry = new RedisStreamRegistry(redisClient, new RedisKeys(prefix));
  });

  after(async () => {
    await proxy?.close();
    await Promise.all((instances ?? []).map((i) => i.kill()));
    redisClient?.disconnect();
    await redis?.stop();
  });

  it("reproduces the original failure: the SDK's stock SSEServerTransport on 2 instances loses POSTs", async () => {
    const stock = await startCluster(2, { entry: 'test/fixtures/stock-sse-instance.ts', name: 'stock' });
    const stockProxy = await startProxy(stock.map((i) => i.url));
    try {
      let sent = 0;
      let lost = 0;
      await Promise.all(
        Array.from({ length: 20 }, async (_, c) => {
          const transport = new SSEClientTransport(new URL('/sse', stockProxy.url));
          transport.onerror = () => {}; // failed POSTs are counted below, from send()'s rejection
          await transport.start();
          for (let k = 0; k < 50; k++) {
            sent++;
            await transport.send({ jsonrpc: '2.0', id: `${c}-${k}`, method: 'ping' }).catch(() => lost++);
          }
          await transport.close();
        }),
      );
      assert.equal(sent, 1000);
      // Each POST lands on the instance holding the stream with probability ~1/2.
      assert.ok(lost >= 250, `only ${lost} of ${sent} POSTs were lost`);
    } finally {
      await stockProxy.close();
      await Promise.all(stock.map((i) => i.kill()));
    }
  });

  it('mcp-fleet on 3 instances delivers all of 1,000 messages from 20 concurrent SSE clients', async (t) => {
    proxy.resetCounters();
    const clients = await Promise.all(
      Array.from({ length: 20 }, (_, i) => connectSse(proxy.url, { token: `user${i}`, name: `c${i}` })),
    );
    t.after(() => Promise.all(clients.map(({ client }) => client.close())));
    const owners = new Set(clients.map((c) => c.owner));
    let failures = 0;
    await Promise.all(
      clients.map(async ({ client }, ci) => {
        for (let k = 0; k < 50; k++) {
          try {
            const r = await client.callTool({ name: 'echo', arguments: { text: `c${ci}-${k}` } });
            assert.equal(textOf(r), `c${ci}-${k}`);
          } catch (err) {
            failures++;
            throw err;
          }
        }
      }),
    );
    assert.equal(failures, 0);
    assert.deepEqual(
      clients.flatMap((c) => c.errors.map((e) => e.message)),
      [],
    );
    assert.equal(owners.size, 3, 'streams were held by all three instances');
    const posts = proxy.log.filter((e) => e.method === 'POST' && e.url.startsWith('/messages'));
    assert.ok(posts.every((e) => e.status === 202));
    assert.equal(new Set(posts.map((e) => e.target)).size, 3, 'POSTs landed on all three instances');
  });

  it('sampling and elicitation work when the client answers through other instances', async (t) => {
    const c = await connectSse(proxy.url, {
      token: 'sampler',
      capabilities: { sampling: {}, elicitation: {} },
    });
    t.after(() => c.client.close());
    c.client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
      const first = req.params.messages[0]!.content;
      const text = 'text' in first ? first.text : '?';
      return { model: 'test-model', role: 'assistant', content: { type: 'text', text: `sampled ${text}` } };
    });
    c.client.setRequestHandler(ElicitRequestSchema, async () => ({
      action: 'accept',
      content: { ok: true },
    }));
    proxy.resetCounters();
    for (let i = 0; i < 4; i++) {
      const r = await c.client.callTool({ name: 'ask_llm', arguments: { question: `q${i}` } });
      assert.equal(textOf(r), `${c.owner}: sampled q${i}`);
    }
    const parallel = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        c.client.callTool({ name: 'ask_llm', arguments: { question: `p${i}` } }),
      ),
    );
    parallel.forEach((r, i) => assert.equal(textOf(r), `${c.owner}: sampled p${i}`));
    const elicited = JSON.parse(
      textOf(await c.client.callTool({ name: 'ask_user', arguments: { question: 'proceed?' } })),
    );
    assert.deepEqual(elicited, { action: 'accept', content: { ok: true } });

    // The client's answers (and calls) were POSTed to instances other than the owner.
    const ownerUrl = instances.find((i) => i.pid === pidOf(c.owner))!.url;
    const elsewhere = proxy.log.filter(
      (e) => e.method === 'POST' && e.url.includes(c.sessionId) && e.target !== ownerUrl,
    );
    assert.ok(elsewhere.length >= 10, `only ${elsewhere.length} POSTs went to non-owners`);
    assert.deepEqual(
      c.errors.map((e) => e.message),
      [],
    );
  });

  it('answers every bad input with its status code and a JSON-RPC error, never 5xx', async (t) => {
    const c = await connectSse(proxy.url, { token: 'alice' });
    t.after(() => c.client.close());
    const sid = c.sessionId;
    const auth = { authorization: 'Bearer alice' };
    const msgs = (q: string) => `${proxy.url}/messages${q}`;
    const ping = JSON.stringify({ jsonrpc: '2.0', id: 'x', method: 'ping' });
    type Case = [string, () => Promise<{ status: number; text: string }>, number, number?];
    const get = async (path: string, init: RequestInit = {}) => {
      const ac = new AbortController();
      const r = await fetch(`${proxy.url}${path}`, { ...init, signal: ac.signal });
      const text = r.status === 200 ? '' : await r.text();
      ac.abort();
      return { status: r.status, text };
    };
    const cases: Case[] = [
      ['missing sessionId', () => rawPost(msgs(''), notification, auth), 400],
      ['empty sessionId', () => rawPost(msgs('?sessionId='), notification, auth), 400],
      ['malformed sessionId', () => rawPost(msgs('?sessionId=bad%20id%20here'), notification, auth), 400],
      ['hash-tag braces', () => rawPost(msgs('?sessionId=%7Babcdefgh%7D'), notification, auth), 400],
      [
        'unknown session',
        () => rawPost(msgs(`?sessionId=${'f'.repeat(32)}`), notification, auth),
        404,
        -32001,
      ],
      [
        'unknown session_id',
        () => rawPost(msgs(`?session_id=${'e'.repeat(32)}`), notification, auth),
        404,
        -32001,
      ],
      [
        'other principal',
        () => rawPost(msgs(`?sessionId=${sid}`), notification, { authorization: 'Bearer mallory' }),
        404,
        -32001,
      ],
      ['anonymous caller', () => rawPost(msgs(`?sessionId=${sid}`), notification), 404, -32001],
      [
        'bad auth scheme',
        () => rawPost(msgs(`?sessionId=${sid}`), notification, { authorization: 'Basic eA==' }),
        401,
      ],
      [
        'wrong Content-Type',
        () => rawPost(msgs(`?sessionId=${sid}`), notification, { ...auth, 'content-type': 'text/plain' }),
        415,
      ],
      ['bad JSON', () => rawPost(msgs(`?sessionId=${sid}`), '{"jsonrpc":', auth), 400, -32700],
      ['not JSON-RPC', () => rawPost(msgs(`?sessionId=${sid}`), '{"hello":1}', auth), 400, -32600],
      ['batch', () => rawPost(msgs(`?sessionId=${sid}`), `[${notification}]`, auth), 400, -32600],
      [
        'body over 4 MiB',
        () =>
          rawPost(
            msgs(`?sessionId=${sid}`),
            JSON.stringify({ jsonrpc: '2.0', method: 'x', params: { pad: 'x'.repeat(4_300_000) } }),
            auth,
          ),
        413,
      ],
      [
        'legacy session on the Streamable endpoint',
        () => rawPost(`${proxy.url}/mcp`, ping, { ...auth, 'mcp-session-id': sid }),
        404,
        -32001,
      ],
      [
        'DELETE of a legacy session on the Streamable endpoint',
        () => get('/mcp', { method: 'DELETE', headers: { ...auth, 'mcp-session-id': sid } }),
        404,
        -32001,
      ],
      ['GET /sse without event-stream', () => get('/sse', { headers: { accept: 'application/json' } }), 406],
      ['PUT /sse', () => get('/sse', { method: 'PUT' }), 405],
      ['GET /messages', () => get(`/messages?sessionId=${sid}`), 405],
    ];
    for (const [name, run, status, code] of cases) {
      const r = await run();
      assert.equal(r.status, status, `${name}: ${r.status} ${r.text.slice(0, 200)}`);
      const body = JSON.parse(r.text);
      assert.equal(body.jsonrpc, '2.0', name);
      assert.equal(body.id, null, name);
      if (code !== undefined) assert.equal(body.error.code, code, name);
    }

    // Both query parameter spellings work on every instance (owner: local; others: over the bus).
    for (const inst of instances) {
      for (const param of ['sessionId', 'session_id']) {
        const r = await rawPost(`${inst.url}/messages?${param}=${sid}`, notification, auth);
        assert.equal(r.status, 202, `${param} on ${inst.name}: ${r.text}`);
      }
    }
    // The session is unharmed by all of the above.
    assert.equal(
      textOf(await c.client.callTool({ name: 'echo', arguments: { text: 'still here' } })),
      'still here',
    );
    assert.deepEqual(
      c.errors.map((e) => e.message),
      [],
    );
  });

  it('forwards no credential headers over the bus: the owner sees them only on POSTs it got itself', async () => {
    const [owner, other] = instances;
    const headers = {
      authorization: 'Bearer headers-user',
      'x-api-key': 'secret-key',
      cookie: 'sid=secret',
      'x-trace-id': 'trace-1',
    };
    const ac = new AbortController();
    const res = await fetch(`${owner!.url}/sse`, {
      headers: { ...headers, accept: 'text/event-stream' },
      signal: ac.signal,
    });
    assert.equal(res.status, 200);
    const sse = new SseReader(res);
    try {
      const endpoint = await sse.next();
      assert.equal(endpoint?.event, 'endpoint');
      const post = async (url: string, body: unknown) => {
        const r = await rawPost(`${url}${endpoint!.data}`, JSON.stringify(body), headers);
        assert.equal(r.status, 202, r.text);
      };
      /** The stream's next JSON-RPC response with this id. */
      const answer = async (id: number) => {
        for (;;) {
          const ev = await sse.next();
          assert.ok(ev, 'stream ended');
          const msg = JSON.parse(ev.data);
          if (msg.id === id) return msg;
        }
      };
      await post(owner!.url, {
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: {
          protocolVersion: '2024-11-05',
          capabilities: {},
          clientInfo: { name: 'raw', version: '0' },
        },
      });
      await answer(1);
      await post(owner!.url, { jsonrpc: '2.0', method: 'notifications/initialized' });
      const headerNames = async (url: string, id: number): Promise<string[]> => {
        await post(url, { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'request_headers' } });
        return JSON.parse((await answer(id)).result.content[0].text);
      };
      const local = await headerNames(owner!.url, 2);
      for (const h of ['authorization', 'x-api-key', 'cookie', 'x-trace-id']) assert.ok(local.includes(h), h);
      const forwarded = await headerNames(other!.url, 3);
      for (const h of ['authorization', 'x-api-key', 'cookie']) {
        assert.ok(!forwarded.includes(h), `${h} was published on the bus`);
      }
      for (const h of ['x-trace-id', 'content-type', 'accept']) assert.ok(forwarded.includes(h), h);
    } finally {
      await sse.cancel();
      ac.abort();
    }
  });

  it("another principal's POST to the owner does not slide the session's TTL", async (t) => {
    const c = await connectSse(proxy.url, { token: 'ttl-victim' });
    t.after(() => c.client.close());
    const owner = instances.find((i) => i.pid === pidOf(c.owner))!;
    const key = new RedisKeys(env.KEY_PREFIX!).session(c.sessionId);
    const before = await redisClient.pttl(key);
    assert.ok(before > 0, `session key ${key} has a TTL`);
    // Counted down since (a refresh now would put it back above `before`).
    await waitFor('the idle TTL to count down', async () => (await redisClient.pttl(key)) < before);
    const r = await rawPost(`${owner.url}/messages?sessionId=${c.sessionId}`, notification, {
      authorization: 'Bearer ttl-mallory',
    });
    assert.equal(r.status, 404);
    assert.ok((await redisClient.pttl(key)) < before, 'the idle TTL was not refreshed');
  });

  it('transport session records exist for every open stream, are counted and listed, and go when it closes', async (t) => {
    await waitFor('earlier streams released', async () => (await registry.count()) === 0);
    const clients = await Promise.all(
      Array.from({ length: 4 }, (_, i) => connectSse(proxy.url, { token: `counted${i}` })),
    );
    t.after(() => Promise.all(clients.map(({ client }) => client.close())));
    assert.equal(await registry.count(), 4);
    const listed = await registry.list();
    for (const c of clients) {
      const rec = listed.find((r) => r.sessionId === c.sessionId);
      assert.ok(rec, `no transport session record for ${c.sessionId}`);
      assert.equal(rec.transport, 'sse');
      assert.equal(rec.instanceId, c.owner);
      assert.equal(rec.active, true);
      assert.ok(rec.createdAt <= rec.lastSeenAt && rec.lastSeenAt <= Date.now());
    }
    // Closing the stream ends the session: record and transport session record go.
    const [first, ...rest] = clients;
    await first!.client.close();
    await waitFor('stream record released', async () => (await registry.count()) === 3);
    const r = await rawPost(`${proxy.url}/messages?sessionId=${first!.sessionId}`, notification, {
      authorization: 'Bearer counted0',
    });
    assert.equal(r.status, 404);
    await Promise.all(rest.map((c) => c.client.close()));
    await waitFor('all stream records released', async () => (await registry.count()) === 0);
  });

  it('killing the owner: its clients get 404 within the bound, other sessions are unaffected', async () => {
    const victim = await startInstance({ entry: ENTRY, env, name: 'legacy-victim' });
    const all = [...instances.map((i) => i.url), victim.url];
    const proxy2 = await startProxy(all);
    const clients: SseClient[] = [];
    try {
      const onVictim = () => clients.filter((c) => pidOf(c.owner) === victim.pid);
      while (onVictim().length < 2 || clients.length - onVictim().length < 2) {
        assert.ok(clients.length < 16, 'round robin never placed two streams on the victim');
        clients.push(await connectSse(proxy2.url, { token: `k${clients.length}` }));
        // A connect is 4 requests: one more shifts the next GET /sse to the next instance.
        await (await fetch(`${proxy2.url}/livez`)).text();
      }
      const [frozen, killed] = onVictim();
      const others = clients.filter((c) => pidOf(c.owner) !== victim.pid);

      // 1. Owner frozen (SIGSTOP): alive on the bus but never answers → 404 after the ack timeout.
      process.kill(victim.pid, 'SIGSTOP');
      proxy2.setTargets(instances.map((i) => i.url));
      let t0 = Date.now();
      await assert.rejects(
        frozen!.client.callTool({ name: 'echo', arguments: { text: 'to a frozen owner' } }),
        /HTTP 404/,
      );
      const frozenMs = Date.now() - t0;
      assert.ok(frozenMs < LEGACY_POST_TIMEOUT_MS + 3000, `404 took ${frozenMs} ms`);
      for (const c of others) {
        assert.equal(textOf(await c.client.callTool({ name: 'echo', arguments: { text: 'ok' } })), 'ok');
      }

      // 2. Owner killed (SIGKILL): no receiver on the bus → 404 at once.
      await victim.kill('SIGKILL');
      t0 = Date.now();
      await assert.rejects(
        killed!.client.callTool({ name: 'echo', arguments: { text: 'to a dead owner' } }),
        /HTTP 404/,
      );
      const killedMs = Date.now() - t0;
      assert.ok(killedMs < LEGACY_POST_TIMEOUT_MS + 3000, `404 took ${killedMs} ms`);

      // Both sessions are marked ended: records gone, no transport session record left.
      const held = await registry.list(1000);
      for (const c of [frozen!, killed!]) {
        const r = await rawPost(`${proxy.url}/messages?sessionId=${c.sessionId}`, notification, {
          authorization: `Bearer k${clients.indexOf(c)}`,
        });
        assert.equal(r.status, 404);
        assert.equal(JSON.parse(r.text).error.code, -32001);
        assert.ok(!held.some((h) => h.sessionId === c.sessionId));
      }
      for (const c of others) {
        assert.equal(textOf(await c.client.callTool({ name: 'echo', arguments: { text: 'ok' } })), 'ok');
        assert.deepEqual(
          c.errors.map((e) => e.message),
          [],
        );
      }
    } finally {
      await Promise.all(clients.map((c) => c.client.close()));
      await proxy2.close();
      await victim.kill();
    }
  });
});

describe('legacy HTTP+SSE in one process (in-memory parts)', () => {
  async function serve(fleet: Fleet): Promise<{ url: string; http: Server }> {
    const http = createServer((req, res) => fleet.handler(req, res));
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    return { url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`, http };
  }

  /** Opens `GET /sse` and collects its raw text; `done` resolves when the server ends the stream. */
  async function rawStream(url: string): Promise<{ text: () => string; done: Promise<void>; abort(): void }> {
    const ac = new AbortController();
    const res = await fetch(`${url}/sse`, { headers: { accept: 'text/event-stream' }, signal: ac.signal });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    let text = '';
    const decoder = new TextDecoder();
    const done = (async () => {
      try {
        for await (const chunk of res.body!) text += decoder.decode(chunk as Uint8Array, { stream: true });
      } catch {
        // aborted by the test
      }
    })();
    return { text: () => text, done, abort: () => ac.abort() };
  }

  const endpointOf = (text: string) => /^event: endpoint\ndata: (\S+)\n\n/.exec(text)?.[1];

  it('sends the endpoint event, keep-alive comments, and expires an idle session', async () => {
    const fleet = createFleet({
      server: (ctx) => buildDemoServer(ctx),
      sessionTtlMs: 600,
      keepAliveMs: 50,
      streamHeartbeatMs: 100,
    });
    const { url, http } = await serve(fleet);
    try {
      const s = await rawStream(url);
      await waitFor('endpoint event', async () => endpointOf(s.text()) !== undefined);
      const endpoint = endpointOf(s.text())!;
      assert.match(endpoint, /^\/messages\?sessionId=[0-9a-f]{32}$/);
      await waitFor('keep-alive comment', async () => s.text().includes('\n: keep-alive\n\n'));
      const health = await fleet.health();
      assert.equal(health.transportSessions, 1);
      assert.equal(health.sessions, 1);
      assert.equal(health.liveSessions, 1);
      // A delivered message slides the TTL: still alive after more than one TTL in total.
      for (let i = 0; i < 3; i++) {
        await new Promise((r) => setTimeout(r, 300));
        assert.equal((await rawPost(`${url}${endpoint}`, notification)).status, 202);
      }
      // Idle past the TTL: the stream ends, the records go, the next POST is a 404.
      await s.done;
      const r = await rawPost(`${url}${endpoint}`, notification);
      assert.equal(r.status, 404);
      assert.equal(JSON.parse(r.text).error.code, -32001);
      const after = await fleet.health();
      assert.equal(after.transportSessions, 0);
      assert.equal(after.sessions, 0);
      assert.equal(after.liveSessions, 0);
    } finally {
      await fleet.close();
      http.closeAllConnections();
      http.close();
    }
  });

  it('fleet.close() ends legacy streams and removes their records', async () => {
    const fleet = createFleet({ server: (ctx) => buildDemoServer(ctx) });
    const { url, http } = await serve(fleet);
    try {
      const streams = await Promise.all([rawStream(url), rawStream(url)]);
      await waitFor('endpoint events', async () => streams.every((s) => endpointOf(s.text())));
      assert.equal((await fleet.health()).transportSessions, 2);
      await fleet.close();
      await Promise.all(streams.map((s) => s.done));
      assert.equal((await fleet.health()).transportSessions, 0);
      // A closing fleet answers 503, never hangs.
      assert.equal((await rawPost(`${url}${endpointOf(streams[0]!.text())}`, notification)).status, 503);
    } finally {
      await fleet.close();
      http.closeAllConnections();
      http.close();
    }
  });

  it('serves a mounted handler: the endpoint keeps the mount prefix', async () => {
    const fleet = createFleet({ server: (ctx) => buildDemoServer(ctx) });
    // What Express does for app.use('/legacy', handler): req.url loses the prefix, originalUrl keeps it.
    const http = createServer((req, res) => {
      const original = req.url ?? '/';
      if (!original.startsWith('/legacy/')) return void res.writeHead(404).end();
      Object.assign(req, { originalUrl: original, url: original.slice('/legacy'.length) });
      fleet.handler(req, res);
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(http.address() as AddressInfo).port}/legacy/`;
    const transport = new SSEClientTransport(new URL('sse', base));
    const client = new Client({ name: 'mounted', version: '1' });
    try {
      await client.connect(transport);
      assert.equal(
        textOf(await client.callTool({ name: 'echo', arguments: { text: 'mounted' } })),
        'mounted',
      );
    } finally {
      await client.close();
      await fleet.close();
      http.closeAllConnections();
      http.close();
    }
  });
});
