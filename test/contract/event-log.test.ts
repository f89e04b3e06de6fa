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
