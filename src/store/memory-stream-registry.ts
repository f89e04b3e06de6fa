import type { StreamClaim, StreamRecord, StreamRegistry } from './stream-registry.js';

/** Options of {@link MemoryStreamRegistry}. */
export interface MemoryStreamRegistryOptions {
  /**
   * How long a record lives without a heartbeat from its holder, in ms.
   * @default 30000
   */
  heartbeatTtlMs?: number;
  /**
   * Clock in ms since the epoch (tests inject one).
   * @default Date.now
   */
  now?: () => number;
  /**
   * The session's owner now ('' for none), read when a record is written ({@link StreamClaim.owner}):
   * the session store of the same process (`MemorySessionStore.ownerOf`).
   */
  sessionOwner: (sessionId: string) => string;
}

interface Entry {
  record: StreamRecord;
  expiresAt: number;
}

/**
 * {@link StreamRegistry} in one process. Records expire `heartbeatTtlMs` after their last heartbeat;
 * expired ones are dropped when read and swept as the map grows, with no timer.
 */
export class MemoryStreamRegistry implements StreamRegistry {
  private readonly entries = new Map<string, Entry>();
  private readonly heartbeatTtlMs: number;
  private readonly now: () => number;
  private readonly sessionOwner: (sessionId: string) => string;
  /** Size at which claim sweeps expired records next, so abandoned ones cannot pile up. */
  private sweepAt = 64;

  constructor(opts: MemoryStreamRegistryOptions) {
    this.heartbeatTtlMs = opts.heartbeatTtlMs ?? 30_000;
    this.now = opts.now ?? Date.now;
    this.sessionOwner = opts.sessionOwner;
  }

  /** {@inheritDoc StreamRegistry.claim} */
  async claim(record: StreamRecord): Promise<StreamClaim> {
    const key = entryKey(record.sessionId, record.streamId);
    const previous = this.live(key)?.record.instanceId;
    if (this.entries.size >= this.sweepAt) {
      this.sweep();
      // Doubling keeps the sweep's cost amortized O(1) per claim.
      this.sweepAt = Math.max(64, this.entries.size * 2);
    }
    this.entries.set(key, { record: { ...record }, expiresAt: this.now() + this.heartbeatTtlMs });
    // In the same synchronous step as the write: no claim of the session can come in between.
    return {
      previous: previous !== undefined && previous !== record.instanceId ? previous : undefined,
      owner: this.sessionOwner(record.sessionId),
    };
  }

  /** {@inheritDoc StreamRegistry.get} */
  async get(sessionId: string, streamId: string): Promise<StreamRecord | undefined> {
    const entry = this.live(entryKey(sessionId, streamId));
    return entry && { ...entry.record };
  }

  /** {@inheritDoc StreamRegistry.heartbeat} */
  async heartbeat(
    streams: Array<{ sessionId: string; streamId: string }>,
    instanceId: string,
  ): Promise<void> {
    const now = this.now();
    for (const s of streams) {
      const entry = this.live(entryKey(s.sessionId, s.streamId));
      // Only the holder keeps a record alive; a stream taken over by another instance is theirs.
      if (entry?.record.instanceId !== instanceId) continue;
      entry.record.lastSeenAt = now;
      entry.expiresAt = now + this.heartbeatTtlMs;
    }
  }

  /** {@inheritDoc StreamRegistry.release} */
  async release(sessionId: string, streamId: string, instanceId: string): Promise<void> {
    const key = entryKey(sessionId, streamId);
    if (this.live(key)?.record.instanceId === instanceId) this.entries.delete(key);
  }

  /** {@inheritDoc StreamRegistry.count} */
  async count(): Promise<number> {
    this.sweep();
    return this.entries.size;
  }

  /** {@inheritDoc StreamRegistry.list} */
  async list(limit = 100): Promise<StreamRecord[]> {
    this.sweep();
    return [...this.entries.values()]
      .sort((a, b) => a.expiresAt - b.expiresAt)
      .slice(0, Math.max(limit, 0))
      .map((e) => ({ ...e.record }));
  }

  /** Nothing to release. Idempotent. */
  async close(): Promise<void> {}

  private live(key: string): Entry | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt > this.now()) return entry;
    this.entries.delete(key);
    return undefined;
  }

  private sweep(): void {
    const now = this.now();
    for (const [key, entry] of this.entries) if (entry.expiresAt <= now) this.entries.delete(key);
  }
}

/** Session ids are visible ASCII (no space), so the pair maps to one key unambiguously. */
function entryKey(sessionId: string, streamId: string): string {
  return `${sessionId} ${streamId}`;
}
