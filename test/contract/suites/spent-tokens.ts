import { it } from 'node:test';
import assert from 'node:assert/strict';
import type { RedisClient } from '../../../src/redis/client.js';
import type { RedisKeys } from '../../../src/redis/keys.js';
import type { SpentTokens } from '../../../src/store/spent-tokens.js';
import { waitFor } from '../../helpers/wait.js';

/** `expire` for the Redis stores: Redis expires the key by its own clock; wait until it has. */
export function redisExpiry(client: RedisClient, keys: RedisKeys): (ms: number) => Promise<void> {
  return async (ms) => {
    await waitFor(
      'the spent token expired',
      async () => (await client.exists(keys.spentRequestState('short'))) === 0,
      ms + 5000,
    );
  };
}

/**
 * The SpentTokens contract: `a` and `b` are two instances' views of one store; `ttlOf` reads how
 * long a spent id is kept (the memory store: by its injected clock; Redis: PTTL).
 */
export function spentTokensContract(
  make: () => { a: SpentTokens; b: SpentTokens; expire(ms: number): Promise<void> },
): void {
  it('the first spend of an id wins, on any instance; other ids are independent', async () => {
    const { a, b } = make();
    assert.equal(await a.spend('t1', 60_000), true);
    assert.equal(await b.spend('t1', 60_000), false, 'spent on another instance');
    assert.equal(await a.spend('t1', 60_000), false, 'spent here');
    assert.equal(await b.spend('t2', 60_000), true);
  });

  it('a spent id is forgotten once its TTL has passed', async () => {
    const { a, b, expire } = make();
    assert.equal(await a.spend('short', 200), true);
    await expire(200);
    assert.equal(await b.spend('short', 200), true, 'the token itself has expired by then');
  });
}
