import type { Clock } from '../clock.js';
import type { RebalancePolicy } from '../options.js';
import type { InstanceRecord } from '../store/instance-registry.js';
import type { LiveSession } from './live-session.js';

/** What the {@link Rebalancer} needs. */
export interface RebalancerDeps {
  instanceId: string;
  policy: RebalancePolicy;
  clock: Clock;
  /** The live instances, with the number of sessions each owned at its last heartbeat. */
  instances(): Promise<InstanceRecord[]>;
  /** The copies this instance owns now. */
  copies(): LiveSession[];
  /** Hands a copy off (released once idle; the next request anywhere claims the session). */
  handoff(copy: LiveSession): void;
  /** Whether this instance is shutting down (it then hands off everything anyway). */
  draining(): boolean;
  onError(err: Error): void;
}

/**
 * Spreads sessions over the fleet after a scale-out (opt-in: a moved session loses its process
 * state). Every `intervalMs` each instance compares the sessions it owns with the fair share (the
 * sessions of the fleet over its live instances); above `share × (1 + slack)` it hands off idle
 * sessions — nothing in flight, no message either way for `idleMs` — at most `maxPerSecond`. A
 * handed-off session is claimed by the instance that serves its next request; an instance itself
 * above its share instead lets the least loaded peer below the share claim it (see {@link placeFor}).
 */
export class Rebalancer {
  private lastAt = Number.NEGATIVE_INFINITY;
  private view: { mean: number; limit: number; peers: InstanceRecord[] } | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly deps: RebalancerDeps) {}

  /** Compares shares and hands off what is above this instance's (driven by the heartbeat). */
  tick(): Promise<void> {
    if (this.running || this.deps.clock.now() - this.lastAt < this.deps.policy.intervalMs) {
      return this.running ?? Promise.resolve();
    }
    this.lastAt = this.deps.clock.now();
    this.running = this.run()
      .catch((err: unknown) => this.deps.onError(err instanceof Error ? err : new Error(String(err))))
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  /**
   * Where a session without an owner should be claimed when this instance would claim it: `undefined`
   * for here, or the least loaded live peer below the fair share when this instance is above it.
   */
  placeFor(exclude: ReadonlySet<string> = new Set()): string | undefined {
    const view = this.view;
    if (!view || this.deps.draining()) return undefined;
    if (this.deps.copies().length < view.limit) return undefined;
    const below = view.peers.filter((p) => p.owned < view.mean && !exclude.has(p.instanceId));
    if (below.length === 0) return undefined;
    below.sort((a, b) => a.owned - b.owned);
    // Counted as placed here and now, so a burst of claims does not all go to the same peer.
    below[0]!.owned++;
    return below[0]!.instanceId;
  }

  private async run(): Promise<void> {
    if (this.deps.draining()) return;
    const all = (await this.deps.instances()).filter((r) => !r.draining);
    const mine = this.deps.copies();
    const others = all.filter((r) => r.instanceId !== this.deps.instanceId);
    const total = others.reduce((n, r) => n + r.owned, 0) + mine.length;
    const live = others.length + 1;
    const mean = total / live;
    const limit = Math.max(1, Math.ceil(mean * (1 + this.deps.policy.slack)));
    this.view = { mean, limit, peers: others };
    const excess = mine.length - limit;
    if (excess <= 0 || others.length === 0) return;
    const budget = Math.max(
      1,
      Math.floor((this.deps.policy.maxPerSecond * this.deps.policy.intervalMs) / 1000),
    );
    const now = this.deps.clock.now();
    const idle = mine
      .filter((c) => !c.busy && !c.handoff && c.record.transport === 'streamable-http')
      .filter((c) => now - Math.max(c.lastActivity, c.lastOutput) >= this.deps.policy.idleMs)
      .sort((a, b) => Math.max(a.lastActivity, a.lastOutput) - Math.max(b.lastActivity, b.lastOutput));
    // Down to the mean (not just the limit), so one round does not leave it at the edge.
    const move = Math.min(budget, Math.ceil(mine.length - mean), idle.length);
    for (const copy of idle.slice(0, move)) this.deps.handoff(copy);
  }
}
