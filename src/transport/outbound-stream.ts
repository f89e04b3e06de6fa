import type { JSONRPCMessage, RequestId } from '@modelcontextprotocol/sdk/types.js';
import type { EventLog } from '../events/event-log.js';
import { encodeEventId } from './event-id.js';

/** Stored after a stream's last message: a replaying instance closes the connection when it reads it. */
export const END_MARKER = '{"__fleet":"end"}';

/** Where a stream's messages go: a live HTTP connection here, or an instance that holds it. */
export interface StreamSink {
  /** Delivers one message; `eventId` is set when the stream is resumable. */
  write(message: JSONRPCMessage, eventId: string | undefined, seq: number): void;
  /** The stream has ended (all responses sent): finish the connection. */
  end(): void;
  /** True once the connection is gone. */
  readonly closed: boolean;
}

/**
 * One SSE stream of a session (a POST response stream or the standalone GET stream) as seen by the
 * instance producing its messages. Messages are written in order: each batch is appended to the event
 * log first (when resumable), then handed to the current sink. The sink may be replaced (a client
 * resumed the stream) or missing (the client is disconnected); the log keeps what it missed.
 */
export class OutboundStream {
  /** Incoming request ids whose responses are due on this stream. */
  readonly pending = new Set<RequestId>();
  private sink: StreamSink | undefined;
  private queue: JSONRPCMessage[] = [];
  private draining: Promise<void> | undefined;
  private running = false;
  private ending = false;
  private ended = false;
  /** Highest sequence number handed to a sink (0 = only the priming event). */
  lastSeq = 0;

  constructor(
    readonly sessionId: string,
    readonly streamId: string,
    private readonly log: EventLog | undefined,
    private readonly onError: (err: Error) => void,
    private readonly onEnded: (stream: OutboundStream) => void = () => {},
  ) {}

  /** Whether events carry ids and are kept for replay. */
  get resumable(): boolean {
    return this.log !== undefined;
  }

  /** Whether the stream has ended (its last response was written). */
  get isEnded(): boolean {
    return this.ended;
  }

  /** Routes further messages to `sink` (replacing the previous one, which is not closed here). */
  attach(sink: StreamSink): void {
    this.sink = sink;
  }

  /** Stops writing to `sink` if it is still the current one. */
  detach(sink: StreamSink): void {
    if (this.sink === sink) this.sink = undefined;
  }

  /** The current sink, if any. */
  get currentSink(): StreamSink | undefined {
    return this.sink;
  }

  /**
   * Queues a message; resolves once it is logged (or written, when not resumable). With `last`, the
   * stream ends after it — in the same log append, so a final response costs one round trip.
   */
  push(message: JSONRPCMessage, last = false): Promise<void> {
    if (this.ended || this.ending) {
      this.onError(new Error(`message dropped: stream ${this.streamId} already ended`));
      return Promise.resolve();
    }
    this.queue.push(message);
    if (last) this.ending = true;
    return this.drain();
  }

  /** Ends the stream after everything queued is delivered; the end marker goes into the log. */
  end(): Promise<void> {
    if (this.ending) return this.running && this.draining ? this.draining : Promise.resolve();
    this.ending = true;
    return this.drain();
  }

  private drain(): Promise<void> {
    // `running` is cleared synchronously when the loop exits (the loop may not await at all without a
    // log), so a push or end right after always either joins a live loop or starts a new one.
    if (this.running && this.draining) return this.draining;
    this.running = true;
    this.draining = this.loop();
    return this.draining;
  }

  private async loop(): Promise<void> {
    try {
      // Loop until nothing is queued: messages pushed while a batch is being logged go in the next batch,
      // so a burst costs one round trip per batch instead of one per message.
      while (this.queue.length > 0 || (this.ending && !this.ended)) {
        const batch = this.queue;
        this.queue = [];
        const finishing = this.ending;
        let seqs: number[] = [];
        if (this.log) {
          const data = batch.map((m) => JSON.stringify(m));
          if (finishing) data.push(END_MARKER);
          try {
            seqs = await this.log.append(this.sessionId, this.streamId, data);
          } catch (err) {
            // The connection still gets the messages; only replay after a disconnect is lost.
            this.onError(new Error(`event log append failed on stream ${this.streamId}`, { cause: err }));
            seqs = [];
          }
        }
        for (let i = 0; i < batch.length; i++) {
          const seq = seqs[i] ?? 0;
          if (seq) this.lastSeq = seq;
          const id = this.log && seq ? encodeEventId(this.streamId, seq) : undefined;
          const sink = this.sink;
          if (sink && !sink.closed) sink.write(batch[i]!, id, seq);
        }
        if (finishing && this.queue.length === 0) {
          this.ended = true;
          const sink = this.sink;
          if (sink && !sink.closed) sink.end();
          this.onEnded(this);
        }
      }
    } finally {
      this.running = false;
    }
  }
}
