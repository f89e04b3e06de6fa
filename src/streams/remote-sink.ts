import type { FleetBus } from '../bus/protocol.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { END_MARKER, type StreamSink } from '../transport/outbound-stream.js';

/** Longest the acknowledgement of a forwarded call waits for a first event to travel with. */
const ACK_DELAY_MS = 20;

/** Largest batch of event data sent in one `deliver`; beyond it the holder reads the event log. */
const MAX_DELIVER_BYTES = 1024 * 1024;

/** What a {@link RemoteSink} is built from. */
export interface RemoteSinkOptions {
  bus: FleetBus;
  /** This (the producing) instance. */
  from: string;
  /** The instance holding the connection. */
  holder: string;
  sessionId: string;
  streamId: string;
  /** Whether the stream has an event log the holder can read instead. */
  logged: boolean;
  /** A forwarded call this sink's first delivery acknowledges (sent within this tick either way). */
  ack?: string | undefined;
  /** Whether an instance nobody is subscribed for is really gone (not reconnecting). */
  confirmGone(instanceId: string): Promise<boolean>;
  /** The holder is gone: stop writing to this sink. */
  onGone(sink: RemoteSink): void;
  onError(err: Error): void;
}

/**
 * The producer's side of a stream whose connection another instance holds: events go to the holder
 * in `deliver` messages (coalesced per tick, in order), after the producer logged them. The holder
 * writes them if they are next in sequence and reads the log otherwise, so a lost or reordered
 * message costs a log read, never an event. Publishing to nobody means the holder is gone.
 */
export class RemoteSink implements StreamSink {
  private events: Array<{ seq: number; data: string }> = [];
  private ending = false;
  private scheduled = false;
  private gone = false;
  private reported = false;

  private readonly bus: FleetBus;
  readonly holder: string;
  /** Delivers to another instance (see {@link StreamSink.remote}). */
  readonly remote = true;

  private ack: string | undefined;

  constructor(private readonly o: RemoteSinkOptions) {
    this.bus = o.bus;
    this.holder = o.holder;
    this.ack = o.ack;
    // The acknowledgement waits a little for the answer to ride along (a quick tool costs one
    // PUBLISH); far below the forwarder's timeout, it goes alone.
    if (this.ack !== undefined) {
      setTimeout(() => {
        if (this.ack !== undefined) this.flush();
      }, ACK_DELAY_MS).unref();
    }
  }

  get closed(): boolean {
    return this.gone;
  }

  write(message: JSONRPCMessage, _eventId: string | undefined, seq: number): void {
    if (this.gone) return;
    const data = JSON.stringify(message);
    this.events.push({ seq, data });
    this.schedule();
  }

  end(endSeq?: number): void {
    if (this.gone) return;
    // A logged stream's end travels as its end marker event, so the holder ends it in sequence.
    if (endSeq) this.events.push({ seq: endSeq, data: END_MARKER });
    this.ending = true;
    this.schedule();
  }

  /**
   * Another connection took the stream over: tells the holder to let its connection go (the
   * client resumed elsewhere) and stops writing here.
   */
  release(newHolder: string): void {
    if (this.gone) return;
    this.gone = true;
    this.send({ t: 'release', sid: this.o.sessionId, streamId: this.o.streamId, holder: newHolder });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // One message per tick for a burst: the producer writes a batch synchronously after each append.
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    const ack = this.ack;
    this.ack = undefined;
    if (this.gone || (this.events.length === 0 && !this.ending)) {
      // Nothing to deliver yet: the acknowledgement goes alone.
      if (ack !== undefined) this.send({ t: 'handled', callId: ack, outcome: 'accepted' });
      return;
    }
    const events = this.events;
    const end = this.ending;
    this.events = [];
    this.ending = false;
    const tooLarge =
      this.o.logged && ack === undefined && events.reduce((n, e) => n + e.data.length, 0) > MAX_DELIVER_BYTES;
    this.send(
      tooLarge
        ? { t: 'wake', sid: this.o.sessionId, streamId: this.o.streamId }
        : {
            t: 'deliver',
            from: this.o.from,
            sid: this.o.sessionId,
            streamId: this.o.streamId,
            events,
            end,
            ...(ack !== undefined ? { ack } : {}),
          },
    );
    if (end) this.gone = true; // nothing follows the end
  }

  private send(message: Parameters<FleetBus['send']>[1]): void {
    this.bus.send(this.holder, message).then(
      (n) => {
        if (n !== 0 || this.reported) return;
        // Nobody subscribed: the holder is gone, or its subscriber is reconnecting (the log has it all).
        this.o.confirmGone(this.holder).then(
          (gone) => {
            if (!gone || this.reported) return;
            this.reported = true;
            this.gone = true;
            this.o.onGone(this);
          },
          (err: unknown) => {
            // The store could not tell (Redis away): keep the sink; the next delivery asks again.
            this.o.onError(new Error(`could not check whether ${this.holder} is gone`, { cause: err }));
          },
        );
      },
      (err: unknown) => {
        // A lost delivery is not final: the holder re-reads the log on its heartbeat.
        this.o.onError(new Error(`delivery to ${this.holder} failed`, { cause: err }));
      },
    );
  }
}
