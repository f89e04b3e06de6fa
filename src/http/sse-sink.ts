import type { ServerResponse } from 'node:http';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { ClientConnection } from '../transport/connection.js';

/** Options of an SSE connection. */
export interface SseOptions {
  /** Extra response headers (e.g. `mcp-session-id`). */
  headers?: Record<string, string>;
  /** Priming event id (sent first with an empty `data`), for resumable streams. */
  primingEventId?: string;
  /** `retry` field sent with the priming event. */
  retryMs?: number;
  /** Interval of keep-alive comments. */
  keepAliveMs: number;
  /** Buffered bytes beyond which a client that does not read is cut off. @default 8 MiB */
  maxBufferBytes?: number;
  /** Send the head only when {@link SseSink.open} is called. */
  deferHead?: boolean;
  /** Called once when the connection closes for any reason. */
  onClose?: () => void;
}

/** Writes SSE events to one HTTP response. */
export class SseSink implements ClientConnection {
  private timer: NodeJS.Timeout | undefined;
  private done = false;
  /**
   * Text written in this turn of the event loop, sent as one chunk at the end of it (or with the
   * response's end): an answer and the stream's end cost one socket write, not one each.
   */
  private pending = '';

  constructor(
    private readonly res: ServerResponse,
    private readonly opts: SseOptions,
  ) {
    res.once('close', () => {
      this.finish();
      opts.onClose?.();
    });
    if (!opts.deferHead) this.open(opts.primingEventId);
  }

  /** Whether the response head was sent. */
  get opened(): boolean {
    return this.res.headersSent;
  }

  /** Sends the head (and a priming event) — deferred when a check may still answer with an error. */
  open(primingEventId?: string): void {
    const { res, opts } = this;
    if (res.headersSent || this.closed) return;
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
      ...opts.headers,
    });
    if (primingEventId !== undefined) {
      // The head goes out with the priming event, in one write.
      const retry = opts.retryMs !== undefined ? `retry: ${opts.retryMs}\n` : '';
      this.send(`id: ${primingEventId}\n${retry}data: \n\n`);
    } else {
      res.flushHeaders();
    }
    this.timer = setInterval(() => {
      if (!this.closed) this.send(': keep-alive\n\n');
    }, opts.keepAliveMs);
    this.timer.unref();
  }

  /** Runs `fn` once when the connection closes (at once if it already has). */
  onceClosed(fn: () => void): void {
    if (this.closed) fn();
    else this.res.once('close', fn);
  }

  get closed(): boolean {
    return this.done || this.res.destroyed || this.res.writableEnded;
  }

  write(message: JSONRPCMessage, eventId: string | undefined): void {
    if (this.closed) return;
    if (!this.res.headersSent) this.open();
    const id = eventId !== undefined ? `id: ${eventId}\n` : '';
    this.send(`event: message\n${id}data: ${JSON.stringify(message)}\n\n`);
  }

  /** {@inheritDoc ClientConnection.mark} */
  mark(eventId: string): void {
    if (this.closed) return;
    if (!this.res.headersSent) this.open();
    this.send(`id: ${eventId}\ndata: \n\n`);
  }

  /** Sends raw SSE text (the legacy `endpoint` event). */
  raw(text: string): void {
    if (!this.closed) this.send(text);
  }

  /** Writes, unless the client stopped reading: its unread backlog must not grow without bound. */
  private send(text: string): void {
    if (this.res.writableLength > (this.opts.maxBufferBytes ?? 8 * 1024 * 1024)) {
      this.finish();
      this.pending = '';
      this.res.destroy(); // a resumable client reconnects with Last-Event-ID and reads the log instead
      return;
    }
    if (this.pending === '') process.nextTick(this.flush);
    this.pending += text;
  }

  private readonly flush = (): void => {
    const text = this.pending;
    this.pending = '';
    if (text !== '' && !this.res.destroyed && !this.res.writableEnded) this.res.write(text);
  };

  /** Ends the response with whatever is still pending, in the same write. */
  private close(): void {
    const text = this.pending;
    this.pending = '';
    this.finish();
    this.res.end(text === '' ? undefined : text);
  }

  end(): void {
    if (this.closed) return;
    if (!this.res.headersSent) this.open();
    this.close();
  }

  /** {@inheritDoc ClientConnection.finished} */
  finished(): void {
    if (this.closed) return;
    if (this.res.headersSent) {
      this.close();
      return;
    }
    this.finish();
    this.res.writeHead(204, this.opts.headers).end();
  }

  /**
   * Closes the connection without ending the stream, after a `retry` hint, so the client resumes
   * (SSE polling, draining an instance).
   */
  disconnect(retryMs?: number): void {
    if (this.closed) return;
    // Never an implicit head: a client must see an SSE response, not a bare 200.
    if (!this.res.headersSent) this.open();
    if (retryMs !== undefined) this.send(`retry: ${retryMs}\n\n`);
    this.close();
  }

  private finish(): void {
    this.done = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
