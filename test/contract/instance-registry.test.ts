import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { InstanceRecord, InstanceRegistry } from '../../src/store/instance-registry.js';
import { MemoryInstanceRegistry } from '../../src/store/memory-instance-registry.js';
import { RedisInstanceRegistry } from '../../src/store/redis-instance-registry.js';
import { scanKeys, useRedisPair } from '../helpers/redis-server.js';

const rec = (instanceId: string, beats = 1, over: Partial<InstanceRecord> = {}): InstanceRecord => ({
  instanceId,
  startedAt: 1000,
  owned: 2,
  draining: false,
  beats,
  ...over,
});

/**
 * The InstanceRegistry contract. `expire` makes every entry older than its TTL, as time does (an
 * injected clock for memory, a short TTL that the test waits out by polling for Redis).
 */
function contract(
  make: () => { a: InstanceRegistry; b: InstanceRegistry; expire(ttlMs: number): Promise<void> },
): void {
  it('reads what each instance said in its last heartbeat; unknown instances read as undefined', async () => {
    const { a, b } = make();
    await a.beat(rec('i1', 1), 60_000);
    await b.beat(rec('i2', 5, { draining: true, owned: 0 }), 60_000);
    await a.beat(rec('i1', 2, { owned: 3 }), 60_000);
    assert.deepEqual(await b.read(['i1', 'i2', 'nobody']), [
      rec('i1', 2, { owned: 3 }),
      rec('i2', 5, { draining: true, owned: 0 }),
      undefined,
    ]);
    assert.deepEqual(
      (await a.list()).map((r) => r.instanceId),
      ['i1', 'i2'],
    );
    assert.deepEqual(await a.read([]), []);
  });

  it('an instance that stops beating is gone after its TTL; one that keeps beating is not', async () => {
    const { a, b, expire } = make();
    await a.beat(rec('dead'), 300);
    await a.beat(rec('alive'), 60_000);
    await expire(300);
    assert.deepEqual(await b.read(['dead', 'alive']), [undefined, rec('alive')]);
    assert.deepEqual(
      (await b.list()).map((r) => r.instanceId),
      ['alive'],
    );
  });

  it('remove takes an instance out at once', async () => {
    const { a, b } = make();
    await a.beat(rec('leaving'), 60_000);
    await b.remove('leaving');
    assert.deepEqual(await a.read(['leaving']), [undefined]);
    assert.deepEqual(await a.list(), []);
    await b.remove('never-there');
  });
}

describe('MemoryInstanceRegistry', () => {
  contract(() => {
    let now = 1_000_000;
    const r = new MemoryInstanceRegistry({ now: () => now });
    return {
      a: r,
      b: r,
      expire: async (ttl) => {
        now += ttl + 1;
      },
    };
  });
});

describe('RedisInstanceRegistry', () => {
  const rp = useRedisPair();
  contract(() => {
    const a = new RedisInstanceRegistry(rp.c1, rp.keys);
    const b = new RedisInstanceRegistry(rp.c2, rp.keys);
    return {
      a,
      b,
      // Redis expires the key itself: wait until it has (observable), within a bound.
      expire: async (ttl) => {
        const deadline = Date.now() + ttl + 5000;
        while ((await rp.c1.exists(rp.keys.instance('dead'))) === 1) {
          if (Date.now() > deadline) throw new Error('the liveness key did not expire');
          await new Promise((r) => setTimeout(r, 25));
        }
      },
    };
  });

  it('keeps its keys in one hash tag, each with a TTL', async () => {
    const r = new RedisInstanceRegistry(rp.c1, rp.keys);
    await r.beat(rec('tagged'), 10_000);
    const keys = await scanKeys(rp.c1, rp.keys.prefix);
    assert.deepEqual(keys.sort(), [rp.keys.instanceIndex(), rp.keys.instance('tagged')].sort());
    for (const key of keys) {
      assert.match(key, /\{instances\}/);
      const pttl = await rp.c1.pttl(key);
      assert.ok(pttl > 0 && pttl <= 10_000, `PTTL of ${key}: ${pttl}`);
    }
  });
});
