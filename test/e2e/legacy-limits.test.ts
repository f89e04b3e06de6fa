// Limits of the legacy HTTP+SSE transport: no credential crosses the bus, streams per instance are
// bounded, and a client that stops reading its stream is cut off instead of growing our memory.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createFleet, type Fleet, type FleetOptions } from '../../src/index.js';
import { buildDemoServer } from '../fixtures/demo-server.js';
import { rawPost } from '../helpers/mcp-client.js';
import { TestRedis } from '../helpers/redis-server.js';
import { SseReader } from '../helpers/sse-reader.js';
import { waitFor } from '../helpers/wait.js';

const open: Array<{ fleet: Fleet; http: Server }> = [];

async function serve(options: Partial<FleetOptions>): Promise<string> {
  const fleet = createFleet({ server: (ctx) => buildDemoServer(ctx), ...options });
  const http = createServer((req, res) => fleet.handler(req, res));
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  open.push({ fleet, http });
  return `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
}

/** Opens `GET /sse` and returns the reader and the messages endpoint. */
async function openSse(base: string, headers: Record<string, string> = {}) {
  const ac = new AbortController();
  const res = await fetch(`${base}/sse`, {
    headers: { accept: 'text/event-stream', ...headers },
    signal: ac.signal,
  });
  if (res.status !== 200) return { status: res.status, close: () => ac.abort() };
  const reader = new SseReader(res);
  const endpoint = await reader.next();
  assert.equal(endpoint?.event, 'endpoint');
  return { status: 200, reader, endpoint: endpoint!.data, close: () => ac.abort() };
}

const init = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
});

after(async () => {
  for (const { fleet, http } of open.splice(0)) {
    await fleet.close();
    http.closeAllConnections();
    http.close();
  }
});

describe('legacy SSE limits', () => {
  it('never publishes the bearer token on the bus when forwarding a POST', async () => {
    const redis = await TestRedis.start();
    const spy = redis.client();
    const seen: string[] = [];
    try {
      await spy.psubscribe('*');
      spy.on('pmessage', (_p, _c, message: string) => seen.push(message));
      const opts: Partial<FleetOptions> = {
        redis: redis.url,
        keyPrefix: TestRedis.prefix(),
        authenticate: () => ({
          id: 'alice',
          authInfo: { token: 'SECRET-BEARER-TOKEN', clientId: 'alice', scopes: [] },
        }),
      };
      const a = await serve({ ...opts, instanceId: 'limits-a' });
      const b = await serve({ ...opts, instanceId: 'limits-b' });
      const sse = await openSse(a, { authorization: 'Bearer SECRET-BEARER-TOKEN' });
      const posted = await rawPost(`${b}${sse.endpoint}`, init, {
        authorization: 'Bearer SECRET-BEARER-TOKEN',
      });
      assert.equal(posted.status, 202, posted.text);
      const answer = await sse.reader!.next();
      assert.match(answer?.data ?? '', /"protocolVersion"/);
      assert.ok(
        seen.some((m) => m.includes('"t":"handle"')),
        'the POST was forwarded over the bus',
      );
      assert.ok(!seen.some((m) => m.includes('SECRET-BEARER-TOKEN')), 'no token on pub/sub');
      sse.close();
    } finally {
      spy.disconnect();
      await redis.stop();
    }
  });

  it('answers 503 beyond maxLegacySessions streams', async () => {
    const base = await serve({ maxLegacySessions: 2 });
    const s1 = await openSse(base);
    const s2 = await openSse(base);
    const s3 = await openSse(base);
    assert.deepEqual([s1.status, s2.status, s3.status], [200, 200, 503]);
    s1.close();
    // The server sees the close a moment later; until then a new stream is still refused.
    let s4: Awaited<ReturnType<typeof openSse>> | undefined;
    await waitFor('a closed stream to free its slot', async () => {
      const s = await openSse(base);
      if (s.status === 200) s4 = s;
      else s.close();
      return s4 !== undefined;
    });
    for (const s of [s2, s3, s4!]) s.close();
  });

  it('cuts off a client that stops reading its stream (bounded buffer) and ends its session', async () => {
    const base = await serve({ maxStreamBufferBytes: 64 * 1024 });
    const { port } = new URL(base);
    // A raw client that reads the endpoint event and then never reads again.
    const endpoint = await new Promise<string>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port, path: '/sse', headers: { accept: 'text/event-stream' } },
        (res) => {
          res.once('data', (chunk: Buffer) => {
            const m = /data: (.+)\n/.exec(chunk.toString());
            res.pause();
            if (m) resolve(m[1]!);
            else reject(new Error(`no endpoint in ${chunk.toString()}`));
          });
        },
      );
      req.on('error', reject);
      req.end();
    });
    assert.equal((await rawPost(`${base}${endpoint}`, init)).status, 202);
    const list = (id: number) => JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/list' });
    let status = 202;
    let sent = 0;
    // Each answer is a few KB: well past 64 KiB (plus socket buffers) the stream must be cut and the
    // session ended, so further POSTs get 404.
    for (let i = 2; i < 3000 && status === 202; i++) {
      status = (await rawPost(`${base}${endpoint}`, list(i))).status;
      sent++;
    }
    assert.equal(status, 404, `still accepted after ${sent} POSTs`);
  });
});
