import type { Redis } from 'ioredis';
import { FleetError } from '../errors.js';
import { call, DEFAULT_COMMAND_TIMEOUT_MS, execPipeline } from '../redis/call.js';
import type { RedisKeys } from '../redis/keys.js';
import { defineLuaScript, type LuaScript } from '../redis/lua-script.js';
import type {
  ClaimOutcome,
  DataSnapshot,
  Fence,
  Ownership,
  ReleaseReason,
  SessionPatch,
  SessionState,
  SessionRecord,
  SessionStore,
  TtlPolicy,
  WriteOutcome,
} from './session-store.js';

/** Options of {@link RedisSessionStore}. */
export interface RedisSessionStoreOptions {
  /**
   * Bound on every Redis call in ms; past it the call fails with `STORE_UNAVAILABLE`.
   * @default 2000
   */
  commandTimeoutMs?: number;
}

/**
 * {@link SessionStore} in Redis. The record is a hash at `keys.session(id)`, the data a hash
 * `{json, v}` at `keys.data(id)`; both carry the session's TTL. Every refresh runs as one Lua script
 * pipelined with the update of the session index (a sorted set by expiry, used by {@link count}),
 * so a warm request costs one round trip.
 *
 * The client is the caller's: the store never closes it.
 */
export class RedisSessionStore implements SessionStore {
  private readonly timeoutMs: number;
  private readonly scripts: Record<
    'create' | 'refresh' | 'update' | 'claim' | 'release' | 'getData' | 'setData',
    LuaScript
  >;

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly ttl: TtlPolicy,
    opts: RedisSessionStoreOptions = {},
  ) {
    this.timeoutMs = opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.scripts = {
      create: defineLuaScript(redis, 'create-session'),
      refresh: defineLuaScript(redis, 'refresh-session'),
      update: defineLuaScript(redis, 'update-session'),
      claim: defineLuaScript(redis, 'claim-session'),
      release: defineLuaScript(redis, 'release-session'),
      getData: defineLuaScript(redis, 'get-data'),
      setData: defineLuaScript(redis, 'set-data'),
    };
  }

  /** {@inheritDoc SessionStore.create} */
  async create(record: SessionRecord): Promise<void> {
    const now = Date.now();
    const expiresAt = now + Math.min(this.ttl.idleMs, record.createdAt + this.ttl.maxLifetimeMs - now);
    const reply = await this.refreshing(
      record.id,
      this.scripts.create,
      now,
      [record.createdAt, ...encodeRecord(record)],
      {
        score: expiresAt,
        addToIndex: true,
      },
    );
    const [created, ttl] = reply as [number, number];
    await this.reconcileIndex(record.id, now, ttl, expiresAt);
    if (created !== 1) throw new FleetError('SESSION_EXISTS', `Session ${record.id} already exists`);
  }

  /** {@inheritDoc SessionStore.load} */
  async load(id: string, principal?: string): Promise<SessionRecord | undefined> {
    const now = Date.now();
    const reply = (await this.refreshing(id, this.scripts.refresh, now, ['1', principal ?? ''])) as [
      number,
      ...unknown[],
    ];
    if (reply[0] === FOREIGN) {
      await this.restoreIndex(id, now, Number(reply[1]));
      return undefined;
    }
    await this.reconcileIndex(id, now, reply[0], now + this.ttl.idleMs);
    return reply[0] < 0 || !Array.isArray(reply[4]) ? undefined : decodeRecord(id, reply[4] as string[]);
  }

  /** {@inheritDoc SessionStore.touch} */
  async touch(id: string, principal?: string): Promise<SessionState | undefined> {
    const now = Date.now();
    const reply = (await this.refreshing(id, this.scripts.refresh, now, ['0', principal ?? ''])) as [
      number,
      ...unknown[],
    ];
    if (reply[0] === FOREIGN) {
      await this.restoreIndex(id, now, Number(reply[1]));
      return undefined;
    }
    await this.reconcileIndex(id, now, reply[0], now + this.ttl.idleMs);
    if (reply[0] < 0) return undefined;
    const transport = reply[3] === 'sse' ? 'sse' : 'streamable-http';
    return { owner: String(reply[1] ?? ''), epoch: Number(reply[2] ?? 0), transport };
  }

  /** {@inheritDoc SessionStore.update} */
  async update(id: string, patch: SessionPatch, fence?: Fence): Promise<WriteOutcome> {
    const now = Date.now();
    const ttl = (await this.refreshing(id, this.scripts.update, now, [
      ...fenceArgs(fence),
      ...encodePatch(patch),
    ])) as number;
    if (ttl === FENCED) {
      await this.restoreIndex(id, now, undefined);
      return 'fenced';
    }
    await this.reconcileIndex(id, now, ttl, now + this.ttl.idleMs);
    return ttl >= 0 ? 'ok' : 'gone';
  }

  /** {@inheritDoc SessionStore.claim} */
  async claim(id: string, claimant: string, expected: Ownership, principal?: string): Promise<ClaimOutcome> {
    const now = Date.now();
    const reply = (await this.refreshing(id, this.scripts.claim, now, [
      claimant,
      expected.owner,
      expected.epoch,
      principal ?? '',
    ])) as [number, ...unknown[]];
    if (reply[0] === 0) {
      await this.restoreIndex(id, now, undefined);
      return { status: 'taken', ownership: { owner: String(reply[1]), epoch: Number(reply[2]) } };
    }
    if (reply[0] !== 1) {
      await this.restoreIndex(id, now, undefined); // gone (ZADD XX added nothing) or another principal's
      return { status: 'gone' };
    }
    await this.reconcileIndex(id, now, Number(reply[3]), now + this.ttl.idleMs);
    const record = decodeRecord(id, reply[2] as string[]);
    // The record was read before the claim: it names the new owner and epoch only from here on.
    return { status: 'claimed', record: { ...record, owner: claimant, epoch: expected.epoch + 1 } };
  }

  /** {@inheritDoc SessionStore.release} */
  async release(id: string, fence: Fence, reason: ReleaseReason): Promise<boolean> {
    const released = await this.scripts.release.run(
      [this.keys.session(id)],
      [fence.owner, fence.epoch, reason],
      this.timeoutMs,
    );
    return released === 1;
  }

  /** {@inheritDoc SessionStore.delete} */
  async delete(id: string): Promise<boolean> {
    const pipeline = this.redis.pipeline();
    // Two DELs rather than one: the first reply alone tells whether the session existed.
    pipeline.del(this.keys.session(id));
    pipeline.del(this.keys.data(id));
    pipeline.zrem(this.keys.sessionIndex(), id);
    const [deleted] = await execPipeline(pipeline, this.timeoutMs);
    return deleted === 1;
  }

  /** {@inheritDoc SessionStore.count} */
  async count(): Promise<number> {
    const pipeline = this.redis.pipeline();
    pipeline.zremrangebyscore(this.keys.sessionIndex(), '-inf', Date.now());
    pipeline.zcard(this.keys.sessionIndex());
    const [, count] = await execPipeline(pipeline, this.timeoutMs);
    return count as number;
  }

  /** {@inheritDoc SessionStore.getData} */
  async getData(id: string): Promise<DataSnapshot | undefined> {
    const now = Date.now();
    const reply = (await this.refreshing(id, this.scripts.getData, now, [])) as [number, string?, string?];
    const [ttl, json, version] = reply;
    await this.reconcileIndex(id, now, ttl, now + this.ttl.idleMs);
    if (ttl < 0) return undefined;
    return { json: json ?? undefined, version: version ? Number(version) : 0 };
  }

  /** {@inheritDoc SessionStore.setData} */
  async setData(
    id: string,
    json: string | undefined,
    expectedVersion?: number,
    fence?: Fence,
  ): Promise<number | 'conflict' | 'gone' | 'fenced'> {
    const now = Date.now();
    const args = [
      json === undefined ? '0' : '1',
      json ?? '',
      expectedVersion === undefined ? '' : expectedVersion,
      ...fenceArgs(fence),
    ];
    const [ttl, version] = (await this.refreshing(id, this.scripts.setData, now, args)) as [number, number];
    if (version === -3) {
      await this.restoreIndex(id, now, undefined);
      return 'fenced';
    }
    await this.reconcileIndex(id, now, ttl, now + this.ttl.idleMs);
    if (version === -2) return 'gone';
    if (version === -1) return 'conflict';
    return version;
  }

  /** {@inheritDoc SessionStore.ping} */
  async ping(): Promise<void> {
    await call(this.redis.ping(), this.timeoutMs);
  }

  /** Nothing to release: the client belongs to the caller. Idempotent. */
  async close(): Promise<void> {}

  /**
   * Runs a session script (KEYS session + data; ARGV now, idleMs, maxLifetimeMs, …args) pipelined with
   * the index update, in one round trip. The index lives in another slot, so it cannot join the
   * script; it gets the expiry the script most likely set (`score`) and {@link reconcileIndex} fixes
   * the rare misses afterwards. `ZADD XX` keeps a refresh of a gone session from re-adding it.
   */
  private async refreshing(
    id: string,
    script: LuaScript,
    now: number,
    args: Array<string | number>,
    index: { score: number; addToIndex: boolean } = { score: now + this.ttl.idleMs, addToIndex: false },
  ): Promise<unknown> {
    const pipeline = this.redis.pipeline();
    script.queue(
      pipeline,
      [this.keys.session(id), this.keys.data(id)],
      [now, this.ttl.idleMs, this.ttl.maxLifetimeMs, ...args],
    );
    if (index.addToIndex) pipeline.zadd(this.keys.sessionIndex(), index.score, id);
    else pipeline.zadd(this.keys.sessionIndex(), 'XX', index.score, id);
    // Every index member expires within idleMs of its last write, so the index outlives them all.
    pipeline.pexpire(this.keys.sessionIndex(), this.ttl.maxLifetimeMs + this.ttl.idleMs);
    const [reply] = await execPipeline(pipeline, this.timeoutMs);
    return reply;
  }

  /**
   * Puts back the index score a pipelined refresh slid for a session the script left alone (another
   * principal's, or a fenced write): from its remaining TTL, read now when not known.
   */
  private async restoreIndex(id: string, now: number, pttl: number | undefined): Promise<void> {
    const ttl = pttl ?? (await call(this.redis.pttl(this.keys.session(id)), this.timeoutMs));
    if (ttl > 0) await call(this.redis.zadd(this.keys.sessionIndex(), 'XX', now + ttl, id), this.timeoutMs);
  }

  /**
   * Second round trip, only when the pipelined index score was wrong: the session is gone (ZREM) or its
   * TTL was capped by the maximum lifetime (the last `idleMs` of its life) or the id was taken.
   */
  private async reconcileIndex(id: string, now: number, ttl: number, score: number): Promise<void> {
    if (ttl < 0) await call(this.redis.zrem(this.keys.sessionIndex(), id), this.timeoutMs);
    else if (now + ttl !== score) {
      await call(this.redis.zadd(this.keys.sessionIndex(), 'XX', now + ttl, id), this.timeoutMs);
    }
  }
}

/** refresh-session.lua's answer for another principal's session. */
const FOREIGN = -3;
/** update-session.lua's answer when the fence does not hold. */
const FENCED = -2;

/** The fence arguments of the owner-written scripts: owner and epoch, or '' and 0 for an unfenced write. */
function fenceArgs(fence: Fence | undefined): Array<string | number> {
  return fence ? [fence.owner, fence.epoch] : ['', 0];
}

/** Hash fields of a record, as `field, value, …` (the session id is the key, not a field). */
function encodeRecord(record: SessionRecord): string[] {
  const fields = [
    'principal',
    record.principal,
    'transport',
    record.transport,
    'pv',
    record.protocolVersion,
    'init',
    JSON.stringify(record.initialize),
    'createdAt',
    String(record.createdAt),
    'owner',
    record.owner,
    'epoch',
    String(record.epoch),
  ];
  if (record.initialized) fields.push('inited', '1');
  if (record.logLevel !== undefined) fields.push('level', record.logLevel);
  if (record.subscriptions !== undefined) fields.push('subs', JSON.stringify(record.subscriptions));
  return fields;
}

/** Patch as `field, value, …`; an empty value tells the script to remove the field. */
function encodePatch(patch: SessionPatch): string[] {
  const fields: string[] = [];
  if ('logLevel' in patch) fields.push('level', patch.logLevel ?? '');
  if ('subscriptions' in patch) {
    fields.push('subs', patch.subscriptions === undefined ? '' : JSON.stringify(patch.subscriptions));
  }
  if ('initialized' in patch) fields.push('inited', patch.initialized ? '1' : '');
  return fields;
}

/** Rebuilds a record from HGETALL's flat `field, value, …` reply. */
function decodeRecord(id: string, flat: string[]): SessionRecord {
  const h = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) h.set(flat[i]!, flat[i + 1]!);
  const principal = h.get('principal');
  const transport = h.get('transport');
  const protocolVersion = h.get('pv');
  const init = h.get('init');
  const createdAt = Number(h.get('createdAt'));
  const owner = h.get('owner');
  const epoch = Number(h.get('epoch'));
  if (
    principal === undefined ||
    (transport !== 'streamable-http' && transport !== 'sse') ||
    protocolVersion === undefined ||
    init === undefined ||
    !Number.isFinite(createdAt) ||
    owner === undefined ||
    !Number.isSafeInteger(epoch)
  ) {
    throw new FleetError('INTERNAL', `Session record ${id} in Redis is malformed`);
  }
  try {
    const record: SessionRecord = {
      id,
      principal,
      transport,
      protocolVersion,
      initialize: JSON.parse(init) as SessionRecord['initialize'],
      createdAt,
      owner,
      epoch,
    };
    if (h.get('inited') === '1') record.initialized = true;
    const rel = h.get('rel');
    if (rel === 'handoff' || rel === 'eviction') record.released = rel;
    const level = h.get('level');
    if (level !== undefined) record.logLevel = level as SessionRecord['logLevel'];
    const subs = h.get('subs');
    if (subs !== undefined) record.subscriptions = JSON.parse(subs) as string[];
    return record;
  } catch (err) {
    throw new FleetError('INTERNAL', `Session record ${id} in Redis is malformed`, { cause: err });
  }
}
