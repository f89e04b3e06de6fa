import type { ChainableCommander } from 'ioredis';
import type { ClusterPubSub } from '../bus/cluster-subscriber.js';
import { RedisBus } from '../bus/redis-bus.js';
import { RedisEventLog } from '../events/redis-event-log.js';
import { execPipeline } from '../redis/call.js';
import { pipelinePerSlot, type RedisClient } from '../redis/client.js';
import { ALL_SHARDS, groupByShard, RedisKeys } from '../redis/keys.js';
import { defineLuaScript, type LuaScript } from '../redis/lua-script.js';
import { LEGACY_STREAM_ID } from '../session/session-service.js';
import { assertSessionId } from '../session-id.js';
import { RedisInstanceRegistry } from '../store/redis-instance-registry.js';
import { decodeRecord, RedisSessionStore } from '../store/redis-session-store.js';
import { RedisStreamRegistry } from '../store/redis-stream-registry.js';
import type { InstanceRecord } from '../store/instance-registry.js';
import type { SessionRecord, TransportKind } from '../store/session-store.js';
import type { StreamRecord } from '../store/stream-registry.js';
import { STANDALONE_STREAM_ID } from '../transport/event-id.js';

/** What `sessions list` shows of one session. */
export interface SessionSummary {
  /** The session id (`Mcp-Session-Id`, or the legacy `sessionId`). */
  id: string;
  /** The principal the session is bound to. */
  principal: string;
  /** The wire protocol it speaks. */
  transport: TransportKind;
  /** Instance running the session's one live copy; `''` while nobody does (the next request claims it). */
  owner: string;
  /** The epoch of the owner's claim (each claim adds one). */
  epoch: number;
  /** The protocol version negotiated at initialize. */
  protocolVersion: string;
  /** `clientInfo` of the client's `initialize` (`name version`). */
  client: string;
  /** Creation time, ms since the epoch. */
  createdAt: number;
  /** When the session expires unless used again (ms since the epoch; the index score). */
  expiresAt: number;
}

/** Filters and paging of {@link FleetAdmin.listSessions}. */
export interface ListOptions {
  /** Only this principal's sessions. */
  principal?: string | undefined;
  /** Only sessions of this transport. */
  transport?: TransportKind | undefined;
  /** An instance id, or `''` for sessions without an owner. */
  owner?: string | undefined;
  /** Most sessions in one page. @default 50 */
  limit?: number | undefined;
  /** Where the previous page stopped (its `next`). */
  cursor?: string | undefined;
}

/** One page of sessions, most recently used first. */
export interface SessionPage {
  /** The sessions of this page. */
  sessions: SessionSummary[];
  /** Pass as `cursor` for the next page; absent on the last page. */
  next?: string;
}

/** A held stream of a session: its transport session record and how long it lives without a heartbeat. */
export interface HeldStream extends StreamRecord {
  /** Time left of the record until its holder's next heartbeat renews it, in ms. */
  ttlMs: number;
}

/** One event log of a session. */
export interface LogInfo {
  /** The stream the log belongs to. */
  streamId: string;
  /** Events kept (the log is capped). */
  events: number;
  /** Time left of the log, in ms (refreshed while the session is used). */
  ttlMs: number;
}

/** Everything `sessions show` reports of one session. */
export interface SessionDetails {
  /** The session record as stored (the truth every instance reads). */
  record: SessionRecord;
  /** The owner's liveness entry, when the session has an owner and it is alive. */
  ownerAlive: boolean;
  /** Time left of the record, the data document and the set of logs, in ms (null: no such key). */
  ttlMs: { session: number; data: number | null; logs: number | null };
  /** Size of the application data document (serialized) and its version; null when never written. */
  data: { bytes: number; version: number } | null;
  /** Streams held open by some instance, with their transport session records. */
  streams: HeldStream[];
  /** The session's event logs. */
  logs: LogInfo[];
  /** Redis's own estimate (`MEMORY USAGE`) of the session's keys; null when the server refuses it. */
  memoryBytes: number | null;
}

/** What `stats` reports of the fleet. */
export interface FleetStats {
  /** Live sessions (the session index, pruned of expired entries). */
  sessions: number;
  /** Live sessions by transport. */
  byTransport: Record<TransportKind, number>;
  /** Sessions without an owner (released by a handoff or an eviction, or never claimed since). */
  unowned: number;
  /** Sessions whose owner is not alive: the next request of each makes a new owner. */
  orphaned: number;
  /** Instances alive (renewing their liveness), with the streams each holds. */
  instances: Array<InstanceRecord & { heldStreams: number }>;
  /** Streams held across the fleet. */
  streams: number;
  /** Held streams by instance id. */
  streamsByInstance: Record<string, number>;
}

/** Index entries read per shard and round when paging, and per shard and round trip when counting. */
const BATCH = 200;
/** Most held streams `stats` attributes to instances (their count is always exact). */
const STREAMS_LISTED = 100_000;

/**
 * Administration of a fleet through its Redis, with the library's own stores and key names: lists,
 * inspects and ends sessions and sums up the fleet, without `KEYS` (sorted-set indexes, pipelined
 * reads). Reading changes nothing: no session's TTL is refreshed by looking at it. The client is the
 * caller's.
 */
export class FleetAdmin {
  private readonly keys: RedisKeys;
  private readonly store: RedisSessionStore;
  private readonly streams: RedisStreamRegistry;
  private readonly instances: RedisInstanceRegistry;
  /** Events kept per log, whichever shape it has (a stream or a sealed list). */
  private readonly countEvents: LuaScript;

  /**
   * @param redis - a client of the fleet's Redis, of any topology (not closed here).
   * @param prefix - the fleet's key prefix (`keyPrefix`).
   * @param timeoutMs - bound on each Redis call. @default 10000
   * @param pubsub - the fleet's `redisPubSub` (on a Cluster, how `sessions end` broadcasts). @default 'sharded'
   */
  constructor(
    private readonly redis: RedisClient,
    prefix: string,
    private readonly timeoutMs = 10_000,
    private readonly pubsub: ClusterPubSub = 'sharded',
  ) {
    this.keys = new RedisKeys(prefix);
    this.countEvents = defineLuaScript(redis, 'count-events');
    // The TTL policy is only used by writes this class never makes through the store.
    this.store = new RedisSessionStore(
      redis,
      this.keys,
      { idleMs: 1, maxLifetimeMs: 1 },
      { commandTimeoutMs: timeoutMs },
    );
    this.streams = new RedisStreamRegistry(redis, this.keys, { commandTimeoutMs: timeoutMs });
    this.instances = new RedisInstanceRegistry(redis, this.keys, { commandTimeoutMs: timeoutMs });
  }

  /**
   * Live sessions, most recently used first (by expiry, descending), filtered; a page ends after
   * `limit` matches. The sessions are spread over the shard indexes, so each round reads the next
   * entries of every shard (one pipeline; one per slot on a Cluster) and merges them. The cursor is a
   * position in that order (expiry, id), so paging never repeats a session; a session used while
   * paging moves to the front and is seen on a new listing.
   */
  async listSessions(opts: ListOptions = {}): Promise<SessionPage> {
    const limit = opts.limit ?? 50;
    let pos = opts.cursor === undefined ? undefined : decodeCursor(opts.cursor);
    const now = Date.now();
    const sessions: SessionSummary[] = [];
    let per = Math.min(BATCH, limit + 1);
    for (;;) {
      const batches = await this.perShard(ALL_SHARDS, (p, shard) => {
        p.zrevrangebyscore(
          this.keys.sessionIndex(shard),
          pos?.score ?? '+inf',
          now,
          'WITHSCORES',
          'LIMIT',
          0,
          per,
        );
      });
      // Entries below the cursor, and how far down each shard's batch is complete.
      let boundary: Position | undefined;
      const entries: Position[] = [];
      for (const [flat] of batches as Array<[string[]]>) {
        const batch: Position[] = [];
        for (let k = 0; k + 1 < flat.length; k += 2) batch.push({ id: flat[k]!, score: Number(flat[k + 1]) });
        entries.push(...batch.filter((e) => pos === undefined || before(pos, e)));
        // A full batch may have more below its last entry: nothing past it is known yet.
        const last = batch[batch.length - 1];
        if (batch.length === per && last && (boundary === undefined || before(last, boundary)))
          boundary = last;
      }
      entries.sort((a, b) => (before(a, b) ? -1 : before(b, a) ? 1 : 0));
      const known = boundary === undefined ? entries : entries.filter((e) => !before(boundary!, e));
      if (known.length === 0 && boundary !== undefined) {
        // Every new entry lies past some shard's horizon (ties of one expiry time): read further.
        per = Math.min(per * 2, 10_000);
        continue;
      }
      const records = await this.records(known.map((e) => e.id));
      for (const [k, e] of known.entries()) {
        pos = e;
        const record = records[k];
        if (!record || !matches(record, opts)) continue;
        sessions.push(summarize(record, e.score));
        if (sessions.length === limit) {
          const more = k < known.length - 1 || known.length < entries.length || boundary !== undefined;
          return more ? { sessions, next: encodeCursor(e.score, e.id) } : { sessions };
        }
      }
      if (boundary === undefined) return { sessions };
    }
  }

  /** Everything stored for one session, or undefined when it does not exist (any principal's). */
  async showSession(id: string): Promise<SessionDetails | undefined> {
    assertSessionId(id);
    const [record] = await this.records([id]);
    if (!record) return undefined;
    const logIds = (await this.run((p) => p.smembers(this.keys.logs(id)))) as string[];
    const heldIds = await this.heldStreamIds(id);
    const p = this.redis.pipeline();
    p.pttl(this.keys.session(id));
    p.pttl(this.keys.data(id));
    p.pttl(this.keys.logs(id));
    // The data hash is `{json, v}` (set-data.lua).
    p.hstrlen(this.keys.data(id), 'json');
    p.hget(this.keys.data(id), 'v');
    for (const s of logIds) {
      this.countEvents.queue(p, [this.keys.events(id, s)], []);
      p.pttl(this.keys.events(id, s));
    }
    for (const s of heldIds) p.pttl(this.keys.holder(id, s));
    const replies = await execPipeline(p, this.timeoutMs);
    const [sessionTtl, dataTtl, logsTtl, dataBytes, dataVersion] = replies as [
      number,
      number,
      number,
      number,
      string | null,
    ];
    const logs = logIds.map((streamId, i) => ({
      streamId,
      events: (replies[5 + 2 * i] as number[])[0] ?? 0,
      ttlMs: replies[6 + 2 * i] as number,
    }));
    const holderTtls = replies.slice(5 + 2 * logIds.length) as number[];
    const streams: HeldStream[] = [];
    for (const [i, streamId] of heldIds.entries()) {
      const held = await this.streams.get(id, streamId);
      if (held) streams.push({ ...held, ttlMs: holderTtls[i] ?? -2 });
    }
    const ownerAlive = record.owner !== '' && (await this.instances.read([record.owner]))[0] !== undefined;
    return {
      record,
      ownerAlive,
      ttlMs: {
        session: sessionTtl,
        data: dataTtl >= 0 ? dataTtl : null,
        logs: logsTtl >= 0 ? logsTtl : null,
      },
      data: dataTtl === -2 ? null : { bytes: dataBytes, version: Number(dataVersion ?? 0) },
      streams,
      logs: logs.filter((l) => l.ttlMs !== -2),
      memoryBytes: await this.memoryOf([
        this.keys.session(id),
        this.keys.data(id),
        this.keys.logs(id),
        ...logIds.map((s) => this.keys.events(id, s)),
        ...heldIds.map((s) => this.keys.holder(id, s)),
      ]),
    };
  }

  /**
   * Ends a session as `DELETE` does, on every instance: removes its record, data and event logs and
   * broadcasts `deleted`, so its owner closes the live copy (`ctx.onClose('deleted')`) and the instances
   * holding its streams end them. Resolves to the owner it had (`''`: none), or undefined when there
   * was no such session.
   */
  async endSession(id: string): Promise<{ owner: string } | undefined> {
    assertSessionId(id);
    const owner = (await this.run((p) => p.hget(this.keys.session(id), 'owner'))) as string | null;
    if (!(await this.store.delete(id))) return undefined;
    const log = new RedisEventLog(this.redis, this.keys, { ttlMs: 1, commandTimeoutMs: this.timeoutMs });
    await log.deleteSession(id);
    // `from` names no instance, so every instance (the owner included) acts on it.
    await new RedisBus(this.redis, this.keys, {
      commandTimeoutMs: this.timeoutMs,
      pubsub: this.pubsub,
    }).broadcast({
      t: 'deleted',
      sid: id,
      from: CLI_SENDER,
    });
    return { owner: owner ?? '' };
  }

  /** Counts of the whole fleet: sessions (by transport, without an owner), instances, held streams. */
  async stats(): Promise<FleetStats> {
    const [sessions, streams, instances, held] = await Promise.all([
      this.store.count(),
      this.streams.count(),
      this.instances.list(),
      this.streams.list(STREAMS_LISTED),
    ]);
    const alive = new Set(instances.map((i) => i.instanceId));
    const byTransport: Record<TransportKind, number> = { 'streamable-http': 0, sse: 0 };
    let unowned = 0;
    let orphaned = 0;
    const now = Date.now();
    // Shard by shard, a batch at a time: the live ids of the index, then two fields of each record.
    for (const shard of ALL_SHARDS) {
      for (let offset = 0; ; offset += BATCH) {
        const ids = (await this.run((p) =>
          p.zrangebyscore(this.keys.sessionIndex(shard), now, '+inf', 'LIMIT', offset, BATCH),
        )) as string[];
        if (ids.length > 0) {
          const p = this.redis.pipeline();
          // The two record fields counted here (as redis-session-store.ts writes them).
          for (const id of ids) p.hmget(this.keys.session(id), 'transport', 'owner');
          const rows = (await execPipeline(p, this.timeoutMs)) as Array<Array<string | null>>;
          for (const [transport, owner] of rows) {
            if (transport !== 'sse' && transport !== 'streamable-http') continue; // expired meanwhile
            byTransport[transport]++;
            if (!owner) unowned++;
            else if (!alive.has(owner)) orphaned++;
          }
        }
        if (ids.length < BATCH) break;
      }
    }
    const streamsByInstance: Record<string, number> = {};
    for (const s of held) streamsByInstance[s.instanceId] = (streamsByInstance[s.instanceId] ?? 0) + 1;
    return {
      sessions,
      byTransport,
      unowned,
      orphaned,
      instances: instances.map((i) => ({ ...i, heldStreams: streamsByInstance[i.instanceId] ?? 0 })),
      streams,
      streamsByInstance,
    };
  }

  /** The records of these sessions in one round trip (undefined where gone), without touching a TTL. */
  private async records(ids: string[]): Promise<Array<SessionRecord | undefined>> {
    if (ids.length === 0) return [];
    // One pipeline per shard (a Cluster pipeline stays within one slot).
    const groups = groupByShard(ids, (id) => id);
    const replies = await pipelinePerSlot(
      this.redis,
      groups,
      (p, group) => {
        for (const id of group) p.hgetall(this.keys.session(id));
      },
      this.timeoutMs,
    );
    const byId = new Map<string, SessionRecord>();
    groups.forEach((group, g) =>
      group.forEach((id, k) => {
        const h = (replies[g]?.[k] ?? {}) as Record<string, string>;
        if (Object.keys(h).length > 0) byId.set(id, decodeRecord(id, Object.entries(h).flat()));
      }),
    );
    return ids.map((id) => byId.get(id));
  }

  /** Runs `queue` once per shard, one pipeline (one per slot on a Cluster); the replies by shard. */
  private perShard(shards: readonly number[], queue: (p: ChainableCommander, shard: number) => void) {
    return pipelinePerSlot(this.redis, shards, queue, this.timeoutMs);
  }

  /** Streams of a session with a transport session record: the index entries `<sid> <stream>` (ZSCAN). */
  private async heldStreamIds(id: string): Promise<string[]> {
    const found = new Set<string>([STANDALONE_STREAM_ID, LEGACY_STREAM_ID]);
    const pattern = `${id.replace(/[*?[\]\\]/g, '\\$&')} *`;
    let cursor = '0';
    do {
      const [next, flat] = (await this.run((p) =>
        p.zscan(this.keys.streamIndexOf(id), cursor, 'MATCH', pattern, 'COUNT', 1000),
      )) as [string, string[]];
      for (let i = 0; i < flat.length; i += 2) found.add(flat[i]!.slice(id.length + 1));
      cursor = next;
    } while (cursor !== '0');
    return [...found];
  }

  /** Sum of `MEMORY USAGE` of the keys that exist; null when the server refuses the command (ACL). */
  private async memoryOf(keys: string[]): Promise<number | null> {
    const p = this.redis.pipeline();
    for (const k of keys) p.memory('USAGE', k);
    try {
      const sizes = await execPipeline(p, this.timeoutMs);
      return sizes.reduce<number>((sum, s) => sum + (typeof s === 'number' ? s : 0), 0);
    } catch {
      return null; // MEMORY may be denied to this user; the other figures stand without it
    }
  }

  /** One command in a pipeline of its own, bounded like every other call. */
  private async run(queue: (p: ChainableCommander) => void): Promise<unknown> {
    const p = this.redis.pipeline();
    queue(p);
    const [reply] = await execPipeline(p, this.timeoutMs);
    return reply;
  }
}

/**
 * The `from` of the `deleted` broadcasts the CLI sends. Instances ignore their own broadcasts, so no
 * instance may be named like this.
 */
export const CLI_SENDER = 'cli';

function matches(r: SessionRecord, o: ListOptions): boolean {
  return (
    (o.principal === undefined || r.principal === o.principal) &&
    (o.transport === undefined || r.transport === o.transport) &&
    (o.owner === undefined || r.owner === o.owner)
  );
}

function summarize(r: SessionRecord, expiresAt: number): SessionSummary {
  const info = r.initialize.clientInfo;
  return {
    id: r.id,
    principal: r.principal,
    transport: r.transport,
    owner: r.owner,
    epoch: r.epoch,
    protocolVersion: r.protocolVersion,
    client: info ? `${info.name} ${info.version}` : '',
    createdAt: r.createdAt,
    expiresAt,
  };
}

/** A place in the listing order: expiry descending, then id descending (as ZREVRANGEBYSCORE sorts ties). */
interface Position {
  score: number;
  id: string;
}

/** Whether `a` comes before `b` in the listing order. */
function before(a: Position, b: Position): boolean {
  return a.score > b.score || (a.score === b.score && a.id > b.id);
}

/** Cursor of a page: the index position (score and member) of the last session looked at. */
function encodeCursor(score: number, id: string): string {
  return Buffer.from(JSON.stringify([score, id])).toString('base64url');
}

function decodeCursor(cursor: string): { score: number; id: string } {
  try {
    const [score, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString()) as [unknown, unknown];
    if (typeof score === 'number' && typeof id === 'string') return { score, id };
  } catch {
    // reported below, as any other malformed cursor
  }
  throw new RangeError(`malformed cursor: ${cursor}`);
}
