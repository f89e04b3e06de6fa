import type {
  JSONRPCMessage,
  JSONRPCNotification,
  JSONRPCRequest,
  JSONRPCErrorResponse,
  JSONRPCResponse,
  RequestId,
} from '@modelcontextprotocol/sdk/types.js';

/** A JSON-RPC response, success or error. */
export type AnyResponse = JSONRPCResponse | JSONRPCErrorResponse;

// Cheap structural checks for messages that already passed JSONRPCMessageSchema at the boundary
// (the SDK's own guards re-run zod on every call).

/** A request: has `method` and `id`. */
export function isRequest(m: JSONRPCMessage): m is JSONRPCRequest {
  return 'method' in m && 'id' in m && m.id !== undefined;
}

/** A notification: has `method`, no `id`. */
export function isNotification(m: JSONRPCMessage): m is JSONRPCNotification {
  return 'method' in m && !('id' in m && m.id !== undefined);
}

/** A response: has `id` and `result` or `error`. */
export function isResponse(m: JSONRPCMessage): m is AnyResponse {
  return !('method' in m) && ('result' in m || 'error' in m);
}

/** A JSON-RPC error body with no id, as sent with HTTP errors. */
export function errorBody(
  code: number,
  message: string,
  id: RequestId | null = null,
  data?: unknown,
): string {
  const error = data === undefined ? { code, message } : { code, message, data };
  return JSON.stringify({ jsonrpc: '2.0', error, id });
}
