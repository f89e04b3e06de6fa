import type { Clock, TimerHandle } from '../clock.js';
import { storeUnavailable } from '../errors.js';
import type { InstanceRecord, InstanceRegistry } from '../store/instance-registry.js';
import type {
  ClaimOutcome,
  Fence,
  Ownership as OwnershipOf,
  ReleaseReason,
  SessionStore,
  TouchOrClaimOutcome,
} from '../store/session-store.js';

/** Why this instance lost a session it owned. */
export type LossReason = 'replaced' | 'expired';

/** What {@link Ownership} needs. */
export interface OwnershipDeps {
  instanceId: string;
  store: SessionStore;
  instances: InstanceRegistry;
  clock: Clock;
  /** Interval of this instance's liveness heartbeat. */
  heartbeatMs: number;
  /** Others count this instance as dead (or frozen) this long after its last heartbeat. */
  instanceTtlMs: number;
  /** Whether this instance is shutting down (told to the others with each heartbeat). */
  draining(): boolean;
  /** Whether this instance's bus channels are subscribed right now (a message to it is received). */
  subscribed(): boolean;
  /**
   * How long after the bus subscription came back an owner still checks the store on every request:
   * a claim that started while it was unsubscribed (a message to it reached nobody) may still land.
   */
  resubscribeSettleMs: number;
  /** This instance no longer owns a session it held a copy of: close the copy, do not write. */
  onLost(sessionId: string, reason: LossReason): void;
  /** After every heartbeat attempt (drives the checks that piggyback on it). */
  onTick(): void;
  onError(err: Error): void;
}

/**
 * The one home of session ownership on this instance (as BullMQ's LockManager is for job locks):
 * which sessions it owns and at which epoch, claims and releases (compare-and-set in the store), the
 * fence every owner write carries, and this instance's liveness heartbeat.
 *
 * Ownership is not leased per session: a session's owner stays its owner until it releases it or
 * another instance claims it after finding the owner dead (its bus channel has no subscriber) or
 * frozen (no acknowledgement, and its heartbeat expired). Each claim increases the session's epoch,
 * and every write an owner makes is fenced with its epoch, so a replaced owner cannot write; it
 * learns at its first write, or before acting on anything after a pause (see {@link ensureCurrent}).
 */
export class Ownership {
  private readonly owned = new Map<string, number>();
  private readonly startedAt: number;
  private timer: TimerHandle | undefined;
  /** Clock reading when the last heartbeat that succeeded was sent. */
  private lastBeatOk: number;
  /** When a heartbeat of this instance last failed (the store was away). */
  private lastBeatFailed = Number.NEGATIVE_INFINITY;
  private validating: Promise<void> | undefined;
  private beats = 0;
  /** Instances found gone recently, until when the verdict holds. */
  private readonly gone = new Map<string, number>();
  private closed = false;
  private removed = false;
  /** Counts the events after which no copy may act on an earlier check (see {@link uncheckedToken}). */
  private disruptions = 0;
  /** Until when every copy checks the store on each request (after a resubscription). */
  private settlingUntil = Number.NEGATIVE_INFINITY;

  constructor(private readonly deps: OwnershipDeps) {
    this.startedAt = deps.clock.now();
    this.lastBeatOk = Number.NEGATIVE_INFINITY;
  }

  /** The instance id sessions are owned by here. */
  get instanceId(): string {
    return this.deps.instanceId;
  }

  /** Number of sessions owned here. */
  get size(): number {
    return this.owned.size;
  }

  /**
   * Starts the heartbeat; resolves after the first one, whether it reached the store or not (a
   * failed beat is reported and the next one follows after `heartbeatMs`).
   */
  async start(): Promise<void> {
    await this.beat();
  }

  /** Whether a heartbeat of this instance has reached the store: the others can see it alive. */
  get listed(): boolean {
    return Number.isFinite(this.lastBeatOk);
  }

  /** The epoch at which this instance owns `sessionId`, if it does. */
  epochOf(sessionId: string): number | undefined {
    return this.owned.get(sessionId);
  }

  /** The fence of writes for a session owned here; undefined when not owned. */
  fence(sessionId: string): Fence | undefined {
    const epoch = this.owned.get(sessionId);
    return epoch === undefined ? undefined : { owner: this.deps.instanceId, epoch };
  }

  /** Records a session created here (initialize), owned at `epoch`. */
  track(sessionId: string, epoch: number): void {
    this.owned.set(sessionId, epoch);
  }

  /** Forgets a session without touching the store (it was deleted, expired or taken over). */
  untrack(sessionId: string, epoch?: number): void {
    if (epoch === undefined || this.owned.get(sessionId) === epoch) this.owned.delete(sessionId);
  }

  /**
   * Claims a session whose ownership was `expected` (nobody, a dead or frozen owner, or this
   * instance in an earlier life). On success this instance owns it at the returned record's epoch.
   */
  async claim(sessionId: string, expected: OwnershipOf, principal?: string): Promise<ClaimOutcome> {
    const outcome = await this.deps.store.claim(sessionId, this.deps.instanceId, expected, principal);
    if (outcome.status === 'claimed') this.owned.set(sessionId, outcome.record.epoch);
    return outcome;
  }

  /**
   * Refreshes a session's TTL and, when it has no owner, claims it in the same step
   * ({@link SessionStore.touchOrClaim}). When claimed, this instance owns it at the record's epoch.
   */
  async touchOrClaim(sessionId: string, principal: string): Promise<TouchOrClaimOutcome | undefined> {
    const outcome = await this.deps.store.touchOrClaim(sessionId, principal, this.deps.instanceId);
    if (outcome?.status === 'claimed') this.owned.set(sessionId, outcome.record.epoch);
    return outcome;
  }

  /** Gives a session owned here up (its copy is closing); false when it was not ours any more. */
  async release(sessionId: string, reason: ReleaseReason): Promise<boolean> {
    const fence = this.fence(sessionId);
    if (!fence) return false;
    this.owned.delete(sessionId);
    return this.deps.store.release(sessionId, fence, reason);
  }

  /**
   * True when this instance cannot be sure it still owns its sessions: no heartbeat succeeded for
   * long enough that the others may have found it frozen and claimed them (its process paused, its
   * event loop was blocked, or the store was unreachable).
   */
  isStale(): boolean {
    return this.deps.clock.now() - this.lastBeatOk >= this.deps.instanceTtlMs - this.deps.heartbeatMs;
  }

  /**
   * Resolves once this instance may act as the owner of the sessions it holds: at once normally;
   * after a pause, once it renewed its liveness and checked every owned session in the store (those
   * taken over meanwhile are given up through `onLost`). Rejects with a 503 when the store is away.
   */
  ensureCurrent(): Promise<void> {
    if (!this.isStale()) return Promise.resolve();
    return this.revalidate();
  }

  /**
   * Renews the heartbeat, then checks each owned session's ownership in the store (concurrent calls,
   * pipelined on the connection) and gives up those owned elsewhere now. Concurrent calls share one run.
   */
  revalidate(): Promise<void> {
    this.validating ??= (async () => {
      try {
        await this.beat(false);
        if (this.isStale()) throw storeUnavailable(new Error('heartbeat failed: ownership unknown'));
        const sessions = [...this.owned];
        // A check, not a use: the sessions' idle TTLs stay as they are.
        const current = await Promise.all(sessions.map(([sid]) => this.deps.store.peek(sid)));
        sessions.forEach(([sid, epoch], i) => {
          const now = current[i];
          if (this.owned.get(sid) !== epoch) return; // released or re-claimed meanwhile
          if (!now) this.lose(sid, 'expired');
          else if (now.owner !== this.deps.instanceId || now.epoch !== epoch) this.lose(sid, 'replaced');
        });
      } finally {
        this.validating = undefined;
      }
    })();
    return this.validating;
  }

  /**
   * Whether a copy checked in the store (owned here, at its epoch) while this same token was current
   * may act as the owner again without asking the store: undefined when it must ask.
   *
   * Another instance claims a session owned here only after finding this instance frozen (its
   * heartbeat record expired: no beat for `instanceTtlMs`) or dead (a message to it reached no
   * subscriber, and then its heartbeat stood still for 1.5 intervals). So the answer is a token while
   * the last heartbeat that succeeded was sent less than 1.5 intervals ago, the bus is subscribed and
   * was not lost since the check, and the store's connection has not dropped since (a restarted or
   * failed-over store may have lost the records); {@link disrupted} changes the token.
   */
  uncheckedToken(): number | undefined {
    const now = this.deps.clock.now();
    if (now - this.lastBeatOk >= this.deps.heartbeatMs * 1.5) return undefined;
    if (now < this.settlingUntil || !this.deps.subscribed()) return undefined;
    return this.disruptions;
  }

  /**
   * The store's connection dropped, or the bus subscription was lost (`settle`: was subscribed
   * again): copies check the store again before acting, for `resubscribeSettleMs` after a
   * resubscription on every request.
   */
  disrupted(settle = false): void {
    this.disruptions++;
    if (settle) this.settlingUntil = this.deps.clock.now() + this.deps.resubscribeSettleMs;
  }

  /**
   * Whether the store's liveness records can be taken as evidence right now: this instance's own
   * heartbeat has not failed within the last TTL (a store that was away leaves others' records
   * expired or unmoved without them being dead). A slow event loop here does not matter.
   */
  private storeTrusted(): boolean {
    return this.deps.clock.now() - this.lastBeatFailed >= this.deps.instanceTtlMs + this.deps.heartbeatMs;
  }

  /**
   * Whether each instance renewed its liveness within its TTL. When the records cannot be trusted —
   * this instance's own is missing too (a restarted or failed-over Redis that lost them), or its own
   * heartbeat failed recently — nobody is called dead on that evidence: all count as alive.
   */
  async alive(instanceIds: string[]): Promise<boolean[]> {
    const records = await this.deps.instances.read([...instanceIds, this.deps.instanceId]);
    const self = records.pop();
    const trusted = self !== undefined && this.storeTrusted();
    return records.map((r) => r !== undefined || !trusted);
  }

  /**
   * Whether an instance that nobody is subscribed for (PUBLISH reached no one) is really gone: its
   * subscriber connection may just be reconnecting. Watches its heartbeat for a little longer than
   * one interval: a count that moves shows a live process; an expired or unmoved one, a dead one —
   * provided the records can be trusted (this instance's own is there and its heartbeat has not
   * failed lately); otherwise no verdict (false): the caller asks again later.
   */
  async confirmGone(instanceId: string): Promise<boolean> {
    const until = this.gone.get(instanceId);
    if (until !== undefined && until > this.deps.clock.now()) return true; // found gone a moment ago
    const me = this.deps.instanceId;
    const [before, selfBefore] = await this.deps.instances.read([instanceId, me]);
    let gone: boolean;
    if (!before) {
      gone = selfBefore !== undefined && this.storeTrusted();
    } else {
      await new Promise<void>((resolve) => this.deps.clock.setTimeout(resolve, this.deps.heartbeatMs * 1.5));
      const [after, selfAfter] = await this.deps.instances.read([instanceId, me]);
      gone = (!after || after.beats === before.beats) && selfAfter !== undefined && this.storeTrusted();
    }
    if (gone) {
      // Every request of every session it owned asks next: one verdict serves them all for a while.
      this.gone.set(instanceId, this.deps.clock.now() + this.deps.instanceTtlMs);
      if (this.gone.size > 1000) this.gone.delete(this.gone.keys().next().value!);
    } else {
      this.gone.delete(instanceId);
    }
    return gone;
  }

  /** Live instances other than this one that take sessions (not draining). */
  async peers(): Promise<InstanceRecord[]> {
    const all = await this.deps.instances.list();
    return all.filter((r) => r.instanceId !== this.deps.instanceId && !r.draining);
  }

  /** Stops the heartbeat; the registry entry expires by itself (as when the process dies). */
  stop(): void {
    this.closed = true;
    this.deps.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Stops the heartbeat and removes this instance from the registry at once. Idempotent. */
  async close(): Promise<void> {
    if (this.removed) return;
    this.removed = true;
    this.stop();
    await this.deps.instances.remove(this.deps.instanceId).catch((err: unknown) => {
      this.deps.onError(new Error('could not remove this instance from the registry', { cause: err }));
    });
  }

  private lose(sessionId: string, reason: LossReason): void {
    this.owned.delete(sessionId);
    this.deps.onLost(sessionId, reason);
  }

  /**
   * One heartbeat. The next is scheduled when this one settled (never two at once, and a pause
   * shows as a late beat). A beat that finds the previous success too old revalidates first.
   */
  private async beat(schedule = true): Promise<void> {
    if (this.closed) return;
    const sentAt = this.deps.clock.now();
    const record: InstanceRecord = {
      instanceId: this.deps.instanceId,
      startedAt: this.startedAt,
      owned: this.owned.size,
      draining: this.deps.draining(),
      beats: ++this.beats,
    };
    const wasStale = this.isStale() && Number.isFinite(this.lastBeatOk);
    try {
      await this.deps.instances.beat(record, this.deps.instanceTtlMs);
      this.lastBeatOk = Math.max(this.lastBeatOk, sentAt);
    } catch (err) {
      this.lastBeatFailed = this.deps.clock.now();
      this.deps.onError(new Error('instance heartbeat failed', { cause: err }));
      if (!schedule) throw storeUnavailable(err);
    } finally {
      if (schedule && !this.closed) {
        this.deps.clock.clearTimeout(this.timer);
        this.timer = this.deps.clock.setTimeout(() => void this.beat(), this.deps.heartbeatMs);
        this.deps.onTick();
      }
    }
    // Paused past the point where others may have taken sessions over: find out which.
    if (schedule && wasStale && this.owned.size > 0) {
      this.revalidate().catch((err: unknown) => this.deps.onError(err as Error));
    }
  }
}
