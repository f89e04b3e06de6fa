// The message bus recovers on its own: an instance started while Redis is down, or whose subscriber
// connection is killed, is not ready (and answers legacy streams with 503) only until it is subscribed
// again. Two in-process fleets on one real Redis; cross-instance traffic is a legacy POST forwarded
// from one to the stream held by the other (bus in both directions: the message, then its ack).
import { after, afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { createFleet, type Fleet, type FleetOptions } from '../../src/index.js';
import { buildDemoServer } from '../fixtures/demo-server.js';
import { rawPost } from '../helpers/mcp-client.js';
import { TestRedis } from '../helpers/redis-server.js';
import { SseReader } from '../helpers/sse-reader.js';
import { waitFor } from '../helpers/wait.js';

interface Served {
  fleet: Fleet;
  url: string;
  http: Server;
}

const running: Served[] = [];
const cleanups: Array<() => unknown> = [];

async function serve(options: Partial<FleetOptions>): Promise<Served> {
  const fleet = createFleet({ server: (ctx) => buildDemoServer(ctx), ...options });
  const http = createServer((req, res) => fleet.handler(req, res));
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const served = { fleet, http, url: `http://127.0.0.1:${(http.address() as AddressInfo).port}` };
  running.push(served);
  return served;
}

async function stop(s: Served): Promise<void> {
  await s.fleet.close();
  s.http.closeAllConnections();
  s.http.close();
}

/** Status of `GET /sse` (the stream, when one opens, is closed at once). */
async function sseStatus(url: string): Promise<number> {
  const ac = new AbortController();
  const res = await fetch(`${url}/sse`, { headers: { accept: 'text/event-stream' }, signal: ac.signal });
  ac.abort();
  return res.status;
}

/**
 * Opens a legacy stream on `owner`, POSTs `initialize` to `via` (another instance: forwarded over the
 * bus) and reads the answer from the stream.
 */
async function legacyRoundTrip(owner: string, via: string): Promise<void> {
  const ac = new AbortController();
  const res = await fetch(`${owner}/sse`, { headers: { accept: 'text/event-stream' }, signal: ac.signal });
  assert.equal(res.status, 200);
  const sse = new SseReader(res);
  try {
    const endpoint = await sse.next();
    assert.equal(endpoint?.event, 'endpoint');
    const init = {
      jsonrpc: '2.0',
      id: 'init',
      method: 'initialize',
      params: { protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 'raw', version: '0' } },
    };
    const r = await rawPost(`${via}${endpoint!.data}`, JSON.stringify(init));
    assert.equal(r.status, 202, `forwarded POST: ${r.status} ${r.text}`);
    const answer = await sse.next();
    assert.ok(answer, 'an answer on the stream');
    const msg = JSON.parse(answer.data);
    assert.equal(msg.id, 'init');
    assert.equal(msg.result.protocolVersion, '2024-11-05');
  } finally {
    await sse.cancel();
    ac.abort();
  }
}

afterEach(async () => {
  await Promise.allSettled(running.splice(0).map(stop));
  for (const c of cleanups.splice(0)) await c();
});

describe('message bus recovery', () => {
  const servers: TestRedis[] = [];
  after(async () => {
    await Promise.all(servers.map((s) => s.stop()));
  });

  it('an instance started while Redis is down answers 503 and is not ready, then recovers', async () => {
    const redis = await TestRedis.start();
    servers.push(redis);
    await redis.kill();
    const options = { redis: redis.url, keyPrefix: TestRedis.prefix(), redisCommandTimeoutMs: 300 };
    const a = await serve({ ...options, instanceId: 'a' });
    const b = await serve({ ...options, instanceId: 'b' });

    for (const s of [a, b]) {
      assert.equal(await s.fleet.ready(), false);
      assert.equal(await sseStatus(s.url), 503);
    }
    // One that never saw Redis still closes promptly (its bus was waiting for a subscription).
    const c = await serve({ ...options, instanceId: 'c' });
    running.splice(running.indexOf(c), 1);
    const t0 = Date.now();
    await stop(c);
    assert.ok(Date.now() - t0 < 2000, `close took ${Date.now() - t0} ms`);

    await redis.restart();
    const t1 = Date.now();
    for (const s of [a, b]) await waitFor('ready after Redis is back', () => s.fleet.ready(), 5000);
    assert.ok(Date.now() - t1 < 5000);
    assert.equal(await sseStatus(a.url), 200);
    await legacyRoundTrip(a.url, b.url);
    await legacyRoundTrip(b.url, a.url);
  });

  it('is not ready while its subscriber reconnects after CLIENT KILL TYPE pubsub, then ready again', async () => {
    const redis = await TestRedis.start();
    servers.push(redis);
    const admin = redis.client();
    cleanups.push(() => admin.disconnect());
    // Clients of the caller's: the bus's subscriber inherits the slow reconnect, so the window in
    // which the instance is not subscribed is long enough to observe.
    const client = () => {
      const c = new Redis(redis.url, {
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        retryStrategy: () => 500,
      });
      cleanups.push(() => c.disconnect());
      return c;
    };
    // A legacy request waits for the subscription at most this long before its 503.
    const options = { keyPrefix: TestRedis.prefix(), redisCommandTimeoutMs: 150 };
    const a = await serve({ ...options, redis: client(), instanceId: 'a' });
    const b = await serve({ ...options, redis: client(), instanceId: 'b' });
    for (const s of [a, b]) await waitFor('ready', () => s.fleet.ready(), 5000);
    await legacyRoundTrip(a.url, b.url);

    assert.ok(Number(await admin.client('KILL', 'TYPE', 'pubsub')) >= 2);
    await waitFor('not ready while resubscribing', async () => !(await a.fleet.ready()), 2000);
    assert.equal(await sseStatus(a.url), 503, 'no new legacy stream while not subscribed');
    for (const s of [a, b]) await waitFor('ready again', () => s.fleet.ready(), 5000);
    await legacyRoundTrip(a.url, b.url);
    await legacyRoundTrip(b.url, a.url);
  });
});
