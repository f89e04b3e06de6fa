/**
 * Number of shards sessions are spread over. Every key of a session, and the shard's indexes of
 * sessions and streams, share the shard's Cluster hash tag `{s<xx>}`: the Lua scripts that touch a
 * session and its index run on one slot on every topology, and no index key is hot at scale (with
 * 100,000 sessions a shard's index holds ~400). Part of the on-disk format.
 */
export const SHARDS = 256;

/** The shard of a session id: FNV-1a (32 bit) of its UTF-16 code units, modulo {@link SHARDS}. */
export function shardOf(sessionId: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < sessionId.length; i++) {
    h ^= sessionId.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % SHARDS;
}

/** Items grouped by the shard of their session (each group lives in one slot). */
export function groupByShard<T>(items: readonly T[], sessionOf: (item: T) => string): T[][] {
  const groups = new Map<number, T[]>();
  for (const item of items) {
    const shard = shardOf(sessionOf(item));
    let g = groups.get(shard);
    if (!g) groups.set(shard, (g = []));
    g.push(item);
  }
  return [...groups.values()];
}

/** Every shard number, 0 … SHARDS - 1 (counting and listing visit them all). */
export const ALL_SHARDS: readonly number[] = Array.from({ length: SHARDS }, (_, i) => i);

/**
 * Every Redis key and channel name mcp-fleet uses. These strings are an on-disk format: change them
 * only with a migration. All keys of one session, and its shard's indexes, share the Cluster hash
 * tag of its shard (`{s00}` … `{sff}`), so the Lua scripts that touch several of them run on one
 * slot; the instance keys share `{instances}`.
 */
export class RedisKeys {
  constructor(readonly prefix: string) {}

  /** The hash tag of a shard, braces included. */
  shardTag(shard: number): string {
    return `{s${shard.toString(16).padStart(2, '0')}}`;
  }

  private base(sessionId: string): string {
    return `${this.prefix}${this.shardTag(shardOf(sessionId))}:${sessionId}`;
  }

  /** Hash: the session record. Expires: sliding idle TTL, capped by the absolute lifetime. */
  session(sessionId: string): string {
    return `${this.base(sessionId)}:session`;
  }

  /** Hash `{json, v}`: the session's application data. Expires: with the session key. */
  data(sessionId: string): string {
    return `${this.base(sessionId)}:data`;
  }

  /**
   * One SSE stream's event log: a Stream, entry ids `<seq>-0`, capped by MAXLEN; or, when its first
   * append ended it within the cap, a List (a sealed log, seq = position). Expires: with the session,
   * or `endedStreamTtlMs` after its end.
   */
  events(sessionId: string, streamId: string): string {
    return `${this.base(sessionId)}:events:${streamId}`;
  }

  /** Set of the stream ids that have an event log, so DELETE can remove them all. Expires: with the logs. */
  logs(sessionId: string): string {
    return `${this.base(sessionId)}:logs`;
  }

  /** Hash: the transport session record of a held stream (holder instance, times, kind). Expires: heartbeat TTL. */
  holder(sessionId: string, streamId: string): string {
    return `${this.base(sessionId)}:holder:${streamId}`;
  }

  /**
   * The holder record of a session's standalone `GET` stream (stream id `standalone`, as
   * `STANDALONE_STREAM_ID` in transport/event-id.ts; a unit test keeps the two equal): the claim
   * scripts read it in their step.
   */
  standaloneHolder(sessionId: string): string {
    return this.holder(sessionId, 'standalone');
  }

  /** Sorted set of one shard's live session ids, score = expiry (ms). Kept by the session scripts. */
  sessionIndex(shard: number): string {
    return `${this.prefix}${this.shardTag(shard)}:sessions`;
  }

  /** The session index of the shard a session lives in. */
  sessionIndexOf(sessionId: string): string {
    return this.sessionIndex(shardOf(sessionId));
  }

  /** Sorted set of one shard's held streams `<sessionId> <streamId>`, score = heartbeat expiry (ms). */
  streamIndex(shard: number): string {
    return `${this.prefix}${this.shardTag(shard)}:streams`;
  }

  /** The stream index of the shard a session lives in. */
  streamIndexOf(sessionId: string): string {
    return this.streamIndex(shardOf(sessionId));
  }

  /**
   * String: one instance's liveness (JSON with its start time), renewed by its heartbeat; gone means
   * the instance is dead or frozen. Expires: instance TTL. Hash tag `{instances}`, as the index.
   */
  instance(instanceId: string): string {
    return `${this.prefix}{instances}:${instanceId}`;
  }

  /** Sorted set of live instance ids, score = liveness expiry (ms). Pruned on read; expires when idle. */
  instanceIndex(): string {
    return `${this.prefix}{instances}`;
  }

  /**
   * String: a single-use `requestState` (2026-07-28 multi-round-trip requests) that was redeemed,
   * by its MAC. Expires: when the state itself would (its `ttlSeconds`). Its own slot on a Cluster.
   */
  spentRequestState(mac: string): string {
    return `${this.prefix}rs:${mac}`;
  }

  /** Pub/sub channel of one instance (a sharded channel on a Cluster: its own slot). */
  instanceChannel(instanceId: string): string {
    return `${this.prefix}instance:${instanceId}`;
  }

  /** Pub/sub channel every instance listens to. */
  broadcastChannel(): string {
    return `${this.prefix}broadcast`;
  }
}
