import type { StreamSink } from './outbound-stream.js';

/**
 * A client's live SSE (or JSON) connection as the stream layer uses it; `http/` implements it. The
 * stream layer never sees requests or responses of Node's HTTP module.
 */
export interface ClientConnection extends StreamSink {
  /** Sends the response head now (with a priming event id, for resumable streams). */
  open(primingEventId?: string): void;
  /** Whether the head was sent. */
  readonly opened: boolean;
  /** Closes the connection without ending the stream, after a `retry` hint: the client resumes. */
  disconnect(retryMs?: number): void;
  /**
   * Answers that the stream has ended and the client has all of it: no stream at all (HTTP 204, which
   * tells an SSE client not to reconnect), or just the end when the head went out already. Optional:
   * only a resumption can find its stream over.
   */
  finished?(): void;
  /** Runs `fn` once when the connection closes (at once if it has). */
  onceClosed(fn: () => void): void;
  /**
   * Sends an event that carries only an id (no data): where a client that reconnects should resume
   * from. Optional: a JSON answer has no events.
   */
  mark?(eventId: string): void;
}
