import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { McpServer } from '@modelcontextprotocol/server';
import type { FleetHealth } from '../../src/index.js';
import type { Database } from '../../app/db/database.js';
import { createPgliteDatabase } from '../../app/db/pglite.js';
import { healthReport, type HealthSource } from '../../app/health.js';
import { createMainServer, type ServerDeps } from '../../app/server.js';
import { ToolError, defineTool, importServer } from '../../app/servers/import-server.js';
import { z } from 'zod';
import { call, connect, sessionContext, silent, text } from './support/mcp.js';

const TOOLS = [
  'calculator_add',
  'calculator_divide',
  'calculator_memory_clear',
  'calculator_memory_recall',
  'calculator_memory_store',
  'calculator_multiply',
  'calculator_power',
  'calculator_sqrt',
  'calculator_subtract',
  'health_check',
  'postgres_get_employee_schema',
  'postgres_query_employees',
];

function fleetStub(health: Partial<FleetHealth> | Error): HealthSource {
  return {
    instanceId: 'pod-a',
    health: async () => {
      if (health instanceof Error) throw health;
      return {
        store: 'ok',
        sessions: 3,
        transportSessions: 1,
        liveSessions: 2,
        instances: 2,
        closing: false,
        ...health,
      };
    },
  };
}

describe('main server (factory)', () => {
  let db: Database;
  let deps: ServerDeps;

  before(async () => {
    db = await createPgliteDatabase();
    deps = { db, fleet: () => fleetStub({}), sessionStore: 'redis', logger: silent };
  });
  after(() => db.close());

  it('imports the sub-servers with their prefixes plus health_check', async () => {
    const client = await connect(createMainServer(sessionContext(), deps));
    try {
      const { tools } = await client.listTools();
      assert.deepEqual(tools.map((t) => t.name).sort(), TOOLS);
      for (const tool of tools) {
        assert.ok((tool.description ?? '').length > 80, `${tool.name} has a real description`);
        assert.ok(
          tool.description?.includes(`Example: ${tool.name}(`),
          `${tool.name} has an example naming it`,
        );
        assert.doesNotMatch(tool.description ?? '', /\{tool\}|\{prefix\}/, `${tool.name}: placeholder left`);
        assert.ok(tool.outputSchema, `${tool.name} declares its output`);
        assert.ok(tool.title, `${tool.name} has a title`);
      }
      assert.match(client.getInstructions() ?? '', /calculator_/);
    } finally {
      await client.close();
    }
  });

  it('adds virustotal_file_report only when configured', async () => {
    const withVt = { ...deps, virustotal: { apiKey: 'k', baseUrl: 'http://127.0.0.1:1' } };
    const client = await connect(createMainServer(sessionContext(), withVt));
    try {
      const { tools } = await client.listTools();
      assert.deepEqual(tools.map((t) => t.name).sort(), [...TOOLS, 'virustotal_file_report'].sort());
    } finally {
      await client.close();
    }
  });

  it('health_check reports the original shape with the instance id', async () => {
    const client = await connect(createMainServer(sessionContext(), deps));
    try {
      const result = await call(client, 'health_check');
      assert.equal(result.isError, undefined, text(result));
      assert.deepEqual(result.structuredContent, {
        status: 'healthy',
        server_id: 'pod-a',
        unified_session_info: {
          redis_connection: 'ok',
          session_store: 'redis',
          application_sessions: { count: 3 },
          transport_sessions: { count: 1 },
          live_sessions: { count: 2 },
          shutting_down: false,
        },
      });
    } finally {
      await client.close();
    }
  });
});

describe('healthReport', () => {
  it('is unhealthy when the store is unreachable', async () => {
    const r = await healthReport(
      fleetStub({ store: 'error', sessions: null, transportSessions: null }),
      'redis',
    );
    assert.equal(r.status, 'unhealthy');
    assert.equal(r.unified_session_info.redis_connection, 'error');
    assert.deepEqual(r.unified_session_info.application_sessions, { count: null });
  });

  it('is unhealthy while shutting down', async () => {
    const r = await healthReport(fleetStub({ closing: true }), 'redis');
    assert.equal(r.status, 'unhealthy');
    assert.equal(r.unified_session_info.shutting_down, true);
  });

  it('is unhealthy when health() itself fails', async () => {
    const r = await healthReport(fleetStub(new Error('boom')), 'redis');
    assert.equal(r.status, 'unhealthy');
    assert.equal(r.server_id, 'pod-a');
  });

  it('says "disabled" for Redis when sessions are in memory', async () => {
    const r = await healthReport(fleetStub({}), 'memory');
    assert.equal(r.status, 'healthy');
    assert.equal(r.unified_session_info.redis_connection, 'disabled');
  });
});

describe('importServer', () => {
  const echo = defineTool({
    name: 'echo',
    title: 'Echo',
    description: 'Echoes.',
    inputSchema: { text: z.string().describe('Text.') },
    outputSchema: { text: z.string() },
    handler: async ({ text: t }) => {
      if (t === 'domain') throw new ToolError('a domain error');
      if (t === 'crash') throw new Error('secret internal detail: SELECT * FROM x');
      return { text: t };
    },
  });

  it('registers tools as prefix_name', async () => {
    const server = new McpServer({ name: 't', version: '1' });
    importServer(server, 'demo', [echo], silent);
    const client = await connect(server);
    try {
      assert.deepEqual(
        (await client.listTools()).tools.map((t) => t.name),
        ['demo_echo'],
      );
      assert.deepEqual((await call(client, 'demo_echo', { text: 'hi' })).structuredContent, { text: 'hi' });
    } finally {
      await client.close();
    }
  });

  it('shows ToolError messages and hides other errors behind a reference', async () => {
    const server = new McpServer({ name: 't', version: '1' });
    importServer(server, 'demo', [echo], silent);
    const client = await connect(server);
    try {
      const domain = await call(client, 'demo_echo', { text: 'domain' });
      assert.equal(domain.isError, true);
      assert.equal(text(domain), 'a domain error');
      const crash = await call(client, 'demo_echo', { text: 'crash' });
      assert.equal(crash.isError, true);
      assert.match(text(crash), /^Internal error in demo_echo \(reference [0-9a-f]{8}\)/);
      assert.doesNotMatch(text(crash), /secret|SELECT/);
    } finally {
      await client.close();
    }
  });

  it('rejects bad prefixes and duplicate names', () => {
    const server = new McpServer({ name: 't', version: '1' });
    assert.throws(() => importServer(server, 'Bad Prefix', [echo], silent), /Invalid sub-server prefix/);
    assert.throws(() => importServer(server, 'x'.repeat(70), [echo], silent), /Invalid tool name/);
    importServer(server, 'demo', [echo], silent);
    assert.throws(() => importServer(server, 'demo', [echo], silent), /already registered/);
  });
});
