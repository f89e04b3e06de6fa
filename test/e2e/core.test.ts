// Core: any instance serves any Streamable HTTP session. 3 instances as separate processes behind a
// round-robin proxy that sends every request to the next instance; the SDK client; real Redis, on
// each topology: standalone, Sentinel (primary, 2 replicas, 3 sentinels) and Cluster (3 + 3).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, startInstance, type Instance } from '../helpers/instances.js';
import { startProxy, type Proxy } from '../helpers/proxy.js';
import { TestRedis } from '../helpers/redis-server.js';
import { TestRedisCluster, TestRedisSentinel } from '../helpers/redis-topologies.js';
import { connectClient, initBody, rawPost, textOf } from '../helpers/mcp-client.js';

const ENTRY = 'test/fixtures/demo-instance.ts';

/** A running Redis of one topology, as a test instance's environment. */
interface RunningRedis {
  env: Record<string, string>;
  stop(): Promise<void>;
}

const TOPOLOGIES: Array<[string, () => Promise<RunningRedis>]> = [
  [
    'standalone Redis',
    async () => {
      const r = await TestRedis.start();
      return { env: { REDIS_URL: r.url }, stop: () => r.stop() };
    },
  ],
  ['Redis Sentinel', () => TestRedisSentinel.start()],
  ['Redis Cluster', () => TestRedisCluster.start()],
];

/** `{"a":{"a":…{}}}`, `levels` objects deep; brackets inside strings do not count. */
const nested = (levels: number) => '{"a":'.repeat(levels - 1) + '{"s":"[[{{"}' + '}'.repeat(levels - 1);

for (const [topology, startRedis] of TOPOLOGIES)
  describe(`core across 3 instances, on ${topology}`, () => {
    let redis: RunningRedis;
    let instances: Instance[];
    let proxy: Proxy;
    let env: Record<string, string>;

    before(async () => {
      redis = await startRedis();
      env = { ...redis.env, KEY_PREFIX: TestRedis.prefix() };
      instances = await startCluster(3, { entry: ENTRY, env, name: 'core' });
      proxy = await startProxy(instances.map((i) => i.url));
    });

    after(async () => {
      await proxy?.close();
      await Promise.all((instances ?? []).map((i) => i.kill()));
      await redis?.stop();
    });

    it('20 concurrent clients × 50 mixed calls through the round-robin proxy: zero errors', async () => {
      const clients = await Promise.all(
        Array.from({ length: 20 }, (_, i) => connectClient(proxy.url, { token: `user${i}`, name: `c${i}` })),
      );
      const instancesSeen = new Set<string>();
      await Promise.all(
        clients.map(async ({ client }, ci) => {
          for (let k = 0; k < 50; k++) {
            switch (k % 7) {
              case 0: {
                const r = await client.callTool({ name: 'echo', arguments: { text: `c${ci}-${k}` } });
                assert.equal(textOf(r), `c${ci}-${k}`);
                break;
              }
              case 1: {
                const names = (await client.listTools()).tools.map((t) => t.name);
                for (const n of ['echo', 'whoami', 'progress', 'increment', 'slow'])
                  assert.ok(names.includes(n), n);
                break;
              }
              case 2: {
                const r = await client.readResource({ uri: 'demo://greeting' });
                const text = (r.contents[0] as { text: string }).text;
                instancesSeen.add(text);
                break;
              }
              case 3: {
                const p = await client.getPrompt({ name: 'greet', arguments: { name: 'x' } });
                assert.equal(p.messages.length, 1);
                break;
              }
              case 4:
                await client.ping();
                break;
              case 5: {
                const progress: number[] = [];
                const r = await client.callTool({ name: 'progress', arguments: { steps: 3 } }, undefined, {
                  onprogress: (p) => progress.push(p.progress),
                });
                assert.equal(textOf(r), 'done 3');
                assert.deepEqual(progress, [1, 2, 3]);
                break;
              }
              case 6:
                await client.setLoggingLevel('debug');
                break;
            }
          }
        }),
      );
      assert.equal(instancesSeen.size, 3, 'requests were served by all three instances');
      await Promise.all(clients.map(({ transport }) => transport.terminateSession()));
      await Promise.all(clients.map(({ client }) => client.close()));
    });

    it('every instance forwards to the one copy; a new owner sees the real client info and capabilities', async () => {
      const victim = await startInstance({ entry: ENTRY, env, name: 'caps-victim' });
      const direct = await connectClient(victim.url, {
        name: 'caps-client',
        capabilities: { roots: { listChanged: true }, sampling: {} },
      });
      const sessionId = direct.transport.sessionId!;
      const { client, transport } = await connectClient(proxy.url, { sessionId });
      const whoami = async () => JSON.parse(textOf(await client.callTool({ name: 'whoami', arguments: {} })));
      // Through every instance of the proxy: always the one copy, on the instance that initialized it.
      for (let i = 0; i < 3; i++)
        assert.equal(
          (await whoami()).instanceId,
          JSON.parse(textOf(await direct.client.callTool({ name: 'whoami', arguments: {} }))).instanceId,
        );
      await direct.client.close();
      await victim.kill('SIGKILL');
      // The next request makes a new owner, which hydrated the session from the store.
      const seen = new Set<string>();
      for (let i = 0; i < 3; i++) {
        const info = await whoami();
        seen.add(info.instanceId);
        assert.equal(info.client.name, 'caps-client');
        assert.deepEqual(info.capabilities.roots, { listChanged: true });
        assert.deepEqual(info.capabilities.sampling, {});
        assert.equal(info.sessionId, sessionId);
      }
      assert.equal(seen.size, 1, 'one new owner, whichever instance the requests land on');
      await transport.terminateSession();
      await client.close();
    });

    it('a session keeps working after the instance that created it is killed (SIGKILL)', async () => {
      const extra = await startInstance({ entry: ENTRY, env, name: 'victim' });
      const direct = await connectClient(extra.url);
      const sessionId = direct.transport.sessionId!;
      await direct.client.close();
      await extra.kill('SIGKILL');
      const { client } = await connectClient(proxy.url, { sessionId });
      for (let i = 0; i < 6; i++) {
        assert.equal(
          textOf(await client.callTool({ name: 'echo', arguments: { text: `after-${i}` } })),
          `after-${i}`,
        );
      }
      await client.close();
    });

    it('DELETE on one instance → 404 on every other; another principal gets 404 too', async () => {
      const { client, transport } = await connectClient(proxy.url, { token: 'alice' });
      const sid = transport.sessionId!;
      await client.callTool({ name: 'echo', arguments: { text: 'warm' } }); // warm copies on some instances
      await client.callTool({ name: 'echo', arguments: { text: 'warm' } });
      const call = JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/list' });
      for (const inst of instances) {
        const foreign = await rawPost(`${inst.url}/mcp`, call, {
          'mcp-session-id': sid,
          authorization: 'Bearer mallory',
        });
        assert.equal(foreign.status, 404);
        assert.equal(JSON.parse(foreign.text).error.code, -32001);
      }
      await transport.terminateSession();
      for (const inst of instances) {
        const r = await rawPost(`${inst.url}/mcp`, call, {
          'mcp-session-id': sid,
          authorization: 'Bearer alice',
        });
        assert.equal(r.status, 404, `instance ${inst.name} still serves the deleted session`);
        assert.equal(JSON.parse(r.text).error.code, -32001);
        assert.equal(JSON.parse(r.text).error.message, 'Session not found');
      }
      await client.close();
    });

    it('100 data increments split across instances end with the exact total', async () => {
      const { client, transport } = await connectClient(proxy.url);
      await Promise.all(
        Array.from({ length: 100 }, () => client.callTool({ name: 'increment', arguments: { by: 1 } })),
      );
      const final = JSON.parse(textOf(await client.callTool({ name: 'increment', arguments: { by: 0 } })));
      assert.equal(final.count, 100);
      await transport.terminateSession();
      await client.close();
    });

    it('answers every bad input with its status code and a JSON-RPC error, never 5xx', async () => {
      const { client, transport } = await connectClient(proxy.url);
      const sid = transport.sessionId!;
      const url = `${proxy.url}/mcp`;
      const list = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' });
      const cases: Array<[string, () => Promise<{ status: number; text: string }>, number, number?]> = [
        ['unknown session', () => rawPost(url, list, { 'mcp-session-id': 'f'.repeat(32) }), 404, -32001],
        ['missing session id', () => rawPost(url, list), 400],
        ['malformed session id', () => rawPost(url, list, { 'mcp-session-id': 'bad id with spaces' }), 400],
        ['hash-tag braces in id', () => rawPost(url, list, { 'mcp-session-id': '{abcdefgh}' }), 400],
        [
          'unsupported protocol version',
          () => rawPost(url, list, { 'mcp-session-id': sid, 'mcp-protocol-version': '1999-01-01' }),
          400,
        ],
        [
          'Accept without event-stream',
          () => rawPost(url, list, { 'mcp-session-id': sid, accept: 'application/json' }),
          406,
        ],
        [
          'wrong Content-Type',
          () => rawPost(url, list, { 'mcp-session-id': sid, 'content-type': 'text/plain' }),
          415,
        ],
        ['bad JSON', () => rawPost(url, '{"jsonrpc":', { 'mcp-session-id': sid }), 400, -32700],
        ['not JSON-RPC', () => rawPost(url, '{"hello":1}', { 'mcp-session-id': sid }), 400, -32600],
        ['empty batch', () => rawPost(url, '[]', { 'mcp-session-id': sid }), 400, -32600],
        [
          'initialize nested 5,000 levels deep (JSON.stringify cannot store it)',
          () => rawPost(url, initBody(1).replace('"capabilities":{}', `"capabilities":${nested(5000)}`)),
          400,
          -32600,
        ],
        [
          'tool arguments nested 200 levels deep',
          () =>
            rawPost(
              url,
              `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":${nested(200)}}}`,
              { 'mcp-session-id': sid },
            ),
          400,
          -32600,
        ],
        [
          'body over 4 MiB',
          () =>
            rawPost(
              url,
              JSON.stringify({
                jsonrpc: '2.0',
                id: 1,
                method: 'ping',
                params: { pad: 'x'.repeat(4_300_000) },
              }),
              { 'mcp-session-id': sid },
            ),
          413,
        ],
        ['two initialize in a batch', () => rawPost(url, `[${initBody(1)},${initBody(2)}]`), 400, -32600],
        [
          'PUT on /mcp',
          async () => {
            const r = await fetch(url, { method: 'PUT' });
            return { status: r.status, text: await r.text() };
          },
          405,
        ],
        [
          'GET other path',
          async () => {
            const r = await fetch(`${proxy.url}/nope`);
            return { status: r.status, text: await r.text() };
          },
          404,
        ],
        [
          'GET without Accept',
          async () => {
            const r = await fetch(url, { headers: { 'mcp-session-id': sid, accept: 'application/json' } });
            return { status: r.status, text: await r.text() };
          },
          406,
        ],
        [
          'DELETE unknown session',
          async () => {
            const r = await fetch(url, { method: 'DELETE', headers: { 'mcp-session-id': 'e'.repeat(32) } });
            return { status: r.status, text: await r.text() };
          },
          404,
          -32001,
        ],
      ];
      for (const [name, run, status, code] of cases) {
        const r = await run();
        assert.equal(r.status, status, `${name}: ${r.status} ${r.text.slice(0, 200)}`);
        if (status !== 405 || r.text) {
          const body = JSON.parse(r.text);
          assert.equal(body.jsonrpc, '2.0', name);
          assert.equal(body.id, null, name);
          if (code !== undefined) assert.equal(body.error.code, code, name);
        }
      }
      // The session is unharmed by all of the above.
      assert.equal(
        textOf(await client.callTool({ name: 'echo', arguments: { text: 'still here' } })),
        'still here',
      );
      for (const inst of instances) assert.equal((await fetch(`${inst.url}/livez`)).status, 200);
      await transport.terminateSession();
      await client.close();
    });
  });
