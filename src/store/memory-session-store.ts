import { FleetError } from '../errors.js';
import type { DataSnapshot, SessionPatch, SessionRecord, SessionStore, TtlPolicy } from './session-store.js';

/** Options of {@link MemorySessionStore}. */
export interface MemorySessionStoreOptions {
  /**
   * Clock in ms since the epoch (tests inject one).
   * @default Date.now
   */
  now?: () => number;
}

interface Entry {
  record: SessionRecord;
  expiresAt: number;
  json: string | undefined;
  version: number;
}

/** Longest pause between sweeps; expiry on access is exact, the sweep only frees memory. */
const MAX_SWEEP_INTERVAL_MS = 60_000;

/**
 * {@link SessionStore} in one process (the embedded default, and the reference for the contract
 * tests). Expired sessions are dropped when touched and by a periodic sweep. Records and data are
 * copied in and out, so callers never share objects with the store (as with Redis).
 */
export class MemorySessionStore implements SessionStore {
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;
  private sweepTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ttl: TtlPolicy,
    opts: MemorySessionStoreOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    const interval = Math.min(Math.max(ttl.idleMs, 1000), MAX_SWEEP_INTERVAL_MS);
    this.sweepTimer = setInterval(() => this.sweep(), interval);
    // The sweep only frees memory; it must not keep the process alive.
    this.sweepTimer.unref();
  }

  /** {@inheritDoc SessionStore.create} */
  async create(record: SessionRecord): Promise<void> {
    if (this.live(record.id)) throw new FleetError('SESSION_EXISTS', `Session ${record.id} already exists`);
    const entry: Entry = { record: structuredClone(record), expiresAt: 0, json: undefined, version: 0 };
    if (this.refresh(entry)) this.entries.set(record.id, entry);
  }

  /** {@inheritDoc SessionStore.load} */
  async load(id: string, principal?: string): Promise<SessionRecord | undefined> {
    if (principal !== undefined && this.live(id)?.record.principal !== principal) return undefined;
    const entry = this.refreshed(id);
    return entry && structuredClone(entry.record);
  }

  /** {@inheritDoc SessionStore.touch} */
  async touch(id: string): Promise<boolean> {
    return this.refreshed(id) !== undefined;
  }

  /** {@inheritDoc SessionStore.update} */
  async update(id: string, patch: SessionPatch): Promise<boolean> {
    const entry = this.refreshed(id);
    if (!entry) return false;
    // An own property set to undefined clears the field, as the Redis store does.
    if ('logLevel' in patch) {
      if (patch.logLevel === undefined) delete entry.record.logLevel;
      else entry.record.logLevel = patch.logLevel;
    }
    if ('subscriptions' in patch) {
      if (patch.subscriptions === undefined) delete entry.record.subscriptions;
      else entry.record.subscriptions = [...patch.subscriptions];
    }
    if (patch.owner !== undefined) entry.record.owner = patch.owner;
    return true;
  }

  /** {@inheritDoc SessionStore.delete} */
  async delete(id: string): Promise<boolean> {
    const alive = this.live(id) !== undefined;
    this.entries.delete(id);
    return alive;
  }

  /** {@inheritDoc SessionStore.count} */
  async count(): Promise<number> {
    this.sweep();
    return this.entries.size;
  }

  /** {@inheritDoc SessionStore.getData} */
  async getData(id: string): Promise<DataSnapshot | undefined> {
    const entry = this.refreshed(id);
    return entry && { json: entry.json, version: entry.version };
  }

  /** {@inheritDoc SessionStore.setData} */
  async setData(
    id: string,
    json: string | undefined,
    expectedVersion?: number,
  ): Promise<number | 'conflict' | 'gone'> {
    const entry = this.refreshed(id);
    if (!entry) return 'gone';
    if (expectedVersion !== undefined && expectedVersion !== entry.version) return 'conflict';
    entry.json = json;
    entry.version += 1;
    return entry.version;
  }

  /** Always reachable. */
  async ping(): Promise<void> {}

  /** Stops the sweep timer. Idempotent. */
  async close(): Promise<void> {
    clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
  }

  /** The entry when alive; drops it when expired. */
  private live(id: string): Entry | undefined {
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    if (entry.expiresAt > this.now()) return entry;
    this.entries.delete(id);
    return undefined;
  }

  /** The live entry with its idle TTL refreshed, or undefined (and dropped) when gone. */
  private refreshed(id: string): Entry | undefined {
    const entry = this.live(id);
    if (!entry) return undefined;
    if (this.refresh(entry)) return entry;
    this.entries.delete(id);
    return undefined;
  }

  /** Slides the expiry, never past `createdAt + maxLifetimeMs`. False when the session is past it. */
  private refresh(entry: Entry): boolean {
    const now = this.now();
    const ttl = Math.min(this.ttl.idleMs, entry.record.createdAt + this.ttl.maxLifetimeMs - now);
    entry.expiresAt = now + ttl;
    return ttl > 0;
  }

  private sweep(): void {
    const now = this.now();
    for (const [id, entry] of this.entries) if (entry.expiresAt <= now) this.entries.delete(id);
  }
}
