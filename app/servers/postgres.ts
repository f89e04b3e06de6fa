import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { sqlState, type Database, type Row } from '../db/database.js';
import {
  EMPLOYEE_COUNT_SQL,
  EMPLOYEE_SCHEMA_SQL,
  MAX_PAGE_SIZE,
  SORT_COLUMNS,
  buildEmployeeQuery,
  type SortColumn,
} from '../db/employee-query.js';
import type { AppLogger } from '../logger.js';
import { ToolError, defineTool, type SubServer } from './import-server.js';

/** What each column means, for `get_employee_schema` (the database has only names and types). */
const COLUMN_DESCRIPTIONS: Record<string, string> = {
  id: 'Unique employee number, assigned by the database.',
  first_name: 'Given name.',
  last_name: 'Family name.',
  email: 'Work email address; unique per employee.',
  department:
    'Department the employee belongs to (e.g. Engineering, Sales, Marketing, Finance, Human Resources, Operations).',
  job_title: 'Job title within the department.',
  salary: 'Gross annual salary in US dollars.',
  hire_date: 'Date the employee joined (YYYY-MM-DD).',
  manager_id: 'id of the employee this person reports to; null for department heads.',
};

/** How the tools filter on each column (argument names of `query_employees`). */
const FILTERS: Record<string, string[]> = {
  department: ['department'],
  first_name: ['name'],
  last_name: ['name'],
  salary: ['min_salary', 'max_salary'],
  hire_date: ['hired_after', 'hired_before'],
};

const sortKeys = Object.keys(SORT_COLUMNS) as [SortColumn, ...SortColumn[]];
/** PostgreSQL `date` has no year 0 (1 BC is written `0001-01-01 BC`): the smallest value a client can send. */
const MIN_DATE = '0001-01-01';
const isoDate = z.iso
  .date({ error: 'expected a calendar date as YYYY-MM-DD' })
  .refine((v) => v >= MIN_DATE, { error: `expected a date from ${MIN_DATE} on` });
/** Filter text: PostgreSQL text cannot hold the NUL character (U+0000), so it is rejected here. */
const filterText = (description: string) =>
  z
    .string()
    .trim()
    .min(1)
    .max(100)
    .refine((v) => !v.includes('\0'), { error: 'must not contain the NUL character (U+0000)' })
    .optional()
    .describe(description);

const employeeShape = z.object({
  id: z.number().int(),
  first_name: z.string(),
  last_name: z.string(),
  email: z.string(),
  department: z.string(),
  job_title: z.string(),
  salary: z.number().describe('Annual salary in USD.'),
  hire_date: z.string().describe('YYYY-MM-DD'),
  manager_id: z.number().int().nullable(),
});

const READ_ONLY = { readOnlyHint: true, idempotentHint: true, openWorldHint: false } as const;

/** What a data exception (SQLSTATE class 22) says about the filter values, without driver text. */
function dataExceptionHint(code: string): string {
  if (code === '22007' || code === '22008') return 'a date is invalid or out of range';
  if (code === '22003') return 'a number is out of range';
  if (code === '22021' || code === '22P05')
    return 'a text value contains a character the database cannot store';
  return 'a value is not valid for its column';
}

/**
 * Runs a statement; maps driver failures to messages without SQL or driver text (those go to the log).
 * After `signal` aborted, the driver's error is rethrown as is: the tool layer treats it as the cancellation.
 */
async function run<R extends Row>(
  db: Database,
  logger: AppLogger,
  signal: AbortSignal,
  sql: string,
  params: readonly unknown[] = [],
): Promise<R[]> {
  try {
    return await db.query<R>(sql, params, signal);
  } catch (err) {
    if (signal.aborted) throw err;
    const code = sqlState(err);
    const ref = randomBytes(4).toString('hex');
    if (code?.startsWith('22')) {
      // A data exception: the database refused a filter value the input schema let through. The caller's
      // problem, not an outage.
      logger.warn({ err, sqlState: code, ref }, 'database rejected a filter value');
      throw new ToolError(
        `Bad filter value: ${dataExceptionHint(code)} (reference ${ref}). Check the filters and try again.`,
      );
    }
    logger.error({ err, sqlState: code, ref }, 'database query failed');
    if (code === '57014') {
      throw new ToolError(`The query took too long and was stopped (reference ${ref}). Narrow the filters.`);
    }
    if (code === '42P01') {
      throw new ToolError(
        `The employees table does not exist in this database (reference ${ref}). An operator must run the seed script.`,
      );
    }
    throw new ToolError(`The employee database could not answer (reference ${ref}). Try again later.`);
  }
}

const rowsShape = z.array(employeeShape);

/**
 * The PostgreSQL sub-server: a filtered, paginated, read-only view of the `employees` table. Clients pass
 * filter values only; SQL is fixed and every value is a bind parameter.
 */
export function createPostgresServer(db: Database): SubServer {
  return [
    defineTool({
      name: 'query_employees',
      title: 'Search employees',
      description: `Searches the company's employees table with optional filters, sorting and pagination. All filters combine with AND; omit a filter to not restrict by it. Read-only.

Args:
  department: exact department name, case-insensitive (e.g. "Engineering"). Call {prefix}_get_employee_schema for the column list.
  name: text contained in "first_name last_name", case-insensitive (e.g. "ada" matches "Ada Lovelace").
  min_salary / max_salary: inclusive annual salary bounds in USD.
  hired_after / hired_before: inclusive hire-date bounds, YYYY-MM-DD.
  sort_by: one of ${sortKeys.join(', ')} (default last_name); sort_order: "asc" (default) or "desc".
  limit: rows per page, 1-${MAX_PAGE_SIZE} (default 20); offset: rows to skip (default 0).
Returns: { employees: [...], total: matches before paging, limit, offset, next_offset: offset of the next page or null }.
Example: {tool}(department="Engineering", min_salary=120000, sort_by="salary", sort_order="desc", limit=5) → the five best-paid engineers earning at least 120000, and total = how many match.`,
      inputSchema: {
        department: filterText('Exact department name, case-insensitive.'),
        name: filterText('Substring of the full name, case-insensitive.'),
        min_salary: z
          .number()
          .min(0)
          .optional()
          .describe('Lowest annual salary to include (USD, inclusive).'),
        max_salary: z
          .number()
          .min(0)
          .optional()
          .describe('Highest annual salary to include (USD, inclusive).'),
        hired_after: isoDate.optional().describe('Earliest hire date to include, YYYY-MM-DD (inclusive).'),
        hired_before: isoDate.optional().describe('Latest hire date to include, YYYY-MM-DD (inclusive).'),
        sort_by: z.enum(sortKeys).default('last_name').describe('Column to sort by.'),
        sort_order: z.enum(['asc', 'desc']).default('asc').describe('Sort direction.'),
        limit: z
          .number()
          .int()
          .min(1)
          .max(MAX_PAGE_SIZE)
          .default(20)
          .describe(`Rows per page (1-${MAX_PAGE_SIZE}).`),
        offset: z
          .number()
          .int()
          .min(0)
          .max(1_000_000)
          .default(0)
          .describe('Rows to skip (for the next page, pass next_offset).'),
      },
      outputSchema: {
        employees: rowsShape.describe('The requested page of matching employees.'),
        total: z.number().int().describe('Number of employees matching the filters, before paging.'),
        limit: z.number().int(),
        offset: z.number().int(),
        next_offset: z
          .number()
          .int()
          .nullable()
          .describe('offset of the next page, or null on the last page.'),
      },
      annotations: READ_ONLY,
      handler: async (args, { logger: log, signal }) => {
        if (
          args.min_salary !== undefined &&
          args.max_salary !== undefined &&
          args.min_salary > args.max_salary
        ) {
          throw new ToolError('Bad filter: min_salary must not be greater than max_salary.');
        }
        if (
          args.hired_after !== undefined &&
          args.hired_before !== undefined &&
          args.hired_after > args.hired_before
        ) {
          throw new ToolError('Bad filter: hired_after must not be later than hired_before.');
        }
        const statement = buildEmployeeQuery({
          department: args.department,
          name: args.name,
          minSalary: args.min_salary,
          maxSalary: args.max_salary,
          hiredAfter: args.hired_after,
          hiredBefore: args.hired_before,
          sortBy: args.sort_by,
          sortOrder: args.sort_order,
          limit: args.limit,
          offset: args.offset,
        });
        const [row] = await run<{ total: number; rows: unknown }>(
          db,
          log,
          signal,
          statement.sql,
          statement.params,
        );
        const employees = rowsShape.parse(row?.rows ?? []);
        const total = row?.total ?? 0;
        const next = args.offset + employees.length;
        return {
          employees,
          total,
          limit: args.limit,
          offset: args.offset,
          next_offset: employees.length > 0 && next < total ? next : null,
        };
      },
    }),
    defineTool({
      name: 'get_employee_schema',
      title: 'Describe the employees table',
      description: `Describes the employees table that {prefix}_query_employees searches: every column with its SQL type, whether it can be null, its default, what it means, and which {prefix}_query_employees arguments filter or sort by it. Also returns the number of rows.

Args: none.
Returns: { table: "employees", row_count, columns: [{ name, type, nullable, default, description, filter_arguments, sortable }] }.
Example: {tool}() → { "table": "employees", "row_count": 20, "columns": [{ "name": "salary", "type": "numeric(12,2)", "nullable": false, ... }] }`,
      inputSchema: {},
      outputSchema: {
        table: z.string(),
        row_count: z.number().int(),
        columns: z.array(
          z.object({
            name: z.string(),
            type: z.string().describe('PostgreSQL type.'),
            nullable: z.boolean(),
            default: z.string().nullable().describe('Default expression, or null.'),
            description: z.string(),
            filter_arguments: z
              .array(z.string())
              .describe('query_employees arguments that filter on this column.'),
            sortable: z.boolean().describe('Whether query_employees can sort_by this column.'),
          }),
        ),
      },
      annotations: READ_ONLY,
      handler: async (_args, { logger: log, signal }) => {
        const columns = await run<{
          column_name: string;
          data_type: string;
          is_nullable: string;
          column_default: string | null;
          character_maximum_length: number | null;
          numeric_precision: number | null;
          numeric_scale: number | null;
        }>(db, log, signal, EMPLOYEE_SCHEMA_SQL);
        if (columns.length === 0) {
          throw new ToolError(
            'The employees table does not exist in this database. An operator must run the seed script.',
          );
        }
        const [count] = await run<{ count: number }>(db, log, signal, EMPLOYEE_COUNT_SQL);
        return {
          table: 'employees',
          row_count: count?.count ?? 0,
          columns: columns.map((c) => ({
            name: c.column_name,
            type: typeName(c),
            nullable: c.is_nullable === 'YES',
            default: c.column_default,
            description: COLUMN_DESCRIPTIONS[c.column_name] ?? 'No description available.',
            filter_arguments: FILTERS[c.column_name] ?? [],
            sortable: c.column_name in SORT_COLUMNS,
          })),
        };
      },
    }),
  ];
}

function typeName(c: {
  data_type: string;
  character_maximum_length: number | null;
  numeric_precision: number | null;
  numeric_scale: number | null;
}): string {
  if (c.data_type === 'numeric' && c.numeric_precision !== null) {
    return `numeric(${c.numeric_precision},${c.numeric_scale ?? 0})`;
  }
  if (c.character_maximum_length !== null) return `${c.data_type}(${c.character_maximum_length})`;
  return c.data_type;
}
