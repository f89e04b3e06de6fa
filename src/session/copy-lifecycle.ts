import type { SessionCloseReason } from '../types.js';

/**
 * The end of one live copy of a session, as the user's server sees it through its factory's `ctx`:
 * an `AbortSignal` aborted with the reason, and `onClose` callbacks, each run once.
 */
export class CopyLifecycle {
  private readonly controller = new AbortController();
  private readonly listeners: Array<(reason: SessionCloseReason) => void> = [];
  private ended: SessionCloseReason | undefined;

  constructor(private readonly onError: (err: Error) => void) {}

  /** Aborted (with the {@link SessionCloseReason} as `signal.reason`) when the copy ends. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Why the copy ended, once it has. */
  get reason(): SessionCloseReason | undefined {
    return this.ended;
  }

  /** Runs `fn` once when the copy ends (at once, on a microtask, if it has already). */
  onClose(fn: (reason: SessionCloseReason) => void): void {
    if (typeof fn !== 'function') throw new TypeError('onClose needs a function');
    if (this.ended !== undefined) {
      const reason = this.ended;
      queueMicrotask(() => this.run(fn, reason));
      return;
    }
    this.listeners.push(fn);
  }

  /** Ends the copy: the first reason given wins; later calls do nothing. */
  end(reason: SessionCloseReason): void {
    if (this.ended !== undefined) return;
    this.ended = reason;
    this.controller.abort(reason);
    for (const fn of this.listeners.splice(0)) this.run(fn, reason);
  }

  private run(fn: (reason: SessionCloseReason) => void, reason: SessionCloseReason): void {
    try {
      fn(reason);
    } catch (err) {
      // The user's cleanup failed: reported, and the other callbacks still run.
      this.onError(err instanceof Error ? err : new Error(String(err)));
    }
  }
}
