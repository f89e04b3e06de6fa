import type { JSONRPCMessage, RequestId } from '@modelcontextprotocol/sdk/types.js';
import { FleetError } from '../errors.js';
import { END_MARKER, type EventLog } from '../events/event-log.js';
import type { Fence } from '../store/session-store.js';
import { encodeEventId } from './event-id.js';

/** How long an append is retried while the store is unavailable before the messages go unlogged. */
const APPEND_RETRY_MS = 10_000;

/** What an append fenced off returns: the messages go to a local connection only. */
const FENCED = 'fenced' as const;

export { END_MARKER };

/** Where a stream's messages go: a live HTTP connection here, or an instance that holds it. */
export interface StreamSink {
  /** Delivers one message; `eventId` is set when the stream is resumable and the event was logged. */
  write(message: JSONRPCMessage, eventId: string | undefined, seq: number): void;
  /**
   * The stream has ended (all responses sent): finish the connection. `endSeq` is the sequence
   * number of the end marker in the event log, when the stream has one.
   */
  end(endSeq?: number): void;
  /** True once the connection is gone. */
  readonly closed: boolean;
  /**
   * True for a sink that delivers to another instance. A copy fenced off (another owner took the
   * session) writes nothing there: the holder answers the requests itself once it learns they are lost.
   */
  readonly remote?: boolean;
}

/** What an {@link OutboundStream} reports to the copy producing it. */
export interface OutboundHooks {
  onError(err: Error): void;
  /** The stream ended (its last response was written). */
  onEnded?(stream: OutboundStream): void;
  /** The fence of the producing owner's writes (undefined: unfenced, e.g. in tests). */
  fence?(): Fence | undefined;
  /**
   * An append was refused: the session is owned elsewhere now (`replaced`) or gone (`expired`). The
   * producing copy must step down; the messages were handed to the sink without event ids.
   */
  onFenced?(reason: 'replaced' | 'expired'): void;
  /**
   * The stream's log starts empty with this stream (a POST's new stream id), so its appends can be
   * idempotent from the first; otherwise (the standalone stream, whose log earlier copies of the
   * session wrote) from the first append that succeeded.
   */
  fresh?: boolean;
}

/**
 * One SSE stream of a session (a POST response stream or the standalone GET stream) as seen by the
 * owner producing its messages. Messages are written in order: each batch is appended to the event
 * log first (when resumable, fenced by the owner's epoch), then handed to the current sink. The sink
 * may be replaced (a client resumed the stream elsewhere) or missing (the client is disconnected);
 * the log keeps what it missed.
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
  /** Whether `lastSeq` is the log's last number (false once an append failed without an answer). */
  private inSync: boolean;

  constructor(
    readonly sessionId: string,
    readonly streamId: string,
    private readonly log: EventLog | undefined,
    private readonly hooks: OutboundHooks,
  ) {
    this.inSync = hooks.fresh === true;
  }

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
      this.hooks.onError(new Error(`message dropped: stream ${this.streamId} already ended`));
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

  /**
   * Answers every request still due on this stream with `error` and ends it — through the log when
   * `logged` (a resuming client sees the errors), else straight to the sink (the log is fenced off).
   */
  fail(
    error: { code: number; message: string },
    logged: boolean,
    ids: RequestId[] = [...this.pending],
  ): Promise<void> {
    this.pending.clear();
    const errors: JSONRPCMessage[] = ids.map((id) => ({ jsonrpc: '2.0', id, error }));
    if (logged && !this.ended && !this.ending) {
      this.queue.push(...errors);
      this.ending = true;
      return this.drain();
    }
    const sink = this.sink;
    this.ended = true;
    this.ending = true;
    // Fenced off: a remote holder hears nothing from here; it learns the stream is gone and answers.
    if (sink && !sink.closed && !sink.remote) {
      for (const m of errors) sink.write(m, undefined, 0);
      sink.end();
    }
    return Promise.resolve();
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
      while (!this.ended && (this.queue.length > 0 || this.ending)) {
        const batch = this.queue;
        this.queue = [];
        const finishing = this.ending;
        const seqs = await this.append(batch, finishing);
        if (this.ended) return; // failed meanwhile (fenced off): the sink has been ended
        const fenced = seqs === FENCED;
        for (let i = 0; i < batch.length; i++) {
          const seq = fenced ? 0 : (seqs[i] ?? 0);
          if (seq) this.lastSeq = seq;
          const id = this.log && seq ? encodeEventId(this.streamId, seq) : undefined;
          const sink = this.sink;
          if (sink && !sink.closed && !(fenced && sink.remote)) sink.write(batch[i]!, id, seq);
        }
        if (finishing && this.queue.length === 0) {
          this.ended = true;
          const sink = this.sink;
          if (sink && !sink.closed && !(fenced && sink.remote))
            sink.end(fenced ? undefined : seqs[batch.length]);
          this.hooks.onEnded?.(this);
        }
      }
    } finally {
      this.running = false;
    }
  }

  /**
   * Logs a batch (with the end marker when finishing); [] when not resumable or the append failed,
   * {@link FENCED} when the session is not this copy's to write for any more. While the store is
   * unavailable (a Redis restart or failover: seconds) the append is retried, for up to
   * {@link APPEND_RETRY_MS}, idempotently (a retry whose first try landed gets its numbers back), so
   * an answer produced meanwhile still reaches the log and the client, in order, once it is back.
   */
  private async append(batch: JSONRPCMessage[], finishing: boolean): Promise<number[] | typeof FENCED> {
    if (!this.log) return [];
    const data = batch.map((m) => JSON.stringify(m));
    if (finishing) data.push(END_MARKER);
    const giveUpAt = Date.now() + APPEND_RETRY_MS;
    for (let attempt = 0; ; attempt++) {
      try {
        const afterSeq = this.inSync ? this.lastSeq : undefined;
        const seqs = await this.log.append(
          this.sessionId,
          this.streamId,
          data,
          this.hooks.fence?.(),
          afterSeq,
        );
        this.inSync = true;
        return seqs;
      } catch (err) {
        if (err instanceof FleetError && (err.code === 'NOT_OWNER' || err.code === 'SESSION_NOT_FOUND')) {
          // Not ours to log any more: the connection still gets these, then the copy steps down.
          queueMicrotask(() => this.hooks.onFenced?.(err.code === 'NOT_OWNER' ? 'replaced' : 'expired'));
          return FENCED;
        }
        const retry = err instanceof FleetError && err.code === 'STORE_UNAVAILABLE' && !this.ended;
        if (retry && Date.now() < giveUpAt) {
          await new Promise((r) => setTimeout(r, Math.min(50 * 2 ** attempt, 1000)));
          continue;
        }
        // The connection still gets the messages; only replay after a disconnect is lost. Whether
        // this append landed is unknown: the next one does not count on the last number.
        this.inSync = false;
        this.hooks.onError(new Error(`event log append failed on stream ${this.streamId}`, { cause: err }));
        return [];
      }
    }
  }
}
