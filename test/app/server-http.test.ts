import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import {
  Client as V2Client,
  StreamableHTTPClientTransport as V2Transport,
} from '@modelcontextprotocol/client';
import { signToken } from '../../app/auth.js';
import { parseConfig } from '../../app/config.js';
import { start, type RunningServer } from '../../app/main.js';
import { TestRedis } from '../helpers/redis-server.js';
import { TestRedisCluster } from '../helpers/redis-topologies.js';
import { silent, text } from './support/mcp.js';

const SECRET = 'http-test-secret-'.padEnd(48, 'z');
const INIT = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
};

function config(env: Record<string, string> = {}) {
  return parseConfig({ MCP_SERVER_PORT: '0', LOG_LEVEL: 'silent', ...env });
}

async function client(url: string, opts: { token?: string; sessionId?: string } = {}): Promise<Client> {
  const c = new Client({ name: 'http-test', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(`${url}/mcp`), {
    ...(opts.sessionId === undefined ? {} : { sessionId: opts.sessionId }),
    requestInit: opts.token === undefined ? {} : { headers: { authorization: `Bearer ${opts.token}` } },
  });
  await c.connect(transport);
  return c;
}

async function callTool(
  c: Client,
  name: string,
  args: Record<string, unknown> = {},
): Promise<CallToolResult> {
  const result = (await c.callTool({ name, arguments: args })) as CallToolResult;
  assert.equal(result.isError, undefined, `${name}: ${text(result)}`);
  return result;
}

/** A raw HTTP request (fetch cannot set Host). */
function raw(
  url: string,
  path: string,
  opts: { method?: string; headers?: Record<string, string>; body?: unknown } = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const u = new URL(url);
  const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: u.hostname,
        port: u.port,
        path,
        method: opts.method ?? 'GET',
        agent: false,
        headers: {
          ...(body === undefined
            ? {}
            : { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }),
          ...opts.headers,
        },
      },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (data += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: data }));
        // An SSE answer stays open: the first event is enough.
        res.on('data', () => {
          if (String(res.headers['content-type']).startsWith('text/event-stream') && data.includes('\n\n')) {
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: data });
            req.destroy();
          }
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('reference server over HTTP (in-memory sessions, anonymous)', () => {
  let server: RunningServer;
  before(async () => {
    server = await start(config({ INSTANCE_ID: 'http-test-a' }), { logger: silent });
  });
  after(() => server.close());

  it('answers the probes', async () => {
    assert.deepEqual(await (await fetch(`${server.url}/livez`)).json(), { status: 'ok' });
    const ready = await fetch(`${server.url}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { status: 'ready' });
    assert.equal((await fetch(`${server.url}/readyz`, { method: 'POST' })).status, 405);
    assert.equal((await fetch(`${server.url}/nope`)).status, 404);
  });

  it('serves Prometheus metrics: process and fleet', async () => {
    assert.equal((await raw(server.url, '/mcp', { method: 'POST', body: INIT })).status, 200);
    const res = await fetch(`${server.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    const body = await res.text();
    assert.match(body, /^mcp_fleet_http_requests_total\{method="POST",path_kind="mcp",status="200"\} \d+$/m);
    assert.match(body, /^process_cpu_user_seconds_total /m);
  });

  it('serves every tool over Streamable HTTP', async () => {
    const c = await client(server.url);
    try {
      const { tools } = await c.listTools();
      assert.equal(tools.length, 12);
      assert.deepEqual((await callTool(c, 'calculator_power', { a: 3, b: 2 })).structuredContent, {
        result: 9,
      });
      await callTool(c, 'calculator_memory_store', { value: 11 });
      assert.deepEqual((await callTool(c, 'calculator_memory_recall')).structuredContent, { memory: 11 });
      const employees = await callTool(c, 'postgres_query_employees', { department: 'Sales', limit: 2 });
      assert.equal((employees.structuredContent as { total: number }).total, 4);
      const health = (await callTool(c, 'health_check')).structuredContent as {
        status: string;
        server_id: string;
        unified_session_info: { redis_connection: string; application_sessions: { count: number } };
      };
      assert.equal(health.status, 'healthy');
      assert.equal(health.server_id, 'http-test-a');
      assert.equal(health.unified_session_info.redis_connection, 'disabled');
      assert.ok(health.unified_session_info.application_sessions.count >= 1);
      const divide = (await c.callTool({
        name: 'calculator_divide',
        arguments: { a: 1, b: 0 },
      })) as CallToolResult;
      assert.equal(divide.isError, true);
    } finally {
      await c.close();
    }
  });

  it('serves 2026-07-28 clients too (no session: the memory register says why it cannot work)', async () => {
    const c = new V2Client({ name: 'modern', version: '1.0.0' }, { versionNegotiation: { mode: 'auto' } });
    await c.connect(new V2Transport(new URL(`${server.url}/mcp`)));
    try {
      assert.equal(c.getNegotiatedProtocolVersion(), '2026-07-28');
      const { tools } = await c.listTools();
      assert.equal(tools.length, 12);
      const power = await c.callTool({ name: 'calculator_power', arguments: { a: 2, b: 5 } });
      assert.deepEqual(power.structuredContent, { result: 32 });
      const memory = await c.callTool({ name: 'calculator_memory_store', arguments: { value: 1 } });
      assert.equal(memory.isError, true);
      assert.match(JSON.stringify(memory.content), /needs a session/);
      const employees = await c.callTool({
        name: 'postgres_query_employees',
        arguments: { department: 'Sales', limit: 2 },
      });
      assert.equal((employees.structuredContent as { total: number }).total, 4);
    } finally {
      await c.close();
    }
  });

  it('serves the legacy HTTP+SSE transport', async () => {
    const c = new Client({ name: 'sse-test', version: '1.0.0' });
    await c.connect(new SSEClientTransport(new URL(`${server.url}/sse`)));
    try {
      assert.deepEqual((await callTool(c, 'calculator_add', { a: 1, b: 2 })).structuredContent, {
        result: 3,
      });
    } finally {
      await c.close();
    }
  });

  it('rejects foreign Host and Origin headers on loopback (DNS rebinding)', async () => {
    const evilHost = await raw(server.url, '/mcp', {
      method: 'POST',
      body: INIT,
      headers: { host: 'evil.example' },
    });
    assert.equal(evilHost.status, 403);
    const evilOrigin = await raw(server.url, '/mcp', {
      method: 'POST',
      body: INIT,
      headers: { origin: 'http://evil.example' },
    });
    assert.equal(evilOrigin.status, 403);
    const port = new URL(server.url).port;
    const good = await raw(server.url, '/mcp', {
      method: 'POST',
      body: INIT,
      headers: { host: `localhost:${port}`, origin: `http://localhost:${port}` },
    });
    assert.equal(good.status, 200);
  });
});

describe('reference server with JWT auth', () => {
  let server: RunningServer;
  before(async () => {
    server = await start(
      config({ JWT_SECRET_KEY: SECRET, ENVIRONMENT: 'production', SINGLE_INSTANCE: 'true' }),
      { logger: silent },
    );
  });
  after(() => server.close());

  it('answers 401 with a challenge without a token or with a bad one', async () => {
    const none = await raw(server.url, '/mcp', { method: 'POST', body: INIT });
    assert.equal(none.status, 401);
    assert.equal(none.headers['www-authenticate'], 'Bearer realm="mcp"');
    const forged = await signToken({ secret: 'f'.repeat(40), algorithm: 'HS256' }, { sub: 'alice' });
    const bad = await raw(server.url, '/mcp', {
      method: 'POST',
      body: INIT,
      headers: { authorization: `Bearer ${forged}` },
    });
    assert.equal(bad.status, 401);
    assert.equal(bad.headers['www-authenticate'], 'Bearer realm="mcp", error="invalid_token"');
    // Probes need no token.
    assert.equal((await fetch(`${server.url}/livez`)).status, 200);
  });

  it('serves a valid token and binds the session to its subject', async () => {
    const alice = await signToken({ secret: SECRET, algorithm: 'HS256' }, { sub: 'alice' });
    const bob = await signToken({ secret: SECRET, algorithm: 'HS256' }, { sub: 'bob' });
    const c = await client(server.url, { token: alice });
    try {
      await callTool(c, 'calculator_memory_store', { value: 1 });
      const sessionId = (c.transport as StreamableHTTPClientTransport).sessionId;
      assert.ok(sessionId);
      const stolen = await raw(server.url, '/mcp', {
        method: 'POST',
        body: { jsonrpc: '2.0', id: 2, method: 'tools/list' },
        headers: {
          authorization: `Bearer ${bob}`,
          'mcp-session-id': sessionId,
          'mcp-protocol-version': '2025-06-18',
        },
      });
      assert.equal(stolen.status, 404);
    } finally {
      await c.close();
    }
  });
});

describe('reference server instances sharing Redis', () => {
  let redis: TestRedis;
  let a: RunningServer;
  let b: RunningServer;
  before(async () => {
    redis = await TestRedis.start();
    [a, b] = await Promise.all([
      start(config({ REDIS_URL: redis.url, INSTANCE_ID: 'redis-a' }), { logger: silent }),
      start(config({ REDIS_URL: redis.url, INSTANCE_ID: 'redis-b' }), { logger: silent }),
    ]);
  });
  after(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await redis?.stop();
  });

  it('continues a session on another instance with the same calculator memory', async () => {
    const onA = await client(a.url);
    const sessionId = (onA.transport as StreamableHTTPClientTransport).sessionId;
    assert.ok(sessionId);
    await callTool(onA, 'calculator_memory_store', { value: 99 });
    const onB = await client(b.url, { sessionId });
    try {
      assert.deepEqual((await callTool(onB, 'calculator_memory_recall')).structuredContent, { memory: 99 });
      const health = (await callTool(onB, 'health_check')).structuredContent as {
        server_id: string;
        unified_session_info: { redis_connection: string };
      };
      // B hands the call to the session's one copy, on A (the instance that initialized it).
      assert.equal(health.server_id, 'redis-a');
      assert.equal(health.unified_session_info.redis_connection, 'ok');
    } finally {
      await onB.close();
      await onA.close();
    }
  });

  it('is not ready while Redis is down, and ready again after', async () => {
    await redis.kill();
    try {
      const deadline = Date.now() + 10_000;
      let status = 0;
      while (Date.now() < deadline && (status = (await fetch(`${a.url}/readyz`)).status) !== 503) {
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(status, 503);
      assert.equal((await fetch(`${a.url}/livez`)).status, 200);
    } finally {
      await redis.restart();
    }
    const deadline = Date.now() + 15_000;
    let status = 0;
    while (Date.now() < deadline && (status = (await fetch(`${a.url}/readyz`)).status) !== 200) {
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(status, 200);
  });
});

describe('reference server instances on a Redis Cluster (REDIS_CLUSTER_NODES)', () => {
  let cluster: TestRedisCluster;
  let a: RunningServer;
  let b: RunningServer;
  before(async () => {
    cluster = await TestRedisCluster.start();
    const nodes = cluster.seeds.map((n) => `${n.host}:${n.port}`).join(',');
    [a, b] = await Promise.all([
      start(config({ REDIS_CLUSTER_NODES: nodes, INSTANCE_ID: 'cluster-a' }), { logger: silent }),
      start(config({ REDIS_CLUSTER_NODES: nodes, INSTANCE_ID: 'cluster-b' }), { logger: silent }),
    ]);
  });
  after(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await cluster?.stop();
  });

  it('continues a session on another instance, health check reports Redis ok', async () => {
    const onA = await client(a.url);
    const sessionId = (onA.transport as StreamableHTTPClientTransport).sessionId;
    assert.ok(sessionId);
    await callTool(onA, 'calculator_memory_store', { value: 7 });
    const onB = await client(b.url, { sessionId });
    try {
      assert.deepEqual((await callTool(onB, 'calculator_memory_recall')).structuredContent, { memory: 7 });
      const health = (await callTool(onB, 'health_check')).structuredContent as {
        server_id: string;
        unified_session_info: { redis_connection: string };
      };
      assert.equal(health.server_id, 'cluster-a');
      assert.equal(health.unified_session_info.redis_connection, 'ok');
      assert.equal((await fetch(`${b.url}/readyz`)).status, 200);
    } finally {
      await onB.close();
      await onA.close();
    }
  });
});

describe('shutdown', () => {
  it('fails readiness, closes the listener, and is idempotent', async () => {
    const server = await start(config(), { logger: silent });
    const c = await client(server.url);
    await callTool(c, 'calculator_add', { a: 1, b: 1 });
    await Promise.all([server.close(), server.close()]);
    await assert.rejects(fetch(`${server.url}/livez`));
    await c.close().catch(() => undefined); // the server is gone; closing may fail
  });
});
