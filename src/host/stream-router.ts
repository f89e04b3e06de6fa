import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { BusMessage, MessageBus } from '../bus/message-bus.js';
import { FleetError, asError } from '../errors.js';
import type { EventLog } from '../events/event-log.js';
import type { Logger } from '../logger.js';
import type { StreamRegistry } from '../store/stream-registry.js';
import { encodeEventId, producerOf, STANDALONE_STREAM_ID } from '../transport/event-id.js';
import { isRequest } from '../transport/jsonrpc.js';
import { END_MARKER, type StreamSink } from '../transport/outbound-stream.js';
import type { SseSink } from '../http/sse-sink.js';
import type { LiveSession } from './live-session.js';
import type { SessionHost } from './session-host.js';

/**
 * The live connection of a stream held by this instance, fed from the stream's event log. Used for
 * the standalone GET stream (messages come from any instance) and for resumed POST streams (the
 * producer may be another instance). Messages are written strictly in sequence: a message that
 * arrives out of order triggers a read of the log from the last written one.
 */
export class HeldStream implements StreamSink {
  private pulling: Promise<void> | undefined;
  private again = false;
  private ended = false;
  private endWhenDrained = false;

  constructor(
    readonly sessionId: string,
    readonly streamId: string,
    readonly sink: SseSink,
    private lastSeq: number,
    private readonly log: EventLog | undefined,
    private readonly onError: (err: Error) => void,
    private readonly onEnd: (held: HeldStream) => void,
  ) {}

  get closed(): boolean {
    return this.ended || this.sink.closed;
  }

  /** A message from the local producer: written at once when it is the next in sequence. */
  write(message: JSONRPCMessage, eventId: string | undefined, seq: number): void {
    if (this.closed) return;
    if (!this.log || seq === 0) {
      this.sink.write(message, eventId);
      return;
    }
    if (seq === this.lastSeq + 1 && !this.pulling) {
      this.lastSeq = seq;
      this.sink.write(message, eventId);
      return;
    }
    if (seq > this.lastSeq) this.pull();
  }

  /** The producer finished the stream: end once everything up to the end marker is written. */
  end(): void {
    if (!this.log) {
      this.finish();
      return;
    }
    this.pull();
  }

  /** Nothing more will be produced: end the connection once the log is replayed. */
  endAfterReplay(): void {
    this.endWhenDrained = true;
    this.pull();
  }

  /** Reads and writes everything after the last written event (coalescing concurrent wake-ups). */
  pull(): void {
    if (!this.log || this.closed) return;
    if (this.pulling) {
      this.again = true;
      return;
    }
    this.pulling = this.readLoop()
      .catch((err: unknown) => {
        this.onError(new Error(`stream ${this.streamId} replay failed`, { cause: err }));
        this.sink.disconnect(1000); // the client resumes from its last event id
        this.finish();
      })
      .finally(() => {
        this.pulling = undefined;
      });
  }

  private async readLoop(): Promise<void> {
    const log = this.log!;
    do {
      this.again = false;
      let events;
      try {
        events = await log.readAfter(this.sessionId, this.streamId, this.lastSeq);
      } catch (err) {
        this.onError(new Error(`event log read failed on stream ${this.streamId}`, { cause: err }));
        // The client resumes from its last event id once the store is back.
        this.sink.disconnect(1000);
        this.finish();
        return;
      }
      for (const ev of events) {
        if (this.closed) return;
        this.lastSeq = ev.seq;
        if (ev.data === END_MARKER) {
          this.sink.end();
          this.finish();
          return;
        }
        this.sink.write(JSON.parse(ev.data) as JSONRPCMessage, encodeEventId(this.streamId, ev.seq));
      }
    } while (this.again && !this.closed);
    if (this.endWhenDrained && !this.closed) {
      this.sink.end();
      this.finish();
    }
  }

  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    this.onEnd(this);
  }
}

/** Producer-side sink of a stream held by another instance: the log has the data, the holder is woken. */
class RemoteSink implements StreamSink {
  private scheduled = false;
  readonly closed = false;

  constructor(
    private readonly bus: MessageBus,
    private readonly holder: string,
    private readonly sessionId: string,
    private readonly streamId: string,
  ) {}

  write(): void {
    // Coalesce a burst of messages into one wake-up per tick.
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.wake();
    });
  }

  end(): void {
    void this.wake();
  }

  async wake(): Promise<void> {
    // A lost wake-up (holder's subscriber reconnecting, holder gone) is not final: the next message
    // wakes again, the holder's heartbeat re-reads the log, and a resuming client takes over anew.
    await this.bus
      .send(this.holder, { t: 'wake', sid: this.sessionId, streamId: this.streamId })
      .catch(() => 0);
  }
}

/** Dependencies of the {@link StreamRouter}. */
export interface StreamRouterDeps {
  instanceId: string;
  host: SessionHost;
  bus: MessageBus;
  registry: StreamRegistry;
  log: EventLog | undefined;
  logger: Logger;
  heartbeatMs: number;
  /** Refreshes a session's idle TTL; false when it is gone (an open stream keeps its session alive). */
  touchSession(sessionId: string): Promise<boolean>;
  onError(err: Error, sessionId?: string): void;
}

/**
 * Finds the instance that holds a stream's live connection and gets messages to it: the standalone
 * GET stream (any instance may produce for it) and resumed POST streams (`GET` + `Last-Event-ID`).
 */
export class StreamRouter {
  private readonly held = new Map<string, HeldStream>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly deps: StreamRouterDeps) {
    this.timer = setInterval(() => void this.heartbeat(), deps.heartbeatMs);
    this.timer.unref();
  }

  /** Number of streams whose connection this instance holds. */
  get heldCount(): number {
    return this.held.size;
  }

  /**
   * Sends a message that belongs to no client request to the session's GET stream. Notifications are
   * logged even while no connection is open (a resuming client gets them); a server→client request
   * with no GET stream anywhere fails at once instead of hanging until its timeout.
   */
  async sendStandalone(session: LiveSession, message: JSONRPCMessage): Promise<void> {
    const sid = session.id;
    const key = keyOf(sid, STANDALONE_STREAM_ID);
    const local = this.held.get(key);
    const data = JSON.stringify(message);
    const findHolder = async () =>
      local ? this.deps.instanceId : (await this.deps.registry.get(sid, STANDALONE_STREAM_ID))?.instanceId;
    const append = async () =>
      this.deps.log ? ((await this.deps.log.append(sid, STANDALONE_STREAM_ID, [data]))[0] ?? 0) : 0;
    let holder: string | undefined;
    let seq = 0;
    if (isRequest(message)) {
      // A request is logged only when a GET stream can carry it; with none it fails at once.
      holder = await findHolder();
      if (!holder) {
        throw new FleetError(
          'CONFLICT',
          `no GET stream open for session ${sid}: cannot send ${message.method}`,
        );
      }
      seq = await append();
    } else {
      // A notification is logged either way (a reconnecting client gets it): look up and log at once.
      [holder, seq] = await Promise.all([findHolder(), append()]);
    }
    if (!holder) return;
    if (holder === this.deps.instanceId) {
      const h = this.held.get(key);
      h?.write(message, seq ? encodeEventId(STANDALONE_STREAM_ID, seq) : undefined, seq);
      return;
    }
    const wake: BusMessage = this.deps.log
      ? { t: 'wake', sid, streamId: STANDALONE_STREAM_ID }
      : { t: 'deliver', sid, streamId: STANDALONE_STREAM_ID, data };
    const n = await this.deps.bus.send(holder, wake);
    if (n === 0 && isRequest(message)) {
      throw new FleetError('CONFLICT', `GET stream holder of session ${sid} is gone`);
    }
  }

  /**
   * Opens the standalone GET stream on `sink`. A second GET while one is open answers 409 (unless it
   * resumes with Last-Event-ID, see {@link resume}).
   */
  async openStandalone(sessionId: string, sink: SseSink, priming: boolean): Promise<void> {
    const key = keyOf(sessionId, STANDALONE_STREAM_ID);
    const existing = await this.deps.registry.get(sessionId, STANDALONE_STREAM_ID);
    // A record whose holder died lingers until its heartbeat TTL: ask the holder before refusing.
    const holderAlive =
      existing !== undefined &&
      existing.instanceId !== this.deps.instanceId &&
      (await this.deps.bus.send(existing.instanceId, { t: 'noop' }).catch(() => 1)) > 0;
    if (this.held.has(key) || holderAlive) {
      throw new FleetError('CONFLICT', 'Conflict: Only one SSE stream is allowed per session');
    }
    const from = this.deps.log ? await this.deps.log.lastSeq(sessionId, STANDALONE_STREAM_ID) : 0;
    const held = await this.hold(sessionId, STANDALONE_STREAM_ID, sink, from);
    sink.open(priming && this.deps.log ? encodeEventId(STANDALONE_STREAM_ID, from) : undefined);
    // Anything logged between reading the last seq and holding the stream is written now.
    held.pull();
  }

  /** Closes the standalone stream's connection (wherever it is held) so the client reconnects. */
  async disconnectStandalone(sessionId: string, retryMs: number): Promise<void> {
    const h = this.held.get(keyOf(sessionId, STANDALONE_STREAM_ID));
    if (h) {
      h.sink.disconnect(retryMs);
      return;
    }
    const rec = await this.deps.registry.get(sessionId, STANDALONE_STREAM_ID);
    if (rec) {
      await this.deps.bus.send(rec.instanceId, {
        t: 'poll',
        sid: sessionId,
        streamId: STANDALONE_STREAM_ID,
        retryMs,
      });
    }
  }

  /** Takes over a stream after `Last-Event-ID`: replays what the client missed, then the live tail. */
  async resume(sessionId: string, streamId: string, afterSeq: number, sink: SseSink): Promise<void> {
    if (!this.deps.log) throw new FleetError('EVENT_ID_MALFORMED', 'Bad Request: streams are not resumable');
    if (streamId !== STANDALONE_STREAM_ID) {
      const producer = producerOf(streamId);
      if (producer === undefined) throw new FleetError('SESSION_NOT_FOUND', 'Unknown stream');
      const last = await this.deps.log.lastSeq(sessionId, streamId);
      if (afterSeq > last) throw new FleetError('SESSION_NOT_FOUND', 'Unknown stream');
      // With nothing logged yet (last 0) the stream may still be running: only its producer knows.
      const held = await this.hold(sessionId, streamId, sink, afterSeq);
      sink.open();
      if (producer === this.deps.instanceId) {
        if (!this.takeoverLocal(sessionId, streamId, held)) held.endAfterReplay();
      } else {
        const n = await this.deps.bus.send(producer, {
          t: 'takeover',
          sid: sessionId,
          streamId,
          holder: this.deps.instanceId,
        });
        // The producer is gone: replay what was logged, then let the client go.
        if (n === 0) held.endAfterReplay();
      }
      held.pull();
      return;
    }
    // A cursor beyond what the log holds is not this stream's (or its log expired): 404.
    if (afterSeq > (await this.deps.log.lastSeq(sessionId, streamId))) {
      throw new FleetError('SESSION_NOT_FOUND', 'Unknown stream');
    }
    const held = await this.hold(sessionId, streamId, sink, afterSeq);
    sink.open();
    held.pull();
  }

  /** Handles stream messages from the bus. */
  onBus(msg: BusMessage): void {
    const sid = String(msg.sid);
    const streamId = String(msg.streamId);
    const key = keyOf(sid, streamId);
    switch (msg.t) {
      case 'wake':
        this.held.get(key)?.pull();
        return;
      case 'deliver': {
        const h = this.held.get(key);
        if (h && typeof msg.data === 'string') h.write(JSON.parse(msg.data) as JSONRPCMessage, undefined, 0);
        return;
      }
      case 'takeover': {
        // A client resumed one of our POST streams on another instance: write there from now on.
        const stream = this.deps.host.findStream(sid, streamId);
        if (!stream || stream.isEnded) {
          // Finished or unknown here: the holder replays what the log has and ends the connection.
          void this.deps.bus
            .send(String(msg.holder), { t: 'stream-gone', sid, streamId })
            .catch((e: unknown) => this.deps.onError(asError(e), sid));
          return;
        }
        const old = stream.currentSink;
        const remote = new RemoteSink(this.deps.bus, String(msg.holder), sid, streamId);
        stream.attach(remote);
        closeSink(old);
        void remote.wake();
        return;
      }
      case 'stream-gone':
        this.held.get(key)?.endAfterReplay();
        return;
      case 'poll': {
        const h = this.held.get(key);
        if (h) h.sink.disconnect(typeof msg.retryMs === 'number' ? msg.retryMs : undefined);
        return;
      }
      case 'release': {
        // Another instance took the stream over: stop writing to our connection.
        if (msg.holder === this.deps.instanceId) return;
        const h = this.held.get(key);
        if (h) {
          this.held.delete(key);
          h.sink.disconnect();
        }
        return;
      }
    }
  }

  /** Drops held streams of a deleted session. */
  dropSession(sessionId: string): void {
    for (const h of this.held.values()) {
      if (h.sessionId === sessionId) h.sink.end(); // its close handler releases the record
    }
  }

  /** Closes every held connection with a retry hint so clients resume on another instance. */
  async drain(retryMs: number): Promise<void> {
    clearInterval(this.timer);
    const all = [...this.held.values()];
    this.held.clear();
    await Promise.allSettled(
      all.map(async (h) => {
        h.sink.disconnect(retryMs);
        await this.deps.registry.release(h.sessionId, h.streamId, this.deps.instanceId);
      }),
    );
  }

  private async hold(
    sessionId: string,
    streamId: string,
    sink: SseSink,
    fromSeq: number,
  ): Promise<HeldStream> {
    const key = keyOf(sessionId, streamId);
    const now = Date.now();
    const previous = await this.deps.registry.claim({
      sessionId,
      streamId,
      transport: 'streamable-http',
      instanceId: this.deps.instanceId,
      createdAt: now,
      lastSeenAt: now,
      active: true,
    });
    const old = this.held.get(key);
    if (old) old.sink.disconnect();
    if (previous && previous !== this.deps.instanceId) {
      void this.deps.bus
        .send(previous, { t: 'release', sid: sessionId, streamId, holder: this.deps.instanceId })
        .catch((e: unknown) => this.deps.onError(asError(e), sessionId));
    }
    const held: HeldStream = new HeldStream(
      sessionId,
      streamId,
      sink,
      fromSeq,
      this.deps.log,
      (err) => this.deps.onError(err, sessionId),
      (h) => this.unhold(key, h),
    );
    this.held.set(key, held);
    sink.onceClosed(() => this.unhold(key, held));
    return held;
  }

  private unhold(key: string, held: HeldStream): void {
    if (this.held.get(key) !== held) return;
    this.held.delete(key);
    void this.deps.registry
      .release(held.sessionId, held.streamId, this.deps.instanceId)
      .catch((e: unknown) => this.deps.onError(asError(e), held.sessionId));
  }

  /** Points a local producer at `held`; false when this instance has no such running stream. */
  private takeoverLocal(sessionId: string, streamId: string, held: HeldStream): boolean {
    const stream = this.deps.host.findStream(sessionId, streamId);
    if (!stream || stream.isEnded) return false;
    const old = stream.currentSink;
    stream.attach(held);
    if (old !== held) closeSink(old);
    return true;
  }

  private async heartbeat(): Promise<void> {
    if (this.held.size === 0) return;
    const streams = [...this.held.values()].map((h) => ({ sessionId: h.sessionId, streamId: h.streamId }));
    try {
      await this.deps.registry.heartbeat(streams, this.deps.instanceId);
    } catch (err) {
      this.deps.onError(new Error('stream heartbeat failed', { cause: err }));
      return;
    }
    // Catch up on anything whose wake-up was lost, and keep quiet streams' logs from expiring.
    for (const h of this.held.values()) h.pull();
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
}

function keyOf(sessionId: string, streamId: string): string {
  return `${sessionId} ${streamId}`;
}

function closeSink(sink: StreamSink | undefined): void {
  if (!sink || sink.closed) return;
  const s = sink as Partial<SseSink>;
  if (typeof s.disconnect === 'function') s.disconnect();
}
