import type { TransportKind } from './session-store.js';

/**
 * A transport session record (the original design's `TransportSessionData`): one per live stream
 * (a legacy `GET /sse` stream, a Streamable HTTP `GET` stream or a POST response stream).
 */
export interface StreamRecord {
  sessionId: string;
  streamId: string;
  transport: TransportKind;
  /** Instance holding the live connection. */
  instanceId: string;
  createdAt: number;
  lastSeenAt: number;
  active: boolean;
}

/** What {@link StreamRegistry.claim} found when it wrote the record. */
export interface StreamClaim {
  /** The previous holder's instance id, if another instance held the stream. */
  previous: string | undefined;
  /**
   * The session's owner at the moment the record was written ('' when it has none or is gone), read
   * in the same atomic step: a claim of the session after it reads this record (a session claim
   * reads the standalone stream's holder), so an instance that registers a stream and then tells
   * this owner misses no owner in between.
   */
  owner: string;
}

/**
 * Who holds which live stream. Records are kept alive by heartbeats from their holder; when the
 * holder dies they expire after `heartbeatTtlMs`, so a dead instance's streams disappear on their own.
 */
export interface StreamRegistry {
  /**
   * Records that `record.instanceId` now holds the stream (replacing a previous holder). Resolves to
   * the previous holder (if another instance held it) and the session's owner, read atomically with
   * the write.
   */
  claim(record: StreamRecord): Promise<StreamClaim>;
  /** The record of a stream while it is held, else undefined. */
  get(sessionId: string, streamId: string): Promise<StreamRecord | undefined>;
  /** Refreshes `lastSeenAt` and the heartbeat TTL of streams this instance holds (one batched call). */
  heartbeat(streams: Array<{ sessionId: string; streamId: string }>, instanceId: string): Promise<void>;
  /** Removes the record if `instanceId` still holds it. */
  release(sessionId: string, streamId: string, instanceId: string): Promise<void>;
  /** Number of held streams across the fleet (no `KEYS`). */
  count(): Promise<number>;
  /** Held streams, oldest heartbeat first, at most `limit`. */
  list(limit?: number): Promise<StreamRecord[]>;
  close(): Promise<void>;
}
