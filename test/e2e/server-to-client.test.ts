// Server-to-client traffic and resumable streams across 3 instances (separate processes) behind a
// round-robin proxy that sends every request to the next instance; real Redis; the SDK client.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  LoggingMessageNotificationSchema,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { Redis } from 'ioredis';
import { startCluster, type Instance } from '../helpers/instances.js';
import { connectClient, initBody, rawPost, textOf } from '../helpers/mcp-client.js';
import { startProxy, type Proxy } from '../helpers/proxy.js';
import { RedisKeys } from '../../src/redis/keys.js';
import { TestRedis } from '../helpers/redis-server.js';
import { SseReader } from '../helpers/sse-reader.js';

const ENTRY = 'test/fixtures/demo-instance.ts';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** A client with sampling, elicitation and roots handlers that logs what it received. */
async function interactiveClient(url: string) {
  const { client, transport } = await connectClient(url, {
    name: 'interactive',
    capabilities: { sampling: {}, elicitation: {}, roots: { listChanged: true } },
  });
  const logs: number[] = [];
  let listChanged = 0;
  client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
    const first = req.params.messages[0]?.content as { type?: string; text?: string } | undefined;
    const q = first?.type === 'text' ? (first.text ?? '') : '';
    return { role: 'assistant', model: 'test-model', content: { type: 'text', text: `answer to ${q}` } };
  });
  client.setRequestHandler(ElicitRequestSchema, async () => ({ action: 'accept', content: { ok: true } }));
  client.setRequestHandler(ListRootsRequestSchema, async () => ({
    roots: [{ uri: 'file:///work', name: 'work' }],
  }));
  client.setNotificationHandler(LoggingMessageNotificationSchema, async (n) => {
    const data = n.params.data as { n?: number };
    if (typeof data?.n === 'number') logs.push(data.n);
  });
  client.setNotificationHandler(ToolListChangedNotificationSchema, async () => {
    listChanged++;
  });
  return { client, transport, logs, listChanged: () => listChanged };
}

async function readData(client: Client): Promise<Record<string, unknown>> {
  return (JSON.parse(textOf(await client.callTool({ name: 'read_data', arguments: {} }))) ?? {}) as Record<
    string,
    unknown
  >;
}

describe('server-to-client traffic across 3 instances', () => {
  let redis: TestRedis;
  let admin: Redis;
  let instances: Instance[];
  let proxy: Proxy;
  let prefix: string;

  before(async () => {
    redis = await TestRedis.start();
    admin = redis.client();
    prefix = TestRedis.prefix();
    instances = await startCluster(3, {
      entry: ENTRY,
      env: { REDIS_URL: redis.url, KEY_PREFIX: prefix },
      name: 's2c',
    });
    proxy = await startProxy(instances.map((i) => i.url));
  });

  after(async () => {
    await proxy?.close();
    await Promise.all((instances ?? []).map((i) => i.kill()));
    admin?.disconnect();
    await redis?.stop();
  });

  /** The instance id holding a session's stream, from the transport session record. */
  async function holderOf(sessionId: string, streamId = 'standalone'): Promise<string | undefined> {
    const v = await admin.hget(new RedisKeys(prefix).holder(sessionId, streamId), 'instanceId');
    return v ?? undefined;
  }

  async function waitForStandalone(t: StreamableHTTPClientTransport): Promise<string> {
    return until('the GET stream', () => holderOf(t.sessionId!));
  }

  it('sampling and elicitation from a tool: the answer reaches the waiting instance from any other', async () => {
    const { client, transport } = await interactiveClient(proxy.url);
    proxy.resetCounters();
    const servedBy = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const r = textOf(await client.callTool({ name: 'ask_llm', arguments: { question: `q${i}` } }));
      const [inst, answer] = r.split(': ');
      servedBy.add(inst!);
      assert.equal(answer, `answer to q${i}`);
      const e = JSON.parse(
        textOf(await client.callTool({ name: 'ask_user', arguments: { question: 'sure?' } })),
      );
      assert.deepEqual(e, { action: 'accept', content: { ok: true } });
    }
    assert.equal(servedBy.size, 1, 'every tool ran on the one copy of the session');
    // The calls and the client's answers were POSTed to every instance, and forwarded.
    const targets = new Set(proxy.log.filter((e) => e.method === 'POST').map((e) => e.target));
    assert.equal(targets.size, 3, 'POSTs landed on all three instances');
    await transport.terminateSession();
    await client.close();
  });

  it('roots/list and ping outside any request, sent from one instance over the GET stream held by another', async () => {
    const { client, transport } = await interactiveClient(proxy.url);
    await waitForStandalone(transport);
    for (let i = 0; i < 3; i++) {
      await client.callTool({ name: 'later', arguments: { key: `k${i}` } });
    }
    const data = await until('out-of-request answers', async () => {
      const d = await readData(client);
      return ['k0', 'k1', 'k2'].every((k) => k in d) ? d : undefined;
    });
    for (const k of ['k0', 'k1', 'k2']) {
      assert.deepEqual((data[k] as { roots: string[] }).roots, ['file:///work'], JSON.stringify(data[k]));
      assert.equal((data[k] as { pinged: boolean }).pinged, true);
    }
    await transport.terminateSession();
    await client.close();
  });

  it('notifications of the one copy reach the GET stream wherever it is held, in order, none lost', async () => {
    const { client, transport, logs, listChanged } = await interactiveClient(proxy.url);
    const holder = await waitForStandalone(transport);
    const senders = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const r = textOf(await client.callTool({ name: 'notify', arguments: { from: i * 5 + 1, count: 5 } }));
      senders.add(r.split(' ')[0]!);
    }
    await until('30 log notifications', async () => (logs.length >= 30 ? true : undefined));
    assert.deepEqual(
      logs,
      Array.from({ length: 30 }, (_, i) => i + 1),
    );
    assert.equal(senders.size, 1, 'the one copy sent every notification');
    assert.ok(holder);
    await until('list_changed', async () => (listChanged() >= 6 ? true : undefined));
    await transport.terminateSession();
    await client.close();
  });

  it('logging/setLevel applies on every instance', async () => {
    const { client, transport, logs } = await interactiveClient(proxy.url);
    await waitForStandalone(transport);
    await client.setLoggingLevel('error'); // info messages are now filtered on every instance
    for (let i = 0; i < 3; i++)
      await client.callTool({ name: 'notify', arguments: { from: 100 + i, count: 1 } });
    await client.setLoggingLevel('debug');
    for (let i = 0; i < 3; i++)
      await client.callTool({ name: 'notify', arguments: { from: 200 + i, count: 1 } });
    // A last one, after which nothing sent before it can still arrive (one stream, in order).
    await client.callTool({ name: 'notify', arguments: { from: 299, count: 1 } });
    await until('the last log notification', async () => (logs.includes(299) ? true : undefined));
    assert.deepEqual(logs, [200, 201, 202, 299]);
    await transport.terminateSession();
    await client.close();
  });

  it('notifications/cancelled arriving at another instance aborts the handler where it runs', async () => {
    const { client, transport } = await interactiveClient(proxy.url);
    const ac = new AbortController();
    const call = client
      .callTool({ name: 'wait_for_cancel', arguments: { key: 'c1' } }, undefined, { signal: ac.signal })
      .catch((e: unknown) => e);
    const started = await until('the handler to start', async () => {
      const d = await readData(client);
      return (d.c1 as { started?: string } | undefined)?.started;
    });
    ac.abort('changed my mind');
    assert.ok((await call) instanceof Error);
    const done = await until('the abort to be recorded', async () => {
      const d = await readData(client);
      const c1 = d.c1 as { aborted?: boolean; on?: string } | undefined;
      return c1?.aborted !== undefined ? c1 : undefined;
    });
    assert.equal(done.aborted, true);
    assert.equal(done.on, started);
    await transport.terminateSession();
    await client.close();
  });

  it('a POST stream resumed elsewhere, then its holder killed: every event exactly once, then the final response', async () => {
    // Direct requests, so the roles are known: A owns the session and runs the tool, B gets the
    // POST (forwarding it), C holds the resumed stream and is killed, B resumes it again.
    const [a, b, c] = instances.filter((i) => i.running);
    assert.ok(a && b && c);
    const init = await rawPost(`${a.url}/mcp`, initBody());
    const sid = init.headers.get('mcp-session-id')!;
    const h = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
    await rawPost(`${b.url}/mcp`, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }), h);
    const res = await fetch(`${b.url}/mcp`, {
      method: 'POST',
      headers: { ...h, accept: 'application/json, text/event-stream', 'content-type': 'application/json' },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 'long-1',
        method: 'tools/call',
        params: { name: 'ticks', arguments: { count: 12, gapMs: 150 } },
      }),
    });
    const ticks: number[] = [];
    let lastId: string | undefined;
    let final: unknown;
    const consume = async (reader: SseReader, max: number) => {
      for (let n = 0; n < max; n++) {
        const ev = await reader.next();
        if (!ev) return;
        if (ev.id) lastId = ev.id;
        if (!ev.data) continue; // priming event
        const msg = JSON.parse(ev.data);
        if (msg.method === 'notifications/message') ticks.push(msg.params.data.tick);
        else if (msg.id === 'long-1') final = msg;
      }
    };
    const first = new SseReader(res);
    await consume(first, 4); // priming + 3 ticks
    await first.cancel(); // the client loses the connection; the tool keeps running on the owner

    const resume = async (on: Instance) =>
      fetch(`${on.url}/mcp`, { headers: { ...h, accept: 'text/event-stream', 'last-event-id': lastId! } });
    const second = await resume(c);
    assert.equal(second.status, 200);
    const r2 = new SseReader(second);
    await consume(r2, 3);
    // Kill the instance now holding the resumed stream (it is not the one running the tool).
    await c.kill('SIGKILL');
    await consume(r2, 100); // drains what was buffered; ends when the connection is cut

    const third = await resume(b);
    assert.equal(
      third.status,
      200,
      await third
        .clone()
        .text()
        .catch(() => ''),
    );
    await consume(new SseReader(third), 100);
    assert.deepEqual(
      ticks,
      Array.from({ length: 12 }, (_, i) => i + 1),
    );
    assert.match(JSON.stringify(final), /ticked 12/);
  });

  it('the GET stream holder is killed mid-way: the client resumes through the proxy, nothing lost or repeated', async () => {
    const alive = instances.filter((i) => i.running);
    assert.ok(alive.length >= 2);
    proxy.setTargets(alive.map((i) => i.url));
    const { client, transport, logs } = await interactiveClient(proxy.url);
    const holder = await waitForStandalone(transport);
    for (let i = 0; i < 4; i++)
      await client.callTool({ name: 'notify', arguments: { from: i * 5 + 1, count: 5 } });
    await until('first 20', async () => (logs.length >= 20 ? true : undefined));
    const victim = alive.find((i) => new RegExp(`-${i.pid}-[0-9a-f]{6}$`).test(holder));
    assert.ok(victim, `holder ${holder} among ${alive.map((i) => i.pid).join(',')}`);
    await victim.kill('SIGKILL');
    for (let i = 4; i < 8; i++)
      await client.callTool({ name: 'notify', arguments: { from: i * 5 + 1, count: 5 } });
    await until('all 40 after the reconnect', async () => (logs.length >= 40 ? true : undefined), 15_000);
    // A last one, after which a repeat of anything sent before it can no longer arrive.
    await client.callTool({ name: 'notify', arguments: { from: 41, count: 1 } });
    await until('the last one', async () => (logs.includes(41) ? true : undefined));
    assert.deepEqual(
      logs,
      Array.from({ length: 41 }, (_, i) => i + 1),
    );
    await client.close();
  });
});
