/**
 * Which single-use tokens were redeemed, fleet-wide: the first `spend` of a token wins, every later
 * one (on any instance, until the token's own expiry) loses.
 */
export interface SpentTokens {
  /** True when `id` was not spent before (it is spent now, for `ttlMs`); false when it was. */
  spend(id: string, ttlMs: number): Promise<boolean>;
}
