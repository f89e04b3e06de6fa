import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { McpServer } from '@modelcontextprotocol/server';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import pg from 'pg';
import { pino } from 'pino';
import type { Database, Row } from '../../app/db/database.js';
import { openDatabase } from '../../app/db/open.js';
import { createPgliteDatabase } from '../../app/db/pglite.js';
import { createPostgresDatabase } from '../../app/db/postgres.js';
import { SAMPLE_EMPLOYEES } from '../../app/db/sample-employees.js';
import { seedDatabase } from '../../app/db/seed.js';
import type { AppLogger } from '../../app/logger.js';
import { importServer } from '../../app/servers/import-server.js';
import { createPostgresServer } from '../../app/servers/postgres.js';
import { startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { waitFor } from '../helpers/wait.js';
import { call, connect, silent, text } from './support/mcp.js';

interface Employee {
  id: number;
  first_name: string;
  last_name: string;
  email: string;
  department: string;
  job_title: string;
  salary: number;
  hire_date: string;
  manager_id: number | null;
}
interface Page {
  employees: Employee[];
  total: number;
  limit: number;
  offset: number;
  next_offset: number | null;
}

/** Text that would show SQL or driver internals leaked into a client-visible message. */
const LEAK = /select|from employees|where|syntax|relation|column|operator does not|pg_|sqlstate|\$\d/i;

function page(result: CallToolResult): Page {
  assert.equal(result.isError, undefined, `unexpected error: ${text(result)}`);
  return result.structuredContent as unknown as Page;
}

function assertCleanError(result: CallToolResult): void {
  assert.equal(result.isError, true);
  assert.doesNotMatch(text(result), LEAK, `leaked: ${text(result)}`);
}

async function toolsOn(db: Database, logger: AppLogger = silent): Promise<Client> {
  const server = new McpServer({ name: 'pg-test', version: '1.0.0' });
  importServer(server, 'postgres', createPostgresServer(db), logger);
  return connect(server);
}

interface LogLine {
  level: number;
  msg: string;
  ref?: string;
  sqlState?: string;
  tool?: string;
  err?: unknown;
}

/** A logger keeping every line (debug and up), parsed. */
function capture(): { logger: AppLogger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = pino(
    { level: 'debug' },
    { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) },
  );
  return { logger, lines };
}

/** `db` with some parameter values swapped after validation, to make the database itself reject them. */
function swapping(db: Database, swap: Record<string, string>): Database & { calls: number } {
  const wrapped = {
    kind: db.kind,
    calls: 0,
    query<R extends Row = Row>(sql: string, params: readonly unknown[] = [], signal?: AbortSignal) {
      wrapped.calls++;
      const swapped = params.map((p) => (typeof p === 'string' && p in swap ? swap[p] : p));
      return db.query<R>(sql, swapped, signal);
    },
    check: () => db.check(),
    close: () => Promise.resolve(),
  };
  return wrapped;
}

const LEVEL = { debug: 20, info: 30, warn: 40, error: 50 } as const;

/** Waits until the server runs a `SELECT pg_sleep(30)` (seen from another connection). */
async function untilSleeping(raw: pg.Client): Promise<void> {
  await waitFor('the statement to run on the server', async () => {
    const { rows } = await raw.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%' AND state = 'active' AND datname = current_database() AND pid <> pg_backend_pid()`,
    );
    return (rows[0]?.n ?? 0) > 0;
  });
}

const INJECTIONS = [
  "' OR '1'='1",
  "' OR 1=1 --",
  "x'; DROP TABLE employees; --",
  "Engineering' UNION SELECT 1,'a','b','c','d','e',0,now(),null --",
  '%',
  '_',
  '\\',
  "'); SELECT pg_sleep(5); --",
  '$1',
  '" OR ""="',
];

/** The same behaviour is required of the embedded PGlite and of a real PostgreSQL through pg. */
function employeeSuite(
  label: string,
  open: () => Promise<{ db: Database; done: () => Promise<void> }>,
): void {
  describe(`postgres tools on ${label}`, () => {
    let db: Database;
    let done: () => Promise<void>;
    let client: Client;

    before(async () => {
      ({ db, done } = await open());
      client = await toolsOn(db);
    });
    after(async () => {
      await client.close();
      await done();
    });

    it('lists both tools with described arguments and output schemas', async () => {
      const { tools } = await client.listTools();
      assert.deepEqual(tools.map((t) => t.name).sort(), [
        'postgres_get_employee_schema',
        'postgres_query_employees',
      ]);
      const query = tools.find((t) => t.name === 'postgres_query_employees');
      for (const [field, schema] of Object.entries(query?.inputSchema.properties ?? {})) {
        assert.ok((schema as { description?: string }).description, `${field} is described`);
      }
      assert.ok(tools.every((t) => t.outputSchema !== undefined && t.annotations?.readOnlyHint === true));
    });

    it('returns the first page sorted by last name by default', async () => {
      const p = page(await call(client, 'postgres_query_employees'));
      assert.equal(p.total, SAMPLE_EMPLOYEES.length);
      assert.equal(p.employees.length, 20);
      assert.equal(p.limit, 20);
      assert.equal(p.next_offset, null);
      const names = p.employees.map((e) => e.last_name);
      assert.deepEqual(
        names,
        [...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)),
      );
      const ada = p.employees.find((e) => e.email === 'ada.lovelace@example.com');
      assert.equal(ada?.salary, 148000);
      assert.equal(ada?.hire_date, '2018-06-25');
      assert.equal(typeof ada?.manager_id, 'number');
    });

    it('filters by department case-insensitively', async () => {
      const p = page(await call(client, 'postgres_query_employees', { department: 'engineering' }));
      assert.equal(p.total, 6);
      assert.ok(p.employees.every((e) => e.department === 'Engineering'));
    });

    it('filters by name substring', async () => {
      const p = page(await call(client, 'postgres_query_employees', { name: 'LOVE' }));
      assert.deepEqual(
        p.employees.map((e) => e.email),
        ['ada.lovelace@example.com'],
      );
      const full = page(await call(client, 'postgres_query_employees', { name: 'grace hop' }));
      assert.equal(full.total, 1);
      const apostrophe = page(await call(client, 'postgres_query_employees', { name: "O'Brien" }));
      assert.equal(apostrophe.total, 1);
    });

    it('filters by salary range and hire dates (inclusive)', async () => {
      const p = page(
        await call(client, 'postgres_query_employees', {
          min_salary: 98000,
          max_salary: 148000,
          hired_after: '2018-06-25',
          hired_before: '2020-01-13',
          sort_by: 'hire_date',
        }),
      );
      assert.deepEqual(
        p.employees.map((e) => e.email),
        [
          'ada.lovelace@example.com',
          'mateo.garcia@example.com',
          'chloe.martin@example.com',
          'sofia.rossi@example.com',
        ],
      );
    });

    it('sorts by a whitelisted column in either direction and paginates', async () => {
      const first = page(
        await call(client, 'postgres_query_employees', { sort_by: 'salary', sort_order: 'desc', limit: 3 }),
      );
      assert.deepEqual(
        first.employees.map((e) => e.salary),
        [185000, 175000, 172000],
      );
      assert.equal(first.next_offset, 3);
      const second = page(
        await call(client, 'postgres_query_employees', {
          sort_by: 'salary',
          sort_order: 'desc',
          limit: 3,
          offset: first.next_offset,
        }),
      );
      assert.deepEqual(
        second.employees.map((e) => e.salary),
        [150000, 148000, 140000],
      );
      const last = page(await call(client, 'postgres_query_employees', { limit: 7, offset: 14 }));
      assert.equal(last.employees.length, 6);
      assert.equal(last.next_offset, null);
      const beyond = page(await call(client, 'postgres_query_employees', { offset: 500 }));
      assert.deepEqual(beyond.employees, []);
      assert.equal(beyond.total, 20);
    });

    it('caps the page size at 100', async () => {
      assertCleanError(await call(client, 'postgres_query_employees', { limit: 101 }));
      assertCleanError(await call(client, 'postgres_query_employees', { limit: 0 }));
      const p = page(await call(client, 'postgres_query_employees', { limit: 100 }));
      assert.equal(p.employees.length, 20);
    });

    it('answers bad filters with a clear isError result', async () => {
      const swapped = await call(client, 'postgres_query_employees', { min_salary: 10, max_salary: 5 });
      assertCleanError(swapped);
      assert.match(text(swapped), /min_salary must not be greater than max_salary/);
      const dates = await call(client, 'postgres_query_employees', {
        hired_after: '2022-01-01',
        hired_before: '2021-01-01',
      });
      assertCleanError(dates);
      assert.match(text(dates), /hired_after must not be later/);
      for (const args of [
        { hired_after: '2021-02-30' },
        { hired_after: 'yesterday' },
        { sort_by: 'salary; DROP TABLE employees' },
        { sort_by: 'email' },
        { sort_order: 'sideways' },
        { min_salary: -1 },
        { min_salary: '1000 OR 1=1' },
        { offset: -1 },
        { name: '' },
        { department: 'x'.repeat(101) },
      ]) {
        const result = await call(client, 'postgres_query_employees', args);
        assertCleanError(result);
      }
    });

    for (const field of ['department', 'name'] as const) {
      it(`treats SQL in "${field}" as data: no extra rows, no SQL error text`, async () => {
        for (const attempt of INJECTIONS) {
          const result = await call(client, 'postgres_query_employees', { [field]: attempt });
          const p = page(result);
          assert.equal(p.total, 0, `${field}=${attempt} matched rows`);
          assert.doesNotMatch(text(result), /syntax|error/i);
        }
      });
    }

    it('treats SQL in the date filters as invalid input, never as SQL', async () => {
      for (const field of ['hired_after', 'hired_before']) {
        for (const attempt of [...INJECTIONS, "2020-01-01' OR '1'='1", '2020-01-01; DROP TABLE employees']) {
          assertCleanError(await call(client, 'postgres_query_employees', { [field]: attempt }));
        }
      }
    });

    it('rejects values PostgreSQL cannot take in the input schema, before any query', async () => {
      const counted = swapping(db, {});
      const { logger, lines } = capture();
      const checked = await toolsOn(counted, logger);
      try {
        const cases: [Record<string, unknown>, RegExp][] = [
          [{ hired_after: '0000-01-01' }, /expected a date from 0001-01-01 on/],
          [{ hired_before: '0000-12-31' }, /expected a date from 0001-01-01 on/],
          [{ hired_after: '0000-02-29' }, /date/],
          [{ name: 'a\u0000b' }, /must not contain the NUL character/],
          [{ department: '\u0000' }, /must not contain the NUL character/],
          [{ department: 'Sales\u0000' }, /must not contain the NUL character/],
        ];
        for (const [args, message] of cases) {
          const result = await call(checked, 'postgres_query_employees', args);
          assertCleanError(result);
          assert.match(text(result), message, JSON.stringify(args));
        }
        assert.equal(counted.calls, 0);
        assert.equal(
          page(await call(checked, 'postgres_query_employees', { hired_after: '0001-01-01' })).total,
          20,
        );
        assert.equal(
          page(await call(checked, 'postgres_query_employees', { hired_before: '9999-12-31' })).total,
          20,
        );
        assert.deepEqual(
          lines.filter((l) => l.level >= LEVEL.warn),
          [],
        );
      } finally {
        await checked.close();
      }
    });

    it('answers a value the database rejects (SQLSTATE class 22) as a bad filter, logged at warn', async () => {
      const { logger, lines } = capture();
      const checked = await toolsOn(
        swapping(db, { '1999-01-01': '0000-01-01', '%sneaky%': '%a\u0000b%', sneaky: 'a\u0000b' }),
        logger,
      );
      try {
        const cases: [Record<string, unknown>, string, RegExp][] = [
          [{ hired_after: '1999-01-01' }, '22008', /a date is invalid or out of range/],
          [{ name: 'sneaky' }, '22021', /a text value contains a character the database cannot store/],
          [{ department: 'sneaky' }, '22021', /a text value contains a character the database cannot store/],
        ];
        for (const [args, code, message] of cases) {
          const result = await call(checked, 'postgres_query_employees', args);
          assertCleanError(result);
          const ref = /^Bad filter value: .* \(reference ([0-9a-f]{8})\)/.exec(text(result))?.[1];
          assert.ok(ref, text(result));
          assert.match(text(result), message);
          const entry = lines.find((l) => l.ref === ref);
          assert.equal(entry?.level, LEVEL.warn, JSON.stringify(entry));
          assert.equal(entry?.msg, 'database rejected a filter value');
          assert.equal(entry?.sqlState, code);
        }
        assert.deepEqual(
          lines.filter((l) => l.level >= LEVEL.error),
          [],
        );
      } finally {
        await checked.close();
      }
    });

    it('does not run a statement whose call was already cancelled', async () => {
      await assert.rejects(
        db.query('SELECT 1 AS one', [], AbortSignal.abort()),
        (err: Error) => err.name === 'AbortError',
      );
      assert.deepEqual(await db.query('SELECT 1 AS one', [], new AbortController().signal), [{ one: 1 }]);
    });

    it('still has every row after the injection attempts', async () => {
      assert.equal(page(await call(client, 'postgres_query_employees')).total, 20);
    });

    it('describes the schema from information_schema with descriptions', async () => {
      const result = await call(client, 'postgres_get_employee_schema');
      assert.equal(result.isError, undefined, text(result));
      const schema = result.structuredContent as {
        table: string;
        row_count: number;
        columns: { name: string; type: string; nullable: boolean; description: string; sortable: boolean }[];
      };
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
      const byName = new Map(schema.columns.map((c) => [c.name, c]));
      assert.equal(byName.get('salary')?.type, 'numeric(12,2)');
      assert.equal(byName.get('manager_id')?.nullable, true);
      assert.equal(byName.get('email')?.nullable, false);
      assert.equal(byName.get('email')?.sortable, false);
      assert.equal(byName.get('hire_date')?.sortable, true);
      assert.ok(
        schema.columns.every((c) => c.description.length > 5 && !c.description.startsWith('No description')),
      );
    });

    it('runs statements read-only', async () => {
      await assert.rejects(
        db.query(`DELETE FROM employees`),
        (err: { code?: string }) => err.code === '25006',
      );
      assert.equal(page(await call(client, 'postgres_query_employees')).total, 20);
    });
  });
}

employeeSuite('PGlite (embedded)', async () => {
  const db = await createPgliteDatabase();
  return { db, done: () => db.close() };
});

employeeSuite('PostgreSQL (pg)', async () => {
  const server = await startPostgres();
  await seedDatabase(server.url);
  const db = createPostgresDatabase({ url: server.url });
  return {
    db,
    done: async () => {
      await db.close();
      await server.stop();
    },
  };
});

describe('PostgreSQL specifics', () => {
  let server: TestPostgres;
  before(async () => {
    server = await startPostgres();
  });
  after(() => server.stop());

  it('says at start why PostgreSQL cannot be used, naming where (never the password)', async () => {
    const cases: Array<[url: string, where: string, cause: RegExp]> = [
      ['postgres://nobody:hunter2@127.0.0.1:1/none', '127.0.0.1:1/none', /ECONNREFUSED/],
      [
        server.url.replace(/\/[^/]*$/, '/no_such_db'),
        `127.0.0.1:${new URL(server.url).port}/no_such_db`,
        /3D000 database "no_such_db" does not exist/,
      ],
    ];
    for (const [url, where, cause] of cases) {
      const { logger, lines } = capture();
      const db = await openDatabase({ databaseUrl: url }, logger);
      await db.close();
      const warn = lines.find((l) => l.level === 40);
      assert.ok(warn, JSON.stringify(lines));
      assert.ok(warn.msg.startsWith(`PostgreSQL unreachable at ${where}: `), warn.msg);
      assert.match(warn.msg, cause);
      assert.ok(!JSON.stringify(lines).includes('hunter2'), 'no password in the log');
    }
    const { logger, lines } = capture();
    const db = await openDatabase({ databaseUrl: server.url }, logger);
    await db.close();
    assert.ok(lines.some((l) => l.level === 30 && l.msg.startsWith('PostgreSQL reachable at 127.0.0.1:')));
  });

  it('reports a missing table without SQL text, and seeding is idempotent', async () => {
    const db = createPostgresDatabase({ url: server.url });
    const client = await toolsOn(db);
    try {
      const missing = await call(client, 'postgres_query_employees');
      assertCleanError(missing);
      assert.match(text(missing), /does not exist.*seed/);
      assertCleanError(await call(client, 'postgres_get_employee_schema'));

      await seedDatabase(server.url);
      await seedDatabase(server.url);
      await Promise.all([seedDatabase(server.url), seedDatabase(server.url)]);
      assert.equal(page(await call(client, 'postgres_query_employees')).total, 20);
      const [row] = await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM employees WHERE manager_id IS NOT NULL`,
      );
      assert.equal(row?.n, 14);
    } finally {
      await client.close();
      await db.close();
    }
  });

  it('stops a statement at the timeout (SQLSTATE 57014)', async () => {
    const db = createPostgresDatabase({ url: server.url, statementTimeoutMs: 100 });
    try {
      await assert.rejects(db.query('SELECT pg_sleep(2)'), (err: { code?: string }) => err.code === '57014');
      // The connection went back to the pool in a usable state.
      assert.deepEqual(await db.query('SELECT 1 AS one'), [{ one: 1 }]);
    } finally {
      await db.close();
    }
  });

  it('cancels a running statement on the server when the signal aborts', async () => {
    const db = createPostgresDatabase({ url: server.url, maxConnections: 1 });
    const raw = new pg.Client({ connectionString: server.url });
    await raw.connect();
    try {
      const controller = new AbortController();
      const started = Date.now();
      const running = db.query('SELECT pg_sleep(30)', [], controller.signal);
      await untilSleeping(raw);
      controller.abort();
      // 57014 well before the 5 s statement timeout: the server cancelled it at our request.
      await assert.rejects(running, (err: { code?: string }) => err.code === '57014');
      assert.ok(Date.now() - started < 3_000, `took ${Date.now() - started} ms`);
      const { rows } = await raw.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%' AND state = 'active'`,
      );
      assert.equal(rows[0]?.n, 0);
      // The only pooled connection was replaced, and works.
      assert.deepEqual(await db.query('SELECT 1 AS one'), [{ one: 1 }]);
      // A signal aborted after the statement finished changes nothing.
      const late = new AbortController();
      assert.deepEqual(await db.query('SELECT 2 AS two', [], late.signal), [{ two: 2 }]);
      late.abort();
      assert.deepEqual(await db.query('SELECT 3 AS three'), [{ three: 3 }]);
    } finally {
      await raw.end();
      await db.close();
    }
  });

  it('treats a client cancelling a tool call as expected: no error log, statement cancelled', async () => {
    await seedDatabase(server.url);
    const db = createPostgresDatabase({ url: server.url });
    // Every statement of the tool becomes a long sleep, so the call is still running when the client cancels.
    const slow: Database = {
      kind: db.kind,
      query: (_sql, _params, signal) => db.query('SELECT pg_sleep(30)', [], signal),
      check: () => db.check(),
      close: () => db.close(),
    };
    const { logger, lines } = capture();
    const client = await toolsOn(slow, logger);
    const raw = new pg.Client({ connectionString: server.url });
    await raw.connect();
    try {
      const controller = new AbortController();
      const call = client.callTool({ name: 'postgres_query_employees', arguments: {} }, undefined, {
        signal: controller.signal,
      });
      await untilSleeping(raw);
      controller.abort();
      await assert.rejects(call, /abort/i);
      // Logged once the statement ended, well before its 5 s timeout: the server cancelled it.
      await waitFor(
        'the cancellation logged',
        () => lines.some((l) => l.msg === 'tool call cancelled'),
        3_000,
      );
      const cancelled = lines.find((l) => l.msg === 'tool call cancelled');
      assert.ok(cancelled, `not cancelled within 3 s: ${JSON.stringify(lines)}`);
      assert.equal(cancelled.level, LEVEL.debug, JSON.stringify(lines));
      assert.equal(cancelled?.tool, 'postgres_query_employees');
      assert.deepEqual(
        lines.filter((l) => l.level >= LEVEL.warn),
        [],
      );
    } finally {
      await raw.end();
      await client.close();
      await db.close();
    }
  });

  it('runs each statement in a read-only transaction with the configured timeout', async () => {
    const db = createPostgresDatabase({ url: server.url, statementTimeoutMs: 1234, maxConnections: 1 });
    try {
      const [inside] = await db.query<{ t: string }>(`SELECT current_setting('statement_timeout') AS t`);
      assert.equal(inside?.t, '1234ms');
      const [readOnly] = await db.query<{ r: string }>(
        `SELECT current_setting('transaction_read_only') AS r`,
      );
      assert.equal(readOnly?.r, 'on');
      // SET LOCAL semantics: the pooled connection's own setting is untouched after the transaction.
      const raw = new pg.Client({ connectionString: server.url });
      await raw.connect();
      const { rows } = await raw.query<{ t: string }>(`SELECT current_setting('statement_timeout') AS t`);
      await raw.end();
      assert.equal(rows[0]?.t, '0');
    } finally {
      await db.close();
    }
  });

  it('answers with a generic message when the database is unreachable, and logs the cause', async () => {
    const db = createPostgresDatabase({ url: 'postgres://nobody@127.0.0.1:1/none', connectTimeoutMs: 1000 });
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const server = new McpServer({ name: 'pg-test', version: '1.0.0' });
    importServer(server, 'postgres', createPostgresServer(db), logger);
    const client = await connect(server);
    try {
      assert.match(String(await db.check()), /ECONNREFUSED/);
      const result = await call(client, 'postgres_query_employees', { department: 'Sales' });
      assertCleanError(result);
      const ref = /could not answer \(reference ([0-9a-f]{8})\)/.exec(text(result))?.[1];
      assert.ok(ref, text(result));
      assert.doesNotMatch(text(result), /ECONNREFUSED|127\.0\.0\.1/);
      const logged = lines.map(
        (l) => JSON.parse(l) as { msg: string; ref?: string; tool?: string; err?: unknown },
      );
      const entry = logged.find((l) => l.ref === ref);
      assert.equal(entry?.msg, 'database query failed');
      assert.equal(entry?.tool, 'postgres_query_employees');
      assert.match(JSON.stringify(entry?.err), /ECONNREFUSED/);
    } finally {
      await client.close();
      await db.close();
    }
  });
});
