import type { Protocol } from '@modelcontextprotocol/sdk/shared/protocol.js';
import type { JSONRPCMessage, Notification, Request, Result } from '@modelcontextprotocol/sdk/types.js';
import { FleetError } from '../errors.js';
import type { Fence, SessionRecord } from '../store/session-store.js';
import type { FleetTransport } from '../transport/fleet-transport.js';
import { isRequest } from '../transport/jsonrpc.js';
import type { OutboundStream } from '../transport/outbound-stream.js';
import type { SessionCloseReason } from '../types.js';
import type { LegacyTransport } from '../transport/legacy-transport.js';
import type { CopyLifecycle } from './copy-lifecycle.js';

/** The SDK protocol object of a user's server (`Server`, or `McpServer.server`). */
export type AnyProtocol = Protocol<Request, Notification, Result>;

/** The error requests still running on a copy get when it closes, by why it closes. */
const CLOSED_MESSAGES: Record<SessionCloseReason, string> = {
  deleted: 'Session deleted while the request ran',
  expired: 'Session expired (or the session store lost it) while the request ran',
  evicted: 'Session moved off this instance while the request ran',
  handoff: 'Session handed off while the request ran',
  replaced: 'Session taken over by another instance while the request ran',
  shutdown: 'Server is shutting down',
  done: 'Request finished',
};
function closedError(reason: SessionCloseReason): { code: number; message: string } {
  return { code: -32603, message: CLOSED_MESSAGES[reason] };
}

/**
 * The one live copy of a session, on its owner: the user's server connected to our transport, with
 * the streams it produces. Streamable HTTP copies answer each POST on its own stream and send
 * everything else to the standalone stream; a legacy copy writes everything to its `GET /sse`.
 */
export class LiveSession {
  /** POST streams this copy produces, by stream id. */
  readonly streams = new Map<string, OutboundStream>();
  /**
   * Requests holding this copy between finding it and handing their messages over. A copy is
   * closed (evicted, handed off) only once it has no leases and nothing in flight.
   */
  leases = 0;
  /** Subscriptions accepted for saving but not saved yet (they count against the cap). */
  readonly pendingSubscriptions = new Set<string>();
  /** Saves of this copy's subscription changes, one after another (each builds on the last). */
  subscriptionSaves: Promise<void> = Promise.resolve();
  /** Set while the copy is being handed off: new messages wait for the next owner. */
  handoff: Promise<void> | undefined;
  /** Last client message, ms since the epoch (legacy sessions expire from here). */
  lastActivity = Date.now();
  /** Last message this copy sent outside a request (the standalone stream), ms since the epoch. */
  lastOutput = 0;
  /**
   * When a request last found this copy current in the store (owned here at its epoch, TTL
   * refreshed), ms since the epoch, and the ownership token then (`Ownership.uncheckedToken`).
   */
  checkedAt = Number.NEGATIVE_INFINITY;
  checkedToken: number | undefined;

  /** Records a store check (touch, create or claim) that began at `at` under `token`. */
  checked(at: number, token: number | undefined): void {
    this.checkedAt = at;
    this.checkedToken = token;
  }
  private closing: Promise<void> | undefined;
  private idleWaiters: Array<() => void> = [];

  constructor(
    public record: SessionRecord,
    /** The epoch at which this instance owns the session. */
    readonly epoch: number,
    /**
     * The fence of every write this copy makes (this instance at {@link epoch}), fixed when the copy
     * is built: once the session is owned elsewhere, or by this instance at another epoch, the store
     * refuses them — a copy that lost its ownership can never write unfenced.
     */
    readonly fence: Fence,
    readonly protocol: AnyProtocol,
    readonly transport: FleetTransport | LegacyTransport,
    readonly lifecycle: CopyLifecycle,
    /** The standalone stream (Streamable HTTP only): messages that belong to no request. */
    readonly standalone: OutboundStream | undefined,
  ) {}

  get id(): string {
    return this.record.id;
  }

  /** Whether close() was called. */
  get isClosed(): boolean {
    return this.closing !== undefined;
  }

  /** Client requests being answered here, plus leases. */
  get busy(): boolean {
    return this.leases > 0 || this.transport.inFlight > 0;
  }

  /** Takes a lease (see {@link leases}). */
  lease(): void {
    this.leases++;
  }

  /** Ends a lease; wakes {@link whenIdle} waiters when nothing holds the copy any more. */
  unlease(): void {
    if (this.leases > 0) this.leases--;
    this.checkIdle();
  }

  /** Resolves once nothing is in flight and no lease is held. */
  whenIdle(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Called when a request finished (the transport's idle hook) or a lease ended. */
  checkIdle(): void {
    if (this.busy || this.idleWaiters.length === 0) return;
    for (const w of this.idleWaiters.splice(0)) w();
  }

  /**
   * Sends a message that belongs to no request to the standalone stream, wherever it is held. A
   * server→client request with no stream held anywhere fails at once instead of waiting for its timeout.
   */
  async sendStandalone(message: JSONRPCMessage): Promise<void> {
    const s = this.standalone;
    if (!s) throw new Error('no standalone stream on this copy');
    this.lastOutput = Date.now();
    if (isRequest(message) && (!s.currentSink || s.currentSink.closed)) {
      throw new FleetError(
        'CONFLICT',
        `no GET stream open for session ${this.id}: cannot send ${message.method}`,
      );
    }
    await s.push(message);
  }

  /**
   * Closes the user's server (and with it our transport); safe to call twice. Requests still due
   * are answered with an error — through the event log unless `fenced` (another owner writes now).
   */
  close(reason: SessionCloseReason, fenced = false): Promise<void> {
    this.closing ??= (async () => {
      const ending: Array<Promise<void>> = [];
      for (const s of this.streams.values()) {
        if (s.isEnded) continue;
        const ids = [...s.pending];
        const fleet = this.transport as FleetTransport;
        if (typeof fleet.unbindAll === 'function') fleet.unbindAll(s);
        ending.push(ids.length > 0 ? s.fail(closedError(reason), !fenced, ids) : s.end());
      }
      this.streams.clear();
      await Promise.allSettled(ending);
      try {
        await this.protocol.close();
      } finally {
        this.lifecycle.end(reason);
        for (const w of this.idleWaiters.splice(0)) w();
      }
    })();
    return this.closing;
  }
}
