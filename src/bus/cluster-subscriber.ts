import type { Cluster, Redis } from 'ioredis';
import calculateSlot from 'cluster-key-slot';
import { bounded } from './connection-subscriber.js';
import type { Subscriber, SubscriberHooks } from './subscriber.js';

/** How channels are subscribed on a Cluster. */
export type ClusterPubSub = 'sharded' | 'classic';

/**
 * The channels of a Redis Cluster, each on its own connection to the master serving the channel's
 * slot: `SSUBSCRIBE` (sharded pub/sub, Redis ≥ 7: a message travels only within its shard) or, in
 * `classic` mode, `SUBSCRIBE` (every message crosses the whole cluster bus; the node's own count of
 * receivers is still right, because publishers send to the same node, see `RedisBus`).
 *
 * A channel is moved to the slot's new master when its connection closes (the master died), when
 * Redis pushes an `sunsubscribe` (the slot was resharded away), when SSUBSCRIBE answers `MOVED`, and
 * when the client's slot map (refreshed by ioredis) names another master.
 */
export class ClusterSubscriber implements Subscriber {
  private readonly channels: ShardChannel[];
  private closed = false;
  private firstUp: { resolve: () => void; reject: (err: Error) => void } | undefined;
  private up = false;
  private readonly onRefresh = () => {
    for (const c of this.channels) c.check();
  };

  constructor(
    private readonly cluster: Cluster,
    channels: string[],
    private readonly mode: ClusterPubSub,
    private readonly hooks: SubscriberHooks,
  ) {
    this.channels = channels.map(
      (channel) =>
        new ShardChannel(cluster, channel, mode, {
          onMessage: (payload) => {
            if (!this.closed) hooks.onMessage(channel, payload);
          },
          onChange: () => this.changed(),
          onError: (err) => hooks.onError(err),
          onFatal: (err) => this.fatal(err),
        }),
    );
  }

  isUp(): boolean {
    return this.up && !this.closed;
  }

  start(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.firstUp = { resolve, reject };
      // ioredis refreshes its slot map on MOVED and every `slotsRefreshInterval`: follow it.
      this.cluster.on('refresh', this.onRefresh);
      const begin = () => {
        if (!this.closed) for (const c of this.channels) c.attach();
      };
      // The slot map is empty until the cluster client connected.
      if (this.cluster.status === 'ready') begin();
      else {
        this.cluster.once('ready', begin);
        if (this.cluster.status === 'wait') this.cluster.connect().catch(() => undefined);
      }
    });
  }

  private changed(): void {
    const up = this.channels.every((c) => c.up);
    if (up === this.up) return;
    this.up = up;
    if (up) {
      this.firstUp?.resolve();
      this.firstUp = undefined;
      this.hooks.onUp();
    } else this.hooks.onDown();
  }

  private fatal(err: Error): void {
    this.hooks.onError(err);
    this.firstUp?.reject(err);
    this.firstUp = undefined;
  }

  async close(timeoutMs: number): Promise<void> {
    this.closed = true;
    this.up = false;
    this.cluster.off('refresh', this.onRefresh);
    this.firstUp?.reject(new Error('closed before subscribed'));
    this.firstUp = undefined;
    await Promise.all(this.channels.map((c) => c.close(timeoutMs)));
  }
}

interface ShardChannelHooks {
  onMessage(payload: string): void;
  /** `up` changed. */
  onChange(): void;
  onError(err: unknown): void;
  /** Subscribing can never work (the command is unknown: Redis < 7 and sharded mode). */
  onFatal(err: Error): void;
}

/** Backoff between two attempts to subscribe a channel: 50 ms doubling to 1 s. */
const backoff = (attempt: number) => Math.min(50 * 2 ** attempt, 1000);

/** One channel kept subscribed on the master of its slot. */
class ShardChannel {
  up = false;
  private conn: Redis | undefined;
  /** The master `conn` talks to, as ioredis names nodes (`host:port`). */
  private nodeKey: string | undefined;
  private attempt = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly slot: number;

  constructor(
    private readonly cluster: Cluster,
    private readonly channel: string,
    private readonly mode: ClusterPubSub,
    private readonly hooks: ShardChannelHooks,
  ) {
    this.slot = calculateSlot(channel);
  }

  /** Connects to the slot's master and subscribes (no-op while connected or waiting to retry). */
  attach(): void {
    if (this.closed || this.conn || this.timer) return;
    const node = masterOfSlot(this.cluster, this.slot);
    if (!node) {
      this.retry('no master known for the slot');
      return;
    }
    // A duplicate of ioredis's own connection to that node: same address, credentials and TLS.
    // No reconnects of its own (a reconnect may have to go to another node) and no resubscribing.
    const conn = node.redis.duplicate({
      lazyConnect: true,
      retryStrategy: () => null,
      enableOfflineQueue: true,
      maxRetriesPerRequest: null,
      autoResubscribe: false,
      enableReadyCheck: false,
      readOnly: false,
      connectionName: 'mcp-fleet-bus',
    });
    this.conn = conn;
    this.nodeKey = node.key;
    conn.on('error', (err: Error) => {
      // An sunsubscribe pushed by Redis (the slot left this node) reaches ioredis as a reply nothing
      // waited for; it reports it as a queue error. The subscription is gone: subscribe again elsewhere.
      if (/Last reply: s?unsubscribe/.test(err.message)) this.detach(conn, 'slot moved away');
      else this.hooks.onError(err);
    });
    conn.on('close', () => this.detach(conn, 'connection closed'));
    // SSUBSCRIBE answered MOVED: our slot map is stale.
    conn.on('moved', () => this.detach(conn, 'moved'));
    conn.on(this.mode === 'sharded' ? 'smessage' : 'message', (channel: string, payload: string) => {
      if (channel === this.channel && conn === this.conn) this.hooks.onMessage(payload);
    });
    const subscribe = () =>
      this.mode === 'sharded' ? conn.ssubscribe(this.channel) : conn.subscribe(this.channel);
    conn
      .connect()
      .then(subscribe)
      .then(
        () => {
          if (conn !== this.conn || this.closed) return;
          this.attempt = 0;
          this.up = true;
          this.hooks.onChange();
        },
        (err: unknown) => {
          if (err instanceof Error && /unknown command/i.test(err.message)) {
            this.hooks.onFatal(
              new Error(
                `Redis has no sharded pub/sub (${err.message}): it needs Redis 7 or later, or set ` +
                  "the bus to classic pub/sub (createFleet option `redisPubSub: 'classic'`)",
              ),
            );
            this.detach(conn, 'unsupported', false);
            return;
          }
          this.detach(conn, err instanceof Error ? err.message : String(err));
        },
      );
  }

  /** Moves the subscription when the client's slot map says another master serves the slot now. */
  check(): void {
    if (!this.conn || this.closed) return;
    const master = this.cluster.slots[this.slot]?.[0];
    if (master !== undefined && master !== this.nodeKey) this.detach(this.conn, 'slot served elsewhere');
  }

  /** Drops `conn` (if still current) and subscribes again after a backoff, unless told not to. */
  private detach(conn: Redis, reason: string, again = true): void {
    if (conn !== this.conn) return;
    this.conn = undefined;
    this.nodeKey = undefined;
    // Errors of a connection being dropped are of no interest.
    conn.removeAllListeners('error');
    conn.on('error', () => undefined);
    conn.disconnect();
    if (this.up) {
      this.up = false;
      this.hooks.onChange();
    }
    if (again && !this.closed) this.retry(reason);
  }

  private retry(reason: string): void {
    if (this.closed || this.timer) return;
    // Where the slot lives now: a failed-over master or a resharded slot shows up in the map.
    this.cluster.refreshSlotsCache(() => undefined);
    const delay = backoff(this.attempt++);
    if (this.attempt === 4) {
      this.hooks.onError(new Error(`bus channel ${this.channel} not subscribed yet (${reason}); retrying`));
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.attach();
    }, delay);
    this.timer.unref();
  }

  async close(timeoutMs: number): Promise<void> {
    this.closed = true;
    this.up = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const conn = this.conn;
    this.conn = undefined;
    if (!conn) return;
    conn.removeAllListeners('error');
    conn.on('error', () => undefined);
    try {
      if (conn.status === 'ready') await bounded(conn.quit(), timeoutMs);
    } finally {
      conn.disconnect();
    }
  }
}

/** ioredis's connection to the master serving `slot`, per the client's slot map, if it has one. */
export function masterOfSlot(cluster: Cluster, slot: number): { key: string; redis: Redis } | undefined {
  const key = cluster.slots[slot]?.[0];
  if (key === undefined) return undefined;
  const redis = cluster.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === key);
  return redis ? { key, redis } : undefined;
}
