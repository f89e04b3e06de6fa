import { describe } from 'node:test';
import { MemorySpentTokens } from '../../src/store/memory-spent-tokens.js';
import { RedisSpentTokens } from '../../src/store/redis-spent-tokens.js';
import { useRedisPair } from '../helpers/redis-server.js';
import { spentTokensContract } from './suites/spent-tokens.js';

describe('MemorySpentTokens', () => {
  spentTokensContract(() => {
    let now = 1_000_000;
    const s = new MemorySpentTokens({ now: () => now });
    return {
      a: s,
      b: s,
      expire: async (ms) => {
        now += ms + 1;
      },
    };
  });
});

describe('RedisSpentTokens', () => {
  const rp = useRedisPair();
  spentTokensContract(() => ({
    a: new RedisSpentTokens(rp.c1, rp.keys),
    b: new RedisSpentTokens(rp.c2, rp.keys),
    // Redis expires the key by its own clock: wait until it has (observable), within a bound.
    expire: async (ms) => {
      const deadline = Date.now() + ms + 5000;
      while ((await rp.c1.exists(rp.keys.spentRequestState('short'))) === 1) {
        if (Date.now() > deadline) throw new Error('the spent token did not expire');
        await new Promise((r) => setTimeout(r, 25));
      }
    },
  }));
});
