import { FleetError, notOwner } from '../errors.js';
import type { Fence, WriteOutcome } from '../store/session-store.js';
import { logMovedOn, ttlAfterAppend, type EventLog, type StoredEvent } from './event-log.js';

/** Options of {@link MemoryEventLog}. */
export interface MemoryEventLogOptions {
  /**
   * Events kept per stream (trimmed exactly; the Redis log may keep a few more).
   * @default 1000
   */
  maxEvents?: number;
  /** TTL of a stream's log in ms, refreshed on every append. */
  ttlMs: number;
  /**
   * TTL in ms of a finished stream's log (from the append that ends it), when shorter than `ttlMs`.
   * @default ttlMs
   */
  endedTtlMs?: number | undefined;
  /**
   * Clock in ms since the epoch (tests inject one).
   * @default Date.now
   */
  now?: () => number;
  /**
   * Checks a fenced append against the session store of the same process (the Redis log does it in
   * its script). Required for fenced appends.
   * @default undefined (a fenced append is refused)
   */
  checkFence?: (sessionId: string, fence: Fence) => WriteOutcome;
}

interface Log {
  events: StoredEvent[];
  lastSeq: number;
  expiresAt: number;
}

/**
 * {@link EventLog} in one process. Logs expire `ttlMs` after their last append; expired ones are
 * dropped when read and swept as the map grows, with no timer.
 */
export class MemoryEventLog implements EventLog {
  private readonly logs = new Map<string, Log>();
  private readonly maxEvents: number;
  private readonly ttlMs: number;
  private readonly endedTtlMs: number | undefined;
  private readonly now: () => number;
  private readonly checkFence: ((sessionId: string, fence: Fence) => WriteOutcome) | undefined;
  /** Size at which append sweeps expired logs next, so abandoned ones cannot pile up. */
  private sweepAt = 64;

  constructor(opts: MemoryEventLogOptions) {
    this.maxEvents = opts.maxEvents ?? 1000;
    this.ttlMs = opts.ttlMs;
    this.endedTtlMs = opts.endedTtlMs;
    this.now = opts.now ?? Date.now;
    this.checkFence = opts.checkFence;
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
    if (fence) {
      const check = this.checkFence ? this.checkFence(sessionId, fence) : 'fenced';
      if (check === 'gone') throw new FleetError('SESSION_NOT_FOUND', 'Session not found');
      if (check === 'fenced') throw notOwner(sessionId);
    }
    const key = logKey(sessionId, streamId);
    let log = this.live(key);
    const current = log?.lastSeq ?? 0;
    if (afterSeq !== undefined && current !== afterSeq) {
      if (current !== afterSeq + data.length) throw logMovedOn(streamId);
      return data.map((_, i) => afterSeq + i + 1); // this append already happened
    }
    if (!log) {
      this.maybeSweep();
      log = { events: [], lastSeq: 0, expiresAt: 0 };
      this.logs.set(key, log);
    }
    const seqs = data.map((d) => {
      const seq = ++log.lastSeq;
      log.events.push({ seq, data: d });
      return seq;
    });
    if (log.events.length > this.maxEvents) log.events.splice(0, log.events.length - this.maxEvents);
    log.expiresAt = this.now() + ttlAfterAppend(data, this.ttlMs, this.endedTtlMs);
    return seqs;
  }

  /** {@inheritDoc EventLog.readAfter} */
  async readAfter(sessionId: string, streamId: string, afterSeq: number): Promise<StoredEvent[]> {
    if (!Number.isSafeInteger(afterSeq) || afterSeq < 0) {
      throw new RangeError(`Invalid event sequence number: ${afterSeq}`);
    }
    const log = this.live(logKey(sessionId, streamId));
    return log ? log.events.filter((e) => e.seq > afterSeq).map((e) => ({ ...e })) : [];
  }

  /** {@inheritDoc EventLog.lastSeq} */
  async lastSeq(sessionId: string, streamId: string): Promise<number> {
    return this.live(logKey(sessionId, streamId))?.lastSeq ?? 0;
  }

  /** {@inheritDoc EventLog.touch} */
  async touch(streams: Array<{ sessionId: string; streamId: string }>): Promise<void> {
    const expiresAt = this.now() + this.ttlMs;
    for (const s of streams) {
      const log = this.live(logKey(s.sessionId, s.streamId));
      if (log) log.expiresAt = expiresAt;
    }
  }

  /** {@inheritDoc EventLog.delete} */
  async delete(sessionId: string, streamId: string): Promise<void> {
    this.logs.delete(logKey(sessionId, streamId));
  }

  /** {@inheritDoc EventLog.deleteSession} */
  async deleteSession(sessionId: string): Promise<void> {
    const prefix = `${sessionId} `;
    for (const key of this.logs.keys()) if (key.startsWith(prefix)) this.logs.delete(key);
  }

  /** Nothing to release. Idempotent. */
  async close(): Promise<void> {}

  private live(key: string): Log | undefined {
    const log = this.logs.get(key);
    if (!log) return undefined;
    if (log.expiresAt > this.now()) return log;
    this.logs.delete(key);
    return undefined;
  }

  private maybeSweep(): void {
    if (this.logs.size < this.sweepAt) return;
    const now = this.now();
    for (const [key, log] of this.logs) if (log.expiresAt <= now) this.logs.delete(key);
    // Doubling keeps the sweep's cost amortized O(1) per new log.
    this.sweepAt = Math.max(64, this.logs.size * 2);
  }
}

/** Session ids are visible ASCII (no space), so the pair maps to one key unambiguously. */
function logKey(sessionId: string, streamId: string): string {
  return `${sessionId} ${streamId}`;
}
