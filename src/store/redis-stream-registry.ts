import { FleetError } from '../errors.js';
import { call, DEFAULT_COMMAND_TIMEOUT_MS } from '../redis/call.js';
import { pipelinePerSlot, type RedisClient } from '../redis/client.js';
import { ALL_SHARDS, groupByShard, type RedisKeys } from '../redis/keys.js';
import { defineLuaScript, type LuaScript } from '../redis/lua-script.js';
import type { StreamClaim, StreamRecord, StreamRegistry } from './stream-registry.js';

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
 * expires `heartbeatTtlMs` after its holder's last heartbeat; the shard's index `keys.streamIndex`
 * is a sorted set of `<sessionId> <streamId>` by expiry, used by {@link count} and {@link list}. The
 * record and its index entry share the session's shard slot, so each step is one script. The client
 * is the caller's: the registry never closes it.
 */
export class RedisStreamRegistry implements StreamRegistry {
  private readonly heartbeatTtlMs: number;
  private readonly timeoutMs: number;
  private readonly scripts: Record<'claim' | 'heartbeat' | 'release' | 'count', LuaScript>;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    opts: RedisStreamRegistryOptions = {},
  ) {
    this.heartbeatTtlMs = opts.heartbeatTtlMs ?? DEFAULT_HEARTBEAT_TTL_MS;
    this.timeoutMs = opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.scripts = {
      claim: defineLuaScript(redis, 'claim-stream'),
      heartbeat: defineLuaScript(redis, 'heartbeat-stream'),
      release: defineLuaScript(redis, 'release-stream'),
      count: defineLuaScript(redis, 'count-index'),
    };
  }

  /** {@inheritDoc StreamRegistry.claim} */
  async claim(record: StreamRecord): Promise<StreamClaim> {
    const [previous, owner] = (await this.scripts.claim.run(
      [...this.streamKeys(record.sessionId, record.streamId), this.keys.session(record.sessionId)],
      [
        this.heartbeatTtlMs,
        record.instanceId,
        Date.now(),
        member(record.sessionId, record.streamId),
        ...encodeRecord(record),
      ],
      this.timeoutMs,
    )) as [string, string];
    return { previous: previous === '' ? undefined : previous, owner };
  }

  /** {@inheritDoc StreamRegistry.get} */
  async get(sessionId: string, streamId: string): Promise<StreamRecord | undefined> {
    const hash = await call(this.redis.hgetall(this.keys.holder(sessionId, streamId)), this.timeoutMs);
    return decodeRecord(sessionId, streamId, hash);
  }

  /** {@inheritDoc StreamRegistry.heartbeat} One script per stream, grouped per shard slot. */
  async heartbeat(
    streams: Array<{ sessionId: string; streamId: string }>,
    instanceId: string,
  ): Promise<void> {
    const now = Date.now();
    await pipelinePerSlot(
      this.redis,
      groupByShard(streams, (s) => s.sessionId),
      (p, group) => {
        for (const s of group) {
          this.scripts.heartbeat.queue(p, this.streamKeys(s.sessionId, s.streamId), [
            this.heartbeatTtlMs,
            instanceId,
            now,
            member(s.sessionId, s.streamId),
          ]);
        }
      },
      this.timeoutMs,
    );
  }

  /** {@inheritDoc StreamRegistry.release} */
  async release(sessionId: string, streamId: string, instanceId: string): Promise<void> {
    await this.scripts.release.run(
      this.streamKeys(sessionId, streamId),
      [instanceId, member(sessionId, streamId)],
      this.timeoutMs,
    );
  }

  /** {@inheritDoc StreamRegistry.count} */
  async count(): Promise<number> {
    const now = Date.now();
    const replies = await pipelinePerSlot(
      this.redis,
      ALL_SHARDS,
      (p, shard) => this.scripts.count.queue(p, [this.keys.streamIndex(shard)], [now]),
      this.timeoutMs,
    );
    return replies.reduce((n, [count]) => n + Number(count), 0);
  }

  /** {@inheritDoc StreamRegistry.list} Every shard's index, then the records, oldest heartbeat first. */
  async list(limit = DEFAULT_LIST_LIMIT): Promise<StreamRecord[]> {
    if (limit <= 0) return [];
    const now = Date.now();
    const perShard = await pipelinePerSlot(
      this.redis,
      ALL_SHARDS,
      (p, shard) => {
        p.zrangebyscore(this.keys.streamIndex(shard), now, '+inf', 'WITHSCORES', 'LIMIT', 0, limit);
      },
      this.timeoutMs,
    );
    const entries: Array<{ sessionId: string; streamId: string; score: number }> = [];
    for (const [flat] of perShard) {
      const f = flat as string[];
      for (let i = 0; i + 1 < f.length; i += 2) {
        const [sessionId, streamId] = splitMember(f[i]!);
        entries.push({ sessionId, streamId, score: Number(f[i + 1]) });
      }
    }
    entries.sort((a, b) => a.score - b.score);
    const chosen = entries.slice(0, limit);
    const hashes = await pipelinePerSlot(
      this.redis,
      groupByShard(chosen, (e) => e.sessionId),
      (p, group) => {
        for (const e of group) p.hgetall(this.keys.holder(e.sessionId, e.streamId));
      },
      this.timeoutMs,
    );
    const bySession = new Map<string, StreamRecord>();
    groupByShard(chosen, (e) => e.sessionId).forEach((group, gi) => {
      group.forEach((e, i) => {
        // A record may expire between the two reads; it is simply not held any more.
        const record = decodeRecord(e.sessionId, e.streamId, hashes[gi]![i] as Record<string, string>);
        if (record) bySession.set(member(e.sessionId, e.streamId), record);
      });
    });
    return chosen.flatMap((e) => bySession.get(member(e.sessionId, e.streamId)) ?? []);
  }

  /** Nothing to release: the client belongs to the caller. Idempotent. */
  async close(): Promise<void> {}

  /** KEYS of the stream scripts: the record and its shard's index (one slot). */
  private streamKeys(sessionId: string, streamId: string): string[] {
    return [this.keys.holder(sessionId, streamId), this.keys.streamIndexOf(sessionId)];
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
