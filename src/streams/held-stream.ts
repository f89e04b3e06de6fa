import type { JSONRPCMessage, RequestId } from '@modelcontextprotocol/sdk/types.js';
import type { EventLog } from '../events/event-log.js';
import { encodeEventId } from '../transport/event-id.js';
import { isResponse } from '../transport/jsonrpc.js';
import { END_MARKER, type StreamSink } from '../transport/outbound-stream.js';
import type { ClientConnection } from '../transport/connection.js';

/** The answer to requests due on a connection that must close and that the client cannot resume. */
const UNRESUMABLE_ERROR = {
  code: -32603,
  message:
    'Session store unavailable: the answer could not be read; whether the request completed is unknown',
};

/**
 * The live connection of a stream held by this instance whose events may come from elsewhere: the
 * standalone GET stream, a resumed POST stream, or a POST stream answered by the session's owner on
 * another instance. Events are written strictly in sequence: one that arrives out of order (or a
 * wake-up) triggers a read of the event log from the last written one.
 */
export class HeldStream implements StreamSink {
  private pulling: Promise<void> | undefined;
  private again = false;
  private ended = false;
  private endWhenDrained = false;
  /** Whether the client got an event id on this connection (it can resume from it). */
  private idSent = false;
  /** Requests whose responses are due on this stream (for an error if their producer is lost). */
  private readonly pending = new Set<RequestId>();

  constructor(
    readonly sessionId: string,
    readonly streamId: string,
    readonly connection: ClientConnection,
    private lastSeq: number,
    private readonly log: EventLog | undefined,
    private readonly onError: (err: Error) => void,
    private readonly onEnd: (held: HeldStream) => void,
  ) {}

  get closed(): boolean {
    return this.ended || this.connection.closed;
  }

  /** The priming event id the connection opens with (a forwarded POST), whatever opens it first. */
  primingEventId: string | undefined;

  /** Requests whose answers this stream carries (a forwarded POST). */
  expect(ids: Iterable<RequestId>): void {
    for (const id of ids) this.pending.add(id);
  }

  /** Requests still due on this stream, as far as this instance knows. */
  get unanswered(): RequestId[] {
    return [...this.pending];
  }

  /** Sends the response head (with the priming event), unless an event already did. */
  open(): void {
    if (!this.connection.opened) this.connection.open(this.primingEventId);
  }

  /**
   * Closes the connection without ending the stream (after a `retry` hint) so the client resumes
   * from its last event id. A connection not opened yet (a forwarded POST still waiting for the
   * owner) opens first with its priming event: without an event id the client could not resume,
   * and its requests would wait forever.
   */
  disconnect(retryMs?: number): void {
    this.open();
    // A client that never got an event id (no priming: a client before 2025-11-25) cannot resume:
    // its requests due here get an error instead of no answer at all.
    if (this.primingEventId === undefined && !this.idSent && this.pending.size > 0) {
      for (const id of this.pending)
        this.connection.write({ jsonrpc: '2.0', id, error: UNRESUMABLE_ERROR }, undefined, 0);
      this.pending.clear();
    }
    this.connection.disconnect(retryMs);
  }

  /** A message from a producer on this instance: written at once when it is the next in sequence. */
  write(message: JSONRPCMessage, eventId: string | undefined, seq: number): void {
    if (this.closed) return;
    if (!this.log || seq === 0) {
      this.emit(message, eventId);
      return;
    }
    if (seq === this.lastSeq + 1 && !this.pulling) {
      this.lastSeq = seq;
      this.emit(message, eventId);
      return;
    }
    if (seq > this.lastSeq) this.pull();
  }

  /**
   * Events delivered by a producer on another instance (`deliver`), in order; a logged stream's end
   * comes as its end marker event, an unlogged one's as `end`.
   */
  deliver(events: Array<{ seq: number; data: string }>, end: boolean): void {
    for (const e of events) {
      if (this.closed) return;
      if (e.data === END_MARKER) {
        if (e.seq === this.lastSeq + 1 && !this.pulling) {
          this.lastSeq = e.seq;
          this.finishConnection();
        } else {
          this.endWhenDrained = true;
          this.pull(); // something before the end is missing: the log has it, and the end
        }
        return;
      }
      let message: JSONRPCMessage;
      try {
        message = JSON.parse(e.data) as JSONRPCMessage;
      } catch (err) {
        this.onError(new Error(`undecodable event on stream ${this.streamId}`, { cause: err }));
        continue;
      }
      this.write(message, e.seq && this.log ? encodeEventId(this.streamId, e.seq) : undefined, e.seq);
    }
    if (end && !this.closed) {
      if (this.pulling) {
        this.endWhenDrained = true;
        this.pull();
      } else this.finishConnection();
    }
  }

  /** The producer finished the stream: end once everything up to the end marker is written. */
  end(): void {
    if (!this.log) {
      this.finishConnection();
      return;
    }
    this.pull();
  }

  /** Nothing more will be produced: end the connection once the log is replayed. */
  endAfterReplay(): void {
    this.endWhenDrained = true;
    this.pull();
  }

  /**
   * The producer is gone for good (its instance died, or it no longer runs the stream): every
   * request still due here is answered with `error`, then the connection ends.
   */
  abort(error: { code: number; message: string }): void {
    if (this.closed) return;
    const finish = () => {
      if (this.closed) return;
      for (const id of this.pending) this.connection.write({ jsonrpc: '2.0', id, error }, undefined, 0);
      this.pending.clear();
      this.finishConnection();
    };
    // Whatever the log still has comes first (the producer may have logged more than it delivered).
    if (!this.log) return finish();
    this.endWhenDrained = false;
    this.pullThen(finish);
  }

  /** Reads and writes everything after the last written event (coalescing concurrent wake-ups). */
  pull(): void {
    this.pullThen(() => {
      if (this.endWhenDrained) this.finishConnection();
    });
  }

  private pullThen(done: () => void): void {
    if (!this.log || this.closed) {
      if (!this.log) done();
      return;
    }
    if (this.pulling) {
      this.again = true;
      void this.pulling.then(() => (this.closed ? undefined : done()));
      return;
    }
    this.pulling = this.readLoop()
      .then((finished) => {
        if (!finished) done();
      })
      .catch((err: unknown) => {
        this.onError(new Error(`stream ${this.streamId} replay failed`, { cause: err }));
        this.disconnect(1000); // the client resumes from its last event id
        this.finish();
      })
      .finally(() => {
        this.pulling = undefined;
      });
  }

  /** Resolves true when the log's end marker ended the stream. */
  private async readLoop(): Promise<boolean> {
    const log = this.log!;
    do {
      this.again = false;
      let events;
      try {
        events = await log.readAfter(this.sessionId, this.streamId, this.lastSeq);
      } catch (err) {
        this.onError(new Error(`event log read failed on stream ${this.streamId}`, { cause: err }));
        // The client resumes from its last event id once the store is back.
        this.disconnect(1000);
        this.finish();
        return true;
      }
      for (const ev of events) {
        if (this.closed) return true;
        if (ev.seq <= this.lastSeq) continue;
        this.lastSeq = ev.seq;
        if (ev.data === END_MARKER) {
          this.finishConnection();
          return true;
        }
        this.emit(JSON.parse(ev.data) as JSONRPCMessage, encodeEventId(this.streamId, ev.seq));
      }
    } while (this.again && !this.closed);
    return this.closed;
  }

  private emit(message: JSONRPCMessage, eventId: string | undefined): void {
    if (!this.connection.opened) this.connection.open(this.primingEventId);
    if (eventId !== undefined) this.idSent = true;
    if (isResponse(message) && message.id !== undefined && message.id !== null)
      this.pending.delete(message.id);
    this.connection.write(message, eventId, 0);
  }

  private finishConnection(): void {
    if (this.ended) return;
    // The last id, also when the replay carried no new event: a client that reconnects (the SDK does
    // after an error answer) resumes from here instead of opening a second GET stream.
    if (this.log && !this.connection.closed)
      this.connection.mark?.(encodeEventId(this.streamId, this.lastSeq));
    this.connection.end();
    this.finish();
  }

  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    this.onEnd(this);
  }
}
