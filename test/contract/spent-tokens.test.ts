import { describe } from 'node:test';
import { MemorySpentTokens } from '../../src/store/memory-spent-tokens.js';
import { RedisSpentTokens } from '../../src/store/redis-spent-tokens.js';
import { useRedisPair } from '../helpers/redis-server.js';
import { redisExpiry, spentTokensContract } from './suites/spent-tokens.js';

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
    expire: redisExpiry(rp.c1, rp.keys),
  }));
});
