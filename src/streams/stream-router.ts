import type { RequestId } from '@modelcontextprotocol/sdk/types.js';
import type { FleetBus, BusMessageOf } from '../bus/protocol.js';
import { FleetError, asError } from '../errors.js';
import type { EventLog } from '../events/event-log.js';
import type { StreamRegistry } from '../store/stream-registry.js';
import { encodeEventId, STANDALONE_STREAM_ID } from '../transport/event-id.js';
import { END_MARKER } from '../transport/outbound-stream.js';
import type { ClientConnection } from '../transport/connection.js';
import { HeldStream } from './held-stream.js';

/** A stream now held here, with the session's owner as its registration found it. */
export interface Holding {
  held: HeldStream;
  /** The session's owner, read with the registration (`StreamClaim.owner`; '' for none). */
  owner: string;
}

/** What the {@link StreamRouter} needs. */
export interface StreamRouterDeps {
  instanceId: string;
  bus: FleetBus;
  registry: StreamRegistry;
  log: EventLog | undefined;
  /** Refreshes a session's idle TTL; false when it is gone (an open stream keeps its session alive). */
  touchSession(sessionId: string): Promise<boolean>;
  /**
   * Watches the producer of a stream held here; `onLost` runs if it dies or stops running the
   * stream. Returns the unwatch function.
   */
  watchProducer(producer: string, sessionId: string, streamId: string, onLost: () => void): () => void;
  /** A standalone stream held here closed (the session's owner stops delivering to it). */
  onStandaloneClosed(sessionId: string): void;
  /**
   * The producer of a forwarded or resumed stream held here is gone or no longer runs it: nothing
   * more will be written for it (the caller answers its unanswered requests and ends it).
   */
  onProducerGone(held: HeldStream): void;
  /** A delivery acknowledged a forwarded call (see `deliver.ack`). */
  onAcknowledged(callId: string): void;
  /** Whether an instance's process is there (its bus channel has a subscriber). */
  isReachable(instanceId: string): Promise<boolean>;
  onError(err: Error, sessionId?: string): void;
}

/**
 * The error answering a request whose producer was lost: its instance died or stopped answering.
 * Whether the request completed there is unknown (a frozen instance may finish it when it wakes up,
 * but its answer no longer reaches the client).
 */
export const LOST_REQUEST_ERROR = {
  code: -32603,
  message: 'Request lost: the instance running it stopped answering; whether it completed is unknown',
};

/**
 * The client connections this instance holds for streams whose events may be produced elsewhere:
 * standalone GET streams, POST streams resumed with `Last-Event-ID`, and POST streams answered by
 * the session's owner on another instance. Held GET and resumed streams have a transport session
 * record in the registry (renewed by heartbeat); events arrive as `deliver` from the producer or
 * are read from the event log.
 */
export class StreamRouter {
  private readonly held = new Map<string, HeldStream>();
  private readonly unwatch = new Map<HeldStream, () => void>();
  private closed = false;

  constructor(private readonly deps: StreamRouterDeps) {}

  /** Number of streams whose connection this instance holds. */
  get heldCount(): number {
    return this.held.size;
  }

  /** The held stream of a session, if its connection is here. */
  get(sessionId: string, streamId: string): HeldStream | undefined {
    return this.held.get(keyOf(sessionId, streamId));
  }

  /**
   * Holds the connection of a POST whose requests run on the session's owner elsewhere: events
   * arrive as `deliver`. Held before the messages are sent (the first events may come right behind
   * the owner's acknowledgement); {@link watchForwarded} once the owner took them.
   */
  holdForwarded(
    sessionId: string,
    streamId: string,
    connection: ClientConnection,
    requestIds: RequestId[],
    primingEventId: string | undefined,
  ): HeldStream {
    const held = this.track(sessionId, streamId, connection, 0, false);
    held.expect(requestIds);
    held.primingEventId = primingEventId;
    return held;
  }

  /** Watches the producer of a forwarded stream: if it is lost, its requests get an error. */
  watchForwarded(held: HeldStream, producer: string): void {
    if (held.closed) return;
    this.watch(held, producer);
  }

  /** Stops holding a forwarded stream whose messages the owner did not take (no answer will come). */
  unholdForwarded(held: HeldStream): void {
    this.forget(keyOf(held.sessionId, held.streamId), held, false, false);
  }

  /**
   * Opens the standalone GET stream on `connection`. A second GET while one is open answers 409
   * (unless it resumes with Last-Event-ID, see {@link resume}). Returns the held stream and the
   * session's owner as of its registration (`StreamClaim.owner`); the caller tells that owner.
   */
  async openStandalone(sessionId: string, connection: ClientConnection, priming: boolean): Promise<Holding> {
    const existing = await this.deps.registry.get(sessionId, STANDALONE_STREAM_ID);
    // A record whose holder died lingers until its heartbeat TTL: ask the holder before refusing.
    const holderAlive =
      existing !== undefined &&
      existing.instanceId !== this.deps.instanceId &&
      (await this.deps.isReachable(existing.instanceId));
    if (this.held.has(keyOf(sessionId, STANDALONE_STREAM_ID)) || holderAlive) {
      throw new FleetError('CONFLICT', 'Conflict: Only one SSE stream is allowed per session');
    }
    const from = this.deps.log ? await this.deps.log.lastSeq(sessionId, STANDALONE_STREAM_ID) : 0;
    const holding = await this.hold(sessionId, STANDALONE_STREAM_ID, connection, from);
    connection.open(priming && this.deps.log ? encodeEventId(STANDALONE_STREAM_ID, from) : undefined);
    // Anything logged between reading the last seq and holding the stream is written now.
    holding.held.pull();
    return holding;
  }

  /**
   * Takes over a stream after `Last-Event-ID`: replays what the client missed, then the live tail.
   * `producer` is the instance producing a POST stream (undefined for the standalone stream), watched
   * from now on; the caller tells it (`takeover`). Resolves as {@link openStandalone} does, or to
   * undefined when the stream had ended and the client has all of it.
   */
  async resume(
    sessionId: string,
    streamId: string,
    afterSeq: number,
    connection: ClientConnection,
    producer: string | undefined,
  ): Promise<Holding | undefined> {
    if (!this.deps.log) throw new FleetError('EVENT_ID_MALFORMED', 'Bad Request: streams are not resumable');
    // A cursor beyond what the log holds is not this stream's (or its log expired): 404.
    const last = await this.deps.log.lastSeq(sessionId, streamId);
    if (afterSeq > last) throw new FleetError('SESSION_NOT_FOUND', 'Unknown stream');
    // A POST stream that ended, resumed after its last event or at its end: nothing will come. Say so
    // (204) rather than open a stream that ends at once: the SDK client reconnects after such a
    // stream (without Last-Event-ID when it carried no event) and loops, or 409s as a second GET.
    if (producer !== undefined && last > 0 && afterSeq >= last - 1 && connection.finished) {
      const [final] = await this.deps.log.readAfter(sessionId, streamId, last - 1);
      if (final?.seq === last && final.data === END_MARKER) {
        connection.finished();
        return undefined;
      }
    }
    const holding = await this.hold(sessionId, streamId, connection, afterSeq);
    const { held } = holding;
    connection.open();
    if (producer !== undefined && producer !== this.deps.instanceId) {
      this.unwatch.set(
        held,
        this.deps.watchProducer(producer, sessionId, streamId, () => this.deps.onProducerGone(held)),
      );
    }
    held.pull();
    return holding;
  }

  /** Bus handler of `deliver`: events for a stream held here; a stream not held here is `unheld`. */
  onDeliver(msg: BusMessageOf<'deliver'>): void {
    if (msg.ack !== undefined) this.deps.onAcknowledged(msg.ack);
    const h = this.held.get(keyOf(msg.sid, msg.streamId));
    if (h) {
      h.deliver(msg.events, msg.end);
      return;
    }
    if (msg.from === this.deps.instanceId) return;
    void this.deps.bus
      .send(msg.from, { t: 'unheld', sid: msg.sid, streamId: msg.streamId, holder: this.deps.instanceId })
      .catch((e: unknown) => this.deps.onError(asError(e), msg.sid));
  }

  /** Bus handler of `wake`: read the log of a held stream. */
  onWake(msg: BusMessageOf<'wake'>): void {
    this.held.get(keyOf(msg.sid, msg.streamId))?.pull();
  }

  /** Bus handler of `stream-gone`: the producer will write nothing more for that stream. */
  onStreamGone(msg: BusMessageOf<'stream-gone'>): void {
    const h = this.held.get(keyOf(msg.sid, msg.streamId));
    if (h) this.deps.onProducerGone(h);
  }

  /** Bus handler of `poll`: close a held connection with a retry hint (the client reconnects). */
  onPoll(msg: BusMessageOf<'poll'>): void {
    this.held.get(keyOf(msg.sid, msg.streamId))?.disconnect(msg.retryMs);
  }

  /** Bus handler of `release`: another connection took the stream over; let ours go. */
  onRelease(msg: BusMessageOf<'release'>): void {
    if (msg.holder === this.deps.instanceId) return;
    const key = keyOf(msg.sid, msg.streamId);
    const h = this.held.get(key);
    if (!h) return;
    this.forget(key, h, false, false);
    h.disconnect();
  }

  /** Re-reads the log of every held stream (deliveries may have been lost, e.g. while resubscribing). */
  catchUp(): void {
    for (const h of this.held.values()) h.pull();
  }

  /** Ends held streams of a deleted session. */
  dropSession(sessionId: string): void {
    for (const h of [...this.held.values()]) {
      if (h.sessionId === sessionId) h.connection.end(); // its close handler releases the record
    }
  }

  /**
   * Shutdown: closes held GET and resumed connections with a retry hint (clients resume on another
   * instance) at once, and waits up to `graceMs` for forwarded POST streams to get their answers
   * (their requests run elsewhere); those still open then are closed with the retry hint too.
   */
  async drain(retryMs: number, graceMs: number): Promise<void> {
    this.closed = true;
    const now = [...this.held.values()];
    await Promise.allSettled(now.filter((h) => !this.isForwarded(h)).map((h) => this.letGo(h, retryMs)));
    const forwarded = [...this.held.values()];
    if (forwarded.length > 0) {
      await Promise.race([
        Promise.all(forwarded.map((h) => new Promise<void>((r) => h.connection.onceClosed(r)))),
        new Promise<void>((r) => setTimeout(r, graceMs).unref()),
      ]);
    }
    // A forwarded POST not acknowledged yet is left to its request (it answers or fails it itself).
    const rest = [...this.held.values()].filter((h) => !this.isForwarded(h) || h.connection.opened);
    await Promise.allSettled(rest.map((h) => this.letGo(h, retryMs)));
  }

  /**
   * Renews the transport session records of held streams, re-reads their logs (catching up on lost
   * deliveries), keeps their logs and sessions alive, and ends streams of sessions that are gone.
   */
  async heartbeat(): Promise<void> {
    const registered = [...this.held.values()].filter((h) => !this.isForwarded(h));
    if (registered.length === 0) return;
    const streams = registered.map((h) => ({ sessionId: h.sessionId, streamId: h.streamId }));
    try {
      await this.deps.registry.heartbeat(streams, this.deps.instanceId);
    } catch (err) {
      this.deps.onError(new Error('stream heartbeat failed', { cause: err }));
      return;
    }
    for (const h of registered) h.pull();
    if (this.deps.log) {
      await this.deps.log.touch(streams).catch((err: unknown) => {
        this.deps.onError(new Error('event log refresh failed', { cause: err }));
      });
    }
    // A client holding a stream is using its session: keep it alive, and end streams of sessions
    // that are gone (expired at their absolute lifetime, or deleted while the broadcast was missed).
    const sessions = new Set(streams.map((s) => s.sessionId));
    await Promise.all(
      [...sessions].map(async (sid) => {
        const alive = await this.deps.touchSession(sid).catch(() => true); // unreachable store: keep it
        if (!alive) this.dropSession(sid);
      }),
    );
  }

  /** Forwarded POST streams have no registry record (the producer knows their holder). */
  private readonly forwarded = new WeakSet<HeldStream>();

  private isForwarded(h: HeldStream): boolean {
    return this.forwarded.has(h);
  }

  private watch(held: HeldStream, producer: string): void {
    const stop = this.deps.watchProducer(producer, held.sessionId, held.streamId, () => {
      this.deps.onProducerGone(held);
    });
    this.unwatch.set(held, stop);
  }

  private async letGo(h: HeldStream, retryMs: number): Promise<void> {
    const key = keyOf(h.sessionId, h.streamId);
    const registered = !this.isForwarded(h);
    this.forget(key, h, false, registered);
    h.disconnect(retryMs);
    if (registered) await this.deps.registry.release(h.sessionId, h.streamId, this.deps.instanceId);
  }

  /** Claims the stream's registry record and holds its connection here. */
  private async hold(
    sessionId: string,
    streamId: string,
    connection: ClientConnection,
    fromSeq: number,
  ): Promise<Holding> {
    if (this.closed) throw new FleetError('SHUTTING_DOWN', 'Server is shutting down');
    const now = Date.now();
    const { previous, owner } = await this.deps.registry.claim({
      sessionId,
      streamId,
      transport: 'streamable-http',
      instanceId: this.deps.instanceId,
      createdAt: now,
      lastSeenAt: now,
      active: true,
    });
    const old = this.held.get(keyOf(sessionId, streamId));
    if (old) {
      this.forget(keyOf(sessionId, streamId), old, false, false);
      old.disconnect();
    }
    if (previous && previous !== this.deps.instanceId) {
      void this.deps.bus
        .send(previous, { t: 'release', sid: sessionId, streamId, holder: this.deps.instanceId })
        .catch((e: unknown) => this.deps.onError(asError(e), sessionId));
    }
    return { held: this.track(sessionId, streamId, connection, fromSeq, true), owner };
  }

  private track(
    sessionId: string,
    streamId: string,
    connection: ClientConnection,
    fromSeq: number,
    registered: boolean,
  ): HeldStream {
    const key = keyOf(sessionId, streamId);
    const held: HeldStream = new HeldStream(
      sessionId,
      streamId,
      connection,
      fromSeq,
      this.deps.log,
      (err) => this.deps.onError(err, sessionId),
      (h) => this.forget(key, h, registered),
    );
    if (!registered) this.forwarded.add(held);
    this.held.set(key, held);
    connection.onceClosed(() => this.forget(key, held, registered));
    return held;
  }

  /**
   * Stops tracking a held stream; releases its registry record if `release`, and tells the owner a
   * standalone stream is not held here any more if `tell` (not when another holder took it over:
   * that one announces itself).
   */
  private forget(key: string, held: HeldStream, release: boolean, tell = release): void {
    this.unwatch.get(held)?.();
    this.unwatch.delete(held);
    if (this.held.get(key) !== held) return;
    this.held.delete(key);
    if (tell && held.streamId === STANDALONE_STREAM_ID) this.deps.onStandaloneClosed(held.sessionId);
    if (!release) return;
    void this.deps.registry
      .release(held.sessionId, held.streamId, this.deps.instanceId)
      .catch((e: unknown) => this.deps.onError(asError(e), held.sessionId));
  }
}

function keyOf(sessionId: string, streamId: string): string {
  return `${sessionId} ${streamId}`;
}
