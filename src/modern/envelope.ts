import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

/** The protocol revision without sessions (`server/discover`, `subscriptions/listen`, `requestState`). */
export const MODERN_PROTOCOL_VERSION = '2026-07-28';
/** The `_meta` key a 2026-07-28 request names its revision under (the era is read from the body). */
export const PROTOCOL_VERSION_META_KEY = 'io.modelcontextprotocol/protocolVersion';
/** The 2025-era revisions the session engine serves (what a fleet of v1 servers tells a modern client). */
export const LEGACY_PROTOCOL_VERSIONS = [
  '2025-11-25',
  '2025-06-18',
  '2025-03-26',
  '2024-11-05',
  '2024-10-07',
];

/**
 * True when a POST body belongs to the 2026-07-28 era: a message carries the revision in its
 * `_meta` envelope (as the SDK classifies it: body first; the header is only cross-checked).
 */
export function isModernBody(messages: readonly JSONRPCMessage[]): boolean {
  return messages.some((m) => {
    if (!('method' in m)) return false;
    const meta = (m.params as { _meta?: Record<string, unknown> } | undefined)?._meta;
    return typeof meta === 'object' && meta !== null && PROTOCOL_VERSION_META_KEY in meta;
  });
}
