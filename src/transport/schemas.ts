// The 2025-era wire checks mcp-fleet makes itself, with zod, as the v1 SDK's schemas make them (same
// acceptance for JSON-RPC messages), so that the library runs with either SDK line installed.
import { z } from 'zod';

/** The revisions of the 2025 era (what `MCP-Protocol-Version` may say on a session's requests). */
export const SUPPORTED_PROTOCOL_VERSIONS = [
  '2025-11-25',
  '2025-06-18',
  '2025-03-26',
  '2024-11-05',
  '2024-10-07',
];
/** What a request without `MCP-Protocol-Version` is taken to speak (the transport spec's default). */
export const DEFAULT_NEGOTIATED_PROTOCOL_VERSION = '2025-03-26';

const requestId = z.union([z.string(), z.number().int()]);
const meta = z.looseObject({
  progressToken: requestId.optional(),
  'io.modelcontextprotocol/related-task': z.object({ taskId: z.string() }).optional(),
});
const params = z.looseObject({ _meta: meta.optional() }).optional();

const request = z.strictObject({ jsonrpc: z.literal('2.0'), id: requestId, method: z.string(), params });
const notification = z.strictObject({ jsonrpc: z.literal('2.0'), method: z.string(), params });
const result = z.strictObject({
  jsonrpc: z.literal('2.0'),
  id: requestId,
  result: z.looseObject({ _meta: meta.optional() }),
});
const error = z.strictObject({
  jsonrpc: z.literal('2.0'),
  id: requestId.optional(),
  error: z.object({ code: z.number().int(), message: z.string(), data: z.unknown().optional() }),
});

/** One JSON-RPC 2.0 message (request, notification, result or error), as MCP frames them. */
export const JSONRPCMessageSchema = z.union([request, notification, result, error]);

/**
 * What mcp-fleet itself needs of an `initialize` (the user's SDK server validates the rest, and a
 * rejected initialize creates nothing).
 */
export const InitializeRequestSchema = z.object({
  method: z.literal('initialize'),
  params: z.looseObject({
    protocolVersion: z.string(),
    capabilities: z.looseObject({}),
    clientInfo: z.looseObject({ name: z.string(), version: z.string() }),
  }),
});

/** `logging/setLevel` levels (RFC 5424 names). */
export const LoggingLevelSchema = z.enum([
  'debug',
  'info',
  'notice',
  'warning',
  'error',
  'critical',
  'alert',
  'emergency',
]);
