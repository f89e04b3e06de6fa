import { call, DEFAULT_COMMAND_TIMEOUT_MS } from '../redis/call.js';
import type { RedisClient } from '../redis/client.js';
import type { RedisKeys } from '../redis/keys.js';
import type { SpentTokens } from './spent-tokens.js';

/** {@link SpentTokens} in Redis: one `SET NX PX` per redemption (`keys.spentRequestState`). */
export class RedisSpentTokens implements SpentTokens {
  private readonly timeoutMs: number;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    opts: { commandTimeoutMs?: number } = {},
  ) {
    this.timeoutMs = opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
  }

  async spend(id: string, ttlMs: number): Promise<boolean> {
    const ok = await call(
      this.redis.set(this.keys.spentRequestState(id), '1', 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX'),
      this.timeoutMs,
    );
    return ok === 'OK';
  }
}
