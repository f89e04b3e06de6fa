import { storeUnavailable } from '../errors.js';
import type { RedisClient } from './client.js';

/**
 * Admits a request to the store only while the command connection can run commands, so requests
 * fail with a 503 at once while Redis is away instead of each waiting out a command timeout:
 *
 * - ready: admitted;
 * - never connected yet (the instance is starting): waits for the first connection, at most
 *   `timeoutMs`;
 * - connected before and now reconnecting (Redis restarting, a Sentinel failover): refused at once;
 *   the client retries, and is admitted as soon as the connection is back;
 * - closed for good: refused.
 *
 * On a Cluster the client stays ready while one master fails over; commands for that master's slots
 * fail on their own, fast (no offline queue), and the others go on.
 */
export class StoreGate {
  private everReady: boolean;
  private readonly waiters = new Set<() => void>();

  constructor(
    private readonly client: RedisClient,
    private readonly timeoutMs: number,
  ) {
    this.everReady = client.status === 'ready';
    client.on('ready', this.onReady);
  }

  private readonly onReady = (): void => {
    this.everReady = true;
    for (const w of this.waiters) w();
    this.waiters.clear();
  };

  /** Removes the listener (the client may be the caller's and outlive the fleet). */
  stop(): void {
    this.client.off('ready', this.onReady);
  }

  /**
   * Resolves once the command connection has been ready (at once if it has): what waits for the
   * first connection without a bound, such as the first heartbeat, which sent while still
   * connecting would fail (no offline queue) and be retried only a heartbeat later.
   */
  connected(): Promise<void> {
    if (this.everReady) return Promise.resolve();
    // A caller's client made with `lazyConnect` connects on its first command, which is this wait's.
    if (this.client.status === 'wait') this.client.connect().catch(() => undefined); // 'error' reports it
    return new Promise<void>((resolve) => this.waiters.add(resolve));
  }

  admit(): Promise<void> {
    const status = this.client.status;
    if (status === 'ready') return Promise.resolve();
    if (status === 'end') return Promise.reject(storeUnavailable(new Error('Redis connection closed')));
    if (this.everReady) {
      return Promise.reject(storeUnavailable(new Error(`Redis connection lost (${status})`)));
    }
    return new Promise<void>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(done);
        reject(storeUnavailable(new Error(`Redis not connected yet (${this.client.status})`)));
      }, this.timeoutMs);
      timer.unref();
      this.waiters.add(done);
    });
  }
}
