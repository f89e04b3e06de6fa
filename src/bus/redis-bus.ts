import type { Redis } from 'ioredis';
import { storeUnavailable } from '../errors.js';
import { call, DEFAULT_COMMAND_TIMEOUT_MS } from '../redis/call.js';
import type { RedisKeys } from '../redis/keys.js';
import type { BusPayload, MessageBus } from './message-bus.js';

/** Options of {@link RedisBus}. */
export interface RedisBusOptions {
  /**
   * Called with non-fatal errors: a malformed message on a channel, a throwing message handler, a
   * subscriber connection error (ioredis reconnects and resubscribes by itself).
   * @default undefined (the error is dropped)
   */
  onError?: (err: unknown) => void;
  /**
   * Bound on every Redis call in ms; past it the call fails with `STORE_UNAVAILABLE`.
   * @default 2000
   */
  commandTimeoutMs?: number;
  /**
   * Called each time the subscription is confirmed after having been down (not the first time):
   * messages sent to this instance meanwhile were lost, and other instances may have acted on that.
   * @default undefined
   */
  onResubscribed?: () => void;
}

/**
 * {@link MessageBus} over Redis pub/sub: PUBLISH on the caller's client, SUBSCRIBE on a duplicate of
 * it (a connection in subscriber mode can do nothing else). Only the duplicate is closed by
 * {@link close}. Channels: `keys.instanceChannel(id)` and `keys.broadcastChannel()`; messages are JSON.
 *
 * The subscriber never gives up while Redis is away: {@link start} waits until the first subscription
 * is confirmed, however long that takes, and after every reconnect the channels are subscribed again.
 * {@link isUp} tells whether they are subscribed right now.
 */
export class RedisBus implements MessageBus {
  private readonly timeoutMs: number;
  private subscriber: Redis | undefined;
  private closing: Promise<void> | undefined;
  /** The subscriber's current connection has confirmed the subscription of both channels. */
  private subscribed = false;
  private everSubscribed = false;
  private upWaiters: Array<() => void> = [];
  /** Rejects a {@link start} still waiting for its subscription (set while it waits). */
  private abortStart: ((err: Error) => void) | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly opts: RedisBusOptions = {},
  ) {
    this.timeoutMs = opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
  }

  /**
   * True while this instance's channels are subscribed: false before {@link start} resolved, while the
   * subscriber connection is lost or reconnecting (messages sent meanwhile find no receiver), and
   * after {@link close}.
   */
  isUp(): boolean {
    return this.subscribed && !this.closing;
  }

  /**
   * {@inheritDoc MessageBus.start}
   * While Redis is unreachable this waits (unbounded) for it; it rejects only when the bus is closed
   * first, or when the client's `retryStrategy` stops reconnecting.
   */
  async start(instanceId: string, onMessage: (message: unknown) => void): Promise<void> {
    if (this.closing) throw new Error('RedisBus is closed');
    if (this.subscriber) throw new Error('RedisBus is already started');
    // The duplicate would inherit the caller's options. createFleet's own client has no offline queue
    // and `maxRetriesPerRequest: 1`: a SUBSCRIBE sent before the connection is ready would fail for
    // good. Here commands wait for the connection, and are resent after a reconnect, without limit.
    const sub = this.redis.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null });
    this.subscriber = sub;
    const channels = [this.keys.instanceChannel(instanceId), this.keys.broadcastChannel()];
    // Without a listener ioredis prints connection errors itself; they are expected while Redis is away.
    sub.on('error', (err: unknown) => this.opts.onError?.(err));
    // 'close' is emitted on every lost connection, before ioredis reconnects (or ends).
    sub.on('close', () => {
      this.subscribed = false;
    });
    // After a reconnect ioredis resubscribes by itself (autoResubscribe) but does not tell when Redis
    // confirmed it; a SUBSCRIBE of our own, sent behind it on the same connection, does.
    sub.on('ready', () => {
      this.subscribe(sub, channels).catch((err: unknown) => {
        if (!this.closing) this.opts.onError?.(err);
      });
    });
    sub.on('message', (channel: string, payload: string) => {
      if (this.closing) return;
      const message = parseMessage(payload);
      if (!message) {
        this.opts.onError?.(
          new Error(`Malformed message on bus channel ${channel}: ${payload.slice(0, 200)}`),
        );
        return;
      }
      try {
        onMessage(message);
      } catch (err) {
        this.opts.onError?.(err);
      }
    });
    // close() ends the wait: ioredis's disconnect() between two connection attempts never fails
    // the commands in the offline queue, so the SUBSCRIBE alone could stay pending forever.
    const aborted = new Promise<never>((_, reject) => {
      this.abortStart = reject;
    });
    try {
      // Not bounded: queued until Redis is reachable (it may be down while this instance starts).
      await Promise.race([this.subscribe(sub, channels), aborted]);
    } catch (err) {
      if (this.closing) throw new Error('RedisBus was closed before it was subscribed', { cause: err });
      // Only when the client's retryStrategy gave up: this connection will never come back.
      if (this.subscriber === sub) this.subscriber = undefined;
      sub.disconnect();
      throw storeUnavailable(err);
    } finally {
      this.abortStart = undefined;
    }
  }

  /** SUBSCRIBEs both channels; marks the bus up when the reply came on the still-current connection. */
  private async subscribe(sub: Redis, channels: string[]): Promise<void> {
    await sub.subscribe(...channels);
    // Replies are read from the current connection, so a reply while 'ready' means subscribed now;
    // a connection lost since then has set its status already (its 'close' clears the flag).
    if (this.subscriber === sub && sub.status === 'ready' && !this.closing && !this.subscribed) {
      this.subscribed = true;
      if (this.everSubscribed) this.opts.onResubscribed?.();
      this.everSubscribed = true;
      for (const w of this.upWaiters.splice(0)) w();
    }
  }

  /** {@inheritDoc MessageBus.whenUp} */
  whenUp(timeoutMs: number): Promise<boolean> {
    if (this.isUp()) return Promise.resolve(true);
    if (this.closing) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        resolve(this.isUp());
      };
      const timer = setTimeout(() => {
        this.upWaiters = this.upWaiters.filter((w) => w !== done);
        resolve(false);
      }, timeoutMs);
      timer.unref();
      this.upWaiters.push(done);
    });
  }

  /** {@inheritDoc MessageBus.send} */
  async send(instanceId: string, message: BusPayload): Promise<number> {
    return call(
      this.redis.publish(this.keys.instanceChannel(instanceId), JSON.stringify(message)),
      this.timeoutMs,
    );
  }

  /** {@inheritDoc MessageBus.broadcast} */
  async broadcast(message: BusPayload): Promise<void> {
    await call(this.redis.publish(this.keys.broadcastChannel(), JSON.stringify(message)), this.timeoutMs);
  }

  /**
   * Closes the subscriber connection (never the caller's client). Idempotent, bounded by the timeout;
   * a {@link start} still waiting for Redis rejects.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.subscribed = false;
    this.abortStart?.(new Error('RedisBus was closed'));
    const sub = this.subscriber;
    this.subscriber = undefined;
    if (!sub) return;
    try {
      // Not connected (Redis away, or still connecting): nobody to say goodbye to, and a QUIT would
      // only wait in the offline queue.
      if (sub.status === 'ready') await call(sub.quit(), this.timeoutMs);
    } catch {
      // Redis is unreachable: there is nobody to say goodbye to; disconnect() below ends it anyway.
    } finally {
      sub.disconnect();
    }
  }
}

/** A bus payload, or undefined when the payload is not JSON of an object with a string `t`. */
function parseMessage(payload: string): BusPayload | undefined {
  let value: unknown;
  try {
    value = JSON.parse(payload);
  } catch {
    return undefined; // not JSON: reported by the caller as malformed
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  return typeof (value as { t?: unknown }).t === 'string' ? (value as BusPayload) : undefined;
}
