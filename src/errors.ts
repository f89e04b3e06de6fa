/** Stable error codes of mcp-fleet; each maps to one HTTP status and JSON-RPC code in {@link ERROR_TABLE}. */
export type FleetErrorCode =
  | 'SESSION_NOT_FOUND'
  | 'SESSION_ID_REQUIRED'
  | 'SESSION_ID_MALFORMED'
  | 'SESSION_EXISTS'
  | 'UNSUPPORTED_PROTOCOL_VERSION'
  | 'ERA_UNSUPPORTED'
  | 'NOT_ACCEPTABLE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'BODY_TOO_LARGE'
  | 'PARSE_ERROR'
  | 'INVALID_REQUEST'
  | 'METHOD_NOT_ALLOWED'
  | 'EXPECTATION_FAILED'
  | 'NOT_FOUND'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'CONFLICT'
  | 'EVENT_ID_MALFORMED'
  | 'STORE_UNAVAILABLE'
  | 'SESSION_MOVING'
  | 'SHUTTING_DOWN'
  | 'TOO_MANY_STREAMS'
  | 'DATA_CONFLICT'
  | 'DATA_TOO_LARGE'
  | 'OWNER_GONE'
  | 'NOT_OWNER'
  | 'REQUEST_LOST'
  | 'INTERNAL';

/** HTTP status and JSON-RPC error code of every {@link FleetErrorCode} — the one place they are mapped. */
export const ERROR_TABLE: Record<FleetErrorCode, { status: number; rpc: number }> = {
  SESSION_NOT_FOUND: { status: 404, rpc: -32001 },
  SESSION_ID_REQUIRED: { status: 400, rpc: -32000 },
  SESSION_ID_MALFORMED: { status: 400, rpc: -32000 },
  SESSION_EXISTS: { status: 409, rpc: -32000 },
  UNSUPPORTED_PROTOCOL_VERSION: { status: 400, rpc: -32000 },
  // A 2026-07-28 request to a fleet of v1 servers: `data.supported` lists the 2025 revisions, which
  // makes a dual-era client fall back to `initialize` at once (the spec's -32022).
  ERA_UNSUPPORTED: { status: 400, rpc: -32022 },
  NOT_ACCEPTABLE: { status: 406, rpc: -32000 },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, rpc: -32000 },
  BODY_TOO_LARGE: { status: 413, rpc: -32000 },
  PARSE_ERROR: { status: 400, rpc: -32700 },
  INVALID_REQUEST: { status: 400, rpc: -32600 },
  METHOD_NOT_ALLOWED: { status: 405, rpc: -32000 },
  EXPECTATION_FAILED: { status: 417, rpc: -32000 },
  NOT_FOUND: { status: 404, rpc: -32000 },
  UNAUTHORIZED: { status: 401, rpc: -32000 },
  FORBIDDEN: { status: 403, rpc: -32000 },
  CONFLICT: { status: 409, rpc: -32000 },
  EVENT_ID_MALFORMED: { status: 400, rpc: -32000 },
  STORE_UNAVAILABLE: { status: 503, rpc: -32603 },
  // The session's ownership changed under every routing attempt (owners draining or dying one after
  // another): retry, but it is not a store failure (not counted as one).
  SESSION_MOVING: { status: 503, rpc: -32603 },
  SHUTTING_DOWN: { status: 503, rpc: -32603 },
  TOO_MANY_STREAMS: { status: 503, rpc: -32603 },
  DATA_CONFLICT: { status: 409, rpc: -32000 },
  DATA_TOO_LARGE: { status: 413, rpc: -32602 },
  OWNER_GONE: { status: 404, rpc: -32001 },
  NOT_OWNER: { status: 503, rpc: -32603 },
  REQUEST_LOST: { status: 503, rpc: -32603 },
  INTERNAL: { status: 500, rpc: -32603 },
};

/** An error with a stable code; the HTTP front turns it into a status and a JSON-RPC error body. */
export class FleetError extends Error {
  override readonly name = 'FleetError';
  /** The JSON-RPC error's `data`, when it has one. */
  readonly data: unknown;

  constructor(
    readonly code: FleetErrorCode,
    message: string,
    options?: { cause?: unknown; data?: unknown },
  ) {
    super(message, options);
    this.data = options?.data;
  }

  /** HTTP status for this error. */
  get status(): number {
    return ERROR_TABLE[this.code].status;
  }

  /** JSON-RPC error code for this error. */
  get rpcCode(): number {
    return ERROR_TABLE[this.code].rpc;
  }
}

/** Thrown by an `authenticate` hook to answer 401 with a `WWW-Authenticate` challenge. */
export class UnauthorizedError extends FleetError {
  constructor(
    message = 'Unauthorized',
    readonly wwwAuthenticate = 'Bearer',
  ) {
    super('UNAUTHORIZED', message);
  }
}

/** Wraps a driver failure (connection refused, timeout) as a 503. */
export function storeUnavailable(cause: unknown): FleetError {
  if (cause instanceof FleetError) return cause;
  // The driver's words (WRONGPASS, OOM, addresses…) go to the logs through `cause`, not to clients.
  return new FleetError('STORE_UNAVAILABLE', 'Session store unavailable', { cause });
}

/** Any thrown value as an Error (for `onError` hooks and logs). */
export function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

/** A write fenced off: another instance owns the session now (its writer steps down). */
export function notOwner(sessionId: string): FleetError {
  return new FleetError('NOT_OWNER', `Session ${sessionId} is owned by another instance now`);
}
