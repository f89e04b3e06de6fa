import { waitFor } from '../../helpers/wait.js';

/**
 * Expiry is Redis's own clock, so these contracts cannot inject one: instead of sleeping a fixed
 * time and hoping the machine kept up, they poll until the expiry is observable (failing after
 * `ms`) and keep every refresh well inside the TTL, so a slow, shared machine cannot flip them.
 * Returns how long the wait took.
 */
export function untilGone(what: string, gone: () => Promise<boolean>, ms = 5000): Promise<number> {
  return waitFor(`${what} to be gone`, gone, ms, 25);
}
