import { FleetError } from '../errors.js';
import type { Fence } from '../store/session-store.js';

/**
 * Stored after a stream's last message: a replaying instance closes the connection when it reads it,
 * and the log, finished, is kept only `endedTtlMs` from then on (a client reconnecting reads its end).
 */
export const END_MARKER = '{"__fleet":"end"}';

/** The error of an idempotent append (`afterSeq`) whose log moved on without it. */
export function logMovedOn(streamId: string): FleetError {
  return new FleetError('CONFLICT', `Conflict: the event log of stream ${streamId} moved on`);
}

/** The TTL of a log whose append ends with {@link END_MARKER}: the shorter of the two. */
export function ttlAfterAppend(data: string[], ttlMs: number, endedTtlMs: number | undefined): number {
  return data[data.length - 1] === END_MARKER && endedTtlMs !== undefined
    ? Math.min(ttlMs, endedTtlMs)
    : ttlMs;
}

/** One stored event of a stream: its sequence number (1, 2, …) and the serialized message. */
export interface StoredEvent {
  seq: number;
  data: string;
}

/**
 * Per-stream event logs that make SSE streams resumable. Each stream of a session has its own
 * log with consecutive sequence numbers starting at 1; logs are capped (oldest dropped first) and
 * expire with their session — or, once finished (the last append ends with {@link END_MARKER}),
 * shortly after that (`endedTtlMs`), so a busy session does not keep every answer it ever streamed.
 */
export interface EventLog {
  /**
   * Appends messages in order; resolves to the sequence number of each. With `fence` (the session's
   * owner writing) nothing is appended unless that ownership still holds: rejects with
   * `FleetError('NOT_OWNER')`, or `FleetError('SESSION_NOT_FOUND')` when the session is gone.
   * With `afterSeq` (the last sequence number this writer got) the append is idempotent: when the
   * log already holds `data.length` more events than that — this very append, whose answer was lost
   * — it resolves to their numbers and appends nothing; a log that moved on otherwise rejects with
   * `FleetError('CONFLICT')`.
   */
  append(
    sessionId: string,
    streamId: string,
    data: string[],
    fence?: Fence,
    afterSeq?: number,
  ): Promise<number[]>;
  /** Events with seq > afterSeq, in order (all kept events when the log was trimmed past it). */
  readAfter(sessionId: string, streamId: string, afterSeq: number): Promise<StoredEvent[]>;
  /** Highest sequence number written to the stream (0 when none). */
  lastSeq(sessionId: string, streamId: string): Promise<number>;
  /** Extends the TTL of logs whose streams are held open (a quiet stream must not lose its log). */
  touch(streams: Array<{ sessionId: string; streamId: string }>): Promise<void>;
  /** Removes a stream's log. */
  delete(sessionId: string, streamId: string): Promise<void>;
  /** Removes every log of a session (its `DELETE`). */
  deleteSession(sessionId: string): Promise<void>;
  close(): Promise<void>;
}
