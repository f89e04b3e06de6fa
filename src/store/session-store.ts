import type { InitializeRequest, LoggingLevel } from '@modelcontextprotocol/sdk/types.js';

/** Which wire protocol a session speaks. */
export type TransportKind = 'streamable-http' | 'sse';

/** The durable part of a session: everything an instance needs to rebuild it ("hydrate"). */
export interface SessionRecord {
  id: string;
  /** Principal id the session is bound to. */
  principal: string;
  transport: TransportKind;
  /** Protocol version negotiated at initialize. */
  protocolVersion: string;
  /** The client's original `initialize` params, replayed on hydration. */
  initialize: InitializeRequest['params'];
  /** Last `logging/setLevel` of the client, replayed on hydration. */
  logLevel?: LoggingLevel;
  /** Resource URIs the client subscribed to. */
  subscriptions?: string[];
  /** Creation time, ms since the epoch (absolute lifetime counts from here). */
  createdAt: number;
  /** Instance that created the session (for legacy SSE: the one holding the stream). */
  owner: string;
}

/** A versioned application-data document. `version` is 0 when nothing was written. */
export interface DataSnapshot {
  /** Serialized JSON, or undefined when empty. */
  json: string | undefined;
  version: number;
}

/** Fields of a record that may change after creation. */
export type SessionPatch = Partial<Pick<SessionRecord, 'logLevel' | 'subscriptions' | 'owner'>>;

/**
 * Durable session state. Expiry: every session has a sliding idle TTL and an absolute maximum
 * lifetime (both given to the implementation's constructor); everything stored for a session
 * (record and application data) expires with it.
 */
export interface SessionStore {
  /** Stores a new record. Rejects with `FleetError('SESSION_EXISTS')` if the id is taken. */
  create(record: SessionRecord): Promise<void>;
  /**
   * The record when the session is alive (and refreshes its idle TTL), else undefined. With
   * `principal`, another principal's session is reported as undefined and its TTL is left alone.
   */
  load(id: string, principal?: string): Promise<SessionRecord | undefined>;
  /** Refreshes the idle TTL; false when the session is gone (expired, deleted, never existed). */
  touch(id: string): Promise<boolean>;
  /** Changes mutable fields of a live record; false when the session is gone. */
  update(id: string, patch: SessionPatch): Promise<boolean>;
  /** Ends the session and removes all it stored; false when it was already gone. */
  delete(id: string): Promise<boolean>;
  /** Number of live sessions, without scanning keys. */
  count(): Promise<number>;
  /** The application data document of a live session; undefined when the session is gone. */
  getData(id: string): Promise<DataSnapshot | undefined>;
  /**
   * Writes the document (`json` undefined clears it). With `expectedVersion`, writes only if the
   * stored version still equals it. Resolves to the new version, `'conflict'` when the version moved,
   * or `'gone'` when the session does not exist.
   */
  setData(
    id: string,
    json: string | undefined,
    expectedVersion?: number,
  ): Promise<number | 'conflict' | 'gone'>;
  /** Cheap reachability check (PING for Redis). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** How long sessions live. */
export interface TtlPolicy {
  /** Sliding idle TTL in ms. */
  idleMs: number;
  /** Absolute maximum lifetime in ms. */
  maxLifetimeMs: number;
}
