/**
 * Every Redis key and channel name mcp-fleet uses. These strings are an on-disk format: change them
 * only with a migration. All keys of one session share the Cluster hash tag `{<sessionId>}`, so the
 * Lua scripts that touch several of them run on one slot.
 */
export class RedisKeys {
  constructor(readonly prefix: string) {}

  /** Hash: the session record. Expires: sliding idle TTL, capped by the absolute lifetime. */
  session(sessionId: string): string {
    return `${this.prefix}{${sessionId}}:session`;
  }

  /** Hash `{json, v}`: the session's application data. Expires: with the session key. */
  data(sessionId: string): string {
    return `${this.prefix}{${sessionId}}:data`;
  }

  /** Stream: one SSE stream's event log, entry ids `<seq>-0`. Expires: with the session; capped by MAXLEN. */
  events(sessionId: string, streamId: string): string {
    return `${this.prefix}{${sessionId}}:events:${streamId}`;
  }

  /** Hash: the transport session record of a held stream (holder instance, times, kind). Expires: heartbeat TTL. */
  holder(sessionId: string, streamId: string): string {
    return `${this.prefix}{${sessionId}}:holder:${streamId}`;
  }

  /** Set of the stream ids that have an event log, so DELETE can remove them all. Expires: with the logs. */
  logs(sessionId: string): string {
    return `${this.prefix}{${sessionId}}:logs`;
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

  /** Sorted set of live session ids, score = expiry time (ms). Pruned on count; expires when idle. */
  sessionIndex(): string {
    return `${this.prefix}sessions`;
  }

  /** Sorted set of open transport streams `<sessionId> <streamId>`, score = heartbeat expiry (ms). */
  streamIndex(): string {
    return `${this.prefix}streams`;
  }

  /** Pub/sub channel of one instance. */
  instanceChannel(instanceId: string): string {
    return `${this.prefix}instance:${instanceId}`;
  }

  /** Pub/sub channel every instance listens to. */
  broadcastChannel(): string {
    return `${this.prefix}broadcast`;
  }
}
