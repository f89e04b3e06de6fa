/** A timer handle of a {@link Clock}. */
export type TimerHandle = { unref?(): unknown } | number;

/**
 * Time as the ownership and forwarding logic sees it, injectable so tests can drive leases,
 * acknowledgement timeouts and heartbeats without sleeping.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Runs `fn` once after `ms` (unref'd: a pending timer never keeps the process alive). */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle | undefined): void;
}

/** The real clock. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout(handle) {
    if (handle !== undefined) clearTimeout(handle as NodeJS.Timeout);
  },
};
