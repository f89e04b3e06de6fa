import type { Redis } from 'ioredis';
import type { Subscriber, SubscriberHooks } from './subscriber.js';

/**
 * The channels of a standalone or Sentinel Redis, SUBSCRIBEd on one duplicate of the command client
 * (a connection in subscriber mode can do nothing else). Behind Sentinel the duplicate asks the
 * sentinels for the current master on every reconnect, so a failover is followed by itself.
 */
export class ConnectionSubscriber implements Subscriber {
  private sub: Redis | undefined;
  private closed = false;
  /** The current connection has confirmed the subscription of every channel. */
  private subscribed = false;
  private firstUp: { resolve: () => void; reject: (err: Error) => void } | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly channels: string[],
    private readonly hooks: SubscriberHooks,
  ) {}

  isUp(): boolean {
    return this.subscribed && !this.closed;
  }

  start(): Promise<void> {
    // The duplicate would inherit the caller's options. createFleet's own client has no offline queue
    // and `maxRetriesPerRequest: 1`: a SUBSCRIBE sent before the connection is ready would fail for
    // good. Here commands wait for the connection, and are resent after a reconnect, without limit.
    const sub = this.redis.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null });
    this.sub = sub;
    // Without a listener ioredis prints connection errors itself; they are expected while Redis is away.
    sub.on('error', (err: unknown) => this.hooks.onError(err));
    // 'close' is emitted on every lost connection, before ioredis reconnects (or ends).
    sub.on('close', () => {
      if (this.subscribed) {
        this.subscribed = false;
        this.hooks.onDown();
      }
    });
    // After a reconnect ioredis resubscribes by itself (autoResubscribe) but does not tell when Redis
    // confirmed it; a SUBSCRIBE of our own, sent behind it on the same connection, does.
    sub.on('ready', () => {
      this.subscribe(sub).catch((err: unknown) => {
        if (!this.closed) this.hooks.onError(err);
      });
    });
    sub.on('message', (channel: string, payload: string) => {
      if (!this.closed) this.hooks.onMessage(channel, payload);
    });
    return new Promise<void>((resolve, reject) => {
      this.firstUp = { resolve, reject };
      // Not bounded: queued until Redis is reachable (it may be down while this instance starts).
      // Rejects only when the client's retryStrategy gave up: this connection will never come back.
      this.subscribe(sub).catch((err: unknown) => {
        if (this.closed) return;
        this.sub = undefined;
        sub.disconnect();
        this.failStart(err instanceof Error ? err : new Error(String(err)));
      });
    });
  }

  /** SUBSCRIBEs the channels; marks the subscriber up when the reply came on the still-current connection. */
  private async subscribe(sub: Redis): Promise<void> {
    await sub.subscribe(...this.channels);
    // Replies are read from the current connection, so a reply while 'ready' means subscribed now;
    // a connection lost since then has set its status already (its 'close' cleared the flag).
    if (this.sub === sub && sub.status === 'ready' && !this.closed && !this.subscribed) {
      this.subscribed = true;
      this.firstUp?.resolve();
      this.firstUp = undefined;
      this.hooks.onUp();
    }
  }

  private failStart(err: Error): void {
    this.firstUp?.reject(err);
    this.firstUp = undefined;
  }

  async close(timeoutMs: number): Promise<void> {
    this.closed = true;
    this.subscribed = false;
    // ioredis's disconnect() between two connection attempts never fails the commands in the offline
    // queue, so a start() still waiting would stay pending forever.
    this.failStart(new Error('closed before subscribed'));
    const sub = this.sub;
    this.sub = undefined;
    if (!sub) return;
    try {
      // Not connected (Redis away, or still connecting): nobody to say goodbye to, and a QUIT would
      // only wait in the offline queue.
      if (sub.status === 'ready') await bounded(sub.quit(), timeoutMs);
    } catch {
      // Redis is unreachable: disconnect() below ends it anyway.
    } finally {
      sub.disconnect();
    }
  }
}

/** Resolves with `op`, or after `ms` (whichever is first); never rejects. */
export function bounded(op: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    op.then(done, done);
  });
}
