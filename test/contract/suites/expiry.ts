import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Expiry is Redis's own clock, so these contracts cannot inject one: instead of sleeping a fixed
 * time and hoping the machine kept up, they poll until the expiry is observable (failing after
 * `ms`) and keep every refresh well inside the TTL, so a slow, shared machine cannot flip them.
 * Returns how long the wait took.
 */
export async function untilGone(what: string, gone: () => Promise<boolean>, ms = 5000): Promise<number> {
  const started = Date.now();
  while (!(await gone())) {
    if (Date.now() - started > ms) assert.fail(`not gone after ${ms} ms: ${what}`);
    await sleep(25);
  }
  return Date.now() - started;
}
