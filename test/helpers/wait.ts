// The one polling wait of the test suite: wait for something observable, never for a fixed time.

/**
 * Polls `check` every `everyMs` until it holds and resolves to the ms that took; rejects naming
 * `what` after `timeoutMs`.
 */
export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 15_000,
  everyMs = 20,
): Promise<number> {
  const started = performance.now();
  while (!(await check())) {
    if (performance.now() - started > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return performance.now() - started;
}
