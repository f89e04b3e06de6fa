import { z } from 'zod';
import type { Fleet } from 'mcp-fleet';
import { defineTool, type ToolDefinition } from './servers/import-server.js';

/** The part of the fleet the health check reads. */
export type HealthSource = Pick<Fleet, 'instanceId' | 'health'>;

const countShape = z.object({
  count: z.number().int().nullable().describe('null when the store is unreachable.'),
});

const healthShape = {
  status: z
    .enum(['healthy', 'unhealthy'])
    .describe('unhealthy when the session store is unreachable or the instance is shutting down.'),
  server_id: z.string().describe('Id of the instance that answered (stable for its lifetime).'),
  unified_session_info: z.object({
    redis_connection: z
      .enum(['ok', 'error', 'disabled'])
      .describe('ok/error: Redis answered or not; disabled: sessions are kept in memory (single instance).'),
    session_store: z.enum(['redis', 'memory']),
    application_sessions: countShape.describe('Live MCP sessions in the store, across all instances.'),
    transport_sessions: countShape.describe('Open transport streams across all instances.'),
    live_sessions: z
      .object({ count: z.number().int() })
      .describe('Sessions held in memory by this instance.'),
    shutting_down: z.boolean(),
  }),
};

/** The `health_check` result (the original design's shape, plus a few fields). */
export type HealthReport = z.output<z.ZodObject<typeof healthShape>>;

/**
 * Builds the health report from the fleet's view. Never throws: a failing `health()` is reported as unhealthy.
 * @param store - which session store the fleet was given.
 */
export async function healthReport(fleet: HealthSource, store: 'redis' | 'memory'): Promise<HealthReport> {
  const h = await fleet.health().catch(() => undefined);
  const storeOk = h?.store === 'ok';
  return {
    status: storeOk && h?.closing === false ? 'healthy' : 'unhealthy',
    server_id: fleet.instanceId,
    unified_session_info: {
      redis_connection: store === 'memory' ? 'disabled' : storeOk ? 'ok' : 'error',
      session_store: store,
      application_sessions: { count: h?.sessions ?? null },
      transport_sessions: { count: h?.transportSessions ?? null },
      live_sessions: { count: h?.liveSessions ?? 0 },
      shutting_down: h?.closing ?? false,
    },
  };
}

/**
 * The `health_check` tool. The server factory runs per session, before or after the fleet exists, so it gets a
 * getter rather than the fleet itself.
 */
export function healthCheckTool(fleet: () => HealthSource, store: 'redis' | 'memory'): ToolDefinition {
  return defineTool({
    name: 'health_check',
    title: 'Health check',
    description: `Reports whether this MCP server instance is healthy: whether its session store (Redis) answers, how many MCP sessions and open transport streams exist across all instances, and which instance answered.

Args: none.
Returns: { status: "healthy"|"unhealthy", server_id, unified_session_info: { redis_connection: "ok"|"error"|"disabled", session_store, application_sessions: { count }, transport_sessions: { count }, live_sessions: { count }, shutting_down } }.
Example: {tool}() → { "status": "healthy", "server_id": "pod-a-1", "unified_session_info": { "redis_connection": "ok", "application_sessions": { "count": 3 }, "transport_sessions": { "count": 1 }, ... } }`,
    inputSchema: {},
    outputSchema: healthShape,
    annotations: { readOnlyHint: true, idempotentHint: false, openWorldHint: false },
    handler: () => healthReport(fleet(), store),
  });
}
