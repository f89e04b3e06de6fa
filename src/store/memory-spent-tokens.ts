import { LRUCache } from 'lru-cache';
import type { SpentTokens } from './spent-tokens.js';

/** {@link SpentTokens} in process memory (the embedded default: one instance). */
export class MemorySpentTokens implements SpentTokens {
  private readonly spent: LRUCache<string, true>;

  constructor(opts: { max?: number; now?: () => number } = {}) {
    this.spent = new LRUCache<string, true>({
      max: opts.max ?? 100_000,
      ttlAutopurge: false,
      ...(opts.now ? { perf: { now: opts.now } } : {}),
    });
  }

  spend(id: string, ttlMs: number): Promise<boolean> {
    if (this.spent.has(id)) return Promise.resolve(false);
    this.spent.set(id, true, { ttl: Math.max(1, ttlMs) });
    return Promise.resolve(true);
  }
}
