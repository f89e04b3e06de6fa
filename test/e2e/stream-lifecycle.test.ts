// Stream lifecycle in one process with the embedded (in-memory) parts: an open GET stream keeps its
// session alive; a second GET is a conflict; the stream ends with its session.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createFleet } from '../../src/index.js';
import { buildDemoServer } from '../fixtures/demo-server.js';
import { initBody, rawPost } from '../helpers/mcp-client.js';
import { SseReader } from '../helpers/sse-reader.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('standalone stream lifecycle (embedded)', () => {
  it('keeps an idle session alive while its GET stream is open, 409s a second GET, ends with DELETE', async () => {
    const fleet = createFleet({
      server: (ctx) => buildDemoServer(ctx),
      sessionTtlMs: 1000,
      streamHeartbeatMs: 200,
    });
    const server = createServer(fleet.handler);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/mcp`;
    try {
      const init = await rawPost(url, initBody());
      const sid = init.headers.get('mcp-session-id')!;
      const h = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
      const get = await fetch(url, { headers: { ...h, accept: 'text/event-stream' } });
      assert.equal(get.status, 200);
      const reader = new SseReader(get);
      const priming = await reader.next();
      assert.equal(priming?.id, 'standalone.0');
      assert.equal(priming?.retry, 1000);

      const second = await fetch(url, { headers: { ...h, accept: 'text/event-stream' } });
      assert.equal(second.status, 409);
      assert.equal(((await second.json()) as { error: { code: number } }).error.code, -32000);

      await sleep(2500); // 2.5× the idle TTL without a request
      const call = await rawPost(url, JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }), h);
      assert.equal(call.status, 200, 'the open stream kept the session alive');
      assert.equal((await fleet.health()).transportSessions, 1);

      const del = await fetch(url, { method: 'DELETE', headers: h });
      assert.equal(del.status, 200);
      assert.equal(await reader.next(), undefined, 'the stream ended with the session');
      assert.equal((await fleet.health()).transportSessions, 0);
    } finally {
      await fleet.close();
      server.close();
    }
  });

  it('without a stream, an idle session expires (404 Session not found)', async () => {
    const fleet = createFleet({ server: (ctx) => buildDemoServer(ctx), sessionTtlMs: 300 });
    const server = createServer(fleet.handler);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/mcp`;
    try {
      const sid = (await rawPost(url, initBody())).headers.get('mcp-session-id')!;
      await sleep(700);
      const r = await rawPost(url, JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }), {
        'mcp-session-id': sid,
      });
      assert.equal(r.status, 404);
      assert.equal(JSON.parse(r.text).error.code, -32001);
    } finally {
      await fleet.close();
      server.close();
    }
  });

  it('validates Last-Event-ID: malformed → 400, unknown stream or unseen event → 404', async () => {
    const fleet = createFleet({ server: (ctx) => buildDemoServer(ctx) });
    const server = createServer(fleet.handler);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/mcp`;
    try {
      const sid = (await rawPost(url, initBody())).headers.get('mcp-session-id')!;
      const h = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25', accept: 'text/event-stream' };
      const call = await rawPost(
        url,
        JSON.stringify({
          jsonrpc: '2.0',
          id: 5,
          method: 'tools/call',
          params: { name: 'echo', arguments: { text: 'a' } },
        }),
        { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' },
      );
      const ids = [...call.text.matchAll(/^id: (.+)$/gm)].map((m) => m[1]!);
      assert.equal(ids.length, 2, call.text); // priming + response
      const cases: Array<[string, number]> = [
        ['not-an-event-id', 400],
        ['a.b.c', 400],
        ['x.-1', 400],
        ['0123456789abcdef.1', 404], // well-formed, names no instance's stream
        [`${ids[1]!.split('.')[0]}.99`, 404], // beyond what the stream wrote
      ];
      for (const [lastEventId, status] of cases) {
        const r = await fetch(url, { headers: { ...h, 'last-event-id': lastEventId } });
        assert.equal(r.status, status, lastEventId);
        const body = (await r.json()) as { error: { code: number }; id: null };
        assert.equal(body.id, null);
      }
      // The priming id replays the finished stream: the response, then the end.
      const replay = await fetch(url, { headers: { ...h, 'last-event-id': ids[0]! } });
      assert.equal(replay.status, 200);
      const reader = new SseReader(replay);
      const ev = await reader.next();
      assert.equal(ev?.id, ids[1]);
      assert.match(ev?.data ?? '', /"id":5/);
      // Then the id the stream ended at (no data), for a client that reconnects anyway, and the end.
      const end = await reader.next();
      assert.equal(end?.id, `${ids[1]!.split('.')[0]}.2`);
      assert.equal(end?.data, '');
      assert.equal(await reader.next(), undefined);
      // Resuming where it ended (after its last answer, or at its end): nothing more will come. 204 is
      // the SSE way of saying "do not reconnect": the SDK client (1.32) reconnects after a stream
      // that ended without a result (an error answer, or no event at all: then without Last-Event-ID,
      // as a second GET stream that gets a 409), but reads no stream from a 204.
      for (const lastEventId of [ids[1]!, end!.id!]) {
        const done = await fetch(url, { headers: { ...h, 'last-event-id': lastEventId } });
        assert.equal(done.status, 204, lastEventId);
        assert.equal(await done.text(), '');
      }
    } finally {
      await fleet.close();
      server.close();
    }
  });
});
