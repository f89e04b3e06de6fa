import type { Redis } from 'ioredis';
import { call, DEFAULT_COMMAND_TIMEOUT_MS } from '../redis/call.js';
import type { RedisKeys } from '../redis/keys.js';
import type { BusMessage, MessageBus } from './message-bus.js';

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
}

/**
 * {@link MessageBus} over Redis pub/sub: PUBLISH on the caller's client, SUBSCRIBE on a duplicate of
 * it (a connection in subscriber mode can do nothing else). Only the duplicate is closed by
 * {@link close}. Channels: `keys.instanceChannel(id)` and `keys.broadcastChannel()`; messages are JSON.
 */
export class RedisBus implements MessageBus {
  private readonly timeoutMs: number;
  private subscriber: Redis | undefined;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly opts: RedisBusOptions = {},
  ) {
    this.timeoutMs = opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
  }

  /** {@inheritDoc MessageBus.start} */
  async start(instanceId: string, onMessage: (message: BusMessage) => void): Promise<void> {
    if (this.closing) throw new Error('RedisBus is closed');
    if (this.subscriber) throw new Error('RedisBus is already started');
    // The duplicate inherits the caller's options: with `enableOfflineQueue: false` (createFleet's own
    // client) a SUBSCRIBE sent before the new connection is ready fails at once and is never retried.
    const sub = this.redis.duplicate({ enableOfflineQueue: true });
    this.subscriber = sub;
    // Without a listener ioredis prints connection errors itself; they are expected while Redis is away.
    sub.on('error', (err: unknown) => this.opts.onError?.(err));
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
    try {
      await call(
        sub.subscribe(this.keys.instanceChannel(instanceId), this.keys.broadcastChannel()),
        this.timeoutMs,
      );
    } catch (err) {
      this.subscriber = undefined;
      sub.disconnect();
      throw err;
    }
  }

  /** {@inheritDoc MessageBus.send} */
  async send(instanceId: string, message: BusMessage): Promise<number> {
    return call(
      this.redis.publish(this.keys.instanceChannel(instanceId), JSON.stringify(message)),
      this.timeoutMs,
    );
  }

  /** {@inheritDoc MessageBus.broadcast} */
  async broadcast(message: BusMessage): Promise<void> {
    await call(this.redis.publish(this.keys.broadcastChannel(), JSON.stringify(message)), this.timeoutMs);
  }

  /** Closes the subscriber connection (never the caller's client). Idempotent, bounded by the timeout. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    const sub = this.subscriber;
    this.subscriber = undefined;
    if (!sub) return;
    try {
      await call(sub.quit(), this.timeoutMs);
    } catch {
      // Redis is unreachable: there is nobody to say goodbye to; disconnect() below ends it anyway.
    } finally {
      sub.disconnect();
    }
  }
}

/** A bus message, or undefined when the payload is not JSON of an object with a string `t`. */
function parseMessage(payload: string): BusMessage | undefined {
  let value: unknown;
  try {
    value = JSON.parse(payload);
  } catch {
    return undefined; // not JSON: reported by the caller as malformed
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  return typeof (value as { t?: unknown }).t === 'string' ? (value as BusMessage) : undefined;
}
