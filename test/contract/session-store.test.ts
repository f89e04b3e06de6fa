import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { MemorySessionStore } from '../../src/store/memory-session-store.js';
import { RedisSessionStore } from '../../src/store/redis-session-store.js';
import { RedisStreamRegistry } from '../../src/store/redis-stream-registry.js';
import { scanKeys, useRedisPair } from '../helpers/redis-server.js';
import { LONG, record, isFleetError, sessionStoreContract } from './suites/session-store.js';

describe('MemorySessionStore', () => {
  sessionStoreContract((ttl) => {
    const store = new MemorySessionStore(ttl);
    return { a: store, b: store };
  });

  it('expires on an injected clock', async () => {
    let now = 1_000_000;
    const store = new MemorySessionStore({ idleMs: 100, maxLifetimeMs: 250 }, { now: () => now });
    try {
      const r = record({ createdAt: now });
      await store.create(r);
      now += 90;
      assert.notEqual(await store.touch(r.id), undefined);
      now += 90;
      assert.notEqual(await store.touch(r.id), undefined);
      now += 69; // 249 ms: capped by the lifetime, not the idle TTL
      assert.notEqual(await store.touch(r.id), undefined);
      now += 1;
      assert.equal(await store.touch(r.id), undefined);
      assert.equal(await store.count(), 0);
    } finally {
      await store.close();
    }
  });
});

describe('RedisSessionStore', () => {
  const rp = useRedisPair();

  sessionStoreContract((ttl) => ({
    a: new RedisSessionStore(rp.c1, rp.keys, ttl),
    b: new RedisSessionStore(rp.c2, rp.keys, ttl),
  }));

  it('gives every key it writes a TTL', async () => {
    const ttl = { idleMs: 60_000, maxLifetimeMs: 600_000 };
    const store = new RedisSessionStore(rp.c1, rp.keys, ttl);
    const rs = [record(), record({ logLevel: 'info' }), record()];
    for (const r of rs) await store.create(r);
    await store.setData(rs[0]!.id, '{"a":1}');
    await store.setData(rs[1]!.id, undefined);
    await store.update(rs[1]!.id, { subscriptions: ['x'] });
    await store.load(rs[2]!.id);
    await store.count();

    const found = await scanKeys(rp.c1, rp.keys.prefix);
    assert.deepEqual(
      new Set(found),
      new Set([
        ...rs.map((r) => rp.keys.session(r.id)),
        rp.keys.data(rs[0]!.id),
        rp.keys.data(rs[1]!.id),
        ...rs.map((r) => rp.keys.sessionIndexOf(r.id)),
      ]),
    );
    for (const key of found) {
      const pttl = await rp.c1.pttl(key);
      assert.ok(pttl > 0, `${key} has a TTL (PTTL ${pttl})`);
    }
    // The data expires with its session, not later.
    const sessionTtl = await rp.c1.pttl(rp.keys.session(rs[0]!.id));
    const dataTtl = await rp.c1.pttl(rp.keys.data(rs[0]!.id));
    assert.ok(Math.abs(sessionTtl - dataTtl) < 50, `data PTTL ${dataTtl} ~ session PTTL ${sessionTtl}`);
  });

  it('costs one round trip per warm call (touch, load, getData, setData, update, claim, release, touchOrClaim, count, delete)', async () => {
    const store = new RedisSessionStore(rp.c1, rp.keys, LONG);
    const r = record();
    await store.create(r);
    // Driver seam: count socket writes; a pipeline is written at once, so writes = round trips.
    const socket = (rp.c1 as unknown as { stream: { write: (...args: unknown[]) => boolean } }).stream;
    const write = socket.write;
    let writes = 0;
    socket.write = function (this: unknown, ...args: unknown[]) {
      writes++;
      return write.apply(this, args);
    };
    try {
      const ops: Array<[string, () => Promise<unknown>]> = [
        ['touch', () => store.touch(r.id)],
        ['load', () => store.load(r.id)],
        ['getData', () => store.getData(r.id)],
        ['setData', () => store.setData(r.id, '1', 0)],
        ['update', () => store.update(r.id, { initialized: true })],
        ['claim', () => store.claim(r.id, 'i2', { owner: 'instance-1', epoch: 1 })],
        ['release', () => store.release(r.id, { owner: 'i2', epoch: 2 }, 'handoff')],
        ['touchOrClaim', () => store.touchOrClaim(r.id, 'alice', 'i3')],
        ['count', () => store.count()],
        ['delete', () => store.delete(r.id)],
      ];
      for (const [name, op] of ops) {
        writes = 0;
        await op();
        assert.equal(writes, 1, `${name} is one round trip`);
      }
    } finally {
      socket.write = write;
    }
  });

  it('reads the standalone stream holder in the claim step (claim and touchOrClaim)', async () => {
    const store = new RedisSessionStore(rp.c1, rp.keys, LONG);
    const registry = new RedisStreamRegistry(rp.c2, rp.keys);
    const r = record();
    await store.create(r);
    await store.release(r.id, { owner: 'instance-1', epoch: 1 }, 'handoff');
    const none = await store.touchOrClaim(r.id, 'alice', 'i2');
    assert.equal(none?.status === 'claimed' && none.standaloneHolder, null, 'no holder: null');
    const now = Date.now();
    const held = {
      sessionId: r.id,
      transport: 'streamable-http',
      createdAt: now,
      lastSeenAt: now,
      active: true,
    } as const;
    // The registration reads the session's owner in the same step (whom the holder must tell).
    const registered = await registry.claim({ ...held, streamId: 'standalone', instanceId: 'holder-1' });
    assert.deepEqual(registered, { previous: undefined, owner: 'i2' });
    // A POST stream's holder is not the standalone one.
    await registry.claim({ ...held, streamId: 'post-stream', instanceId: 'holder-2' });
    await store.release(r.id, { owner: 'i2', epoch: 2 }, 'handoff');
    const again = await registry.claim({ ...held, streamId: 'standalone', instanceId: 'holder-1' });
    assert.deepEqual(again, { previous: undefined, owner: '' }, 'released: no owner');
    const found = await store.touchOrClaim(r.id, 'alice', 'i3');
    assert.equal(found?.status === 'claimed' && found.standaloneHolder, 'holder-1');
    const failover = await store.claim(r.id, 'i4', { owner: 'i3', epoch: 3 });
    assert.equal(failover.status === 'claimed' && failover.standaloneHolder, 'holder-1');
  });

  it('keeps working after SCRIPT FLUSH (NOSCRIPT falls back to EVAL)', async () => {
    const store = new RedisSessionStore(rp.c1, rp.keys, LONG);
    const r = record();
    await store.create(r);
    await rp.c2.script('FLUSH');
    assert.notEqual(await store.touch(r.id), undefined);
    assert.equal(await store.setData(r.id, '1', 0), 1);
    assert.deepEqual(await store.load(r.id), r);
  });

  it('fails fast with STORE_UNAVAILABLE while Redis is frozen, then recovers', async () => {
    const store = new RedisSessionStore(rp.c1, rp.keys, LONG, { commandTimeoutMs: 500 });
    const r = record();
    await store.create(r);
    rp.server.pause();
    try {
      for (const op of [() => store.load(r.id), () => store.touch(r.id), () => store.ping()]) {
        const started = Date.now();
        await assert.rejects(op(), isFleetError('STORE_UNAVAILABLE'));
        assert.ok(Date.now() - started < 3000, 'rejected within 3 s');
      }
    } finally {
      rp.server.resume();
    }
    assert.deepEqual(await store.load(r.id), r);
  });

  it('recovers after Redis restarts (empty)', async () => {
    const store = new RedisSessionStore(rp.c1, rp.keys, LONG, { commandTimeoutMs: 500 });
    await rp.server.restart();
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await store.ping();
        break;
      } catch (err) {
        assert.ok(isFleetError('STORE_UNAVAILABLE')(err), String(err));
        if (Date.now() > deadline) throw err;
        await sleep(100);
      }
    }
    const r = record();
    await store.create(r);
    assert.deepEqual(await store.load(r.id), r);
  });
});
