import { randomBytes } from 'node:crypto';
import type { Clock, TimerHandle } from '../clock.js';
import { storeUnavailable } from '../errors.js';
import type { FleetBus, BusMessageOf } from '../bus/protocol.js';

/** A `handle` message without the fields the forwarder fills in. */
export type ForwardRequest = Omit<BusMessageOf<'handle'>, 't' | 'callId' | 'from'>;

/** How a forwarded call ended. */
export type ForwardOutcome =
  /** The target has the messages (its copy runs them; answers come as `deliver`). */
  | { kind: 'accepted' }
  /** The target does not own the session (any more): look again. */
  | { kind: 'not-owner' }
  /** The target is handing the session off: wait for its `released`, then look again. */
  | { kind: 'draining' }
  /** The target refused the messages (bad input, a limit): answer the client with this error. */
  | { kind: 'error'; code: string; message: string }
  /** The messages resend requests the target runs on `streamId`: resume that stream instead. */
  | { kind: 'rejoin'; streamId: string }
  /** Nobody is subscribed to the target's channel: its process is gone. */
  | { kind: 'dead' }
  /** The target did not acknowledge, and its heartbeat expired: it froze (or died partitioned). */
  | { kind: 'unresponsive' };

/** What the {@link Forwarder} needs. */
export interface ForwarderDeps {
  instanceId: string;
  bus: FleetBus;
  clock: Clock;
  /** Whether each instance renewed its liveness within its TTL. */
  alive(instanceIds: string[]): Promise<boolean[]>;
  /** Whether an instance PUBLISH reached nobody of is really gone (not just reconnecting its subscriber). */
  confirmGone(instanceId: string): Promise<boolean>;
  /** Wait this long for an acknowledgement before checking the target's heartbeat. */
  ackTimeoutMs: number;
  /** Longest wait for a target whose heartbeat stays fresh but that never acknowledges; then 503. */
  maxWaitMs: number;
  onError(err: Error): void;
}

interface PendingCall {
  settle(outcome: ForwardOutcome | 'timeout'): void;
}

interface Watched {
  sid: string;
  streamId: string;
  onLost: () => void;
}

interface ProducerWatch {
  streams: Map<string, Watched>;
  /** A ping awaiting its pong: nonce and when it was sent. */
  ping?: { nonce: string; sentAt: number };
}

/**
 * Hands a session's messages to the instance that owns it and finds out when that instance is gone.
 *
 * `forward` publishes a `handle` and waits for the `handled` acknowledgement. PUBLISH reaching nobody
 * means the target's process is gone (a killed process's subscriber connection closes at once): the
 * caller may claim the session at once. No acknowledgement within `ackTimeoutMs` is checked against
 * the target's heartbeat: expired means frozen (claim), fresh means slow or a lost message (resend,
 * same call id, deduplicated by the target), up to `maxWaitMs`.
 *
 * Streams whose producer runs elsewhere are watched: on each {@link tick} their producers get a
 * `ping` naming them; no subscriber, no `pong` while the producer's heartbeat expired, or a `pong`
 * saying a stream is gone, fires the stream's `onLost` (its requests are answered with an error).
 */
export class Forwarder {
  private readonly calls = new Map<string, PendingCall>();
  private readonly producers = new Map<string, ProducerWatch>();
  private readonly prefix = randomBytes(6).toString('base64url');
  private seq = 0;

  constructor(private readonly deps: ForwarderDeps) {}

  /** Number of calls waiting for an acknowledgement. */
  get waiting(): number {
    return this.calls.size;
  }

  /** Sends `request` to `target` and resolves once it acknowledged, refused, or was found gone. */
  async forward(target: string, request: ForwardRequest): Promise<ForwardOutcome> {
    // The acknowledgement comes back on our own channel: without it subscribed, nothing can be known.
    if (!(await this.deps.bus.whenUp(this.deps.ackTimeoutMs))) {
      throw storeUnavailable(new Error('message bus not subscribed'));
    }
    const callId = `${this.prefix}-${++this.seq}`;
    const message: BusMessageOf<'handle'> = { t: 'handle', callId, from: this.deps.instanceId, ...request };
    const deadline = this.deps.clock.now() + this.deps.maxWaitMs;
    try {
      for (;;) {
        // Registered before sending: the acknowledgement may arrive before PUBLISH's own reply.
        const answer = this.awaitAnswer(callId);
        let receivers: number;
        try {
          receivers = await this.deps.bus.send(target, message);
        } catch (err) {
          this.calls.get(callId)?.settle('timeout');
          throw storeUnavailable(err);
        }
        if (receivers === 0) {
          this.calls.get(callId)?.settle('timeout');
          if (await this.deps.confirmGone(target)) return { kind: 'dead' };
          // Alive, its subscriber reconnecting: send again (the wait above was the backoff).
          if (this.deps.clock.now() >= deadline) {
            throw storeUnavailable(new Error(`instance ${target} is alive but not subscribed`));
          }
          continue;
        }
        const outcome = await answer;
        if (outcome !== 'timeout') return outcome;
        const [alive] = await this.deps.alive([target]);
        if (!alive) return { kind: 'unresponsive' };
        if (this.deps.clock.now() >= deadline) {
          throw storeUnavailable(new Error(`instance ${target} is alive but did not take the messages`));
        }
      }
    } finally {
      this.calls.delete(callId);
    }
  }

  /** Bus handler of `handled`. */
  onHandled(msg: BusMessageOf<'handled'>): void {
    const call = this.calls.get(msg.callId);
    if (!call) return; // answered already (a resent call), or given up on
    switch (msg.outcome) {
      case 'accepted':
      case 'not-owner':
      case 'draining':
        call.settle({ kind: msg.outcome });
        return;
      case 'error':
        call.settle({
          kind: 'error',
          code: msg.code ?? 'INTERNAL',
          message: msg.message ?? 'Internal error',
        });
        return;
      case 'rejoin':
        if (msg.streamId) call.settle({ kind: 'rejoin', streamId: msg.streamId });
        else call.settle({ kind: 'error', code: 'INTERNAL', message: 'Internal error' });
        return;
      default: {
        const unknown: never = msg.outcome;
        throw new Error(`unknown outcome ${String(unknown)}`);
      }
    }
  }

  /**
   * Watches a stream produced by `producer` for this instance's connection; `onLost` runs once if the
   * producer dies or no longer has the stream. Returns the unwatch function.
   */
  watch(producer: string, sid: string, streamId: string, onLost: () => void): () => void {
    let w = this.producers.get(producer);
    if (!w) this.producers.set(producer, (w = { streams: new Map() }));
    const key = `${sid} ${streamId}`;
    const entry: Watched = { sid, streamId, onLost };
    w.streams.set(key, entry);
    return () => {
      const current = this.producers.get(producer);
      if (current?.streams.get(key) !== entry) return;
      current.streams.delete(key);
      if (current.streams.size === 0) this.producers.delete(producer);
    };
  }

  /** Bus handler of `pong`: streams the producer no longer runs are lost. */
  onPong(msg: BusMessageOf<'pong'>): void {
    for (const [producer, w] of this.producers) {
      if (w.ping?.nonce !== msg.nonce) continue;
      w.ping = undefined;
      for (const g of msg.gone) this.lost(producer, `${g.sid} ${g.streamId}`);
    }
  }

  /** Checks the producers of watched streams (driven by the instance heartbeat). */
  async tick(): Promise<void> {
    if (this.producers.size === 0) return;
    const now = this.deps.clock.now();
    const overdue: string[] = [];
    for (const [producer, w] of this.producers) {
      if (w.ping && now - w.ping.sentAt >= this.deps.ackTimeoutMs) overdue.push(producer);
    }
    if (overdue.length > 0) {
      const alive = await this.deps.alive(overdue).catch(() => overdue.map(() => true));
      overdue.forEach((producer, i) => {
        if (!alive[i]) this.lostAll(producer);
        else {
          const w = this.producers.get(producer);
          if (w) w.ping = undefined; // alive, the ping or its pong was lost: ask again
        }
      });
    }
    await Promise.all(
      [...this.producers].map(async ([producer, w]) => {
        if (w.ping) return; // still waiting for the last one
        const nonce = `${this.prefix}-p${++this.seq}`;
        w.ping = { nonce, sentAt: now };
        const streams = [...w.streams.values()].map(({ sid, streamId }) => ({ sid, streamId }));
        const n = await this.deps.bus
          .send(producer, { t: 'ping', from: this.deps.instanceId, nonce, streams })
          .catch(() => -1); // the store is away: nothing is known, try again next time
        if (n < 0 && w.ping?.nonce === nonce) w.ping = undefined;
        if (n !== 0) return;
        // Nobody subscribed: gone, or reconnecting its subscriber (then the pong is just late).
        if (await this.deps.confirmGone(producer).catch(() => false)) this.lostAll(producer);
        else if (w.ping?.nonce === nonce) w.ping = undefined;
      }),
    );
  }

  /** Gives up every call still waiting (shutdown): their callers get a 503. */
  close(): void {
    for (const call of this.calls.values()) call.settle('timeout');
    this.producers.clear();
  }

  private awaitAnswer(callId: string): Promise<ForwardOutcome | 'timeout'> {
    return new Promise((resolve) => {
      let timer: TimerHandle | undefined = undefined;
      const settle = (o: ForwardOutcome | 'timeout') => {
        this.deps.clock.clearTimeout(timer);
        if (this.calls.get(callId) === entry) this.calls.delete(callId);
        resolve(o);
      };
      const entry: PendingCall = { settle };
      this.calls.set(callId, entry);
      timer = this.deps.clock.setTimeout(() => settle('timeout'), this.deps.ackTimeoutMs);
    });
  }

  private lostAll(producer: string): void {
    const w = this.producers.get(producer);
    if (!w) return;
    this.producers.delete(producer);
    for (const s of w.streams.values()) this.fire(s);
  }

  private lost(producer: string, key: string): void {
    const w = this.producers.get(producer);
    const s = w?.streams.get(key);
    if (!w || !s) return;
    w.streams.delete(key);
    if (w.streams.size === 0) this.producers.delete(producer);
    this.fire(s);
  }

  private fire(s: Watched): void {
    try {
      s.onLost();
    } catch (err) {
      this.deps.onError(err instanceof Error ? err : new Error(String(err)));
    }
  }
}
