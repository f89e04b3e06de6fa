import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryInstanceRegistry } from '../../src/store/memory-instance-registry.js';
import { RedisInstanceRegistry } from '../../src/store/redis-instance-registry.js';
import { scanKeys, useRedisPair } from '../helpers/redis-server.js';
import { rec, instanceRegistryContract } from './suites/instance-registry.js';

describe('MemoryInstanceRegistry', () => {
  instanceRegistryContract(() => {
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
  instanceRegistryContract(() => {
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
