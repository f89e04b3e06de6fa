import { McpServer } from '@modelcontextprotocol/server';
import type { SessionContext, SessionData } from 'mcp-fleet';
import type { Database } from './db/database.js';
import { healthCheckTool, type HealthSource } from './health.js';
import type { AppLogger } from './logger.js';
import { createCalculatorServer } from './servers/calculator.js';
import { importServer, ToolError } from './servers/import-server.js';
import { createPostgresServer } from './servers/postgres.js';
import { createVirusTotalServer, type VirusTotalOptions } from './servers/virustotal.js';

/** Name and version the server announces at initialize. */
export const SERVER_INFO = { name: 'mcp-fleet-reference', version: '0.1.0' } as const;

const INSTRUCTIONS = `Tools of this server:
- calculator_*: arithmetic (add, subtract, multiply, divide, power, sqrt) and a per-session memory register (memory_store, memory_recall, memory_clear).
- postgres_*: read-only search of the company's employees table (query_employees) and its column descriptions (get_employee_schema).
- virustotal_file_report (when enabled): antivirus verdicts for a file hash.
- health_check: status of the server instance and its session store.
Errors such as division by zero come back as tool results with isError=true and an explanation.`;

/**
 * The calculator's memory register lives in session data; a 2026-07-28 request has no session, so its
 * memory tools answer with an explanation (a tool error) instead of failing.
 */
const noSession = (): Promise<never> =>
  Promise.reject(
    new ToolError(
      'The memory register needs a session: this 2026-07-28 request has none (a client that connects with initialize has one).',
    ),
  );
const SESSIONLESS: SessionData = {
  get: noSession,
  snapshot: noSession,
  set: noSession,
  update: noSession,
  clear: noSession,
};

/** What the per-session server factory needs from the process. */
export interface ServerDeps {
  /** Read-only employee database, shared by all sessions of this instance. */
  db: Database;
  /** The fleet, for `health_check` (a getter: sessions may be built before `createFleet` returned). */
  fleet: () => HealthSource;
  /** Which session store the fleet uses. */
  sessionStore: 'redis' | 'memory';
  /** VirusTotal settings; omitted → no `virustotal_*` tools. */
  virustotal?: VirusTotalOptions | undefined;
  /** Process logger (bound to the instance id). */
  logger: AppLogger;
}

/**
 * Builds the main MCP server for one session (2025 era) or one request (2026-07-28): the health check
 * plus the calculator, PostgreSQL and (when configured) VirusTotal sub-servers, imported with their
 * prefixes. It is an SDK v2 server, so the fleet serves clients of both eras with it.
 */
export function createMainServer(ctx: SessionContext, deps: ServerDeps): McpServer {
  const server = new McpServer(SERVER_INFO, { instructions: INSTRUCTIONS });
  const logger = deps.logger.child({ sessionId: ctx.sessionId, principal: ctx.principal });
  healthCheckTool(deps.fleet, deps.sessionStore).register(server, 'health_check', logger);
  importServer(
    server,
    'calculator',
    createCalculatorServer(ctx.era === 'modern' ? SESSIONLESS : ctx.data),
    logger,
  );
  importServer(server, 'postgres', createPostgresServer(deps.db), logger);
  if (deps.virustotal !== undefined) {
    importServer(server, 'virustotal', createVirusTotalServer(deps.virustotal), logger);
  }
  return server;
}
