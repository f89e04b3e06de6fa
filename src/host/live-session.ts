import type { Protocol } from '@modelcontextprotocol/sdk/shared/protocol.js';
import type { Request, Notification, Result } from '@modelcontextprotocol/sdk/types.js';
import type { SessionRecord } from '../store/session-store.js';
import type { FleetTransport } from '../transport/fleet-transport.js';
import type { OutboundStream } from '../transport/outbound-stream.js';

/** The SDK protocol object of a user's server (`Server`, or `McpServer.server`). */
export type AnyProtocol = Protocol<Request, Notification, Result>;

/** A session as held in this instance's memory: the user's server connected to our transport. */
export class LiveSession {
  /** Streams whose messages this instance produces, by stream id. */
  readonly streams = new Map<string, OutboundStream>();
  lastUsed = Date.now();
  /** Requests being processed right now (an evicted busy session is closed only when idle). */
  busy = 0;

  constructor(
    public record: SessionRecord,
    readonly protocol: AnyProtocol,
    readonly transport: FleetTransport,
  ) {}

  get id(): string {
    return this.record.id;
  }

  /** Closes the user's server (and with it our transport). Safe to call twice. */
  async close(): Promise<void> {
    for (const s of this.streams.values()) this.transport.unbindAll(s);
    this.streams.clear();
    await this.protocol.close();
  }
}
