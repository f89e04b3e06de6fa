// The reference server (app/) as a fleet: 3 separate processes of test/fixtures/reference-instance.ts sharing
// Redis and a seeded PostgreSQL, JWT auth on, VirusTotal pointed at a local stub, every request sent through
// the round-robin proxy (each request goes to the next instance). Every tool is called with the official SDK
// client; a legacy HTTP+SSE client and the auth failures are checked across instances too.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { CHALLENGE_INVALID, CHALLENGE_MISSING, signToken, type JwtSettings } from '../../app/auth.js';
import { seedDatabase } from '../../app/db/seed.js';
import { startInstance, type Instance } from '../helpers/instances.js';
import { initBody, rawPost, textOf } from '../helpers/mcp-client.js';
import { startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { startProxy, type Proxy } from '../helpers/proxy.js';
import { TestRedis } from '../helpers/redis-server.js';
import { waitFor } from '../helpers/wait.js';

const ENTRY = 'test/fixtures/reference-instance.ts';
const JWT: JwtSettings = { secret: 'fleet-e2e-secret-'.padEnd(48, 'k'), algorithm: 'HS256' };
const VT_API_KEY = 'vt-stub-key-fleet-e2e';
const PROTOCOL_VERSION = '2025-06-18';

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
  'virustotal_file_report',
];

// ---------------------------------------------------------------------------------------------------------
// VirusTotal stub
// ---------------------------------------------------------------------------------------------------------

const EICAR_MD5 = '44d88612fea8a8f36de82e1278abb02f';
const EICAR_SHA256 = '275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f';
const UNKNOWN_SHA256 = 'ab'.repeat(32);

const EICAR_REPORT = {
  data: {
    id: EICAR_SHA256,
    type: 'file',
    attributes: {
      sha256: EICAR_SHA256,
      sha1: '3395856ce81f2b7382dee72602f798b642f14140',
      md5: EICAR_MD5,
      meaningful_name: 'eicar.com',
      type_description: 'DOS COM',
      size: 68,
      reputation: -1500,
      last_analysis_date: 1_700_000_000,
      names: ['eicar.com', 'eicar.txt'],
      last_analysis_stats: {
        malicious: 2,
        suspicious: 1,
        undetected: 3,
        harmless: 0,
        timeout: 0,
        'type-unsupported': 1,
        failure: 0,
      },
      last_analysis_results: {
        Beta: { category: 'malicious', engine_name: 'Beta', result: 'EICAR-Test-File' },
        Alpha: { category: 'malicious', engine_name: 'Alpha', result: 'Eicar' },
        Mid: { category: 'suspicious', engine_name: 'Mid', result: null },
        Clean: { category: 'undetected', engine_name: 'Clean', result: null },
      },
      popular_threat_classification: { suggested_threat_label: 'virus.eicar/test' },
    },
  },
};

interface VtStub {
  url: string;
  /** Every request the stub got: path and the `x-apikey` it carried. */
  seen: { path: string; apiKey: string | undefined }[];
  close(): Promise<void>;
}

async function startVirusTotalStub(): Promise<VtStub> {
  const seen: VtStub['seen'] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = req.url ?? '/';
    const apiKey = req.headers['x-apikey'];
    seen.push({ path, apiKey: typeof apiKey === 'string' ? apiKey : undefined });
    const send = (status: number, body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(status, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(text),
      });
      res.end(text);
    };
    if (apiKey !== VT_API_KEY) return send(401, { error: { code: 'WrongCredentialsError' } });
    if (path === `/api/v3/files/${EICAR_MD5}`) return send(200, EICAR_REPORT);
    return send(404, { error: { code: 'NotFoundError', message: `File "${path}" not found` } });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/api/v3`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------------------

/** One HTTP exchange a client made, with the instance the proxy sent it to. */
interface Hop {
  /** HTTP method, plus the JSON-RPC method (and tool name for tools/call) of a POST body. */
  what: string;
  status: number;
  target: string | null;
}

/** A fetch that records which instance answered each request (the proxy's `x-proxy-target` header). */
function tracingFetch(hops: Hop[], extraHeaders: Record<string, string> = {}): FetchLike {
  return async (url, init) => {
    const headers = new Headers(init?.headers);
    for (const [k, v] of Object.entries(extraHeaders)) headers.set(k, v);
    const res = await fetch(url, { ...init, headers });
    const method = init?.method ?? 'GET';
    let what = method;
    if (typeof init?.body === 'string') {
      try {
        const msg = JSON.parse(init.body) as { method?: string; params?: { name?: string } };
        what = `${method} ${msg.method ?? 'response'}${msg.method === 'tools/call' ? ` ${msg.params?.name}` : ''}`;
      } catch {
        what = `${method} (unparsed body)`;
      }
    }
    hops.push({ what, status: res.status, target: res.headers.get('x-proxy-target') });
    return res;
  };
}

interface Connected {
  client: Client;
  hops: Hop[];
  errors: Error[];
}

/** An SDK client over Streamable HTTP with a bearer token, through `baseUrl`. */
async function connectStreamable(baseUrl: string, token: string, name: string): Promise<Connected> {
  const hops: Hop[] = [];
  const errors: Error[] = [];
  const transport = new StreamableHTTPClientTransport(new URL('/mcp', baseUrl), {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
    fetch: tracingFetch(hops),
  });
  const client = new Client({ name, version: '1.0.0' });
  client.onerror = (e) => errors.push(e);
  await client.connect(transport);
  return { client, hops, errors };
}

/** An SDK client over the legacy HTTP+SSE transport, the token in both requestInit and eventSourceInit. */
async function connectLegacy(baseUrl: string, token: string, name: string): Promise<Connected> {
  const hops: Hop[] = [];
  const errors: Error[] = [];
  const authorization = `Bearer ${token}`;
  const transport = new SSEClientTransport(new URL('/sse', baseUrl), {
    requestInit: { headers: { authorization } },
    // The stream's own fetch: sets the header too, so the GET carries it whatever the SDK version merges.
    eventSourceInit: { fetch: tracingFetch(hops, { authorization }) },
    fetch: tracingFetch(hops),
  });
  const client = new Client({ name, version: '1.0.0' });
  client.onerror = (e) => errors.push(e);
  await client.connect(transport);
  return { client, hops, errors };
}

async function call(
  client: Client,
  name: string,
  args: Record<string, unknown> = {},
): Promise<CallToolResult> {
  return (await client.callTool({ name, arguments: args })) as CallToolResult;
}

/** Calls a tool that must succeed and returns its structured content. */
async function ok<T = Record<string, unknown>>(
  client: Client,
  name: string,
  args: Record<string, unknown> = {},
): Promise<T> {
  const result = await call(client, name, args);
  assert.notEqual(result.isError, true, `${name} failed: ${JSON.stringify(result.content)}`);
  assert.ok(result.structuredContent, `${name} has structured content`);
  // The text block mirrors the structured content (for clients that only read text).
  assert.deepEqual(JSON.parse(textOf(result)), result.structuredContent, `${name}: text matches structure`);
  return result.structuredContent as T;
}

/** Calls a tool that must answer with an error result (not a protocol error); returns its text. */
async function fails(client: Client, name: string, args: Record<string, unknown> = {}): Promise<string> {
  const result = await call(client, name, args);
  assert.equal(result.isError, true, `${name} should fail: ${JSON.stringify(result)}`);
  assert.equal(result.structuredContent, undefined, `${name}: no structured content on error`);
  return textOf(result);
}

/** The instance the proxy sent the last `tools/call` of `tool` to. */
function lastTarget(hops: Hop[], tool: string): string {
  const hop = hops.findLast((h) => h.what === `POST tools/call ${tool}`);
  assert.ok(hop?.target, `no proxied call of ${tool} in ${JSON.stringify(hops)}`);
  return hop.target;
}

interface HealthReport {
  status: string;
  server_id: string;
  unified_session_info: {
    redis_connection: string;
    session_store: string;
    application_sessions: { count: number | null };
    transport_sessions: { count: number | null };
    live_sessions: { count: number };
    shutting_down: boolean;
  };
}

interface EmployeePage {
  employees: {
    first_name: string;
    last_name: string;
    department: string;
    salary: number;
    hire_date: string;
  }[];
  total: number;
  limit: number;
  offset: number;
  next_offset: number | null;
}

// ---------------------------------------------------------------------------------------------------------

describe('reference server fleet: 3 instances, Redis, PostgreSQL, JWT, behind the round-robin proxy', () => {
  let redis: TestRedis;
  let postgres: TestPostgres;
  let vt: VtStub;
  let proxy: Proxy;
  let instances: Instance[] = [];
  /** Instance URL → the `server_id` its health_check reports (its INSTANCE_ID). */
  const serverIdOf = new Map<string, string>();
  const clients: Client[] = [];
  let alice: string;
  let bob: string;

  before(async () => {
    // The proxy starts empty: its port goes into MCP_ALLOWED_HOSTS/ORIGINS before the instances start.
    // Each is assigned as soon as it runs, so after() stops it even when another one failed to start.
    await Promise.all([
      TestRedis.start().then((r) => (redis = r)),
      startPostgres().then((p) => (postgres = p)),
      startVirusTotalStub().then((s) => (vt = s)),
      startProxy([]).then((p) => (proxy = p)),
    ]);
    await seedDatabase(postgres.url);
    const proxyHost = `127.0.0.1:${proxy.port}`;
    const env = {
      ENVIRONMENT: 'development',
      REDIS_URL: redis.url,
      DATABASE_URL: postgres.url,
      JWT_SECRET_KEY: JWT.secret,
      VIRUSTOTAL_API_KEY: VT_API_KEY,
      VIRUSTOTAL_BASE_URL: vt.url,
      // Clients address the proxy, which forwards their Host header unchanged.
      MCP_ALLOWED_HOSTS: `${proxyHost},localhost:${proxy.port}`,
      MCP_ALLOWED_ORIGINS: `http://${proxyHost},http://localhost:${proxy.port}`,
      LOG_LEVEL: 'warn',
    };
    // Named instances: the health_check of each reports its name as server_id.
    instances = await Promise.all(
      [0, 1, 2].map((n) =>
        startInstance({ entry: ENTRY, name: `ref-${n}`, env: { ...env, INSTANCE_ID: `ref-${n}` } }),
      ),
    );
    instances.forEach((i, n) => serverIdOf.set(i.url, `ref-${n}`));
    // As a readiness gate in front of pods: the proxy routes to an instance once its /readyz is 200
    // (subscribed and its first heartbeat landed, one round trip after it listens).
    await Promise.all(
      instances.map((i) =>
        waitFor(`${i.name} /readyz 200`, async () => (await fetch(`${i.url}/readyz`)).status === 200),
      ),
    );
    proxy.setTargets(instances.map((i) => i.url));
    [alice, bob] = await Promise.all([signToken(JWT, { sub: 'alice' }), signToken(JWT, { sub: 'bob' })]);
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await proxy?.close();
    const exits = await Promise.all(instances.map((i) => i.stop()));
    await Promise.all([redis?.stop(), postgres?.stop(), vt?.close()]);
    exits.forEach((exit, n) => assert.equal(exit.code, 0, `instance ${n} exit: ${instances[n]?.output()}`));
  });

  /** Instance output, for assertion messages. */
  const outputs = () => instances.map((i) => `--- ${i.name}\n${i.output()}`).join('\n');

  it('answers /livez and /readyz on every instance', async () => {
    for (const i of instances) {
      const live = await fetch(`${i.url}/livez`);
      assert.equal(live.status, 200);
      assert.deepEqual(await live.json(), { status: 'ok' });
      const ready = await fetch(`${i.url}/readyz`);
      assert.equal(ready.status, 200, `${i.name} not ready:\n${outputs()}`);
      assert.deepEqual(await ready.json(), { status: 'ready' });
    }
  });

  it('lists all 13 tools, each with an output schema', async () => {
    const { client } = await connectStreamable(proxy.url, alice, 'lister');
    clients.push(client);
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), TOOLS);
    for (const t of tools) assert.ok(t.outputSchema, `${t.name} declares an output schema`);
  });

  it('serves every tool through the SDK client, requests spread over all 3 instances', async () => {
    proxy.resetCounters();
    const { client, hops, errors } = await connectStreamable(proxy.url, alice, 'every-tool');
    clients.push(client);
    await client.listTools(); // lets the client validate structured content against the output schemas

    // health_check: each call lands on the next instance, and runs on the session's one copy.
    const seen = new Set<string>();
    const landed = new Set<string>();
    for (let k = 0; k < 6; k++) {
      const h = await ok<HealthReport>(client, 'health_check');
      landed.add(lastTarget(hops, 'health_check'));
      seen.add(h.server_id);
      assert.equal(h.status, 'healthy');
      assert.equal(h.unified_session_info.redis_connection, 'ok');
      assert.equal(h.unified_session_info.session_store, 'redis');
      assert.equal(h.unified_session_info.shutting_down, false);
      assert.ok((h.unified_session_info.application_sessions.count ?? 0) >= 1, JSON.stringify(h));
      assert.equal(typeof h.unified_session_info.transport_sessions.count, 'number');
    }
    assert.equal(landed.size, 3, 'the calls landed on all 3 instances');
    assert.equal(seen.size, 1, 'and all ran on the one copy of the session');
    assert.ok([...serverIdOf.values()].includes([...seen][0]!), 'on one of the instances');
    assert.deepEqual(
      [...landed].map((t) => serverIdOf.get(t)).sort(),
      [...serverIdOf.values()].sort(),
      'every instance forwarded a call',
    );

    // Calculator arithmetic.
    assert.deepEqual(await ok(client, 'calculator_add', { a: 2, b: 3.5 }), { result: 5.5 });
    assert.deepEqual(await ok(client, 'calculator_subtract', { a: 10, b: 4 }), { result: 6 });
    assert.deepEqual(await ok(client, 'calculator_multiply', { a: 3.5, b: 2 }), { result: 7 });
    assert.deepEqual(await ok(client, 'calculator_divide', { a: 7, b: 2 }), { result: 3.5 });
    assert.deepEqual(await ok(client, 'calculator_power', { a: 2, b: 10 }), { result: 1024 });
    assert.deepEqual(await ok(client, 'calculator_sqrt', { x: 16 }), { result: 4 });

    // Calculator memory (the cross-instance part has its own test below).
    assert.deepEqual(await ok(client, 'calculator_memory_recall'), { memory: null });
    assert.deepEqual(await ok(client, 'calculator_memory_store', { value: 42 }), {
      memory: 42,
      previous: null,
    });
    assert.deepEqual(await ok(client, 'calculator_memory_recall'), { memory: 42 });
    assert.deepEqual(await ok(client, 'calculator_memory_clear'), { memory: null, previous: 42 });
    assert.deepEqual(await ok(client, 'calculator_memory_recall'), { memory: null });

    // PostgreSQL (the seeded sample data: 20 employees, 4 in Sales).
    const sales = await ok<EmployeePage>(client, 'postgres_query_employees', {
      department: 'sales',
      limit: 3,
    });
    assert.equal(sales.total, 4);
    assert.equal(sales.employees.length, 3);
    assert.equal(sales.limit, 3);
    assert.equal(sales.offset, 0);
    assert.equal(sales.next_offset, 3);
    assert.ok(sales.employees.every((e) => e.department === 'Sales'));
    const names = sales.employees.map((e) => e.last_name);
    assert.deepEqual(names, [...names].sort(), 'sorted by last_name by default');
    const rest = await ok<EmployeePage>(client, 'postgres_query_employees', {
      department: 'Sales',
      limit: 3,
      offset: 3,
    });
    assert.equal(rest.employees.length, 1);
    assert.equal(rest.next_offset, null);
    const top = await ok<EmployeePage>(client, 'postgres_query_employees', {
      sort_by: 'salary',
      sort_order: 'desc',
      limit: 1,
    });
    assert.equal(top.total, 20);
    assert.deepEqual(
      {
        name: `${top.employees[0]?.first_name} ${top.employees[0]?.last_name}`,
        salary: top.employees[0]?.salary,
      },
      { name: 'Grace Hopper', salary: 185000 },
    );
    assert.match(top.employees[0]?.hire_date ?? '', /^\d{4}-\d{2}-\d{2}$/);
    const schema = await ok<{
      table: string;
      row_count: number;
      columns: {
        name: string;
        type: string;
        nullable: boolean;
        sortable: boolean;
        filter_arguments: string[];
      }[];
    }>(client, 'postgres_get_employee_schema');
    assert.equal(schema.table, 'employees');
    assert.equal(schema.row_count, 20);
    assert.deepEqual(
      schema.columns.map((c) => c.name),
      [
        'id',
        'first_name',
        'last_name',
        'email',
        'department',
        'job_title',
        'salary',
        'hire_date',
        'manager_id',
      ],
    );
    const salary = schema.columns.find((c) => c.name === 'salary');
    assert.deepEqual(
      {
        type: salary?.type,
        nullable: salary?.nullable,
        sortable: salary?.sortable,
        filters: salary?.filter_arguments,
      },
      { type: 'numeric(12,2)', nullable: false, sortable: true, filters: ['min_salary', 'max_salary'] },
    );

    // VirusTotal, against the stub.
    vt.seen.length = 0;
    const report = await ok<{
      hash: string;
      sha256: string;
      verdict: string;
      stats: Record<string, number>;
      engines_total: number;
      detections: { engine: string; category: string; result: string | null }[];
      threat_label: string | null;
      link: string | null;
      last_analysis_date: string | null;
    }>(client, 'virustotal_file_report', { hash: EICAR_MD5.toUpperCase() });
    assert.equal(report.hash, EICAR_MD5);
    assert.equal(report.sha256, EICAR_SHA256);
    assert.equal(report.verdict, 'malicious');
    assert.equal(report.engines_total, 7);
    assert.equal(report.stats.type_unsupported, 1);
    assert.deepEqual(
      report.detections.map((d) => d.engine),
      ['Alpha', 'Beta', 'Mid'],
    );
    assert.equal(report.threat_label, 'virus.eicar/test');
    assert.equal(report.link, `https://www.virustotal.com/gui/file/${EICAR_SHA256}`);
    assert.equal(report.last_analysis_date, new Date(1_700_000_000_000).toISOString());
    assert.deepEqual(vt.seen, [{ path: `/api/v3/files/${EICAR_MD5}`, apiKey: VT_API_KEY }]);

    // Every instance served some of these calls, and the proxy saw no failure.
    const targets = new Set(hops.filter((h) => h.what.startsWith('POST tools/call')).map((h) => h.target));
    assert.equal(targets.size, 3, `tool calls went to ${[...targets].join(', ')}`);
    for (const i of instances) assert.ok((proxy.requests.get(i.url) ?? 0) > 0, `${i.name} got no request`);
    assert.ok(
      [...proxy.failures.values()].every((n) => n === 0),
      'proxy failures',
    );
    assert.deepEqual(
      hops.filter((h) => h.status >= 400),
      [],
    );
    assert.deepEqual(
      errors.map((e) => e.message),
      [],
    );
  });

  it('calculator_memory_store on one instance, calculator_memory_recall on the others', async () => {
    const { client, hops } = await connectStreamable(proxy.url, alice, 'memory');
    clients.push(client);
    assert.deepEqual(await ok(client, 'calculator_memory_store', { value: 1234.5 }), {
      memory: 1234.5,
      previous: null,
    });
    const storedOn = lastTarget(hops, 'calculator_memory_store');
    const recalledOn = new Set<string>();
    for (let k = 0; k < 6 && recalledOn.size < 2; k++) {
      assert.deepEqual(await ok(client, 'calculator_memory_recall'), { memory: 1234.5 });
      const on = lastTarget(hops, 'calculator_memory_recall');
      if (on !== storedOn) recalledOn.add(on);
    }
    assert.equal(recalledOn.size, 2, 'recalled on both other instances');

    // A replace sees the value stored earlier as `previous`, whichever instance it lands on.
    const second = await ok(client, 'calculator_memory_store', { value: -7 });
    assert.deepEqual(second, { memory: -7, previous: 1234.5 });
    assert.deepEqual(await ok(client, 'calculator_memory_recall'), { memory: -7 });

    // Memory belongs to the session: another session of the same principal, and another principal, see none.
    const other = await connectStreamable(proxy.url, alice, 'memory-2');
    clients.push(other.client);
    assert.deepEqual(await ok(other.client, 'calculator_memory_recall'), { memory: null });
    const ofBob = await connectStreamable(proxy.url, bob, 'memory-bob');
    clients.push(ofBob.client);
    assert.deepEqual(await ok(ofBob.client, 'calculator_memory_recall'), { memory: null });
    assert.deepEqual(await ok(client, 'calculator_memory_recall'), { memory: -7 });
  });

  it('answers domain and validation errors as isError results, on any instance', async () => {
    const { client, hops, errors } = await connectStreamable(proxy.url, alice, 'errors');
    clients.push(client);
    await client.listTools();
    assert.match(await fails(client, 'calculator_divide', { a: 1, b: 0 }), /Division by zero/);
    assert.match(await fails(client, 'calculator_sqrt', { x: -4 }), /negative number \(-4\)/);
    assert.match(await fails(client, 'calculator_power', { a: -8, b: 0.5 }), /no real-number result/);
    assert.match(await fails(client, 'calculator_power', { a: 10, b: 400 }), /overflowed/);
    assert.match(
      await fails(client, 'postgres_query_employees', { min_salary: 200000, max_salary: 100000 }),
      /min_salary must not be greater than max_salary/,
    );
    assert.match(
      await fails(client, 'postgres_query_employees', { hired_after: '2024-13-45' }),
      /YYYY-MM-DD/,
    );
    assert.match(await fails(client, 'calculator_add', { a: 'one', b: 2 }), /Input validation error/);
    assert.match(await fails(client, 'virustotal_file_report', { hash: 'not-a-hash' }), /MD5 \(32\), SHA-1/);
    vt.seen.length = 0;
    assert.match(
      await fails(client, 'virustotal_file_report', { hash: UNKNOWN_SHA256 }),
      new RegExp(`no report for ${UNKNOWN_SHA256}`),
    );
    assert.deepEqual(vt.seen, [{ path: `/api/v3/files/${UNKNOWN_SHA256}`, apiKey: VT_API_KEY }]);
    // An unknown tool is a protocol error (-32602), as the SDK v2's McpServer answers it since 2025-11-25.
    await assert.rejects(client.callTool({ name: 'no_such_tool', arguments: {} }), (err: unknown) => {
      assert.match(String(err), /-32602.*Tool no_such_tool not found/);
      return true;
    });

    const targets = new Set(hops.filter((h) => h.what.startsWith('POST tools/call')).map((h) => h.target));
    assert.equal(targets.size, 3);
    assert.deepEqual(
      errors.map((e) => e.message),
      [],
    );
    // The session still works after all those errors.
    assert.deepEqual(await ok(client, 'calculator_add', { a: 1, b: 1 }), { result: 2 });
  });

  it('serves a legacy HTTP+SSE client through the proxy (POSTs forwarded to the stream holder)', async () => {
    const { client, hops, errors } = await connectLegacy(proxy.url, alice, 'legacy');
    clients.push(client);
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), TOOLS);

    const stream = hops.find((h) => h.what === 'GET');
    assert.equal(stream?.status, 200);
    const owner = serverIdOf.get(stream?.target ?? '');
    assert.ok(owner, 'the SSE stream was proxied to an instance');

    for (let k = 0; k < 3; k++) {
      // The session lives on the instance holding the stream, whichever instance got the POST.
      const h = await ok<HealthReport>(client, 'health_check');
      assert.equal(h.server_id, owner);
      assert.equal(h.status, 'healthy');
    }
    assert.deepEqual(await ok(client, 'calculator_multiply', { a: 6, b: 7 }), { result: 42 });
    assert.deepEqual(await ok(client, 'calculator_memory_store', { value: 8 }), {
      memory: 8,
      previous: null,
    });
    assert.deepEqual(await ok(client, 'calculator_memory_recall'), { memory: 8 });
    const sales = await ok<EmployeePage>(client, 'postgres_query_employees', { department: 'Sales' });
    assert.equal(sales.total, 4);
    assert.match(await fails(client, 'calculator_divide', { a: 1, b: 0 }), /Division by zero/);

    const posts = hops.filter((h) => h.what.startsWith('POST'));
    assert.ok(posts.length >= 8, JSON.stringify(hops));
    assert.deepEqual(
      posts.filter((p) => p.status !== 202),
      [],
      'every POST accepted',
    );
    assert.equal(new Set(posts.map((p) => p.target)).size, 3, 'POSTs went to all 3 instances');
    assert.deepEqual(
      errors.map((e) => e.message),
      [],
    );
  });

  it('accepts the proxy as Origin and rejects a foreign one (DNS-rebinding protection behind the proxy)', async () => {
    const authorization = `Bearer ${alice}`;
    for (let k = 0; k < 3; k++) {
      const foreign = await rawPost(`${proxy.url}/mcp`, initBody(k), {
        authorization,
        origin: 'http://evil.example',
      });
      assert.equal(foreign.status, 403, foreign.text);
      const own = await rawPost(`${proxy.url}/mcp`, initBody(k), { authorization, origin: proxy.url });
      assert.equal(own.status, 200, own.text);
      const sessionId = own.headers.get('mcp-session-id');
      assert.ok(sessionId);
      const del = await fetch(`${proxy.url}/mcp`, {
        method: 'DELETE',
        headers: { authorization, 'mcp-session-id': sessionId, 'mcp-protocol-version': PROTOCOL_VERSION },
      });
      assert.equal(del.status, 200);
      await del.body?.cancel();
    }
  });

  it('legacy SSE needs a token too', async () => {
    for (let k = 0; k < 3; k++) {
      const res = await fetch(`${proxy.url}/sse`, { headers: { accept: 'text/event-stream' } });
      assert.equal(res.status, 401);
      assert.equal(res.headers.get('www-authenticate'), CHALLENGE_MISSING);
      await res.body?.cancel();
    }
    const bad = await rawPost(`${proxy.url}/messages?sessionId=whatever`, '{}');
    assert.equal(bad.status, 401);
    assert.equal(bad.headers.get('www-authenticate'), CHALLENGE_MISSING);
  });

  it('answers 401 with WWW-Authenticate without a token, on every instance', async () => {
    const targets = new Set<string | null>();
    for (let k = 0; k < 3; k++) {
      const res = await rawPost(`${proxy.url}/mcp`, initBody(k));
      assert.equal(res.status, 401, res.text);
      assert.equal(res.headers.get('www-authenticate'), CHALLENGE_MISSING);
      assert.match(JSON.parse(res.text).error.message, /Missing bearer token/);
      targets.add(res.headers.get('x-proxy-target'));
    }
    assert.equal(targets.size, 3);
    // The SDK client surfaces it as a failed connect.
    await assert.rejects(
      new Client({ name: 'anon', version: '1' }).connect(
        new StreamableHTTPClientTransport(new URL('/mcp', proxy.url)),
      ),
      /401|Unauthorized|Missing bearer token/i,
    );
  });

  it('answers 401 invalid_token for a bad signature, an expired token or a non-Bearer header', async () => {
    const forged = await signToken(
      { secret: 'not-the-server-secret'.padEnd(40, 'x'), algorithm: 'HS256' },
      {
        sub: 'alice',
      },
    );
    const expired = await signToken(JWT, { sub: 'alice', ttlSeconds: -120 });
    const cases: [string, string, RegExp][] = [
      ['bad signature', `Bearer ${forged}`, /signature is invalid/],
      ['expired', `Bearer ${expired}`, /expired/],
      ['not a JWT', 'Bearer not.a.jwt', /malformed/],
      ['Basic', 'Basic YWxpY2U6cHc=', /not a Bearer token/],
    ];
    for (const [what, authorization, message] of cases) {
      // Until every instance answered (other clients' requests, such as a standalone stream
      // reconnecting, move the proxy's rotation on meanwhile): each answer is the same refusal.
      const targets = new Set<string | null>();
      for (let k = 0; k < 12 && targets.size < 3; k++) {
        const res = await rawPost(`${proxy.url}/mcp`, initBody(k), { authorization });
        assert.equal(res.status, 401, `${what}: ${res.text}`);
        assert.equal(res.headers.get('www-authenticate'), CHALLENGE_INVALID, what);
        assert.match(JSON.parse(res.text).error.message, message, what);
        targets.add(res.headers.get('x-proxy-target'));
      }
      assert.equal(targets.size, 3, `${what}: checked on every instance`);
    }

    // An expired token cannot continue a session opened with a valid one, on any instance.
    const { client, hops } = await connectStreamable(proxy.url, alice, 'expiry');
    clients.push(client);
    const sessionId = (client.transport as StreamableHTTPClientTransport).sessionId;
    assert.ok(sessionId);
    assert.ok(hops.length > 0);
    for (let k = 0; k < 3; k++) {
      const res = await rawPost(
        `${proxy.url}/mcp`,
        JSON.stringify({ jsonrpc: '2.0', id: k, method: 'tools/list' }),
        {
          authorization: `Bearer ${expired}`,
          'mcp-session-id': sessionId,
          'mcp-protocol-version': PROTOCOL_VERSION,
        },
      );
      assert.equal(res.status, 401, res.text);
      assert.equal(res.headers.get('www-authenticate'), CHALLENGE_INVALID);
    }
    assert.deepEqual(await ok(client, 'calculator_add', { a: 2, b: 2 }), { result: 4 });
  });

  it("answers 404 for another principal's session id on every instance, and leaves the session intact", async () => {
    const { client } = await connectStreamable(proxy.url, alice, 'victim');
    clients.push(client);
    await ok(client, 'calculator_memory_store', { value: 99 });
    const sessionId = (client.transport as StreamableHTTPClientTransport).sessionId;
    assert.ok(sessionId);
    const asBob = {
      authorization: `Bearer ${bob}`,
      'mcp-session-id': sessionId,
      'mcp-protocol-version': PROTOCOL_VERSION,
    };

    const targets = new Set<string | null>();
    for (let k = 0; k < 3; k++) {
      const res = await rawPost(
        `${proxy.url}/mcp`,
        JSON.stringify({
          jsonrpc: '2.0',
          id: k,
          method: 'tools/call',
          params: { name: 'calculator_memory_recall', arguments: {} },
        }),
        asBob,
      );
      assert.equal(res.status, 404, res.text);
      assert.doesNotMatch(res.text, /99/);
      targets.add(res.headers.get('x-proxy-target'));
    }
    assert.equal(targets.size, 3, 'POST checked on every instance');
    for (let k = 0; k < 3; k++) {
      const get = await fetch(`${proxy.url}/mcp`, { headers: { ...asBob, accept: 'text/event-stream' } });
      assert.equal(get.status, 404);
      await get.body?.cancel();
      const del = await fetch(`${proxy.url}/mcp`, { method: 'DELETE', headers: asBob });
      assert.equal(del.status, 404);
      await del.body?.cancel();
    }

    // Bob could neither read nor end it: Alice's session and its memory are still there, on every instance.
    for (let k = 0; k < 3; k++) {
      assert.deepEqual(await ok(client, 'calculator_memory_recall'), { memory: 99 });
    }
    // Alice's own token on her session works through a second client too (same principal, any instance).
    const again = new Client({ name: 'victim-again', version: '1.0.0' });
    await again.connect(
      new StreamableHTTPClientTransport(new URL('/mcp', proxy.url), {
        sessionId,
        requestInit: { headers: { authorization: `Bearer ${alice}` } },
      }),
    );
    clients.push(again);
    assert.deepEqual(await ok(again, 'calculator_memory_recall'), { memory: 99 });

    // Alice ending her session (DELETE on one instance) ends it on every instance.
    await (client.transport as StreamableHTTPClientTransport).terminateSession();
    const ended = new Set<string | null>();
    for (let k = 0; k < 3; k++) {
      const res = await rawPost(
        `${proxy.url}/mcp`,
        JSON.stringify({ jsonrpc: '2.0', id: k, method: 'tools/list' }),
        { ...asBob, authorization: `Bearer ${alice}` },
      );
      assert.equal(res.status, 404, res.text);
      ended.add(res.headers.get('x-proxy-target'));
    }
    assert.equal(ended.size, 3);
  });
});
