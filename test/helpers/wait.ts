// The one polling wait of the test suite: wait for something observable, never for a fixed time.

/**
 * Polls `check` every `everyMs` until it holds and resolves to the ms that took; a check that
 * throws counts as "not yet" (a server still starting refuses connections). Rejects naming `what`
 * (and the last error, if any) after `timeoutMs`.
 */
export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 15_000,
  everyMs = 20,
): Promise<number> {
  const started = performance.now();
  let lastError: unknown;
  for (;;) {
    try {
      if (await check()) return performance.now() - started;
    } catch (err) {
      lastError = err;
    }
    if (performance.now() - started > timeoutMs) {
      const cause = lastError === undefined ? '' : ` (last error: ${String(lastError)})`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${cause}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
