import type { Transport, TransportSendOptions } from '@modelcontextprotocol/sdk/shared/transport.js';
import type {
  JSONRPCMessage,
  JSONRPCRequest,
  MessageExtraInfo,
  RequestId,
} from '@modelcontextprotocol/sdk/types.js';
import { isRequest, isResponse, type AnyResponse } from './jsonrpc.js';
import type { OutboundStream } from './outbound-stream.js';
import type { OutgoingRequests } from './outgoing-requests.js';

/** What a transport needs from its session. */
export interface TransportHooks {
  /** Instance-wide id rewriting of server→client requests. */
  outgoing: OutgoingRequests<FleetTransport>;
  /**
   * Delivers a message that belongs to no client request (logging, list_changed, requests made
   * outside a handler) to the session's standalone GET stream, wherever it is held. Rejects when the
   * message cannot be delivered (no GET stream): a server→client request then fails at once.
   */
  sendStandalone(message: JSONRPCMessage): Promise<void>;
  /** Non-fatal problems (logged, counted). */
  onError(err: Error): void;
  /** A client request was answered (or dropped): the copy may have become idle. */
  onSettled?(): void;
}

/**
 * The SDK `Transport` of one live session on this instance. The SDK `Protocol` (the user's server)
 * is connected to it unchanged; the HTTP front calls {@link receive} with client messages and binds
 * each client request to the stream its response must go to.
 */
export class FleetTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: <T extends JSONRPCMessage>(message: T, extra?: MessageExtraInfo) => void;

  private readonly byRequest = new Map<RequestId, OutboundStream>();
  private readonly requests = new Map<RequestId, JSONRPCRequest>();
  private readonly waiters = new Map<RequestId, (response: AnyResponse) => void>();
  private readonly answerHooks = new Map<RequestId, (response: AnyResponse) => Promise<AnyResponse>>();
  private closed = false;
  private syntheticSeq = 0;

  constructor(
    readonly sessionId: string,
    private readonly hooks: TransportHooks,
  ) {}

  async start(): Promise<void> {}

  /** Whether close() ran. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Number of client requests still being answered here. */
  get inFlight(): number {
    return this.byRequest.size + this.waiters.size;
  }

  /** Whether a client request with this id is being handled here. */
  handles(requestId: RequestId): boolean {
    return this.byRequest.has(requestId);
  }

  /** Routes the response of client request `id` (and messages related to it) to `stream`. */
  bind(id: RequestId, stream: OutboundStream, request?: JSONRPCRequest): void {
    this.byRequest.set(id, stream);
    stream.pending.add(id);
    if (request) this.requests.set(id, request);
  }

  /** The stream answering client request `id` while it runs here, and the request as it arrived. */
  running(id: RequestId): { stream: OutboundStream; request: JSONRPCRequest | undefined } | undefined {
    const stream = this.byRequest.get(id);
    return stream && { stream, request: this.requests.get(id) };
  }

  /**
   * Runs `hook` on the SDK's response to client request `id` before the client sees it (to persist
   * what the request changed); the hook may replace the response (e.g. with an error).
   */
  whenAnswered(id: RequestId, hook: (response: AnyResponse) => Promise<AnyResponse>): void {
    this.answerHooks.set(id, hook);
  }

  /** Hands a client message to the SDK Protocol. */
  receive(message: JSONRPCMessage, extra?: MessageExtraInfo): void {
    if (this.closed) return;
    this.onmessage?.(message, extra);
  }

  /**
   * Dispatches a request whose response is captured instead of sent (hydration replay, initialize).
   * `id` defaults to a synthetic id no client uses.
   */
  call(
    request: Omit<JSONRPCRequest, 'id'> & { id?: RequestId },
    extra?: MessageExtraInfo,
  ): Promise<AnyResponse> {
    const id = request.id ?? `fleet-replay-${++this.syntheticSeq}`;
    return new Promise((resolve) => {
      this.waiters.set(id, resolve);
      this.receive({ ...request, id } as JSONRPCRequest, extra);
    });
  }

  async send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    if (this.closed) return;
    if (isResponse(message)) return this.sendResponse(message);

    let out: JSONRPCMessage = message;
    if (isRequest(message)) {
      // Instance-unique id, so the client's answer finds this instance from any other one.
      const wireId = this.hooks.outgoing.rewrite(this, message.id);
      const params = message.params;
      const meta = params?._meta;
      const rewritten = { ...message, id: wireId };
      if (meta && meta.progressToken === message.id) {
        rewritten.params = { ...params, _meta: { ...meta, progressToken: wireId } };
      }
      out = rewritten;
    } else if (message.method === 'notifications/cancelled') {
      // The SDK cancels its own timed-out requests by their original id: translate it.
      const requestId = message.params?.requestId as RequestId | undefined;
      const wire = requestId === undefined ? undefined : this.hooks.outgoing.wireIdOf(this, requestId);
      if (wire) out = { ...message, params: { ...message.params, requestId: wire } };
    }

    const related = options?.relatedRequestId;
    if (related !== undefined) {
      if (this.waiters.has(related)) return; // related to a replayed request: nobody listens
      const stream = this.byRequest.get(related);
      if (stream && !stream.isEnded) return stream.push(out);
    }
    if (isRequest(out)) return this.hooks.sendStandalone(out); // its caller awaits and handles the failure
    // The SDK fires list_changed and other notifications without awaiting them: a store failure here
    // must be reported, not become an unhandled rejection.
    return this.hooks.sendStandalone(out).catch((err: unknown) => {
      this.hooks.onError(new Error(`notification ${out.method} not delivered`, { cause: err }));
    });
  }

  private async sendResponse(message: AnyResponse): Promise<void> {
    const id = message.id;
    if (id === null || id === undefined) {
      this.hooks.onError(new Error('response without id dropped'));
      return;
    }
    const waiter = this.waiters.get(id);
    if (waiter) {
      this.waiters.delete(id);
      waiter(message);
      this.hooks.onSettled?.();
      return;
    }
    const stream = this.byRequest.get(id);
    if (!stream) {
      this.hooks.onError(new Error(`no stream for response ${String(id)} (request cancelled or unknown)`));
      return;
    }
    const hook = this.answerHooks.get(id);
    if (hook) {
      this.answerHooks.delete(id);
      message = await hook(message);
    }
    // Still in flight until the answer is handed to its stream (a handoff waits for this).
    this.byRequest.delete(id);
    this.requests.delete(id);
    stream.pending.delete(id);
    const pushed = stream.push(message, stream.pending.size === 0);
    this.hooks.onSettled?.();
    await pushed;
  }

  /**
   * The client cancelled request `id`: the SDK answers nothing, so release its binding and end the
   * stream once no other response is due on it.
   */
  cancelled(id: RequestId): void {
    const stream = this.byRequest.get(id);
    if (!stream) return;
    this.byRequest.delete(id);
    this.requests.delete(id);
    this.answerHooks.delete(id);
    stream.pending.delete(id);
    if (stream.pending.size === 0) void stream.end();
    this.hooks.onSettled?.();
  }

  /** Releases request bindings of a stream whose requests will never be answered here. */
  unbindAll(stream: OutboundStream): void {
    for (const id of stream.pending) {
      this.byRequest.delete(id);
      this.requests.delete(id);
    }
    stream.pending.clear();
    this.hooks.onSettled?.();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.hooks.outgoing.forget(this);
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const [id, resolve] of waiters) {
      resolve({ jsonrpc: '2.0', id, error: { code: -32000, message: 'Session closed' } });
    }
    this.byRequest.clear();
    this.requests.clear();
    this.answerHooks.clear();
    this.onclose?.();
  }
}
