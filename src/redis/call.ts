import type { ChainableCommander } from 'ioredis';
import { storeUnavailable } from '../errors.js';

/** Default bound on one Redis call (a command, a script or a whole pipeline), in ms. */
export const DEFAULT_COMMAND_TIMEOUT_MS = 2000;

/**
 * Awaits one Redis call, bounded by `timeoutMs`. Driver failures and timeouts become
 * `FleetError('STORE_UNAVAILABLE')`, so a frozen or unreachable Redis fails requests fast instead
 * of queueing them behind a socket that never answers.
 */
export function call<T>(op: Promise<T>, timeoutMs: number = DEFAULT_COMMAND_TIMEOUT_MS): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(storeUnavailable(new Error(`Redis did not answer within ${timeoutMs} ms`)));
    }, timeoutMs);
    // A late answer after the timeout is ignored: the promise has settled already, and the
    // rejection handler below keeps a late failure from becoming an unhandled rejection.
    op.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(storeUnavailable(err));
      },
    );
  });
}

/**
 * Sends a pipeline (one round trip) through {@link call} and returns each command's reply. The first
 * failed command rejects the whole call: the callers' pipelines are all-or-nothing in meaning.
 */
export async function execPipeline(pipeline: ChainableCommander, timeoutMs?: number): Promise<unknown[]> {
  const replies = await call(pipeline.exec(), timeoutMs);
  // exec() resolves to null only for a discarded MULTI, which these MULTI-less pipelines never are.
  if (replies === null) throw storeUnavailable(new Error('Redis discarded the pipeline'));
  return replies.map(([err, reply]) => {
    if (err) throw storeUnavailable(err);
    return reply;
  });
}
