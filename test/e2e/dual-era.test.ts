// Both protocol eras on one deployment: an SDK v2 server on 3 instances (separate processes, real
// Redis, the round-robin proxy sends every request to the next instance), the SDK v2 client in
// `legacy` mode (2025: initialize, one live copy per session, the SDK's input_required shim turning
// into a real elicitation/create) and in `auto` mode (2026-07-28: server/discover, a server per
// request on any instance, input_required round trips, subscriptions/listen fed by the fleet's
// event bus), and a v1-server fleet that a modern client falls back from.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { Registry } from 'prom-client';
import * as z from 'zod';
import { createFleet, type Fleet } from '../../src/index.js';
import { buildDemoServer } from '../fixtures/demo-server.js';
import { startInstance, type Instance } from '../helpers/instances.js';
import { startProxy, type Proxy } from '../helpers/proxy.js';
import { TestRedis } from '../helpers/redis-server.js';
import { waitFor } from '../helpers/wait.js';

const REQUEST = { timeout: 15_000 };
/** The HTTP headers of a 2026-07-28 `server/discover` (as the v2 client's probe sends them). */
const DISCOVER_HEADERS = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': '2026-07-28',
  'mcp-method': 'server/discover',
};

function textOf(result: unknown): string {
  const content = (result as { content: Array<{ type: string; text?: string }> }).content;
  return content.map((c) => c.text ?? '').join('');
}

/** A v2 client that answers elicitations with `name`, counting the notifications it gets. */
function v2Client(mode: 'legacy' | 'auto', name = 'ann') {
  const client = new Client(
    { name: `dual-era-${mode}`, version: '1.0.0' },
    { versionNegotiation: { mode }, capabilities: { elicitation: {} } },
  );
  client.setRequestHandler('elicitation/create', () => ({ action: 'accept', content: { name } }));
  const seen: string[] = [];
  client.setNotificationHandler('notifications/tools/list_changed', () => void seen.push('tools'));
  client.setNotificationHandler(
    'notifications/resources/updated',
    (n) => void seen.push(`updated ${String(n.params.uri)}`),
  );
  return { client, seen };
}

/** A JSON-RPC answer as a 2026-07-28 client reads it (JSON or the SSE stream's answer event). */
interface Answer {
  result?: Record<string, unknown>;
  error?: { code: number; message: string };
}

/** One 2026-07-28 `tools/call` by hand (headers and `_meta` envelope as the v2 client sends them). */
async function modernCall(base: string, name: string, extra: Record<string, unknown>): Promise<Answer> {
  const res = await fetch(`${base}/mcp`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': 'tools/call',
      'mcp-name': name,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 7,
      method: 'tools/call',
      params: {
        name,
        arguments: {},
        ...extra,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': '2026-07-28',
          'io.modelcontextprotocol/clientCapabilities': { elicitation: {} },
          'io.modelcontextprotocol/clientInfo': { name: 'by-hand', version: '1.0.0' },
        },
      },
    }),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  if (!(res.headers.get('content-type') ?? '').includes('text/event-stream'))
    return JSON.parse(text) as Answer;
  const answers = text
    .split('\n')
    .filter((l) => l.startsWith('data:'))
    .map((l) => JSON.parse(l.slice(5)) as Answer & { id?: unknown })
    .filter((m) => m.id === 7);
  assert.equal(answers.length, 1, text);
  return answers[0]!;
}

/** The same state with its MAC replaced (what a client without the key could send). */
function forge(state: string): string {
  const dot = state.lastIndexOf('.');
  return `${state.slice(0, dot + 1)}${Buffer.alloc(32, 7).toString('base64url')}`;
}

describe('both eras, SDK v2 server on 3 instances', () => {
  let redis: TestRedis;
  let instances: Instance[] = [];
  let proxy: Proxy;
  const clients: Client[] = [];

  const connect = async (mode: 'legacy' | 'auto', url: string, name?: string) => {
    const c = v2Client(mode, name);
    await c.client.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp`)));
    clients.push(c.client);
    return c;
  };

  before(async () => {
    redis = await TestRedis.start();
    const env = {
      REDIS_URL: redis.url,
      KEY_PREFIX: `dual-${randomUUID().slice(0, 8)}:`,
      // One key ring for the fleet, single-use states.
      REQUEST_STATE_KEY: `dual-era-request-state-key-${randomUUID()}`,
      REQUEST_STATE_SINGLE_USE: '1',
    };
    instances = await Promise.all(
      [0, 1, 2].map((i) =>
        startInstance({
          entry: 'test/fixtures/v2-instance.ts',
          name: `v2-${i}`,
          env: { ...env, INSTANCE_ID: `v2-${i}` },
        }),
      ),
    );
    proxy = await startProxy(instances.map((i) => i.url));
  });

  after(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await proxy?.close();
    await Promise.allSettled(instances.map((i) => i.stop()));
    await redis?.stop();
  });

  it('2025 era: one live copy serves the session wherever its requests land; the input_required shim asks the client', async () => {
    const { client } = await connect('legacy', proxy.url);
    assert.equal(client.getNegotiatedProtocolVersion(), '2025-11-25');
    const owners = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const text = textOf(await client.callTool({ name: 'echo', arguments: { text: `n${i}` } }, REQUEST));
      const [instance, era, echoed] = text.split(' ');
      assert.equal(era, 'legacy');
      assert.equal(echoed, `n${i}`);
      owners.add(instance!);
    }
    assert.equal(owners.size, 1, 'every call of the session ran on its one owner');
    const greeting = textOf(await client.callTool({ name: 'greet', arguments: {} }, REQUEST));
    const owner = [...owners][0];
    assert.equal(greeting, `hello ann (asked on ${owner}, answered on ${owner})`);
  });

  it('2026-07-28: server/discover, a server per request on any instance, an input_required retry on another instance', async () => {
    const { client } = await connect('auto', proxy.url, 'bo');
    assert.equal(client.getNegotiatedProtocolVersion(), '2026-07-28');
    const ran = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const [instance, era] = textOf(
        await client.callTool({ name: 'echo', arguments: { text: 'x' } }, REQUEST),
      ).split(' ');
      assert.equal(era, 'modern');
      ran.add(instance!);
    }
    assert.equal(ran.size, 3, 'stateless requests are served by every instance');
    const greeting = textOf(await client.callTool({ name: 'greet', arguments: {} }, REQUEST));
    const m = /^hello bo \(asked on (v2-\d), answered on (v2-\d)\)$/.exec(greeting);
    assert.ok(m, greeting);
    assert.notEqual(m[1], m[2], 'the retry (round 2) landed on another instance than round 1');
  });

  it('a single-use requestState minted on A is redeemed on B and rejected when replayed on C', async () => {
    const [a, b, c] = instances;
    const round1 = await modernCall(a!.url, 'greet', {});
    assert.equal(round1.result?.resultType, 'input_required', JSON.stringify(round1));
    const state = round1.result?.requestState as string;
    assert.match(state, /^v1\./, 'a sealed state, not the plain instance id');
    const retry = {
      inputResponses: { name: { action: 'accept', content: { name: 'zed' } } },
      requestState: state,
    };
    const round2 = await modernCall(b!.url, 'greet', retry);
    assert.equal(
      textOf(round2.result),
      'hello zed (asked on v2-0, answered on v2-1)',
      JSON.stringify(round2),
    );
    const replay = await modernCall(c!.url, 'greet', retry);
    assert.equal(replay.error?.code, -32602, JSON.stringify(replay));
    assert.match(replay.error?.message ?? '', /requestState/);
    // A state sealed with another key is refused too (the ring is the fleet's, not a process's).
    const forged = await modernCall(c!.url, 'greet', { ...retry, requestState: forge(state) });
    assert.equal(forged.error?.code, -32602, JSON.stringify(forged));
  });

  it('one publish reaches a listener on A (published on B, once) and a 2025 session, on whichever instance owns it', async () => {
    const [a, b] = instances;
    const listener = await connect('auto', a!.url);
    const sub = await listener.client.listen({
      toolsListChanged: true,
      resourceSubscriptions: ['memo://marker'],
    });
    assert.deepEqual(sub.honoredFilter, { toolsListChanged: true, resourceSubscriptions: ['memo://marker'] });
    const session = await connect('legacy', proxy.url);
    await session.client.subscribeResource({ uri: 'memo://marker' }, REQUEST);
    const publisher = await connect('auto', b!.url);
    assert.equal(
      textOf(await publisher.client.callTool({ name: 'change-tools', arguments: {} }, REQUEST)),
      'published',
    );
    // The marker, published after, arrives after the first event: then anything sent twice is in.
    await publisher.client.callTool({ name: 'touch', arguments: { uri: 'memo://marker' } }, REQUEST);
    for (const [who, c] of [
      ['listener on A', listener],
      ['2025 session', session],
    ] as const) {
      await waitFor(`${who} got the marker`, () => c.seen.includes('updated memo://marker'));
      assert.deepEqual(c.seen, ['tools', 'updated memo://marker'], `${who}: each event once, in order`);
    }
    await sub.close();
  });
});

describe('a fleet of v1 servers and a modern client', () => {
  let fleet: Fleet;
  let server: Server;
  let url: string;
  const registry = new Registry();

  before(async () => {
    fleet = createFleet({ server: (ctx) => buildDemoServer(ctx), metrics: registry });
    server = createServer(fleet.handler);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
  });
  after(async () => {
    await fleet?.close({ server });
  });

  const errorsByCode = async () => {
    const out: Record<string, number> = {};
    for (const line of (await registry.metrics()).split('\n')) {
      const m = /^mcp_fleet_errors_total\{code="([A-Z_]+)"\} (\d+)/.exec(line);
      if (m) out[m[1]!] = Number(m[2]);
    }
    return out;
  };

  it('answers a modern request with -32022 naming the 2025 revisions; the v2 client in auto mode falls back at once', async () => {
    const probe = await fetch(url, {
      method: 'POST',
      headers: DISCOVER_HEADERS,
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'server/discover',
        params: {
          _meta: {
            'io.modelcontextprotocol/protocolVersion': '2026-07-28',
            'io.modelcontextprotocol/clientCapabilities': {},
          },
        },
      }),
    });
    assert.equal(probe.status, 400);
    const body = (await probe.json()) as {
      error: { code: number; data: { supported: string[]; requested: string } };
    };
    assert.equal(body.error.code, -32022);
    assert.equal(body.error.data.requested, '2026-07-28');
    assert.ok(body.error.data.supported.includes('2025-11-25'));
    assert.ok(!body.error.data.supported.includes('2026-07-28'));

    const { client } = v2Client('auto');
    try {
      await client.connect(new StreamableHTTPClientTransport(new URL(url)));
      assert.equal(client.getNegotiatedProtocolVersion(), '2025-11-25');
      const tools = await client.listTools(undefined, REQUEST);
      assert.ok(tools.tools.some((t) => t.name === 'echo'));
    } finally {
      await client.close();
    }
    // A real error is counted (the registry works); the fallback answers are not.
    const missing = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
    });
    assert.equal(missing.status, 400);
    const errors = await errorsByCode();
    assert.equal(errors.SESSION_ID_REQUIRED, 1);
    assert.equal(errors.ERA_UNSUPPORTED, undefined, 'a fallback is not an error');
  });
});

describe('era routing edges (one embedded instance)', () => {
  // A server built with require(): an instance of the SDK's CommonJS classes, not of its ES module ones.
  const cjs = createRequire(import.meta.url)(
    '@modelcontextprotocol/server',
  ) as typeof import('@modelcontextprotocol/server');
  let fleet: Fleet;
  let server: Server;
  let url: string;

  before(async () => {
    fleet = createFleet({
      server: (ctx) => {
        const s = new cjs.McpServer({ name: 'cjs-built', version: '1.0.0' });
        s.registerTool('where', { description: 'era', inputSchema: z.object({}) }, () => ({
          content: [{ type: 'text', text: ctx.era }],
        }));
        return s;
      },
    });
    server = createServer(fleet.handler);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
  });
  after(async () => {
    await fleet?.close({ server });
  });

  it('serves a server built from the CommonJS build of the SDK in both eras', async () => {
    for (const mode of ['auto', 'legacy'] as const) {
      const { client } = v2Client(mode);
      try {
        await client.connect(new StreamableHTTPClientTransport(new URL(url)));
        const era = textOf(await client.callTool({ name: 'where', arguments: {} }, REQUEST));
        assert.equal(era, mode === 'auto' ? 'modern' : 'legacy');
      } finally {
        await client.close();
      }
    }
  });

  it("a 2026-07-28 header without the envelope gets the spec's -32602 naming the request, not a session error", async () => {
    const res = await fetch(url, {
      method: 'POST',
      headers: DISCOVER_HEADERS,
      body: JSON.stringify({ jsonrpc: '2.0', id: 101, method: 'server/discover', params: {} }),
    });
    assert.equal(res.status, 400);
    const body = (await res.json()) as { id: unknown; error: { code: number } };
    assert.equal(body.error.code, -32602);
    assert.equal(body.id, 101);
  });
});
