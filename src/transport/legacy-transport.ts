import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage, MessageExtraInfo } from '@modelcontextprotocol/sdk/types.js';
import type { ClientConnection } from './connection.js';

/**
 * The SDK `Transport` of one legacy HTTP+SSE session, on its owner (the instance holding its
 * `GET /sse` stream). Every outgoing message (responses, notifications, server→client requests) is
 * an `event: message` on that one stream; client messages arrive through {@link receive}, from a
 * local `POST` or forwarded over the bus. Only the owner ever runs the session, so request ids need
 * no rewriting.
 */
export class LegacyTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: <T extends JSONRPCMessage>(message: T, extra?: MessageExtraInfo) => void;
  private closed = false;

  constructor(
    readonly sessionId: string,
    private readonly connection: ClientConnection,
    /** Called once when the transport closes (by the SDK `Protocol` or by us). */
    private readonly onClosed: () => void,
  ) {}

  /** Requests are not tracked: a legacy copy is never handed off while its stream is open. */
  get inFlight(): number {
    return 0;
  }

  async start(): Promise<void> {}

  /** Hands a client message to the SDK `Protocol`. */
  receive(message: JSONRPCMessage, extra?: MessageExtraInfo): void {
    if (this.closed) return;
    this.onmessage?.(message, extra);
  }

  async send(message: JSONRPCMessage): Promise<void> {
    // As the SDK's SSEServerTransport: a message for a closed stream is an error the Protocol reports.
    if (this.closed || this.connection.closed) throw new Error('Not connected');
    this.connection.write(message, undefined, 0);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.onClosed();
    this.onclose?.();
  }
}
