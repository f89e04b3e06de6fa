import type { Protocol } from '@modelcontextprotocol/sdk/shared/protocol.js';
import type { Request, Notification, Result } from '@modelcontextprotocol/sdk/types.js';
import type { SessionRecord } from '../store/session-store.js';
import type { FleetTransport } from '../transport/fleet-transport.js';
import type { OutboundStream } from '../transport/outbound-stream.js';
import type { CopyLifecycle } from '../session/copy-lifecycle.js';
import type { SessionCloseReason } from '../types.js';

/** The SDK protocol object of a user's server (`Server`, or `McpServer.server`). */
export type AnyProtocol = Protocol<Request, Notification, Result>;

/** A session as held in this instance's memory: the user's server connected to our transport. */
export class LiveSession {
  /** Streams whose messages this instance produces, by stream id. */
  readonly streams = new Map<string, OutboundStream>();
  /**
   * Requests holding this copy between acquiring it and handing their messages over. An evicted copy
   * is closed only once it has no leases and nothing in flight.
   */
  leases = 0;
  /** Subscriptions accepted for saving but not saved yet (they count against the cap). */
  readonly pendingSubscriptions = new Set<string>();
  /** Saves of this copy's subscription changes, one after another (each builds on the last). */
  subscriptionSaves: Promise<void> = Promise.resolve();

  /** Set when the copy is dropped for a known reason (reported to the user's `onClose`). */
  closeReason: SessionCloseReason | undefined;

  constructor(
    public record: SessionRecord,
    readonly protocol: AnyProtocol,
    readonly transport: FleetTransport,
    readonly lifecycle: CopyLifecycle,
  ) {}

  get id(): string {
    return this.record.id;
  }

  /** Closes the user's server (and with it our transport). Safe to call twice. */
  async close(reason: SessionCloseReason = 'shutdown'): Promise<void> {
    // Requests still unanswered get an error rather than a stream that never ends.
    for (const s of this.streams.values()) {
      const pending = [...s.pending];
      this.transport.unbindAll(s);
      pending.forEach(
        (id, i) =>
          void s.push(
            { jsonrpc: '2.0', id, error: { code: -32603, message: 'Server is shutting down' } },
            i === pending.length - 1,
          ),
      );
      if (pending.length === 0) void s.end();
    }
    this.streams.clear();
    try {
      await this.protocol.close();
    } finally {
      this.lifecycle.end(this.closeReason ?? reason);
    }
  }
}
