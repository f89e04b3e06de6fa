import type { InitializeRequest, LoggingLevel } from '@modelcontextprotocol/sdk/types.js';

/** Which wire protocol a session speaks. */
export type TransportKind = 'streamable-http' | 'sse';

/**
 * Who runs a session's one live copy: the owner instance (`''` while nobody does) and the epoch of
 * its claim. Every claim increases the epoch, so a write fenced with an old epoch is refused.
 */
export interface Ownership {
  owner: string;
  epoch: number;
}

/** What a refresh reports of a live session: who owns it, and which transport it speaks. */
export interface SessionState extends Ownership {
  transport: TransportKind;
}

/** The durable part of a session: everything an instance needs to rebuild it ("hydrate"). */
export interface SessionRecord extends Ownership {
  id: string;
  /** Principal id the session is bound to. */
  principal: string;
  transport: TransportKind;
  /** Protocol version negotiated at initialize. */
  protocolVersion: string;
  /** The client's original `initialize` params, replayed on hydration. */
  initialize: InitializeRequest['params'];
  /** The client sent `notifications/initialized` (replayed on hydration only then). */
  initialized?: boolean;
  /** Last `logging/setLevel` of the client, replayed on hydration. */
  logLevel?: LoggingLevel;
  /** Resource URIs the client subscribed to. */
  subscriptions?: string[];
  /** Creation time, ms since the epoch (absolute lifetime counts from here). */
  createdAt: number;
  /** Why its last owner released it, if one did (the next owner's factory is told: `ctx.origin`). */
  released?: ReleaseReason;
}

/**
 * Why a session has no owner: its owner handed it off (shutdown, rebalancing) or evicted its copy, or
 * it was re-created under a client's unknown id (`recoverSessions`) and nobody built it yet.
 */
export type ReleaseReason = 'handoff' | 'eviction' | 'recovered';

/** A versioned application-data document. `version` is 0 when nothing was written. */
export interface DataSnapshot {
  /** Serialized JSON, or undefined when empty. */
  json: string | undefined;
  version: number;
}

/** Fields of a record that its owner may change after creation. */
export type SessionPatch = Partial<Pick<SessionRecord, 'logLevel' | 'subscriptions' | 'initialized'>>;

/**
 * A write made on behalf of a session's owner: applied only while `owner` still owns the session at
 * `epoch`, so an owner that was replaced (it froze, a successor claimed the session) cannot write.
 */
export type Fence = Ownership;

/** Outcome of a fenced write: `gone` when the session does not exist, `fenced` when its owner changed. */
export type WriteOutcome = 'ok' | 'gone' | 'fenced';

/** Outcome of {@link SessionStore.claim}. */
export type ClaimOutcome =
  | {
      status: 'claimed';
      record: SessionRecord;
      /**
       * The instance holding the session's standalone (`GET`) stream when the claim landed, read in
       * the same atomic step: `null` for none; absent when this store cannot tell (read the stream
       * registry instead).
       */
      standaloneHolder?: string | null;
    }
  /** Somebody else changed the ownership first: the current one. */
  | { status: 'taken'; ownership: Ownership }
  /** No such session (or another principal's). */
  | { status: 'gone' };

/** Outcome of {@link SessionStore.touchOrClaim}: claimed, or the ownership as {@link SessionStore.touch} reports it. */
export type TouchOrClaimOutcome =
  Extract<ClaimOutcome, { status: 'claimed' }> | { status: 'owned'; state: SessionState };

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
  /**
   * Refreshes the idle TTL; resolves to the current ownership and transport, or undefined when the
   * session is gone. With `principal`, another principal's session is undefined and left alone.
   */
  touch(id: string, principal?: string): Promise<SessionState | undefined>;
  /**
   * The current ownership and transport, or undefined when the session is gone — without refreshing
   * anything: for checks that are not a use of the session (an owner revalidating what it owns).
   */
  peek(id: string): Promise<SessionState | undefined>;
  /** Changes mutable fields of a live record; with `fence`, only while that ownership holds. */
  update(id: string, patch: SessionPatch, fence?: Fence): Promise<WriteOutcome>;
  /**
   * Makes `claimant` the owner if the ownership is still `expected` (compare-and-set), with the epoch
   * increased by one, and refreshes the idle TTL. With `principal`, another principal's session is
   * `gone`; so is a legacy (`sse`) session, which lives and dies with its stream. Resolves to the
   * claimed record (to hydrate from) or to the ownership that won.
   */
  claim(id: string, claimant: string, expected: Ownership, principal?: string): Promise<ClaimOutcome>;
  /**
   * {@link touch}, and in the same atomic step, when the session has no owner (`''`: released) and
   * is a Streamable HTTP one, {@link claim} it for `claimant`: the first request of a released session
   * needs one round trip, not two. Undefined when the session is gone or another principal's.
   */
  touchOrClaim(id: string, principal: string, claimant: string): Promise<TouchOrClaimOutcome | undefined>;
  /** Gives the session up (owner `''`, same epoch) if `fence` still holds, noting why; false otherwise. */
  release(id: string, fence: Fence, reason: ReleaseReason): Promise<boolean>;
  /** Ends the session and removes its record and data; false when it was already gone. */
  delete(id: string): Promise<boolean>;
  /** Number of live sessions, without scanning keys. */
  count(): Promise<number>;
  /** The application data document of a live session; undefined when the session is gone. */
  getData(id: string): Promise<DataSnapshot | undefined>;
  /**
   * Writes the document (`json` undefined clears it). With `expectedVersion`, writes only if the
   * stored version still equals it; with `fence`, only while that ownership holds. Resolves to the new
   * version, `'conflict'` when the version moved, `'gone'` when the session does not exist, or
   * `'fenced'` when its owner changed.
   */
  setData(
    id: string,
    json: string | undefined,
    expectedVersion?: number,
    fence?: Fence,
  ): Promise<number | 'conflict' | 'gone' | 'fenced'>;
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
