import type { Redis } from 'ioredis';
import { FleetError } from '../errors.js';
import { call, DEFAULT_COMMAND_TIMEOUT_MS, execPipeline } from '../redis/call.js';
import type { RedisKeys } from '../redis/keys.js';
import { defineLuaScript, type LuaScript } from '../redis/lua-script.js';
import type { StreamRecord, StreamRegistry } from './stream-registry.js';

/** Options of {@link RedisStreamRegistry}. */
export interface RedisStreamRegistryOptions {
  /**
   * How long a record lives without a heartbeat from its holder, in ms.
   * @default 30000
   */
  heartbeatTtlMs?: number;
  /**
   * Bound on every Redis call in ms; past it the call fails with `STORE_UNAVAILABLE`.
   * @default 2000
   */
  commandTimeoutMs?: number;
}

/** Default {@link RedisStreamRegistryOptions.heartbeatTtlMs}. */
export const DEFAULT_HEARTBEAT_TTL_MS = 30_000;

/** Number of records {@link RedisStreamRegistry.list} returns when no limit is given. */
const DEFAULT_LIST_LIMIT = 100;

/**
 * {@link StreamRegistry} in Redis. A record is a hash at `keys.holder(sessionId, streamId)` that
 * expires `heartbeatTtlMs` after its holder's last heartbeat; the index `keys.streamIndex()` is a
 * sorted set of `<sessionId> <streamId>` by expiry, used by {@link count} and {@link list}.
 *
 * The index sits in another slot than the records, so it is updated in the same pipeline but not
 * in the same script. A race (a release and a claim of one stream at once) can leave the index off
 * for one stream until its holder's next heartbeat, which always rewrites the entry; stale entries
 * fall out by score. The client is the caller's: the registry never closes it.
 */
export class RedisStreamRegistry implements StreamRegistry {
  private readonly heartbeatTtlMs: number;
  private readonly timeoutMs: number;
  private readonly scripts: Record<'claim' | 'heartbeat' | 'release', LuaScript>;

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    opts: RedisStreamRegistryOptions = {},
  ) {
    this.heartbeatTtlMs = opts.heartbeatTtlMs ?? DEFAULT_HEARTBEAT_TTL_MS;
    this.timeoutMs = opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.scripts = {
      claim: defineLuaScript(redis, 'claim-stream'),
      heartbeat: defineLuaScript(redis, 'heartbeat-stream'),
      release: defineLuaScript(redis, 'release-stream'),
    };
  }

  /** {@inheritDoc StreamRegistry.claim} */
  async claim(record: StreamRecord): Promise<string | undefined> {
    const pipeline = this.redis.pipeline();
    this.scripts.claim.queue(
      pipeline,
      [this.keys.holder(record.sessionId, record.streamId)],
      [this.heartbeatTtlMs, record.instanceId, ...encodeRecord(record)],
    );
    this.indexWrite(pipeline, [
      [Date.now() + this.heartbeatTtlMs, member(record.sessionId, record.streamId)],
    ]);
    const [previous] = await execPipeline(pipeline, this.timeoutMs);
    return typeof previous === 'string' ? previous : undefined;
  }

  /** {@inheritDoc StreamRegistry.get} */
  async get(sessionId: string, streamId: string): Promise<StreamRecord | undefined> {
    const hash = await call(this.redis.hgetall(this.keys.holder(sessionId, streamId)), this.timeoutMs);
    return decodeRecord(sessionId, streamId, hash);
  }

  /** {@inheritDoc StreamRegistry.heartbeat} */
  async heartbeat(
    streams: Array<{ sessionId: string; streamId: string }>,
    instanceId: string,
  ): Promise<void> {
    if (streams.length === 0) return;
    const now = Date.now();
    const score = now + this.heartbeatTtlMs;
    const pipeline = this.redis.pipeline();
    for (const s of streams) {
      this.scripts.heartbeat.queue(
        pipeline,
        [this.keys.holder(s.sessionId, s.streamId)],
        [this.heartbeatTtlMs, instanceId, now],
      );
    }
    // Plain ZADD (not XX) so a heartbeat also heals an entry a racing release removed.
    this.indexWrite(
      pipeline,
      streams.map((s) => [score, member(s.sessionId, s.streamId)]),
    );
    const replies = await execPipeline(pipeline, this.timeoutMs);
    // Rare: streams this instance no longer holds. Fix their index entries in a second round trip.
    const fix = this.redis.pipeline();
    streams.forEach((s, i) => {
      const ttl = replies[i] as number;
      if (ttl < 0) fix.zrem(this.keys.streamIndex(), member(s.sessionId, s.streamId));
      else if (ttl !== this.heartbeatTtlMs)
        fix.zadd(this.keys.streamIndex(), now + ttl, member(s.sessionId, s.streamId));
    });
    if (fix.length > 0) await execPipeline(fix, this.timeoutMs);
  }

  /** {@inheritDoc StreamRegistry.release} */
  async release(sessionId: string, streamId: string, instanceId: string): Promise<void> {
    const pipeline = this.redis.pipeline();
    this.scripts.release.queue(pipeline, [this.keys.holder(sessionId, streamId)], [instanceId]);
    pipeline.zrem(this.keys.streamIndex(), member(sessionId, streamId));
    const [othersTtl] = await execPipeline(pipeline, this.timeoutMs);
    // Another instance holds the stream: the ZREM above was wrong for it, put its entry back.
    if (typeof othersTtl === 'number' && othersTtl > 0) {
      const fix = this.redis.pipeline();
      fix.zadd(this.keys.streamIndex(), Date.now() + othersTtl, member(sessionId, streamId));
      await execPipeline(fix, this.timeoutMs);
    }
  }

  /** {@inheritDoc StreamRegistry.count} */
  async count(): Promise<number> {
    const pipeline = this.redis.pipeline();
    pipeline.zremrangebyscore(this.keys.streamIndex(), '-inf', Date.now());
    pipeline.zcard(this.keys.streamIndex());
    const [, count] = await execPipeline(pipeline, this.timeoutMs);
    return count as number;
  }

  /** {@inheritDoc StreamRegistry.list} */
  async list(limit = DEFAULT_LIST_LIMIT): Promise<StreamRecord[]> {
    if (limit <= 0) return [];
    const pipeline = this.redis.pipeline();
    pipeline.zremrangebyscore(this.keys.streamIndex(), '-inf', Date.now());
    pipeline.zrange(this.keys.streamIndex(), 0, limit - 1);
    const [, members] = (await execPipeline(pipeline, this.timeoutMs)) as [unknown, string[]];
    if (members.length === 0) return [];
    const ids = members.map(splitMember);
    const reads = this.redis.pipeline();
    for (const [sessionId, streamId] of ids) reads.hgetall(this.keys.holder(sessionId, streamId));
    const hashes = await execPipeline(reads, this.timeoutMs);
    const records: StreamRecord[] = [];
    ids.forEach(([sessionId, streamId], i) => {
      // A record may expire between the two reads; it is simply not held any more.
      const record = decodeRecord(sessionId, streamId, hashes[i] as Record<string, string>);
      if (record) records.push(record);
    });
    return records;
  }

  /** Nothing to release: the client belongs to the caller. Idempotent. */
  async close(): Promise<void> {}

  /** Index entries at their expiry, and the index's own TTL (it outlives every entry it holds). */
  private indexWrite(pipeline: ReturnType<Redis['pipeline']>, entries: Array<[number, string]>): void {
    pipeline.zadd(this.keys.streamIndex(), ...entries.flat());
    pipeline.pexpire(this.keys.streamIndex(), this.heartbeatTtlMs);
  }
}

/** Index member of a stream. Session ids are visible ASCII, so the first space splits it back. */
function member(sessionId: string, streamId: string): string {
  return `${sessionId} ${streamId}`;
}

function splitMember(m: string): [string, string] {
  const i = m.indexOf(' ');
  return [m.slice(0, i), m.slice(i + 1)];
}

/** Record fields after `instanceId` (which the script sets itself), as `field, value, …`. */
function encodeRecord(r: StreamRecord): string[] {
  return [
    'transport',
    r.transport,
    'createdAt',
    String(r.createdAt),
    'lastSeenAt',
    String(r.lastSeenAt),
    'active',
    r.active ? '1' : '0',
  ];
}

/** The record from HGETALL's reply, or undefined when the hash does not exist (an empty reply). */
function decodeRecord(
  sessionId: string,
  streamId: string,
  h: Record<string, string>,
): StreamRecord | undefined {
  if (h.instanceId === undefined) return undefined;
  const { transport, instanceId, createdAt, lastSeenAt, active } = h;
  if (
    (transport !== 'streamable-http' && transport !== 'sse') ||
    createdAt === undefined ||
    lastSeenAt === undefined
  ) {
    throw new FleetError('INTERNAL', `Stream record ${sessionId} ${streamId} in Redis is malformed`);
  }
  return {
    sessionId,
    streamId,
    transport,
    instanceId,
    createdAt: Number(createdAt),
    lastSeenAt: Number(lastSeenAt),
    active: active === '1',
  };
}
