import { FleetError } from '../errors.js';
import type {
  ClaimOutcome,
  DataSnapshot,
  Fence,
  Ownership,
  SessionPatch,
  ReleaseReason,
  SessionRecord,
  SessionState,
  SessionStore,
  TouchOrClaimOutcome,
  TtlPolicy,
  WriteOutcome,
} from './session-store.js';

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
  async touch(id: string, principal?: string): Promise<SessionState | undefined> {
    if (principal !== undefined && this.live(id)?.record.principal !== principal) return undefined;
    const entry = this.refreshed(id);
    return (
      entry && { owner: entry.record.owner, epoch: entry.record.epoch, transport: entry.record.transport }
    );
  }

  /** {@inheritDoc SessionStore.touchOrClaim} */
  async touchOrClaim(
    id: string,
    principal: string,
    claimant: string,
  ): Promise<TouchOrClaimOutcome | undefined> {
    const state = await this.touch(id, principal);
    if (!state) return undefined;
    if (state.owner !== '' || state.transport !== 'streamable-http') return { status: 'owned', state };
    const outcome = await this.claim(id, claimant, state, principal);
    if (outcome.status === 'gone') return undefined;
    if (outcome.status === 'claimed') return outcome;
    return { status: 'owned', state: { ...outcome.ownership, transport: state.transport } };
  }

  /** {@inheritDoc SessionStore.peek} */
  async peek(id: string): Promise<SessionState | undefined> {
    const entry = this.live(id);
    return (
      entry && { owner: entry.record.owner, epoch: entry.record.epoch, transport: entry.record.transport }
    );
  }

  /** {@inheritDoc SessionStore.update} */
  async update(id: string, patch: SessionPatch, fence?: Fence): Promise<WriteOutcome> {
    const check = this.fenced(id, fence);
    if (check !== 'ok') return check;
    const entry = this.refreshed(id);
    if (!entry) return 'gone';
    // An own property set to undefined clears the field, as the Redis store does.
    if ('logLevel' in patch) {
      if (patch.logLevel === undefined) delete entry.record.logLevel;
      else entry.record.logLevel = patch.logLevel;
    }
    if ('subscriptions' in patch) {
      if (patch.subscriptions === undefined) delete entry.record.subscriptions;
      else entry.record.subscriptions = [...patch.subscriptions];
    }
    if ('initialized' in patch) {
      if (patch.initialized) entry.record.initialized = true;
      else delete entry.record.initialized;
    }
    return 'ok';
  }

  /** {@inheritDoc SessionStore.claim} */
  async claim(id: string, claimant: string, expected: Ownership, principal?: string): Promise<ClaimOutcome> {
    const current = this.live(id);
    if (
      !current ||
      current.record.transport !== 'streamable-http' ||
      (principal !== undefined && current.record.principal !== principal)
    ) {
      return { status: 'gone' }; // a legacy session lives and dies with its stream: never claimed
    }
    const { owner, epoch } = current.record;
    if (owner !== expected.owner || epoch !== expected.epoch) {
      return { status: 'taken', ownership: { owner, epoch } };
    }
    const entry = this.refreshed(id);
    if (!entry) return { status: 'gone' };
    const claimed = structuredClone({ ...entry.record, owner: claimant, epoch: epoch + 1 });
    entry.record.owner = claimant;
    entry.record.epoch = epoch + 1;
    delete entry.record.released; // told to this claimant only
    return { status: 'claimed', record: claimed };
  }

  /** {@inheritDoc SessionStore.release} */
  async release(id: string, fence: Fence, reason: ReleaseReason): Promise<boolean> {
    if (this.fenced(id, fence) !== 'ok') return false;
    const record = this.live(id)!.record;
    record.owner = '';
    record.released = reason;
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
    fence?: Fence,
  ): Promise<number | 'conflict' | 'gone' | 'fenced'> {
    const check = this.fenced(id, fence);
    if (check !== 'ok') return check;
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

  /** The session's owner now, '' when it has none or is gone (for the stream registry of the same process). */
  ownerOf(id: string): string {
    return this.live(id)?.record.owner ?? '';
  }

  /** Whether a write fenced with `fence` may go ahead now (for the event log of the same process). */
  checkFence(id: string, fence: Fence): WriteOutcome {
    return this.fenced(id, fence);
  }

  /** Whether a write fenced with `fence` may go ahead (always, when not fenced). */
  private fenced(id: string, fence: Fence | undefined): WriteOutcome {
    if (!fence) return 'ok';
    const entry = this.live(id);
    if (!entry) return 'gone';
    return entry.record.owner === fence.owner && entry.record.epoch === fence.epoch ? 'ok' : 'fenced';
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
