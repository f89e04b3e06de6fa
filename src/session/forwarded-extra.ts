import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import type { MessageExtraInfo } from '@modelcontextprotocol/sdk/types.js';

/**
 * Header names never published on the bus: pub/sub messages can be read by anything allowed to
 * SUBSCRIBE (or MONITOR) on the Redis server, so credentials must not travel in them.
 */
const SENSITIVE_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie']);
/** Parts of header names that suggest a credential (`x-api-key`, `x-auth-token`, `x-client-secret`…). */
const SENSITIVE_PARTS = ['token', 'secret', 'key', 'auth', 'cookie', 'passw', 'credential'];

/**
 * The request headers a forwarded message carries to the session's owner: all but the sensitive
 * ones above. So on the owner, `extra.requestInfo.headers` of a message that arrived at another
 * instance lacks them (`Authorization` included), while a message that arrived at the owner itself
 * has every header; the principal check happened where the request arrived.
 */
export function forwardableHeaders(
  headers: Record<string, string | string[] | undefined>,
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    const lower = name.toLowerCase();
    if (SENSITIVE_HEADERS.has(lower) || SENSITIVE_PARTS.some((part) => lower.includes(part))) continue;
    out[name] = value;
  }
  return out;
}

/** `extra.authInfo` as forwarded: without its `token` (an empty string), for the same reason. */
export function forwardableAuthInfo(authInfo: AuthInfo | undefined): Record<string, unknown> | undefined {
  return authInfo ? { ...authInfo, token: '' } : undefined;
}

/** The `extra` handlers on the owner get for forwarded messages. */
export function forwardedExtra(
  headers: Record<string, string | string[]>,
  authInfo: Record<string, unknown> | undefined,
): MessageExtraInfo {
  return {
    authInfo: authInfo as AuthInfo | undefined,
    requestInfo: { headers } as MessageExtraInfo['requestInfo'],
  };
}
