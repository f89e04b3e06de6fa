import type { Clock, TimerHandle } from '../../src/clock.js';

interface Timer {
  id: number;
  at: number;
  fn: () => void;
}

/** Lets pending promise callbacks and setImmediate deliveries (the memory bus) run. */
export async function settle(rounds = 10): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}

/**
 * A {@link Clock} tests drive by hand: time moves only when told to, and timers fire in order as it
 * moves (`advance`), or not at all (`freeze`, as in a paused process).
 */
export class ManualClock implements Clock {
  private t = 1_700_000_000_000;
  private seq = 0;
  private timers: Timer[] = [];

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = ++this.seq;
    this.timers.push({ id, at: this.t + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    this.timers = this.timers.filter((t) => t.id !== handle);
  }

  /** Number of timers waiting. */
  get pending(): number {
    return this.timers.length;
  }

  /** Moves time forward by `ms`, firing each timer due on the way (and letting its effects settle). */
  async advance(ms: number): Promise<void> {
    const target = this.t + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at || a.id - b.id);
      const next = this.timers[0];
      if (!next || next.at > target) break;
      this.timers.shift();
      this.t = Math.max(this.t, next.at); // an overdue timer (after a freeze) fires now
      next.fn();
      await settle();
    }
    this.t = target;
    await settle();
  }

  /** Moves time forward by `ms` without firing anything: a process that was paused (SIGSTOP). */
  freeze(ms: number): void {
    this.t += ms;
  }
}
