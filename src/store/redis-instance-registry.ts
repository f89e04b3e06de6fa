import type { RedisClient } from '../redis/client.js';
import { call, DEFAULT_COMMAND_TIMEOUT_MS, execPipeline } from '../redis/call.js';
import type { RedisKeys } from '../redis/keys.js';
import { defineLuaScript, type LuaScript } from '../redis/lua-script.js';
import type { InstanceRecord, InstanceRegistry } from './instance-registry.js';

/** Options of {@link RedisInstanceRegistry}. */
export interface RedisInstanceRegistryOptions {
  /**
   * Bound on every Redis call in ms; past it the call fails with `STORE_UNAVAILABLE`.
   * @default 2000
   */
  commandTimeoutMs?: number;
}

/**
 * {@link InstanceRegistry} in Redis: a string per instance at `keys.instance(id)` whose TTL is the
 * liveness (Redis's own clock decides expiry, so instances' clocks need not agree), and a sorted set
 * `keys.instanceIndex()` of ids by expiry for listing. Both share the hash tag `{instances}`, so a
 * heartbeat is one script. The client is the caller's: the registry never closes it.
 */
export class RedisInstanceRegistry implements InstanceRegistry {
  private readonly timeoutMs: number;
  private readonly beatScript: LuaScript;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    opts: RedisInstanceRegistryOptions = {},
  ) {
    this.timeoutMs = opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.beatScript = defineLuaScript(redis, 'beat-instance');
  }

  /** {@inheritDoc InstanceRegistry.beat} */
  async beat(record: InstanceRecord, ttlMs: number): Promise<void> {
    await this.beatScript.run(
      [this.keys.instance(record.instanceId), this.keys.instanceIndex()],
      [Date.now(), ttlMs, record.instanceId, encode(record)],
      this.timeoutMs,
    );
  }

  /** {@inheritDoc InstanceRegistry.read} */
  async read(instanceIds: string[]): Promise<Array<InstanceRecord | undefined>> {
    if (instanceIds.length === 0) return [];
    const values = await call(
      this.redis.mget(...instanceIds.map((id) => this.keys.instance(id))),
      this.timeoutMs,
    );
    return instanceIds.map((id, i) => decode(id, values[i] ?? null));
  }

  /** {@inheritDoc InstanceRegistry.list} */
  async list(): Promise<InstanceRecord[]> {
    const ids = await call(
      this.redis.zrangebyscore(this.keys.instanceIndex(), Date.now(), '+inf'),
      this.timeoutMs,
    );
    if (ids.length === 0) return [];
    const values = await call(this.redis.mget(...ids.map((id) => this.keys.instance(id))), this.timeoutMs);
    const out: InstanceRecord[] = [];
    ids.forEach((id, i) => {
      const record = decode(id, values[i] ?? null);
      if (record) out.push(record); // expired between the two reads: not alive any more
    });
    return out.sort((a, b) => a.instanceId.localeCompare(b.instanceId));
  }

  /** {@inheritDoc InstanceRegistry.remove} */
  async remove(instanceId: string): Promise<void> {
    const p = this.redis.pipeline();
    p.del(this.keys.instance(instanceId));
    p.zrem(this.keys.instanceIndex(), instanceId);
    await execPipeline(p, this.timeoutMs);
  }

  /** Nothing to release: the client belongs to the caller. Idempotent. */
  async close(): Promise<void> {}
}

function encode(r: InstanceRecord): string {
  return JSON.stringify({ startedAt: r.startedAt, owned: r.owned, draining: r.draining, beats: r.beats });
}

/** The record from its stored JSON; undefined when gone, or written by something else. */
function decode(instanceId: string, value: string | null): InstanceRecord | undefined {
  if (value === null) return undefined;
  try {
    const v = JSON.parse(value) as Partial<InstanceRecord>;
    return {
      instanceId,
      startedAt: Number(v.startedAt ?? 0),
      owned: Number(v.owned ?? 0),
      draining: v.draining === true,
      beats: Number(v.beats ?? 0),
    };
  } catch {
    return undefined; // not ours: treated as not alive
  }
}
