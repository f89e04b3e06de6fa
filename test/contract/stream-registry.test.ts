import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FleetError } from '../../src/errors.js';
import { MemoryStreamRegistry } from '../../src/store/memory-stream-registry.js';
import { RedisStreamRegistry } from '../../src/store/redis-stream-registry.js';
import { scanKeys, useRedisPair } from '../helpers/redis-server.js';
import { stream, ref, streamRegistryContract } from './suites/stream-registry.js';

describe('MemoryStreamRegistry', () => {
  streamRegistryContract((heartbeatTtlMs) => {
    const registry = new MemoryStreamRegistry({ heartbeatTtlMs, sessionOwner: () => '' });
    return { a: registry, b: registry };
  });

  it("reads the session's owner with the write, from the session store it is given", async () => {
    const owners = new Map([['s-owned', 'i9']]);
    const registry = new MemoryStreamRegistry({ sessionOwner: (sid) => owners.get(sid) ?? '' });
    const r = stream({ sessionId: 's-owned' });
    assert.deepEqual(await registry.claim(r), { previous: undefined, owner: 'i9' });
    assert.deepEqual(await registry.claim({ ...r, sessionId: 's-other' }), {
      previous: undefined,
      owner: '',
    });
  });
});

describe('RedisStreamRegistry', () => {
  const rp = useRedisPair();

  streamRegistryContract((heartbeatTtlMs) => ({
    a: new RedisStreamRegistry(rp.c1, rp.keys, { heartbeatTtlMs }),
    b: new RedisStreamRegistry(rp.c2, rp.keys, { heartbeatTtlMs }),
  }));

  it('gives every key it writes a TTL', async () => {
    const registry = new RedisStreamRegistry(rp.c1, rp.keys, { heartbeatTtlMs: 10_000 });
    const rs = [stream(), stream(), stream()];
    for (const r of rs) await registry.claim(r);
    await registry.heartbeat(rs.map(ref), 'i1');
    await registry.release(rs[2]!.sessionId, rs[2]!.streamId, 'i1');
    const found = await scanKeys(rp.c1, rp.keys.prefix);
    assert.deepEqual(
      new Set(found),
      new Set([
        rp.keys.holder(rs[0]!.sessionId, rs[0]!.streamId),
        rp.keys.holder(rs[1]!.sessionId, rs[1]!.streamId),
        ...rs.slice(0, 2).map((r) => rp.keys.streamIndexOf(r.sessionId)),
      ]),
    );
    for (const key of found) {
      const pttl = await rp.c1.pttl(key);
      assert.ok(pttl > 0 && pttl <= 10_000, `${key} has a TTL (PTTL ${pttl})`);
    }
  });

  it('fails fast with STORE_UNAVAILABLE while Redis is frozen', async () => {
    const registry = new RedisStreamRegistry(rp.c1, rp.keys, { commandTimeoutMs: 500 });
    const r = stream();
    rp.server.pause();
    try {
      const started = Date.now();
      await assert.rejects(
        registry.claim(r),
        (err: unknown) => err instanceof FleetError && err.code === 'STORE_UNAVAILABLE',
      );
      assert.ok(Date.now() - started < 3000);
    } finally {
      rp.server.resume();
    }
    assert.equal(
      (await registry.claim({ ...r, instanceId: 'i2' })).previous,
      'i1',
      'the late claim still landed',
    );
  });
});
