import { randomBase64url } from '../random.js';
import type { RequestId } from '@modelcontextprotocol/sdk/types.js';

/** Where a rewritten server→client request id came from. */
export interface OutgoingEntry<T> {
  /** The transport whose Protocol waits for the response. */
  owner: T;
  /** The id the SDK Protocol gave the request (it numbers from 0 in every instance, so ids collide). */
  originalId: RequestId;
  /** Drop the entry after this time (ms since epoch) if no response came. */
  expiresAt: number;
}

const PREFIX = 'f~';

/**
 * Instance-unique ids for server→client requests. Each SDK `Protocol` numbers its requests from 0, so
 * two instances serving one session would collide; we send `f~<96 random bits>@<instanceId>` instead
 * and map the client's response back. The instance id in the id tells any instance where to forward
 * it; the random part makes ids unguessable, and answers are accepted only from the owning session.
 */
export class OutgoingRequests<T> {
  private readonly entries = new Map<string, OutgoingEntry<T>>();
  private readonly byOriginal = new Map<T, Map<RequestId, string>>();

  constructor(
    private readonly instanceId: string,
    private readonly ttlMs = 10 * 60_000,
  ) {}

  /** A fresh wire id for `originalId` of `owner`. */
  rewrite(owner: T, originalId: RequestId): string {
    this.sweep();
    const id = `${PREFIX}${randomBase64url(12)}@${this.instanceId}`;
    this.entries.set(id, { owner, originalId, expiresAt: Date.now() + this.ttlMs });
    let m = this.byOriginal.get(owner);
    if (!m) this.byOriginal.set(owner, (m = new Map()));
    m.set(originalId, id);
    return id;
  }

  /** The wire id previously given to `originalId` of `owner` (for its `notifications/cancelled`). */
  wireIdOf(owner: T, originalId: RequestId): string | undefined {
    return this.byOriginal.get(owner)?.get(originalId);
  }

  /** Takes the entry of a wire id issued by this instance (removing it). */
  take(wireId: string): OutgoingEntry<T> | undefined {
    const e = this.entries.get(wireId);
    if (!e) return undefined;
    this.entries.delete(wireId);
    this.byOriginal.get(e.owner)?.delete(e.originalId);
    return e;
  }

  /** Looks an entry up without removing it (progress notifications). */
  peek(wireId: string): OutgoingEntry<T> | undefined {
    return this.entries.get(wireId);
  }

  /** Forgets everything of one owner (its session closed). */
  forget(owner: T): void {
    const m = this.byOriginal.get(owner);
    if (!m) return;
    for (const wire of m.values()) this.entries.delete(wire);
    this.byOriginal.delete(owner);
  }

  /** Number of requests awaiting a response. */
  get size(): number {
    return this.entries.size;
  }

  private sweep(): void {
    if (this.entries.size < 1024) return;
    const now = Date.now();
    for (const [id, e] of this.entries) if (e.expiresAt < now) this.take(id);
  }
}

/** The instance that issued a rewritten id, or undefined for an id that is not ours. */
export function issuerOf(wireId: RequestId): string | undefined {
  if (typeof wireId !== 'string' || !wireId.startsWith(PREFIX)) return undefined;
  const at = wireId.indexOf('@');
  return at > 0 ? wireId.slice(at + 1) : undefined;
}
