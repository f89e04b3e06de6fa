import { FleetError } from '../errors.js';
import { call, DEFAULT_COMMAND_TIMEOUT_MS } from '../redis/call.js';
import { pipelinePerSlot, type RedisClient } from '../redis/client.js';
import { ALL_SHARDS, type RedisKeys } from '../redis/keys.js';
import { defineLuaScript, type LuaScript } from '../redis/lua-script.js';
import type {
  ClaimOutcome,
  DataSnapshot,
  Fence,
  Ownership,
  ReleaseReason,
  SessionPatch,
  SessionRecord,
  SessionState,
  SessionStore,
  TouchOrClaimOutcome,
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
  /**
   * After creating a session, wait until this many replicas have it (`WAIT`), so a failover of the
   * primary right after cannot lose it; fewer in time is a 503. 0: do not wait.
   * @default 0
   */
  replicasOnCreate?: number;
}

/** How long a create waits for replicas (`WAIT`) before it gives up with a 503. */
const WAIT_REPLICAS_MS = 1000;

/**
 * {@link SessionStore} in Redis. The record is a hash at `keys.session(id)`, the data a hash
 * `{json, v}` at `keys.data(id)`; both carry the session's TTL, and the session's shard index (a
 * sorted set by expiry, used by {@link count}) is kept by the same scripts, in the same slot: every
 * operation on one session is one script, one round trip, on every topology.
 *
 * The client is the caller's: the store never closes it.
 */
export class RedisSessionStore implements SessionStore {
  private readonly timeoutMs: number;
  private readonly scripts: Record<
    | 'create'
    | 'refresh'
    | 'touchOrClaim'
    | 'update'
    | 'claim'
    | 'release'
    | 'delete'
    | 'getData'
    | 'setData'
    | 'count',
    LuaScript
  >;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    private readonly ttl: TtlPolicy,
    private readonly opts: RedisSessionStoreOptions = {},
  ) {
    this.timeoutMs = opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.scripts = {
      create: defineLuaScript(redis, 'create-session'),
      refresh: defineLuaScript(redis, 'refresh-session'),
      touchOrClaim: defineLuaScript(redis, 'touch-or-claim'),
      update: defineLuaScript(redis, 'update-session'),
      claim: defineLuaScript(redis, 'claim-session'),
      release: defineLuaScript(redis, 'release-session'),
      delete: defineLuaScript(redis, 'delete-session'),
      getData: defineLuaScript(redis, 'get-data'),
      setData: defineLuaScript(redis, 'set-data'),
      count: defineLuaScript(redis, 'count-index'),
    };
  }

  /** {@inheritDoc SessionStore.create} */
  async create(record: SessionRecord): Promise<void> {
    const keys = this.sessionKeys(record.id);
    const args = [...this.lifetime(Date.now(), record.id), record.createdAt, ...encodeRecord(record)];
    const replicas = this.opts.replicasOnCreate ?? 0;
    let reply: [number, number];
    if (replicas > 0) {
      // One pipeline on the session's node: WAIT then covers the create written just before it.
      const p = this.redis.pipeline();
      this.scripts.create.queue(p, keys, args);
      p.wait(replicas, WAIT_REPLICAS_MS);
      const [created, acked] = (await call(p.exec(), this.timeoutMs + WAIT_REPLICAS_MS)) ?? [];
      if (!created || created[0] || !acked || acked[0]) {
        throw new FleetError('STORE_UNAVAILABLE', 'Session store unavailable', {
          cause: created?.[0] ?? acked?.[0],
        });
      }
      reply = created[1] as [number, number];
      if ((acked[1] as number) < replicas && reply[0] === 1) {
        throw new FleetError('STORE_UNAVAILABLE', 'Session store unavailable: not replicated in time', {
          cause: new Error(`WAIT ${replicas}: ${String(acked[1])} replicas acknowledged`),
        });
      }
    } else {
      reply = (await this.scripts.create.run(keys, args, this.timeoutMs)) as [number, number];
    }
    if (reply[0] !== 1) throw new FleetError('SESSION_EXISTS', `Session ${record.id} already exists`);
  }

  /** {@inheritDoc SessionStore.load} */
  async load(id: string, principal?: string): Promise<SessionRecord | undefined> {
    const reply = (await this.scripts.refresh.run(
      this.sessionKeys(id),
      [...this.lifetime(Date.now(), id), '1', principal ?? ''],
      this.timeoutMs,
    )) as [number, ...unknown[]];
    return reply[0] < 0 || !Array.isArray(reply[4]) ? undefined : decodeRecord(id, reply[4] as string[]);
  }

  /** {@inheritDoc SessionStore.touch} */
  async touch(id: string, principal?: string): Promise<SessionState | undefined> {
    const reply = (await this.scripts.refresh.run(
      this.sessionKeys(id),
      [...this.lifetime(Date.now(), id), '0', principal ?? ''],
      this.timeoutMs,
    )) as [number, ...unknown[]];
    if (reply[0] < 0) return undefined;
    const transport = reply[3] === 'sse' ? 'sse' : 'streamable-http';
    return { owner: String(reply[1] ?? ''), epoch: Number(reply[2] ?? 0), transport };
  }

  /** {@inheritDoc SessionStore.touchOrClaim} One script, which also reads the standalone stream's holder. */
  async touchOrClaim(
    id: string,
    principal: string,
    claimant: string,
  ): Promise<TouchOrClaimOutcome | undefined> {
    const reply = (await this.scripts.touchOrClaim.run(
      this.claimKeys(id),
      [...this.lifetime(Date.now(), id), principal, claimant],
      this.timeoutMs,
    )) as [number, string, number | string, string, string[]?, (string | null)?];
    if (reply[0] < 0) return undefined;
    const [, owner, epoch, transport, flat, holder] = reply;
    if (!Array.isArray(flat)) {
      return {
        status: 'owned',
        state: {
          owner: String(owner),
          epoch: Number(epoch),
          transport: transport === 'sse' ? 'sse' : 'streamable-http',
        },
      };
    }
    // The record was read before the claim: it names the new owner and epoch only from here on.
    const record = { ...decodeRecord(id, flat), owner: claimant, epoch: Number(epoch) };
    return { status: 'claimed', record, standaloneHolder: holder ?? null };
  }

  /** {@inheritDoc SessionStore.peek} One plain read: the hash exists exactly while the session lives. */
  async peek(id: string): Promise<SessionState | undefined> {
    const [owner, epoch, transport] = await call(
      this.redis.hmget(this.keys.session(id), 'owner', 'epoch', 'transport'),
      this.timeoutMs,
    );
    if (transport === null || transport === undefined) return undefined;
    return {
      owner: owner ?? '',
      epoch: Number(epoch ?? 0),
      transport: transport === 'sse' ? 'sse' : 'streamable-http',
    };
  }

  /** {@inheritDoc SessionStore.update} */
  async update(id: string, patch: SessionPatch, fence?: Fence): Promise<WriteOutcome> {
    const ttl = (await this.scripts.update.run(
      this.sessionKeys(id),
      [...this.lifetime(Date.now(), id), ...fenceArgs(fence), ...encodePatch(patch)],
      this.timeoutMs,
    )) as number;
    if (ttl === FENCED) return 'fenced';
    return ttl >= 0 ? 'ok' : 'gone';
  }

  /** {@inheritDoc SessionStore.claim} */
  async claim(id: string, claimant: string, expected: Ownership, principal?: string): Promise<ClaimOutcome> {
    const reply = (await this.scripts.claim.run(
      this.claimKeys(id),
      [...this.lifetime(Date.now(), id), claimant, expected.owner, expected.epoch, principal ?? ''],
      this.timeoutMs,
    )) as [number, ...unknown[]];
    if (reply[0] === 0) {
      return { status: 'taken', ownership: { owner: String(reply[1]), epoch: Number(reply[2]) } };
    }
    if (reply[0] !== 1) return { status: 'gone' };
    const record = decodeRecord(id, reply[2] as string[]);
    // The record was read before the claim: it names the new owner and epoch only from here on.
    return {
      status: 'claimed',
      record: { ...record, owner: claimant, epoch: expected.epoch + 1 },
      standaloneHolder: (reply[3] as string | null | undefined) ?? null,
    };
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
    const existed = await this.scripts.delete.run(this.sessionKeys(id), [id], this.timeoutMs);
    return existed === 1;
  }

  /**
   * {@inheritDoc SessionStore.count} One script per shard (on a Cluster each on its node; otherwise
   * all in one pipeline).
   */
  async count(): Promise<number> {
    const now = Date.now();
    const replies = await pipelinePerSlot(
      this.redis,
      ALL_SHARDS,
      (p, shard) => this.scripts.count.queue(p, [this.keys.sessionIndex(shard)], [now]),
      this.timeoutMs,
    );
    return replies.reduce((n, [count]) => n + Number(count), 0);
  }

  /** {@inheritDoc SessionStore.getData} */
  async getData(id: string): Promise<DataSnapshot | undefined> {
    const reply = (await this.scripts.getData.run(
      this.sessionKeys(id),
      this.lifetime(Date.now(), id),
      this.timeoutMs,
    )) as [number, string?, string?];
    const [ttl, json, version] = reply;
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
    const args = [
      ...this.lifetime(Date.now(), id),
      json === undefined ? '0' : '1',
      json ?? '',
      expectedVersion === undefined ? '' : expectedVersion,
      ...fenceArgs(fence),
    ];
    const [, version] = (await this.scripts.setData.run(this.sessionKeys(id), args, this.timeoutMs)) as [
      number,
      number,
    ];
    if (version === -3) return 'fenced';
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

  /** KEYS of the session scripts: record, data and the shard's index (one slot). */
  private sessionKeys(id: string): string[] {
    return [this.keys.session(id), this.keys.data(id), this.keys.sessionIndexOf(id)];
  }

  /** KEYS of the claiming scripts: the session's, and the holder record of its standalone stream (same slot). */
  private claimKeys(id: string): string[] {
    return [...this.sessionKeys(id), this.keys.standaloneHolder(id)];
  }

  /** The first ARGV of the session scripts: now, the lifetime rule, and the session id (index member). */
  private lifetime(now: number, id: string): Array<string | number> {
    return [now, this.ttl.idleMs, this.ttl.maxLifetimeMs, id];
  }
}

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
  if (record.released !== undefined) fields.push('rel', record.released);
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
export function decodeRecord(id: string, flat: string[]): SessionRecord {
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
    if (rel === 'handoff' || rel === 'eviction' || rel === 'recovered') record.released = rel;
    const level = h.get('level');
    if (level !== undefined) record.logLevel = level as SessionRecord['logLevel'];
    const subs = h.get('subs');
    if (subs !== undefined) record.subscriptions = JSON.parse(subs) as string[];
    return record;
  } catch (err) {
    throw new FleetError('INTERNAL', `Session record ${id} in Redis is malformed`, { cause: err });
  }
}
