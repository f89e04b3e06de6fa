// Regression tests for the review findings fixed together (session-bound answers, notifications while
// Redis is away, eviction leases, lost wake-ups, event log TTL, graceful close, initialize without
// params, subscription persistence and limits). Each test runs fleets in this process through the
// public API, against a real redis-server where the bug needs one.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { SubscribeRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import type { Redis } from 'ioredis';
import { createFleet } from '../../src/index.js';
import type { Fleet, FleetOptions, Logger } from '../../src/index.js';
import { rawPost } from '../helpers/mcp-client.js';
import { RedisKeys } from '../../src/redis/keys.js';
import { TestRedis } from '../helpers/redis-server.js';
import { SseReader, type SseEvent } from '../helpers/sse-reader.js';
import { recordingLogger, type Line } from '../helpers/recording-logger.js';
import { waitFor } from '../helpers/wait.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const PROTOCOL = '2025-11-25';

interface Served {
  fleet: Fleet;
  /** `http://127.0.0.1:<port>/mcp` */
  url: string;
  close(): Promise<void>;
}

/** A fleet on a local HTTP server; every session gets an McpServer with a `noop` tool plus `tools`. */
async function serve(
  options: Omit<FleetOptions, 'server'> & { tools?: (s: McpServer) => void },
): Promise<Served> {
  const { tools, ...rest } = options;
  const fleet = createFleet({
    ...rest,
    server: () => {
      const s = new McpServer({ name: 'regressions', version: '1.0.0' }, { capabilities: { logging: {} } });
      s.registerTool('noop', { description: 'does nothing' }, async () => ({
        content: [{ type: 'text', text: 'ok' }],
      }));
      tools?.(s);
      return s;
    },
  });
  const server = createServer(fleet.handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/mcp`;
  return {
    fleet,
    url,
    async close() {
      await fleet.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

const headersOf = (sid: string) => ({ 'mcp-session-id': sid, 'mcp-protocol-version': PROTOCOL });

/** Initializes a session (raw HTTP, with the given client capabilities) and sends `initialized`. */
async function initSession(url: string, capabilities: Record<string, unknown> = {}): Promise<string> {
  const init = await rawPost(
    url,
    JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: PROTOCOL, capabilities, clientInfo: { name: 'regressions', version: '0' } },
    }),
  );
  assert.equal(init.status, 200, init.text);
  const sid = init.headers.get('mcp-session-id');
  assert.ok(sid, 'initialize returned a session id');
  const ack = await rawPost(
    url,
    JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    headersOf(sid),
  );
  assert.equal(ack.status, 202, ack.text);
  return sid;
}

/** POSTs a body and returns the open response (an SSE stream for requests). */
async function openPost(url: string, sid: string, body: unknown, signal?: AbortSignal): Promise<Response> {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      accept: 'application/json, text/event-stream',
      'content-type': 'application/json',
      ...headersOf(sid),
    },
    body: JSON.stringify(body),
    signal,
  });
  assert.equal(res.status, 200);
  return res;
}

/** POSTs a body with a deadline: the answer's status and text, or 'timeout' when none came in time. */
async function postWithin(
  url: string,
  body: unknown,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<{ status: number; text: string } | 'timeout'> {
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: {
        accept: 'application/json, text/event-stream',
        'content-type': 'application/json',
        ...headers,
      },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    return { status: res.status, text: await res.text() };
  } catch (err) {
    if ((err as Error).name === 'TimeoutError') return 'timeout';
    throw err;
  }
}

type Message = { id?: unknown; method?: string; params?: Record<string, unknown> } & Record<string, unknown>;

/** The next SSE event that carries a JSON-RPC message (priming events have empty data). */
async function nextMessage(reader: SseReader, timeoutMs = 5000): Promise<Message | undefined> {
  for (;;) {
    const ev = await reader.next(timeoutMs);
    if (!ev) return undefined;
    if (ev.data !== '') return JSON.parse(ev.data) as Message;
  }
}

function textOfResult(m: Message | undefined): string {
  const result = m?.result as { content?: Array<{ text?: string }> } | undefined;
  const text = result?.content?.[0]?.text;
  assert.equal(typeof text, 'string', `a tool result, got ${JSON.stringify(m)}`);
  return text!;
}

/** Positions at which two strings differ (the longer one's extra characters count too). */
function differingPositions(a: string, b: string): number {
  let n = Math.abs(a.length - b.length);
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) n++;
  return n;
}

/** Waits until every fleet has subscribed to its bus channels. */
async function untilReady(...fleets: Fleet[]): Promise<void> {
  for (const f of fleets) await waitFor(`fleet ${f.instanceId} ready`, () => f.ready(), 5000);
}

function seqOf(ev: SseEvent): number {
  const id = ev.id ?? '';
  return Number(id.slice(id.lastIndexOf('.') + 1));
}

describe('regressions of the review findings', () => {
  let redis: TestRedis;
  let admin: Redis;

  before(async () => {
    redis = await TestRedis.start();
    admin = redis.client();
  });

  after(async () => {
    admin?.disconnect();
    await redis?.stop();
  });

  it('an answer to a server-to-client request is taken only from its own session, and wire ids are unguessable', async () => {
    const tools = (m: McpServer) => {
      m.registerTool('ask', { description: 'asks where to send money' }, async (extra) => {
        const r = await m.server.elicitInput(
          {
            message: 'Transfer $100 to?',
            requestedSchema: { type: 'object', properties: { to: { type: 'string' } } },
          },
          { relatedRequestId: extra.requestId },
        );
        return { content: [{ type: 'text', text: JSON.stringify(r) }] };
      });
    };
    const prefix = TestRedis.prefix();
    // The tools run on A; answers posted to B are forwarded to A over the bus.
    const aLines: Line[] = [];
    const a = await serve({
      redis: redis.url,
      keyPrefix: prefix,
      instanceId: 'inject-a',
      tools,
      logger: recordingLogger(aLines),
    });
    const b = await serve({ redis: redis.url, keyPrefix: prefix, instanceId: 'inject-b', tools });
    try {
      await untilReady(a.fleet, b.fleet);
      const victim = await initSession(a.url, { elicitation: {} });
      const attacker = await initSession(a.url, { elicitation: {} });
      const call = (id: number) => ({
        jsonrpc: '2.0',
        id,
        method: 'tools/call',
        params: { name: 'ask', arguments: {} },
      });
      const answer = (url: string, sid: string, id: unknown, result: Record<string, unknown>) =>
        rawPost(url, JSON.stringify({ jsonrpc: '2.0', id, result }), headersOf(sid));
      const forged = { action: 'accept', content: { to: 'attacker-account' } };
      const wireIds: string[] = [];

      // The attacker's own elicitation shows it what wire ids look like.
      const attackerStream = new SseReader(await openPost(a.url, attacker, call(1)));
      const askedAttacker = await nextMessage(attackerStream);
      assert.equal(askedAttacker?.method, 'elicitation/create');
      wireIds.push(String(askedAttacker.id));

      // Forged through either instance (forwarded over the bus, or local to the waiting tool), the
      // attacker's answer to the victim's request, sent with the attacker's session id, is ignored.
      for (const [via, forgedVia] of [
        ['forwarded', b.url],
        ['local', a.url],
      ] as const) {
        const victimStream = new SseReader(await openPost(a.url, victim, call(via === 'local' ? 3 : 2)));
        const asked = await nextMessage(victimStream);
        assert.equal(asked?.method, 'elicitation/create');
        wireIds.push(String(asked.id));
        await answer(forgedVia, attacker, asked.id, forged);
        // A, where the victim's request waits, has dropped the forged answer (forwarded or not).
        await waitFor('A to drop the forged answer', () =>
          aLines.some(
            (l) =>
              l.msg ===
              `response ${String(asked.id)} for a request nobody in this session waits for; dropped`,
          ),
        );
        const own = await answer(b.url, victim, asked.id, { action: 'accept', content: { to: 'alice' } });
        assert.equal(own.status, 202, own.text);
        const result = JSON.parse(textOfResult(await nextMessage(victimStream))) as { content?: unknown };
        assert.deepEqual(result.content, { to: 'alice' }, `${via} forged answer was ignored`);
      }

      // The attacker's own request still takes its own answer.
      await answer(a.url, attacker, askedAttacker.id, { action: 'decline' });
      assert.equal(JSON.parse(textOfResult(await nextMessage(attackerStream))).action, 'decline');

      // Wire ids issued one after the other share no counter: they differ almost everywhere.
      const opaque = (id: string) => (id.includes('@') ? id.slice(0, id.lastIndexOf('@')) : id);
      for (let i = 1; i < wireIds.length; i++) {
        const [prev, next] = [wireIds[i - 1]!, wireIds[i]!];
        assert.ok(
          differingPositions(opaque(prev), opaque(next)) >= 8,
          `consecutive wire ids ${prev} and ${next} look sequential (guessable)`,
        );
        assert.doesNotMatch(next, /~\d+@/, `wire id ${next} carries a counter`);
      }
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a notification sent while Redis is paused does not crash the process (no unhandled rejection)', async () => {
    const rejections: unknown[] = [];
    const onRejection = (reason: unknown) => rejections.push(reason);
    process.on('unhandledRejection', onRejection);
    const reported: string[] = [];
    const logger: Logger = {
      debug() {},
      info() {},
      warn: (_obj, msg) => void reported.push(msg ?? ''),
      error: (_obj, msg) => void reported.push(msg ?? ''),
      child: () => logger,
    };
    const prefix = TestRedis.prefix();
    // The tool runs until the test has paused Redis, then sends its notifications.
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const s = await serve({
      redis: redis.url,
      keyPrefix: prefix,
      redisCommandTimeoutMs: 300,
      logger,
      tools: (m) => {
        const feature = m.registerTool('feature', { description: 'toggled' }, async () => ({
          content: [{ type: 'text', text: 'feature' }],
        }));
        m.registerTool('toggle', { description: 'disables feature while Redis is away' }, async () => {
          started();
          await released;
          feature.disable(); // the SDK sends tools/list_changed without awaiting it
          // A log message outside any request goes to the GET stream (its event log is in Redis).
          void m.server.sendLoggingMessage({ level: 'info', data: 'toggled' });
          return { content: [{ type: 'text', text: 'toggled' }] };
        });
      },
    });
    try {
      const sid = await initSession(s.url);
      const toggled = postWithin(
        s.url,
        { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'toggle', arguments: {} } },
        headersOf(sid),
        10_000,
      );
      await running;
      redis.pause();
      try {
        release();
        // The notifications' appends are sent as the tool goes on, before the readiness PINGs on the
        // same connection: when the second PING has timed out (300 ms), so has every append sent
        // before it at least once, while Redis was away.
        for (let i = 0; i < 2; i++) assert.equal(await s.fleet.ready(), false, 'Redis is paused');
      } finally {
        redis.resume();
      }
      await toggled; // whatever it says: the store was away while it answered

      // The notifications were sent while Redis was away (the test is not vacuous): their appends to
      // the GET stream's log were retried until it was back, so nothing was lost and nothing reported.
      const db = redis.client();
      let logged: string[] = [];
      try {
        await waitFor('both notifications in the log', async () => {
          logged = (await db.xrange(new RedisKeys(prefix).events(sid, 'standalone'), '-', '+')).map(
            ([, fields]) => fields[1] ?? '',
          );
          return (
            logged.some((d) => d.includes('notifications/tools/list_changed')) &&
            logged.some((d) => d.includes('"toggled"'))
          );
        });
      } finally {
        db.disconnect();
      }
      assert.deepEqual(
        reported.filter((m) => /not delivered|append failed/.test(m)),
        [],
        'nothing reported lost',
      );
      const later = await postWithin(
        s.url,
        { jsonrpc: '2.0', id: 3, method: 'tools/list' },
        headersOf(sid),
        5000,
      );
      if (later === 'timeout') assert.fail('a request after resume() got no answer');
      assert.equal(later.status, 200, later.text);
      assert.match(later.text, /"tools"/);
      assert.doesNotMatch(later.text, /"feature"/, 'the tool was disabled');
      // Checked last: a rejection left unhandled by the work above has surfaced by now (Node reports
      // it once the microtask queue drains, and many event-loop turns have passed since).
      assert.deepEqual(rejections, [], 'no unhandled rejection');
    } finally {
      process.off('unhandledRejection', onRejection);
      await s.close();
    }
  });

  it('with more sessions than maxLiveSessions, concurrent requests all get an answer (no eviction hang)', async () => {
    const s = await serve({ redis: redis.url, keyPrefix: TestRedis.prefix(), maxLiveSessions: 2 });
    try {
      // Six sessions take turns in two live slots: copies are evicted while requests use them.
      const sids: string[] = [];
      for (let i = 0; i < 6; i++) sids.push(await initSession(s.url));
      const outcomes: Record<string, number> = {};
      let id = 10;
      let sent = 0;
      for (let round = 0; round < 20 && !outcomes.timeout; round++) {
        const batch = await Promise.all(
          Array.from({ length: 24 }, (_, i) =>
            postWithin(
              s.url,
              { jsonrpc: '2.0', id: ++id, method: 'tools/list' },
              headersOf(sids[i % sids.length]!),
              2000,
            ),
          ),
        );
        sent += batch.length;
        for (const r of batch) {
          const k =
            r === 'timeout' ? 'timeout' : r.status === 200 && r.text.includes('"tools"') ? 'ok' : r.status;
          outcomes[k] = (outcomes[k] ?? 0) + 1;
        }
      }
      assert.deepEqual(outcomes, { ok: sent }, 'every request answered within 2 s');
    } finally {
      await s.close();
    }
  });

  it('a POST stream resumed on another instance gets every event and the result after its pub/sub connections are killed', async () => {
    const prefix = TestRedis.prefix();
    const tools = (m: McpServer) => {
      m.registerTool('ticker', { description: 'ten log messages, then a result' }, async (extra) => {
        for (let i = 1; i <= 10; i++) {
          await sleep(200);
          await extra.sendNotification({
            method: 'notifications/message',
            params: { level: 'info', data: `tick ${i}` },
          });
        }
        return { content: [{ type: 'text', text: 'FINAL RESULT' }] };
      });
    };
    const common = { redis: redis.url, keyPrefix: prefix, streamHeartbeatMs: 300, tools };
    const a = await serve({ ...common, instanceId: 'reg-a' });
    const b = await serve({ ...common, instanceId: 'reg-b' });
    let resumed: SseReader | undefined;
    try {
      await untilReady(a.fleet, b.fleet);
      const sid = await initSession(a.url);
      const ac = new AbortController();
      const first = new SseReader(
        await openPost(
          a.url,
          sid,
          { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'ticker', arguments: {} } },
          ac.signal,
        ),
      );
      const priming = await first.next();
      assert.ok(priming?.id, 'the POST stream is resumable (priming event id)');
      ac.abort(); // the client loses the connection …
      await first.cancel();

      // … and resumes on the other instance, which now holds the stream while A produces it.
      const res = await fetch(b.url, {
        headers: { accept: 'text/event-stream', ...headersOf(sid), 'last-event-id': priming.id },
      });
      assert.equal(res.status, 200);
      resumed = new SseReader(res);
      const events: SseEvent[] = [];
      const ev1 = await resumed.next();
      assert.ok(ev1);
      events.push(ev1);

      // Wake-ups published while the subscribers reconnect find no receiver.
      let kills = 0;
      for (let i = 0; i < 15; i++) {
        kills += Number(await admin.client('KILL', 'TYPE', 'pubsub'));
        await sleep(70);
      }
      assert.ok(kills > 0, 'pub/sub connections were killed');

      for (;;) {
        const ev = await resumed.next(8000);
        if (!ev) break;
        events.push(ev);
        if (ev.data.includes('FINAL RESULT')) break;
      }
      const data = events.filter((e) => e.data !== '').map((e) => JSON.parse(e.data) as Message);
      const ticks = data.flatMap((m) => (m.method === 'notifications/message' ? [m.params?.data] : []));
      assert.deepEqual(
        ticks,
        Array.from({ length: 10 }, (_, i) => `tick ${i + 1}`),
      );
      assert.equal(textOfResult(data.at(-1)), 'FINAL RESULT');
      const seqs = events.map(seqOf);
      assert.deepEqual(
        seqs,
        [...seqs].sort((x, y) => x - y),
        'event ids increase',
      );
    } finally {
      await resumed?.cancel();
      await a.close();
      await b.close();
    }
  });

  it('a GET stream quieter than the session TTL keeps its event ids increasing; a cursor past the log is a 404', async () => {
    let n = 0;
    const s = await serve({
      sessionTtlMs: 1500,
      streamHeartbeatMs: 300,
      tools: (m) => {
        m.registerTool('notify', { description: 'a log message outside the request' }, async () => {
          await m.server.sendLoggingMessage({ level: 'info', data: `note ${++n}` });
          return { content: [{ type: 'text', text: 'sent' }] };
        });
      },
    });
    let reader: SseReader | undefined;
    try {
      const sid = await initSession(s.url);
      const get = await fetch(s.url, { headers: { accept: 'text/event-stream', ...headersOf(sid) } });
      assert.equal(get.status, 200);
      reader = new SseReader(get);
      assert.equal((await reader.next())?.id, 'standalone.0');

      const notify = async (id: number) => {
        const r = await rawPost(
          s.url,
          JSON.stringify({
            jsonrpc: '2.0',
            id,
            method: 'tools/call',
            params: { name: 'notify', arguments: {} },
          }),
          headersOf(sid),
        );
        assert.equal(r.status, 200, r.text);
      };
      const received: Array<{ id: string | undefined; data: unknown }> = [];
      const take = async () => {
        const ev = await reader!.next(3000);
        assert.ok(ev, 'the GET stream is still open');
        received.push({ id: ev.id, data: (JSON.parse(ev.data) as Message).params?.data });
      };

      await notify(10);
      await take();
      await sleep(2500); // quiet for longer than the session TTL (the open stream keeps the session)
      await notify(11);
      await take();
      await notify(12);
      await take();
      assert.deepEqual(received, [
        { id: 'standalone.1', data: 'note 1' },
        { id: 'standalone.2', data: 'note 2' },
        { id: 'standalone.3', data: 'note 3' },
      ]);

      const past = await fetch(s.url, {
        headers: { accept: 'text/event-stream', ...headersOf(sid), 'last-event-id': 'standalone.999999' },
      });
      assert.equal(past.status, 404);
      await past.body?.cancel();
    } finally {
      await reader?.cancel();
      await s.close();
    }
  });

  it('close() lets a running tool answer within the grace period, then answers the rest with an error', async () => {
    // The tool runs until the test lets it finish: the first fleet's close() has begun by then; the
    // second one's grace ends while the tool is still running.
    let started!: () => void;
    let release!: () => void;
    const tools = (m: McpServer) => {
      m.registerTool('slow', { description: 'runs until released' }, async () => {
        started();
        await new Promise<void>((r) => (release = r));
        return { content: [{ type: 'text', text: 'done' }] };
      });
    };
    const slowCall = { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'slow', arguments: {} } };
    const running = () => new Promise<void>((r) => (started = r));

    // Default grace (5 s): the tool finishes and its result reaches the client.
    const s = await serve({ tools });
    try {
      const sid = await initSession(s.url);
      const isRunning = running();
      const reader = new SseReader(await openPost(s.url, sid, slowCall));
      await isRunning;
      const closed = s.fleet.close();
      assert.equal(await s.fleet.ready(), false, 'closing');
      release();
      assert.equal(textOfResult(await nextMessage(reader, 4000)), 'done');
      await closed;
    } finally {
      await s.close();
    }

    // Short grace: the client gets a JSON-RPC error promptly instead of a stream that never ends.
    const short = await serve({ tools, shutdownGraceMs: 100 });
    try {
      const sid = await initSession(short.url);
      const isRunning = running();
      const reader = new SseReader(await openPost(short.url, sid, slowCall));
      await isRunning;
      const t0 = Date.now();
      const closed = short.fleet.close();
      const answer = await nextMessage(reader, 4000);
      const elapsed = Date.now() - t0;
      assert.equal(answer?.id, 2);
      assert.equal((answer?.error as { message?: string } | undefined)?.message, 'Server is shutting down');
      assert.ok(elapsed < 1000, `error answer after ${elapsed} ms`);
      assert.equal(await reader.next(2000), undefined, 'the stream ends');
      await closed;
      release(); // the tool ends after its copy was closed: nothing more reaches the client
    } finally {
      await short.close();
    }
  });

  it('initialize without params is a 400 with a JSON-RPC error body, not a 500', async () => {
    const s = await serve({});
    try {
      const r = await rawPost(s.url, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize' }));
      assert.equal(r.status, 400, r.text);
      const body = JSON.parse(r.text) as { jsonrpc?: string; error?: { code?: number; message?: string } };
      assert.equal(body.jsonrpc, '2.0');
      assert.equal(body.error?.code, -32600);
      assert.equal(r.headers.get('mcp-session-id'), null, 'no session was created');
    } finally {
      await s.close();
    }
  });

  it('resource subscriptions: a failed subscribe is not persisted; more than 256, or a 3000-char URI, is a 400', async () => {
    const prefix = TestRedis.prefix();
    const subsOf = async (sid: string) => {
      const raw = await admin.hget(new RedisKeys(prefix).session(sid), 'subs');
      return raw ? (JSON.parse(raw) as string[]) : [];
    };
    const subscribe = (uri: string, id: number | string = 1) => ({
      jsonrpc: '2.0',
      id,
      method: 'resources/subscribe',
      params: { uri },
    });

    // A server without the resources capability answers Method not found: nothing is stored.
    const plain = await serve({ redis: redis.url, keyPrefix: prefix });
    try {
      const sid = await initSession(plain.url);
      const r = await rawPost(plain.url, JSON.stringify(subscribe('file:///a')), headersOf(sid));
      assert.equal(r.status, 200, r.text);
      assert.match(r.text, /"code":-32601/, 'Method not found');
      // A write of the subscription, had one been sent in reaction to the answer, went out before
      // the readiness PINGs on the same connection and has landed once they are answered.
      for (let i = 0; i < 2; i++) assert.ok(await plain.fleet.ready());
      assert.deepEqual(await subsOf(sid), []);
    } finally {
      await plain.close();
    }

    const withResources = await serve({
      redis: redis.url,
      keyPrefix: prefix,
      tools: (m) => {
        m.server.registerCapabilities({ resources: { subscribe: true } });
        m.server.setRequestHandler(SubscribeRequestSchema, async () => ({}));
      },
    });
    try {
      const sid = await initSession(withResources.url);
      const long = await rawPost(
        withResources.url,
        JSON.stringify(subscribe(`file:///${'x'.repeat(3000)}`)),
        headersOf(sid),
      );
      assert.equal(long.status, 400, long.text);
      assert.deepEqual(await subsOf(sid), []);

      // One at a time: each subscription is stored before the next is sent.
      for (let i = 0; i < 256; i++) {
        const r = await rawPost(
          withResources.url,
          JSON.stringify(subscribe(`file:///r/${i}`, i)),
          headersOf(sid),
        );
        assert.equal(r.status, 200, r.text);
        assert.match(r.text, /"result"/);
      }
      assert.equal((await subsOf(sid)).length, 256);

      const again = await rawPost(
        withResources.url,
        JSON.stringify(subscribe('file:///r/0')),
        headersOf(sid),
      );
      assert.equal(again.status, 200, 'an existing subscription may be renewed at the limit');
      const over = await rawPost(
        withResources.url,
        JSON.stringify(subscribe('file:///r/256')),
        headersOf(sid),
      );
      assert.equal(over.status, 400, over.text);
      assert.equal((JSON.parse(over.text) as { error?: { code?: number } }).error?.code, -32600);
    } finally {
      await withResources.close();
    }
  });

  it('subscriptions answered with success are all stored, and never more than 256 (batches, concurrent requests)', async () => {
    const prefix = TestRedis.prefix();
    const s = await serve({
      redis: redis.url,
      keyPrefix: prefix,
      tools: (m) => {
        m.server.registerCapabilities({ resources: { subscribe: true } });
        m.server.setRequestHandler(SubscribeRequestSchema, async () => ({}));
      },
    });
    try {
      const sid = await initSession(s.url);
      const stored = async () => {
        const raw = await admin.hget(new RedisKeys(prefix).session(sid), 'subs');
        return new Set(raw ? (JSON.parse(raw) as string[]) : []);
      };
      const uri = (i: number) => `file:///r/${i}`;
      /** Subscribes `uri(from)` … `uri(from + n - 1)` in one batch; the URIs answered with success. */
      const batch = async (from: number, n: number): Promise<string[]> => {
        const body = Array.from({ length: n }, (_, i) => ({
          jsonrpc: '2.0',
          id: from + i,
          method: 'resources/subscribe',
          params: { uri: uri(from + i) },
        }));
        const r = await rawPost(s.url, JSON.stringify(body), headersOf(sid));
        if (r.status !== 200) return [];
        const messages: Message[] = r.text
          .split('\n')
          .filter((l) => l.startsWith('data: ') && l.length > 6)
          .flatMap((l) => [JSON.parse(l.slice(6)) as Message | Message[]].flat());
        return messages.filter((m) => 'result' in m).map((m) => uri(Number(m.id)));
      };

      const first = await batch(0, 100);
      assert.equal(first.length, 100);
      assert.equal((await stored()).size, 100, 'a batch of 100 subscriptions is stored whole');

      // Beyond the limit, whether in one batch or in concurrent ones.
      const accepted = [...first, ...(await batch(100, 100))];
      accepted.push(...(await Promise.all([batch(200, 100), batch(300, 100)])).flat());
      const now = await stored();
      assert.ok(now.size <= 256, `${now.size} subscriptions stored`);
      for (const u of accepted) assert.ok(now.has(u), `${u} was answered with success but not stored`);
    } finally {
      await s.close();
    }
  });
});
