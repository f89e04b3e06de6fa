import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage, MessageExtraInfo } from '@modelcontextprotocol/sdk/types.js';
import type { SseSink } from '../http/sse-sink.js';

/**
 * The SDK `Transport` of one legacy HTTP+SSE session, on the instance holding its `GET /sse` stream.
 * Every outgoing message (responses, notifications, server→client requests) is an `event: message`
 * on that one stream; client messages arrive through {@link receive}, from a local `POST` or
 * forwarded over the bus. Only this instance ever runs the session, so request ids need no rewriting.
 */
export class LegacyTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: <T extends JSONRPCMessage>(message: T, extra?: MessageExtraInfo) => void;
  private closed = false;

  constructor(
    readonly sessionId: string,
    private readonly sink: SseSink,
    /** Called once when the transport closes (by the SDK `Protocol` or by us). */
    private readonly onClosed: () => void,
  ) {}

  async start(): Promise<void> {}

  /** Hands a client message to the SDK `Protocol`. */
  receive(message: JSONRPCMessage, extra?: MessageExtraInfo): void {
    if (this.closed) return;
    this.onmessage?.(message, extra);
  }

  async send(message: JSONRPCMessage): Promise<void> {
    // As the SDK's SSEServerTransport: a message for a closed stream is an error the Protocol reports.
    if (this.closed || this.sink.closed) throw new Error('Not connected');
    this.sink.write(message, undefined);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.onClosed();
    this.onclose?.();
  }
}
