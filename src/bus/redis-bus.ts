import calculateSlot from 'cluster-key-slot';
import { storeUnavailable } from '../errors.js';
import { call, DEFAULT_COMMAND_TIMEOUT_MS } from '../redis/call.js';
import { isCluster, type RedisClient } from '../redis/client.js';
import type { RedisKeys } from '../redis/keys.js';
import { ClusterSubscriber, masterOfSlot, type ClusterPubSub } from './cluster-subscriber.js';
import { ConnectionSubscriber } from './connection-subscriber.js';
import type { BusPayload, MessageBus } from './message-bus.js';
import type { Subscriber, SubscriberHooks } from './subscriber.js';

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
  /**
   * Called each time the subscription is lost (a subscriber connection closed): messages sent to
   * this instance from now on reach nobody until it is confirmed again.
   * @default undefined
   */
  onUnsubscribed?: () => void;
  /**
   * Pub/sub flavour on a Redis Cluster: `sharded` (SPUBLISH/SSUBSCRIBE, Redis ≥ 7; a message stays
   * within the shard of its channel) or `classic` (every message crosses the whole cluster; for
   * Redis < 7). Ignored on standalone and Sentinel.
   * @default 'sharded'
   */
  pubsub?: ClusterPubSub;
}

/**
 * {@link MessageBus} over Redis pub/sub, on every topology. Channels: `keys.instanceChannel(id)` and
 * `keys.broadcastChannel()`; messages are JSON.
 *
 * - Standalone and Sentinel: PUBLISH on the caller's client, SUBSCRIBE on a duplicate of it.
 * - Cluster: each channel on a connection of its own to the master of the channel's slot, with
 *   sharded pub/sub (SPUBLISH/SSUBSCRIBE, Redis ≥ 7) unless `pubsub: 'classic'`; see
 *   {@link ClusterSubscriber}.
 *
 * Only the subscriber connections are closed by {@link close}, never the caller's client. The
 * subscriber never gives up while Redis is away: {@link start} waits until the first subscription is
 * confirmed, however long that takes, and after every reconnect or failover the channels are
 * subscribed again. {@link isUp} tells whether they are subscribed right now.
 */
export class RedisBus implements MessageBus {
  private readonly timeoutMs: number;
  private readonly pubsub: ClusterPubSub;
  private subscriber: Subscriber | undefined;
  private closing: Promise<void> | undefined;
  private everSubscribed = false;
  private upWaiters: Array<() => void> = [];

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    private readonly opts: RedisBusOptions = {},
  ) {
    this.timeoutMs = opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.pubsub = opts.pubsub ?? 'sharded';
  }

  /**
   * True while this instance's channels are subscribed: false before {@link start} resolved, while a
   * subscriber connection is lost or reconnecting (messages sent meanwhile find no receiver), and
   * after {@link close}.
   */
  isUp(): boolean {
    return (this.subscriber?.isUp() ?? false) && !this.closing;
  }

  /**
   * {@inheritDoc MessageBus.start}
   * While Redis is unreachable this waits (unbounded) for it; it rejects only when the bus is closed
   * first, when the client's `retryStrategy` stops reconnecting, or when the Cluster has no sharded
   * pub/sub (Redis < 7).
   */
  async start(instanceId: string, onMessage: (message: unknown) => void): Promise<void> {
    if (this.closing) throw new Error('RedisBus is closed');
    if (this.subscriber) throw new Error('RedisBus is already started');
    const channels = [this.keys.instanceChannel(instanceId), this.keys.broadcastChannel()];
    const hooks: SubscriberHooks = {
      onUp: () => {
        if (this.closing) return;
        if (this.everSubscribed) this.opts.onResubscribed?.();
        this.everSubscribed = true;
        for (const w of this.upWaiters.splice(0)) w();
      },
      onDown: () => {
        if (!this.closing) this.opts.onUnsubscribed?.();
      },
      onError: (err) => {
        if (!this.closing) this.opts.onError?.(err);
      },
      onMessage: (channel, payload) => {
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
      },
    };
    const sub = isCluster(this.redis)
      ? new ClusterSubscriber(this.redis, channels, this.pubsub, hooks)
      : new ConnectionSubscriber(this.redis, channels, hooks);
    this.subscriber = sub;
    try {
      await sub.start();
    } catch (err) {
      if (this.closing) throw new Error('RedisBus was closed before it was subscribed', { cause: err });
      if (this.subscriber === sub) this.subscriber = undefined;
      await sub.close(0);
      throw storeUnavailable(err);
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
    return call(this.publish(this.keys.instanceChannel(instanceId), JSON.stringify(message)), this.timeoutMs);
  }

  /** {@inheritDoc MessageBus.broadcast} */
  async broadcast(message: BusPayload): Promise<void> {
    await call(this.publish(this.keys.broadcastChannel(), JSON.stringify(message)), this.timeoutMs);
  }

  /**
   * PUBLISH, SPUBLISH on a Cluster (routed by the channel's slot). Classic pub/sub on a Cluster
   * publishes on the master the channel's subscribers are connected to, as the receiver count a node
   * returns is its own.
   */
  private publish(channel: string, payload: string): Promise<number> {
    const redis = this.redis;
    if (!isCluster(redis)) return redis.publish(channel, payload);
    if (this.pubsub === 'sharded') return redis.spublish(channel, payload) as Promise<number>;
    const node = masterOfSlot(redis, calculateSlot(channel));
    return node ? node.redis.publish(channel, payload) : redis.publish(channel, payload);
  }

  /**
   * Closes the subscriber connections (never the caller's client). Idempotent, bounded by the
   * timeout; a {@link start} still waiting for Redis rejects.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    for (const w of this.upWaiters.splice(0)) w();
    const sub = this.subscriber;
    this.subscriber = undefined;
    await sub?.close(this.timeoutMs);
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
