// A POST sent again while its requests still run (a load balancer retried it after the instance that
// first got it died, or a client retried it) resumes the running stream instead of answering 400 or
// running the requests twice — whether the resend reaches the owner or another instance.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createFleet, type Fleet } from '../../src/index.js';
import { buildDemoServer } from '../fixtures/demo-server.js';
import { initBody, rawPost } from '../helpers/mcp-client.js';
import { waitFor } from '../helpers/wait.js';
import { TestRedis } from '../helpers/redis-server.js';
import { SseReader } from '../helpers/sse-reader.js';

interface Served {
  fleet: Fleet;
  url: string;
  server: Server;
}

async function serve(redisUrl: string, keyPrefix: string, instanceId: string): Promise<Served> {
  const fleet = createFleet({
    server: (ctx) => buildDemoServer(ctx),
    redis: redisUrl,
    keyPrefix,
    instanceId,
  });
  const server = createServer(fleet.handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  await waitFor('fleet ready', () => fleet.ready(), 5000);
  return { fleet, server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}/mcp` };
}

const TICKS = JSON.stringify({
  jsonrpc: '2.0',
  id: 'resend-1',
  method: 'tools/call',
  params: { name: 'ticks', arguments: { count: 6, gapMs: 80 } },
});

function post(url: string, sid: string): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: {
      accept: 'application/json, text/event-stream',
      'content-type': 'application/json',
      'mcp-session-id': sid,
      'mcp-protocol-version': '2025-11-25',
    },
    body: TICKS,
  });
}

/** Reads a stream to its end: the ticks, the final result, and the stream ids of the event ids. */
async function drain(
  reader: SseReader,
): Promise<{ ticks: number[]; results: string[]; streams: Set<string> }> {
  const out = { ticks: [] as number[], results: [] as string[], streams: new Set<string>() };
  for (;;) {
    const ev = await reader.next(10_000);
    if (!ev) return out;
    if (ev.id) out.streams.add(ev.id.slice(0, ev.id.lastIndexOf('.')));
    if (!ev.data) continue;
    const m = JSON.parse(ev.data);
    if (m.method === 'notifications/message') out.ticks.push(m.params.data.tick);
    else if (m.id === 'resend-1') out.results.push(JSON.stringify(m.result ?? m.error));
  }
}

describe('a POST sent again while its requests run', () => {
  let redis: TestRedis;
  let a: Served;
  let b: Served;
  before(async () => {
    redis = await TestRedis.start();
    const prefix = TestRedis.prefix();
    [a, b] = await Promise.all([serve(redis.url, prefix, 'resend-a'), serve(redis.url, prefix, 'resend-b')]);
  });
  after(async () => {
    await Promise.all([a?.fleet.close(), b?.fleet.close()]);
    a?.server.close();
    b?.server.close();
    await redis?.stop();
  });

  for (const [how, first, again] of [
    ['first forwarded, resent to the owner', () => b, () => a],
    ['first on the owner, resent through another instance', () => a, () => b],
  ] as const) {
    it(`${how}: the resend gets every event and the one result; nothing runs twice`, async () => {
      const init = await rawPost(a.url, initBody()); // A owns the session
      const sid = init.headers.get('mcp-session-id')!;
      const initialized = JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' });
      await rawPost(a.url, initialized, { 'mcp-session-id': sid });

      const original = new SseReader(await post(first().url, sid));
      const priming = await original.next();
      assert.ok(priming?.id, 'the first POST streams (priming event)');
      const tick1 = await original.next();
      assert.match(tick1?.data ?? '', /"tick":1/, 'the tool runs');

      const res = await post(again().url, sid);
      assert.equal(res.status, 200, 'not a 400 "already in use"');
      const resent = await drain(new SseReader(res));
      assert.deepEqual(resent.ticks, [1, 2, 3, 4, 5, 6], 'every event, from the start, once');
      assert.equal(resent.results.length, 1);
      assert.match(resent.results[0]!, /ticked 6 on resend-a/);
      assert.deepEqual(
        resent.streams,
        new Set([priming.id.slice(0, priming.id.lastIndexOf('.'))]),
        'the same stream',
      );
      // The first connection was let go when the resend took the stream over.
      const rest = await drain(original);
      assert.equal(rest.results.length, 0, 'the result went to the resend only');
    });
  }
});
