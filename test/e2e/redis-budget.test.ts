// Structural budgets and faults of the Redis-backed fleet, in process: round trips per warm request,
// fail-fast 503 while Redis is frozen or down, and recovery without a restart.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createFleet, type Fleet, type FleetOptions } from '../../src/index.js';
import { buildDemoServer } from '../fixtures/demo-server.js';
import { initBody, rawPost } from '../helpers/mcp-client.js';
import { scanKeys, TestRedis } from '../helpers/redis-server.js';
import { RedisKeys } from '../../src/redis/keys.js';
import { TcpCounter } from '../helpers/tcp-counter.js';
import { waitFor } from '../helpers/wait.js';

async function serve(fleet: Fleet): Promise<{ url: string; server: Server }> {
  const server = createServer(fleet.handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/mcp`, server };
}

async function initialize(url: string): Promise<string> {
  const r = await rawPost(url, initBody());
  assert.equal(r.status, 200, r.text);
  const sid = r.headers.get('mcp-session-id');
  assert.ok(sid);
  const n = await rawPost(url, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }), {
    'mcp-session-id': sid,
  });
  assert.equal(n.status, 202);
  return sid;
}

/**
 * A fleet for counting round trips: no heartbeat may fall into the measured window (it would be
 * counted as the request's).
 */
function quietFleet(
  redisUrl: string,
  keyPrefix: string,
  mode: 'json' | 'sse',
  extra: Partial<FleetOptions> = {},
): Fleet {
  return createFleet({
    server: (ctx) => buildDemoServer(ctx),
    redis: redisUrl,
    keyPrefix,
    jsonResponse: mode === 'json',
    streamHeartbeatMs: 600_000,
    heartbeatMs: 600_000,
    instanceTtlMs: 1_800_000,
    ...extra,
  });
}

/**
 * Waits, without a sleep, until `fleet` has sent its Redis everything the work so far makes it send,
 * and had it answered: its readiness check sends a PING on the same command connection after the
 * commands already sent, and Redis answers in order. A command sent in reaction to one of those
 * answers goes out before the PING's answer is read, so a second PING covers it too (one level of
 * such chains; these fleets have no timer due). The PINGs are the counters' sentinels:
 * {@link TcpCounter.roundTripsExceptPings}.
 */
async function settled(fleet: Fleet): Promise<void> {
  for (let i = 0; i < 2; i++) assert.ok(await fleet.ready(), 'fleet ready (its PING answered)');
}

const echo = (id: number) =>
  JSON.stringify({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name: 'echo', arguments: { text: 'x' } },
  });

describe('Redis round trips per request (warm on its owner; cold on a new owner; a GET away from its owner)', () => {
  let redis: TestRedis;
  let counter: TcpCounter;

  before(async () => {
    redis = await TestRedis.start();
    counter = new TcpCounter(redis.port);
    await counter.start();
  });
  after(async () => {
    await counter.close();
    await redis.stop();
  });

  interface Warm {
    fleet: Fleet;
    url: string;
    sid: string;
    headers: Record<string, string>;
    db: ReturnType<TestRedis['client']>;
    keyPrefix: string;
  }

  /** A fleet behind the counter with one session that answered a call; cleaned up after `body`. */
  async function withWarmSession(
    mode: 'json' | 'sse',
    extra: Partial<FleetOptions>,
    body: (w: Warm) => Promise<void>,
  ): Promise<void> {
    const keyPrefix = TestRedis.prefix();
    const fleet = quietFleet(`redis://127.0.0.1:${counter.port}`, keyPrefix, mode, extra);
    const { url, server } = await serve(fleet);
    const db = redis.client();
    try {
      const sid = await initialize(url);
      const headers = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
      assert.equal((await rawPost(url, echo(1), headers)).status, 200); // warm now
      await body({ fleet, url, sid, headers, db, keyPrefix });
    } finally {
      db.disconnect();
      await fleet.close();
      server.close();
    }
  }

  interface Pair {
    a: Fleet;
    b: Fleet;
    aUrl: string;
    bUrl: string;
  }

  /**
   * Two instances on one key prefix: A straight to Redis, B behind the counter; both served and
   * ready, closed after `body`.
   */
  async function withPair(
    mode: 'json' | 'sse',
    [idA, idB]: [string, string],
    body: (p: Pair) => Promise<void>,
  ): Promise<void> {
    const keyPrefix = TestRedis.prefix();
    const a = quietFleet(redis.url, keyPrefix, mode, { instanceId: idA });
    const b = quietFleet(`redis://127.0.0.1:${counter.port}`, keyPrefix, mode, { instanceId: idB });
    const [sa, sb] = await Promise.all([serve(a), serve(b)]);
    try {
      await waitFor('both ready', async () => (await a.ready()) && (await b.ready()));
      await body({ a, b, aUrl: sa.url, bUrl: sb.url });
    } finally {
      await Promise.all([a.close(), b.close()]);
      sa.server.close();
      sb.server.close();
    }
  }

  for (const mode of ['json', 'sse'] as const) {
    it(`${mode} answer: a warm request on its owner costs ${mode === 'json' ? 'no round trip' : 'one round trip, the event-log append'}`, async () => {
      await withWarmSession(mode, {}, async ({ fleet, url, headers }) => {
        await settled(fleet);
        counter.reset();
        const r = await rawPost(url, echo(2), headers);
        assert.equal(r.status, 200);
        assert.match(r.text, /"text":"x"/);
        await settled(fleet);
        const trips = counter.roundTripsExceptPings();
        // The copy was found current in the store by the request before, under the same ownership
        // token (fresh heartbeat, bus subscribed, connection not dropped since): no TTL refresh now.
        // SSE: appending the response to the stream's event log, before the client sees it.
        assert.equal(trips, mode === 'json' ? 0 : 1, `round trips: ${trips}: ${counter.commandsSent()}`);
      });
    });
  }

  it('the TTL refresh (with the ownership check) comes back at least every tenth of the idle TTL', async () => {
    // Idle TTL 3 s: a check serves the requests of the next 300 ms.
    await withWarmSession('json', { sessionTtlMs: 3000 }, async ({ url, sid, headers, db, keyPrefix }) => {
      let free = 0;
      let refreshed = 0;
      const started = Date.now();
      for (let id = 2; refreshed < 2; id++) {
        assert.ok(Date.now() - started < 10_000, `refreshed ${refreshed} times in 10 s`);
        counter.reset();
        assert.equal((await rawPost(url, echo(id), headers)).status, 200);
        const trips = counter.commandRequests();
        assert.ok(trips <= 1, `round trips: ${trips}: ${counter.commandsSent()}`);
        if (trips === 0) free++;
        else refreshed++;
      }
      assert.ok(free > 0, 'requests between two checks cost no round trip');
      assert.ok((await db.pttl(new RedisKeys(keyPrefix).session(sid))) > 2000);
    });
  });

  it('after the store connection dropped, the next request checks the store again', async () => {
    await withWarmSession('json', {}, async ({ fleet, url, headers, db }) => {
      // The command connection only (the subscriber is of type pubsub): Redis may have restarted.
      await db.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
      await waitFor('the fleet to reconnect', () => fleet.ready(), 5000);
      counter.reset();
      assert.equal((await rawPost(url, echo(2), headers)).status, 200);
      assert.equal(
        counter.commandRequests(),
        1,
        `the TTL refresh and ownership check: ${counter.commandsSent()}`,
      );
      counter.reset();
      assert.equal((await rawPost(url, echo(3), headers)).status, 200);
      assert.equal(counter.commandRequests(), 0, `and then none: ${counter.commandsSent()}`);
    });
  });

  for (const mode of ['json', 'sse'] as const) {
    it(`${mode} answer: one round trip refreshes, claims and reads the GET stream's holder${mode === 'sse' ? '; then the append' : ''}`, async () => {
      await withPair(mode, ['cold-a', 'cold-b'], async ({ a, b, aUrl, bUrl }) => {
        const sid = await initialize(aUrl);
        const headers = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
        await a.close(); // hands the session off: nobody owns it
        await settled(b);
        counter.reset();
        const r = await rawPost(bUrl, echo(2), headers);
        assert.equal(r.status, 200);
        assert.match(r.text, /"text":"x"/);
        await settled(b);
        // The refresh that found nobody owning it was also the claim (compare-and-set of owner and
        // epoch) and read the holder of the session's GET stream: no refresh before, no read after.
        const expected = mode === 'json' ? 1 : 2;
        const trips = counter.roundTripsExceptPings();
        assert.equal(trips, expected, `round trips: ${trips}: ${counter.commandsSent()}`);
        assert.equal((await b.health()).liveSessions, 1, 'b hydrated the session');
      });
    });
  }

  it('concurrent first requests for a session owned elsewhere share one refresh', async () => {
    await withPair('json', ['burst-owner', 'burst-front'], async ({ b, aUrl, bUrl }) => {
      const sid = await initialize(aUrl); // owned by A; B has never seen it
      const headers = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
      counter.reset();
      const answers = await Promise.all(
        Array.from({ length: 8 }, (_, i) => rawPost(bUrl, echo(10 + i), headers)),
      );
      for (const r of answers) {
        assert.equal(r.status, 200, r.text);
        assert.match(r.text, /"text":"x"/);
      }
      // The refresh (touch-or-claim.lua, first key the session hash) runs before any forward, so all
      // of them are on the wire by now. The first request's answer (owner A) serves the seven that
      // joined it while it was in flight.
      const sent = counter.commandsSent(Infinity);
      // A script call whose first key is this session's hash (EVAL the first time on a connection).
      const refreshes = sent.match(new RegExp(` \\$1 \\d \\$\\d+ \\S+:${sid}:session `, 'g')) ?? [];
      assert.equal(refreshes.length, 1, sent.slice(0, 3000));
      assert.equal((await b.health()).liveSessions, 0, 'B built no copy');
    });
  });

  it('the registration reads the owner to tell (no read of the owner after it)', async () => {
    await withPair('sse', ['get-owner', 'get-holder'], async ({ b, aUrl, bUrl }) => {
      const abort = new AbortController(); // ends the GET streams before the fleets close
      try {
        const openGet = (sid: string) =>
          fetch(bUrl, {
            headers: {
              accept: 'text/event-stream',
              'mcp-session-id': sid,
              'mcp-protocol-version': '2025-11-25',
            },
            signal: abort.signal,
          });
        // A first GET loads B's scripts (ioredis sends a script's text once per connection), so the
        // measured one sends only EVALSHAs.
        assert.equal((await openGet(await initialize(aUrl))).status, 200);
        const sid = await initialize(aUrl); // owned by A
        assert.ok(await b.ready());
        counter.reset();
        const get = await openGet(sid);
        assert.equal(get.status, 200);
        // The `attach` to the owner is sent as the stream opens, on B's command connection; a PING
        // sent after it on the same connection arrives after it: everything B sent is counted then.
        assert.ok(await b.ready());
        const sent = counter.commandsSent(Infinity);
        assert.match(
          sent,
          /publish \S+ \S+:instance:get-owner \S+ \{"t":"attach"/i,
          `B told the owner: ${sent}`,
        );
        // The owner comes back from the registration script (claim-stream.lua), read with it: before,
        // B asked for the owner again after registering (an HMGET of the session's owner).
        assert.doesNotMatch(sent, /hmget/i, `no read of the owner after the registration: ${sent}`);
        // B's commands for this session until the PING, in order: the TTL refresh that names the owner,
        // the check for another holder, the log's last sequence number, the registration, the read of
        // anything logged meanwhile, the attach. Nothing after the registration asks for the owner.
        const label = (cmd: string): string => {
          if (/^\*\d+ \$\d+ publish /i.test(cmd)) return 'attach';
          if (/^\*\d+ \$\d+ hgetall /i.test(cmd)) return 'holder?';
          if (/^\*\d+ \$\d+ evalsha(?: \S+){5} \S+:session /i.test(cmd)) return 'refresh';
          if (/^\*\d+ \$\d+ evalsha(?: \S+){5} \S+:holder:/i.test(cmd)) return 'register';
          if (/^\*4 \$\d+ evalsha(?: \S+){5} \S+:events:/i.test(cmd)) return 'last seq';
          if (/^\*5 \$\d+ evalsha(?: \S+){5} \S+:events:/i.test(cmd)) return 'read';
          return cmd.slice(0, 40);
        };
        const beforePing = sent.slice(0, sent.search(/\*1 \$4 ping/i));
        const commands = beforePing
          .split(/(?=\*\d+ \$\d+ [a-z]+ )/i)
          .filter((c) => c.includes(sid))
          .map(label);
        assert.deepEqual(commands, ['refresh', 'holder?', 'last seq', 'register', 'read', 'attach'], sent);
      } finally {
        abort.abort();
      }
    });
  });
});

describe('Redis round trips per forwarded request (two instances, one Redis)', () => {
  let redis: TestRedis;
  let owner: TcpCounter;
  let front: TcpCounter;

  before(async () => {
    redis = await TestRedis.start();
    owner = new TcpCounter(redis.port);
    front = new TcpCounter(redis.port);
    await Promise.all([owner.start(), front.start()]);
  });
  after(async () => {
    await Promise.all([owner.close(), front.close()]);
    await redis.stop();
  });

  for (const mode of ['json', 'sse'] as const) {
    it(`${mode} answer: the receiving instance pays one round trip (the PUBLISH); the owner acknowledges with its answer`, async () => {
      const keyPrefix = TestRedis.prefix();
      const make = (counter: TcpCounter, instanceId: string) =>
        quietFleet(`redis://127.0.0.1:${counter.port}`, keyPrefix, mode, { instanceId });
      const a = make(owner, 'budget-owner');
      const b = make(front, 'budget-front');
      const [sa, sb] = await Promise.all([serve(a), serve(b)]);
      try {
        for (const f of [a, b]) await waitFor(`${f.instanceId} ready`, () => f.ready(), 5000);
        const sid = await initialize(sa.url); // owned by A
        const headers = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
        assert.equal((await rawPost(sb.url, echo(1), headers)).status, 200); // B knows the way now
        await Promise.all([settled(a), settled(b)]);
        owner.reset();
        front.reset();
        const r = await rawPost(sb.url, echo(2), headers);
        assert.equal(r.status, 200);
        assert.match(r.text, /"text":"x"/);
        await Promise.all([settled(a), settled(b)]);
        // B: the PUBLISH of the messages to the owner. The TTL refresh that named the owner was made
        // by the request before, under the same ownership token: it serves the next second.
        const frontTrips = front.roundTripsExceptPings();
        assert.equal(
          frontTrips,
          1,
          `round trips of the receiving instance: ${frontTrips}: ${front.commandsSent()}`,
        );
        // A: JSON: one PUBLISH carrying the acknowledgement and the answer. SSE: the event-log append
        // (with the acknowledgement written behind it), then the PUBLISH of the logged answer.
        const expected = mode === 'json' ? 1 : 2;
        const ownerTrips = owner.roundTripsExceptPings();
        assert.equal(ownerTrips, expected, `round trips of the owner: ${ownerTrips}`);
      } finally {
        await Promise.all([a.close(), b.close()]);
        sa.server.close();
        sb.server.close();
      }
    });
  }
});

describe('Redis faults', () => {
  let redis: TestRedis;
  let fleet: Fleet;
  let url: string;
  let server: Server;

  before(async () => {
    redis = await TestRedis.start();
    fleet = createFleet({
      server: (ctx) => buildDemoServer(ctx),
      redis: redis.url,
      keyPrefix: TestRedis.prefix(),
      redisCommandTimeoutMs: 500,
      // An owner acts on its copies without asking the store only while its last heartbeat that
      // succeeded is under 1.5 intervals old: 150 ms here, less than the 500 ms a frozen Redis takes to
      // show in ready().
      heartbeatMs: 100,
      instanceTtlMs: 400,
    });
    ({ url, server } = await serve(fleet));
  });
  after(async () => {
    await fleet.close();
    server.close();
    await redis.stop();
  });

  it('frozen Redis (SIGSTOP): 503 with a JSON-RPC error, fast; the session works again after SIGCONT', async () => {
    const sid = await initialize(url);
    const headers = { 'mcp-session-id': sid };
    redis.pause();
    try {
      // Once the freeze shows (the readiness PING timed out), no heartbeat can be fresh: the request
      // checks the store, and fails fast.
      assert.equal(await fleet.ready(), false);
      const t0 = Date.now();
      const r = await rawPost(url, echo(1), headers);
      assert.equal(r.status, 503, r.text);
      const body = JSON.parse(r.text);
      assert.equal(body.jsonrpc, '2.0');
      assert.equal(body.error.code, -32603);
      assert.ok(Date.now() - t0 < 3000, 'fails fast');
      assert.equal((await fleet.health()).store, 'error');
    } finally {
      redis.resume();
    }
    const ok = await rawPost(url, echo(2), headers);
    assert.equal(ok.status, 200, ok.text);
    assert.equal(await fleet.ready(), true);
  });

  it('Redis down (killed): 503, process stays up; after restart new sessions work without a restart of ours', async () => {
    await redis.kill();
    const r = await rawPost(url, initBody());
    assert.equal(r.status, 503, r.text);
    assert.equal(JSON.parse(r.text).error.code, -32603);
    await redis.restart();
    const deadline = Date.now() + 10_000;
    for (;;) {
      const again = await rawPost(url, initBody());
      if (again.status === 200) break;
      assert.ok(Date.now() < deadline, `did not recover: ${again.status} ${again.text}`);
      await new Promise((res) => setTimeout(res, 200));
    }
    const sid = await initialize(url);
    assert.equal((await rawPost(url, echo(3), { 'mcp-session-id': sid })).status, 200);
  });
});

describe('Redis memory per call', () => {
  let redis: TestRedis;
  before(async () => {
    redis = await TestRedis.start();
  });
  after(async () => {
    await redis.stop();
  });

  it("a finished answer's log stays only endedStreamTtlMs; DELETE removes what is left", async () => {
    const prefix = TestRedis.prefix();
    const keys = new RedisKeys(prefix);
    const fleet = createFleet({
      server: (ctx) => buildDemoServer(ctx),
      redis: redis.url,
      keyPrefix: prefix,
      endedStreamTtlMs: 500,
    });
    const { url, server } = await serve(fleet);
    const db = redis.client();
    try {
      const sid = await initialize(url);
      const headers = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
      for (let i = 1; i <= 5; i++) assert.equal((await rawPost(url, echo(i), headers)).status, 200);
      const logKeys = async () => (await scanKeys(db, prefix)).filter((k) => k.includes(':events:'));
      const logs = await logKeys();
      assert.equal(logs.length, 5, 'one log per answered POST');
      for (const k of logs) {
        const pttl = await db.pttl(k);
        assert.ok(pttl > 0 && pttl <= 500, `${k}: PTTL ${pttl}`);
      }
      assert.ok((await db.pttl(keys.session(sid))) > 60_000, 'the session keeps its idle TTL');
      // The logs go by themselves; the session stays.
      const started = Date.now();
      while ((await logKeys()).length > 0) {
        assert.ok(Date.now() - started < 5000, 'finished logs expired');
        await new Promise((r) => setTimeout(r, 25));
      }
      assert.equal((await rawPost(url, echo(6), headers)).status, 200, 'the session works on');
      const d = await fetch(url, { method: 'DELETE', headers });
      assert.equal(d.status, 200);
      const left = (await scanKeys(db, prefix)).filter((k) => k.includes(sid));
      assert.deepEqual(left, [], 'DELETE removed every key of the session');
    } finally {
      db.disconnect();
      server.close();
      await fleet.close();
    }
  });
});
