import pg from 'pg';
import { ConfigError, loadConfig } from '../config.js';
import { isMain } from '../is-main.js';
import type { SqlRunner } from './database.js';
import { SAMPLE_EMPLOYEES } from './sample-employees.js';

/** DDL of the `employees` table and its indexes; safe to run again. */
export const EMPLOYEES_DDL = [
  `CREATE TABLE IF NOT EXISTS employees (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    first_name text NOT NULL,
    last_name text NOT NULL,
    email text NOT NULL UNIQUE,
    department text NOT NULL,
    job_title text NOT NULL,
    salary numeric(12, 2) NOT NULL CHECK (salary >= 0),
    hire_date date NOT NULL,
    manager_id integer NULL REFERENCES employees (id)
  )`,
  `CREATE INDEX IF NOT EXISTS employees_department_idx ON employees (lower(department))`,
  `CREATE INDEX IF NOT EXISTS employees_hire_date_idx ON employees (hire_date)`,
  `CREATE INDEX IF NOT EXISTS employees_salary_idx ON employees (salary)`,
];

const INSERT_EMPLOYEE = `
  INSERT INTO employees (first_name, last_name, email, department, job_title, salary, hire_date, manager_id)
  VALUES ($1, $2, $3, $4, $5, $6, $7, (SELECT id FROM employees WHERE email = $8))
  ON CONFLICT (email) DO NOTHING`;

/**
 * Creates the `employees` table (if missing) and inserts the sample employees that are not there yet
 * (matched by email). Idempotent; run it inside one transaction. A transaction-scoped advisory lock keeps two
 * concurrent seeders from racing on `CREATE TABLE`.
 */
export async function seedEmployees(run: SqlRunner): Promise<void> {
  await run(`SELECT pg_advisory_xact_lock(hashtext('mcp-fleet-reference:seed'))`);
  for (const ddl of EMPLOYEES_DDL) await run(ddl);
  for (const e of SAMPLE_EMPLOYEES) {
    await run(INSERT_EMPLOYEE, [
      e.firstName,
      e.lastName,
      e.email,
      e.department,
      e.jobTitle,
      e.salary,
      e.hireDate,
      e.managerEmail,
    ]);
  }
}

/** Seeds the PostgreSQL named by `url` in one transaction. */
export async function seedDatabase(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    await client.query('BEGIN');
    await seedEmployees((sql, params) => client.query(sql, params));
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined); // the original error is the one to report
    throw err;
  } finally {
    await client.end();
  }
}

async function cli(): Promise<number> {
  let url: string | undefined;
  try {
    url = loadConfig().databaseUrl;
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return err.exitCode;
    }
    throw err;
  }
  if (url === undefined) {
    process.stderr.write(
      'DATABASE_URL: required by db:seed (expected a URL starting with postgres:// or postgresql://)\n',
    );
    return 2;
  }
  try {
    await seedDatabase(url);
  } catch (err) {
    process.stderr.write(`db:seed failed: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  process.stdout.write(`employees table ready (${SAMPLE_EMPLOYEES.length} sample rows ensured)\n`);
  return 0;
}

if (isMain(import.meta.url)) {
  process.exitCode = await cli();
}
