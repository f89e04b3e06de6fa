import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { SUPPORTED_PROTOCOL_VERSIONS } from '../transport/schemas.js';

/** The protocol revision without sessions (`server/discover`, `subscriptions/listen`, `requestState`). */
export const MODERN_PROTOCOL_VERSION = '2026-07-28';
/** The `_meta` key a 2026-07-28 request names its revision under (the era is read from the body). */
export const PROTOCOL_VERSION_META_KEY = 'io.modelcontextprotocol/protocolVersion';

/**
 * True when a POST body belongs to the 2026-07-28 era: a message carries the revision in its
 * `_meta` envelope (as the SDK classifies it: body first; the header is only cross-checked).
 */
function isModernBody(messages: readonly JSONRPCMessage[]): boolean {
  return messages.some((m) => {
    if (!('method' in m)) return false;
    const meta = (m.params as { _meta?: Record<string, unknown> } | undefined)?._meta;
    return typeof meta === 'object' && meta !== null && PROTOCOL_VERSION_META_KEY in meta;
  });
}

/**
 * True when a POST without a session belongs to the 2026-07-28 era: its body carries the envelope,
 * or its `MCP-Protocol-Version` header names a revision past the 2025 ones (the SDK then answers a
 * missing or partial envelope with -32602 naming the request, as the spec wants, rather than the
 * session engine's "Mcp-Session-Id required").
 */
export function isModernPost(
  header: string | string[] | undefined,
  messages: readonly JSONRPCMessage[],
): boolean {
  if (isModernBody(messages)) return true;
  const version = Array.isArray(header) ? header[0] : header;
  if (version === undefined || SUPPORTED_PROTOCOL_VERSIONS.includes(version)) return false;
  // Dated revisions compare as strings; an initialize stays with the session engine (which refuses it).
  return (
    version >= MODERN_PROTOCOL_VERSION && !messages.some((m) => 'method' in m && m.method === 'initialize')
  );
}
