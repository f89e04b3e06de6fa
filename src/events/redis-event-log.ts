import { FleetError, notOwner } from '../errors.js';
import type { Fence } from '../store/session-store.js';
import { call, DEFAULT_COMMAND_TIMEOUT_MS } from '../redis/call.js';
import { pipelinePerSlot, type RedisClient } from '../redis/client.js';
import { groupByShard, type RedisKeys } from '../redis/keys.js';
import { defineLuaScript, type LuaScript } from '../redis/lua-script.js';
import { END_MARKER, logMovedOn, ttlAfterAppend, type EventLog, type StoredEvent } from './event-log.js';

/** Options of {@link RedisEventLog}. */
export interface RedisEventLogOptions {
  /**
   * Events kept per stream. Trimming is approximate (`MAXLEN ~`): Redis may keep somewhat more.
   * @default 1000
   */
  maxEvents?: number;
  /** TTL of a stream's log in ms, refreshed on every append (set it to the session lifetime). */
  ttlMs: number;
  /**
   * TTL in ms of a finished stream's log (from the append that ends it), when shorter than `ttlMs`.
   * @default ttlMs
   */
  endedTtlMs?: number | undefined;
  /**
   * Bound on every Redis call in ms; past it the call fails with `STORE_UNAVAILABLE`.
   * @default 2000
   */
  commandTimeoutMs?: number;
}

/** Default {@link RedisEventLogOptions.maxEvents}. */
export const DEFAULT_MAX_EVENTS = 1000;

/**
 * {@link EventLog} in Redis: one key per SSE stream at `keys.events(sessionId, streamId)`, in one of
 * two shapes (`scripts/includes/event-log-shape.lua`). A log written in more than one append is a
 * Redis Stream, entry ids `<seq>-0` with one field `d`, so the sequence number is the entry id and
 * `XRANGE` with an exclusive start reads "after". A log whose first append also ends it (a POST
 * stream answered at once: the answer and the end marker) is *sealed*: a Redis List of its messages,
 * seq = position. A new Redis Stream preallocates its first node, ~4.7 KB for one small answer; the
 * list is ~250 bytes, and this is the log most requests leave behind for `endedTtlMs`. The scripts
 * read both shapes. The client is the caller's: the log never closes it.
 */
export class RedisEventLog implements EventLog {
  private readonly maxEvents: number;
  private readonly ttlMs: number;
  private readonly endedTtlMs: number | undefined;
  private readonly timeoutMs: number;
  private readonly scripts: Record<'append' | 'lastSeq' | 'read', LuaScript>;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    opts: RedisEventLogOptions,
  ) {
    this.maxEvents = opts.maxEvents ?? DEFAULT_MAX_EVENTS;
    this.ttlMs = opts.ttlMs;
    this.endedTtlMs = opts.endedTtlMs;
    this.timeoutMs = opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.scripts = {
      append: defineLuaScript(redis, 'append-events'),
      lastSeq: defineLuaScript(redis, 'last-event-seq'),
      read: defineLuaScript(redis, 'read-events'),
    };
  }

  /**
   * {@inheritDoc EventLog.touch} One pipelined round trip of `PEXPIRE`s (missing logs stay missing),
   * the sets of logs included (they must outlive the logs they name).
   */
  async touch(streams: Array<{ sessionId: string; streamId: string }>): Promise<void> {
    await pipelinePerSlot(
      this.redis,
      groupByShard(streams, (s) => s.sessionId),
      (p, group) => {
        for (const s of group) p.pexpire(this.keys.events(s.sessionId, s.streamId), this.ttlMs);
        for (const sid of new Set(group.map((s) => s.sessionId))) p.pexpire(this.keys.logs(sid), this.ttlMs);
      },
      this.timeoutMs,
    );
  }

  /** {@inheritDoc EventLog.append} */
  async append(
    sessionId: string,
    streamId: string,
    data: string[],
    fence?: Fence,
    afterSeq?: number,
  ): Promise<number[]> {
    if (data.length === 0) return [];
    const seqs = (await this.scripts.append.run(
      [this.keys.events(sessionId, streamId), this.keys.session(sessionId), this.keys.logs(sessionId)],
      [
        this.maxEvents,
        ttlAfterAppend(data, this.ttlMs, this.endedTtlMs),
        this.ttlMs,
        fence?.owner ?? '',
        fence?.epoch ?? 0,
        streamId,
        afterSeq ?? -1,
        data[data.length - 1] === END_MARKER ? 1 : 0,
        ...data,
      ],
      this.timeoutMs,
    )) as number[];
    if (seqs[0] === -1) throw new FleetError('SESSION_NOT_FOUND', 'Session not found');
    if (seqs[0] === -2) throw notOwner(sessionId);
    if (seqs[0] === -3) throw logMovedOn(streamId);
    return seqs;
  }

  /** {@inheritDoc EventLog.readAfter} */
  async readAfter(sessionId: string, streamId: string, afterSeq: number): Promise<StoredEvent[]> {
    assertSeq(afterSeq);
    const flat = (await this.scripts.read.run(
      [this.keys.events(sessionId, streamId)],
      [afterSeq],
      this.timeoutMs,
    )) as Array<number | string>;
    const events: StoredEvent[] = [];
    for (let i = 0; i < flat.length; i += 2)
      events.push({ seq: flat[i] as number, data: flat[i + 1] as string });
    return events;
  }

  /** {@inheritDoc EventLog.lastSeq} */
  async lastSeq(sessionId: string, streamId: string): Promise<number> {
    const seq = await this.scripts.lastSeq.run([this.keys.events(sessionId, streamId)], [], this.timeoutMs);
    return seq as number;
  }

  /** {@inheritDoc EventLog.delete} */
  async delete(sessionId: string, streamId: string): Promise<void> {
    await call(this.redis.del(this.keys.events(sessionId, streamId)), this.timeoutMs);
  }

  /** {@inheritDoc EventLog.deleteSession} Two round trips: the set of logs, then one DEL of them all. */
  async deleteSession(sessionId: string): Promise<void> {
    const streamIds = await call(this.redis.smembers(this.keys.logs(sessionId)), this.timeoutMs);
    const keys = [this.keys.logs(sessionId), ...streamIds.map((id) => this.keys.events(sessionId, id))];
    await call(this.redis.del(...keys), this.timeoutMs);
  }

  /** Nothing to release: the client belongs to the caller. Idempotent. */
  async close(): Promise<void> {}
}

/** Sequence numbers reach Redis inside an id string: only non-negative integers make sense there. */
function assertSeq(seq: number): void {
  if (!Number.isSafeInteger(seq) || seq < 0) throw new RangeError(`Invalid event sequence number: ${seq}`);
}
