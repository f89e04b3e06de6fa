// Tests of the test helpers themselves: proxy, instances, redis, postgres.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { freePort } from './helpers/free-port.js';
import { startCluster, startInstance, type Instance } from './helpers/instances.js';
import { startPostgres } from './helpers/postgres.js';
import { startProxy, type Proxy } from './helpers/proxy.js';
import { TestRedis } from './helpers/redis-server.js';

const ECHO = 'test/fixtures/echo-instance.ts';

async function listen(server: Server): Promise<string> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
}

async function whoami(url: string): Promise<number> {
  const res = await fetch(`${url}/whoami`);
  assert.equal(res.status, 200);
  return ((await res.json()) as { pid: number }).pid;
}

describe('instances + proxy', () => {
  let cluster: Instance[] = [];
  let proxy: Proxy;

  before(async () => {
    cluster = await startCluster(3, { entry: ECHO });
    proxy = await startProxy(cluster.map((i) => i.url));
  });
  after(async () => {
    await proxy?.close();
    await Promise.all(cluster.map((i) => i.stop()));
  });

  it('starts separate processes that answer on their own port', async () => {
    assert.equal(new Set(cluster.map((i) => i.pid)).size, 3);
    for (const i of cluster) {
      assert.equal(await whoami(i.url), i.pid);
      assert.match(i.output(), new RegExp(`listening on ${i.port}`));
    }
    assert.deepEqual(
      cluster.map((i) => i.name),
      ['echo-instance-0', 'echo-instance-1', 'echo-instance-2'],
    );
  });

  it('rotates per request even when the client keeps the connection alive', async () => {
    proxy.resetCounters();
    const before = proxy.connections;
    const pids: number[] = [];
    for (let i = 0; i < 6; i++) pids.push(await whoami(proxy.url));
    const [a, b, c] = cluster.map((i) => i.pid);
    assert.deepEqual(pids, [a, b, c, a, b, c]);
    assert.ok(proxy.connections - before < 6, 'fetch reused its connection to the proxy');
    for (const i of cluster) assert.equal(proxy.requests.get(i.url), 2);
  });

  it('keeps method, path, query, body and end-to-end headers; drops hop-by-hop ones', async () => {
    let seen: { method?: string; url?: string; headers?: IncomingMessage['headers']; body?: string } = {};
    const upstream = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (body += c));
      req.on('end', () => {
        seen = { method: req.method, url: req.url, headers: req.headers, body };
        res.writeHead(201, { 'mcp-session-id': 'sess-2', connection: 'close' }).end('done');
      });
    });
    const p = await startProxy([await listen(upstream)]);
    try {
      const res = await new Promise<IncomingMessage>((resolve, reject) => {
        const req = httpRequest(`${p.url}/mcp?x=1&y=2`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            authorization: 'Bearer tok',
            'mcp-session-id': 'sess-1',
            'last-event-id': 'ev-42',
            connection: 'keep-alive, x-hop',
            'x-hop': 'secret',
            'keep-alive': 'timeout=5',
          },
        });
        req.on('response', resolve).on('error', reject);
        req.end('{"jsonrpc":"2.0"}');
      });
      res.resume();
      await once(res, 'end');
      assert.equal(res.statusCode, 201);
      assert.equal(res.headers['mcp-session-id'], 'sess-2');
      assert.equal(res.headers.connection, 'keep-alive', 'upstream Connection: close is not passed on');
      assert.equal(seen.method, 'POST');
      assert.equal(seen.url, '/mcp?x=1&y=2');
      assert.equal(seen.body, '{"jsonrpc":"2.0"}');
      assert.equal(seen.headers?.authorization, 'Bearer tok');
      assert.equal(seen.headers?.['mcp-session-id'], 'sess-1');
      assert.equal(seen.headers?.['last-event-id'], 'ev-42');
      assert.equal(seen.headers?.['content-type'], 'application/json');
      assert.equal(seen.headers?.['x-hop'], undefined);
      assert.equal(seen.headers?.['keep-alive'], undefined);
      assert.equal(seen.headers?.host, new URL(p.url).host);
    } finally {
      await p.close();
      await closeServer(upstream);
    }
  });

  it('skips a killed target, and answers 502 when no target is up', async () => {
    const victim = cluster[1]!;
    const exit = await victim.kill();
    assert.equal(exit.signal, 'SIGKILL');
    assert.equal(victim.running, false);
    proxy.resetCounters();
    const pids: number[] = [];
    for (let i = 0; i < 6; i++) pids.push(await whoami(proxy.url));
    assert.ok(!pids.includes(victim.pid));
    assert.deepEqual(new Set(pids), new Set([cluster[0]!.pid, cluster[2]!.pid]));
    assert.equal(proxy.requests.get(victim.url), 0);
    assert.ok((proxy.failures.get(victim.url) ?? 0) >= 1);

    const dead = await startProxy([`http://127.0.0.1:${await freePort()}`, victim.url]);
    try {
      const res = await fetch(`${dead.url}/whoami`, { method: 'POST', body: '{}' });
      assert.equal(res.status, 502);
      assert.match(await res.text(), /ECONNREFUSED/);
    } finally {
      await dead.close();
    }
  });

  it('stop() ends an instance with SIGTERM', async () => {
    const i = cluster[2]!;
    const exit = await i.stop();
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.match(i.output(), /got SIGTERM/);
  });
});

describe('instances: failures', () => {
  it('rejects with the output when the process exits before /livez answers', async () => {
    await assert.rejects(
      startInstance({ entry: 'test/fixtures/does-not-exist.ts', name: 'ghost' }),
      (err: Error) => {
        assert.match(err.message, /instance ghost .* exited with code 1 before \/livez answered/);
        assert.match(err.message, /does-not-exist/);
        return true;
      },
    );
  });
});

describe('proxy streaming', () => {
  it('streams SSE event by event', async () => {
    let secondSentAt = 0;
    const upstream = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write('id: 1\ndata: first\n\n');
      setTimeout(() => {
        secondSentAt = Date.now();
        res.end('id: 2\ndata: second\n\n');
      }, 300);
    });
    const p = await startProxy([await listen(upstream)]);
    try {
      const res = await fetch(`${p.url}/mcp`, { headers: { accept: 'text/event-stream' } });
      assert.equal(res.headers.get('content-type'), 'text/event-stream');
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      const first = await reader.read();
      const firstAt = Date.now();
      assert.equal(first.value, 'id: 1\ndata: first\n\n');
      assert.equal(secondSentAt, 0, 'first event arrived before the second was sent');
      let rest = '';
      for (let r = await reader.read(); !r.done; r = await reader.read()) rest += r.value;
      assert.equal(rest, 'id: 2\ndata: second\n\n');
      assert.ok(secondSentAt >= firstAt);
    } finally {
      await p.close();
      await closeServer(upstream);
    }
  });

  it('aborts the upstream request when the client goes away', async () => {
    let upstreamClosed!: () => void;
    const closed = new Promise<void>((r) => (upstreamClosed = r));
    const upstream = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: hello\n\n');
      req.socket.once('close', () => upstreamClosed());
    });
    const p = await startProxy([await listen(upstream)]);
    try {
      const ac = new AbortController();
      const res = await fetch(`${p.url}/mcp`, { signal: ac.signal });
      const reader = res.body!.getReader();
      await reader.read();
      ac.abort();
      await Promise.race([
        closed,
        new Promise((_, reject) => setTimeout(() => reject(new Error('upstream was not aborted')), 3000)),
      ]);
    } finally {
      await p.close();
      await closeServer(upstream);
    }
  });

  it('drops the client connection when the upstream dies mid-response', async () => {
    const upstream = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: partial\n\n');
      setTimeout(() => req.socket.destroy(), 50);
    });
    const p = await startProxy([await listen(upstream)]);
    try {
      const res = await fetch(`${p.url}/mcp`);
      assert.equal(res.status, 200);
      await assert.rejects(res.text());
    } finally {
      await p.close();
      await closeServer(upstream);
    }
  });
});

describe('TestRedis', () => {
  it('can be killed and restarted; a client reconnects', async () => {
    const redis = await TestRedis.start();
    const client = redis.client();
    client.on('error', () => {}); // connection errors while the server is down are expected
    try {
      await client.set('k', 'v');
      assert.equal(await client.ping(), 'PONG');
      await redis.kill();
      await assert.rejects(client.ping());
      await redis.restart();
      const deadline = Date.now() + 5000;
      for (;;) {
        try {
          assert.equal(await client.ping(), 'PONG');
          break;
        } catch (err) {
          if (Date.now() > deadline) throw err;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      assert.equal(await client.get('k'), null, 'restarted empty');
    } finally {
      client.disconnect();
      await redis.stop();
    }
  });
});

describe('startPostgres', () => {
  it('starts a server that answers select 1, and stops it', async () => {
    const db = await startPostgres();
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      const r = await c.query<{ one: number }>('select 1 as one');
      assert.equal(r.rows[0]?.one, 1);
    } finally {
      await c.end();
    }
    await db.stop();
    const after = new pg.Client({ connectionString: db.url, connectionTimeoutMillis: 2000 });
    after.on('error', () => {});
    await assert.rejects(after.connect());
    await db.stop(); // idempotent
  });
});
