import type { ServerResponse } from 'node:http';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { ClientConnection } from '../transport/connection.js';
import { isResponse } from '../transport/jsonrpc.js';
import { SseSink } from './sse-sink.js';

/**
 * Answers a POST with one JSON body (the `jsonResponse` option). A handler that sends anything but
 * its response first (progress, logging, an elicitation) upgrades the answer to an SSE stream, since
 * a JSON body cannot carry it (the stock SDK transport drops such messages; an elicitation would hang).
 */
export class JsonSink implements ClientConnection {
  private readonly collected: JSONRPCMessage[] = [];
  private sse: SseSink | undefined;
  private done = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly headers: Record<string, string>,
    private readonly keepAliveMs: number,
    private readonly batch: boolean,
  ) {
    res.once('close', () => {
      this.done = true;
    });
  }

  get closed(): boolean {
    return this.sse ? this.sse.closed : this.done || this.res.destroyed;
  }

  /** Whether the head was sent (once answered, or once upgraded to SSE). */
  get opened(): boolean {
    return this.res.headersSent;
  }

  /** Nothing to send early: the head goes with the answer (or with the upgrade to SSE). */
  open(): void {}

  /** A JSON answer cannot be resumed: the connection is cut and the client sees the request fail. */
  disconnect(retryMs?: number): void {
    if (this.sse) return this.sse.disconnect(retryMs);
    this.done = true;
    this.res.destroy();
  }

  onceClosed(fn: () => void): void {
    if (this.closed) fn();
    else this.res.once('close', fn);
  }

  write(message: JSONRPCMessage, eventId: string | undefined, _seq: number): void {
    if (this.sse) return this.sse.write(message, eventId);
    if (isResponse(message)) {
      this.collected.push(message);
      return;
    }
    this.sse = new SseSink(this.res, { headers: this.headers, keepAliveMs: this.keepAliveMs });
    for (const m of this.collected) this.sse.write(m, undefined);
    this.collected.length = 0;
    this.sse.write(message, eventId);
  }

  end(): void {
    if (this.sse) return this.sse.end();
    if (this.closed) return;
    this.done = true;
    const body = this.batch ? this.collected : this.collected[0];
    this.res.writeHead(200, { 'content-type': 'application/json', ...this.headers });
    this.res.end(JSON.stringify(body));
  }
}
