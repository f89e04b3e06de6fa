import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FleetError } from '../../src/errors.js';
import { MemoryEventLog } from '../../src/events/memory-event-log.js';
import { RedisEventLog } from '../../src/events/redis-event-log.js';
import { MemorySessionStore } from '../../src/store/memory-session-store.js';
import { RedisSessionStore } from '../../src/store/redis-session-store.js';
import { scanKeys, useRedisPair } from '../helpers/redis-server.js';
import { END_MARKER } from '../../src/events/event-log.js';
import { newSession, seqs, eventLogContract, fencedEventLogContract } from './suites/event-log.js';

describe('MemoryEventLog', () => {
  eventLogContract((opts) => {
    const log = new MemoryEventLog(opts);
    return { a: log, b: log };
  });

  it('trims to exactly maxEvents', async () => {
    const log = new MemoryEventLog({ maxEvents: 3, ttlMs: 60_000 });
    await log.append('s', 'GET', ['1', '2', '3', '4', '5']);
    assert.deepEqual(seqs(await log.readAfter('s', 'GET', 0)), [3, 4, 5]);
    assert.equal(await log.lastSeq('s', 'GET'), 5);
  });
});

describe('RedisEventLog', () => {
  const rp = useRedisPair();

  eventLogContract((opts) => ({
    a: new RedisEventLog(rp.c1, rp.keys, opts),
    b: new RedisEventLog(rp.c2, rp.keys, opts),
  }));

  it('gives its stream a TTL and a bounded length', async () => {
    const log = new RedisEventLog(rp.c1, rp.keys, { maxEvents: 5, ttlMs: 10_000 });
    const sid = newSession();
    for (let i = 0; i < 500; i++) await log.append(sid, 'GET', [String(i)]);
    const found = await scanKeys(rp.c1, rp.keys.prefix);
    assert.deepEqual(found.sort(), [rp.keys.events(sid, 'GET'), rp.keys.logs(sid)].sort());
    for (const key of found) {
      const pttl = await rp.c1.pttl(key);
      assert.ok(pttl > 0 && pttl <= 10_000, `PTTL of ${key}: ${pttl}`);
    }
    assert.deepEqual(await rp.c1.smembers(rp.keys.logs(sid)), ['GET']);
    assert.ok((await rp.c1.xlen(rp.keys.events(sid, 'GET'))) <= 200);
  });

  it("shortens only the finished stream's TTL; the set of logs keeps the session's", async () => {
    const log = new RedisEventLog(rp.c1, rp.keys, { ttlMs: 600_000, endedTtlMs: 30_000 });
    const sid = newSession();
    await log.append(sid, 'GET', ['{"n":1}']);
    await log.append(sid, 'p1', ['{"r":1}', END_MARKER]);
    const pttl = (k: string) => rp.c1.pttl(k);
    assert.ok((await pttl(rp.keys.events(sid, 'p1'))) <= 30_000);
    assert.ok((await pttl(rp.keys.events(sid, 'GET'))) > 30_000);
    assert.ok((await pttl(rp.keys.logs(sid))) > 30_000);
    assert.deepEqual((await rp.c1.smembers(rp.keys.logs(sid))).sort(), ['GET', 'p1']);
    await log.deleteSession(sid);
    assert.deepEqual(await scanKeys(rp.c1, rp.keys.prefix), []);
  });

  it('keeps a log answered and ended in its first append as a small list, read like a stream', async () => {
    const log = new RedisEventLog(rp.c1, rp.keys, { ttlMs: 60_000, endedTtlMs: 10_000 });
    const other = new RedisEventLog(rp.c2, rp.keys, { ttlMs: 60_000, endedTtlMs: 10_000 });
    const sid = newSession();
    const key = rp.keys.events(sid, 'p1');
    const answer = JSON.stringify({
      jsonrpc: '2.0',
      id: 3,
      result: { content: [{ type: 'text', text: 'hi' }] },
    });
    assert.deepEqual(await log.append(sid, 'p1', [answer, END_MARKER], undefined, 0), [1, 2]);
    assert.equal(await rp.c1.type(key), 'list');
    const bytes = (await rp.c1.memory('USAGE', key)) as number;
    // A Redis Stream with the same two entries takes ~4.7 KB (its first node is preallocated).
    assert.ok(bytes < 1024, `a sealed log takes ${bytes} bytes`);
    const pttl = await rp.c1.pttl(key);
    assert.ok(pttl > 0 && pttl <= 10_000, `PTTL ${pttl}`);
    assert.deepEqual(await rp.c1.smembers(rp.keys.logs(sid)), ['p1']);
    assert.deepEqual(await other.readAfter(sid, 'p1', 0), [
      { seq: 1, data: answer },
      { seq: 2, data: END_MARKER },
    ]);
    assert.deepEqual(await other.readAfter(sid, 'p1', 1), [{ seq: 2, data: END_MARKER }]);
    assert.deepEqual(await other.readAfter(sid, 'p1', 2), []);
    assert.deepEqual(await other.readAfter(sid, 'p1', 7), []);
    assert.equal(await other.lastSeq(sid, 'p1'), 2);
    // A retry of that append whose reply was lost gets its numbers back and writes nothing.
    assert.deepEqual(await log.append(sid, 'p1', [answer, END_MARKER], undefined, 0), [1, 2]);
    assert.equal(await rp.c1.llen(key), 2);
    // An append after the seal (an abandon racing a late producer) turns it into a stream, in order.
    assert.deepEqual(await other.append(sid, 'p1', ['{"late":1}']), [3]);
    assert.equal(await rp.c1.type(key), 'stream');
    assert.deepEqual(seqs(await log.readAfter(sid, 'p1', 0)), [1, 2, 3]);
    assert.deepEqual(await log.readAfter(sid, 'p1', 2), [{ seq: 3, data: '{"late":1}' }]);
    assert.equal(await log.lastSeq(sid, 'p1'), 3);
    assert.ok((await rp.c1.pttl(key)) > 10_000, 'the stream is no longer finished: the full TTL');
    await log.deleteSession(sid);
    assert.deepEqual(await scanKeys(rp.c1, rp.keys.prefix), []);
  });

  it('writes a stream for any other first append: not ending, or longer than maxEvents', async () => {
    const log = new RedisEventLog(rp.c1, rp.keys, { ttlMs: 60_000, maxEvents: 3 });
    const sid = newSession();
    await log.append(sid, 'GET', ['{"n":1}']);
    await log.append(sid, 'GET', ['{"n":2}', END_MARKER]);
    assert.equal(await rp.c1.type(rp.keys.events(sid, 'GET')), 'stream');
    assert.deepEqual(await log.append(sid, 'p2', ['1', '2', '3', '4', END_MARKER]), [1, 2, 3, 4, 5]);
    assert.equal(await rp.c1.type(rp.keys.events(sid, 'p2')), 'stream');
    assert.equal(await log.lastSeq(sid, 'p2'), 5);
    assert.deepEqual(await log.append(sid, 'p3', ['1', '2', END_MARKER]), [1, 2, 3]);
    assert.equal(await rp.c1.type(rp.keys.events(sid, 'p3')), 'list');
  });

  it('fails fast with STORE_UNAVAILABLE while Redis is frozen', async () => {
    const log = new RedisEventLog(rp.c1, rp.keys, { ttlMs: 60_000, commandTimeoutMs: 500 });
    rp.server.pause();
    try {
      for (const op of [() => log.append('s', 'GET', ['x']), () => log.readAfter('s', 'GET', 0)]) {
        const started = Date.now();
        await assert.rejects(
          op(),
          (err: unknown) => err instanceof FleetError && err.code === 'STORE_UNAVAILABLE',
        );
        assert.ok(Date.now() - started < 3000);
      }
    } finally {
      rp.server.resume();
    }
  });
});

describe('MemoryEventLog fenced by MemorySessionStore', () => {
  fencedEventLogContract(() => {
    const store = new MemorySessionStore({ idleMs: 60_000, maxLifetimeMs: 600_000 });
    const log = new MemoryEventLog({ ttlMs: 60_000, checkFence: (sid, f) => store.checkFence(sid, f) });
    return { log, store };
  });
});

describe('RedisEventLog fenced by RedisSessionStore', () => {
  const rp = useRedisPair();
  fencedEventLogContract(() => ({
    log: new RedisEventLog(rp.c1, rp.keys, { ttlMs: 60_000 }),
    store: new RedisSessionStore(rp.c2, rp.keys, { idleMs: 60_000, maxLifetimeMs: 600_000 }),
  }));
});
