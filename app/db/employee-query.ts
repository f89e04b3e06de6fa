/** Columns a client may sort by, mapped to the SQL that sorts by them. The client picks a key, never SQL. */
export const SORT_COLUMNS = {
  id: 'id',
  first_name: 'first_name',
  last_name: 'last_name',
  department: 'department',
  job_title: 'job_title',
  salary: 'salary',
  hire_date: 'hire_date',
} as const;

/** A key of {@link SORT_COLUMNS}. */
export type SortColumn = keyof typeof SORT_COLUMNS;

/** Most rows one page may hold. */
export const MAX_PAGE_SIZE = 100;

/** Validated filters of an employee search; every value travels as a bind parameter. */
export interface EmployeeFilters {
  /** Exact department name, case-insensitive. */
  department?: string | undefined;
  /** Substring of "first last", case-insensitive; `%` and `_` match themselves. */
  name?: string | undefined;
  minSalary?: number | undefined;
  maxSalary?: number | undefined;
  /** Inclusive lower bound, `YYYY-MM-DD`. */
  hiredAfter?: string | undefined;
  /** Inclusive upper bound, `YYYY-MM-DD`. */
  hiredBefore?: string | undefined;
  sortBy: SortColumn;
  sortOrder: 'asc' | 'desc';
  limit: number;
  offset: number;
}

/** A parameterized statement. */
export interface Statement {
  sql: string;
  params: unknown[];
}

/** Escapes LIKE wildcards so user text matches literally (with `ESCAPE '\'`). */
export function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

const COLUMNS = 'id, first_name, last_name, email, department, job_title, salary, hire_date, manager_id';

/**
 * Builds the search statement: one row with `total` (matches before paging) and `rows` (a JSON array of the
 * requested page, in order). SQL text is assembled only from constants; user values are `$n` parameters.
 */
export function buildEmployeeQuery(f: EmployeeFilters): Statement {
  const params: unknown[] = [];
  const bind = (value: unknown): string => {
    params.push(value);
    return `$${params.length}`;
  };
  const where: string[] = [];
  if (f.department !== undefined) where.push(`lower(department) = lower(${bind(f.department)})`);
  if (f.name !== undefined) {
    where.push(`(first_name || ' ' || last_name) ILIKE ${bind(`%${escapeLike(f.name)}%`)} ESCAPE '\\'`);
  }
  if (f.minSalary !== undefined) where.push(`salary >= ${bind(f.minSalary)}`);
  if (f.maxSalary !== undefined) where.push(`salary <= ${bind(f.maxSalary)}`);
  if (f.hiredAfter !== undefined) where.push(`hire_date >= ${bind(f.hiredAfter)}::date`);
  if (f.hiredBefore !== undefined) where.push(`hire_date <= ${bind(f.hiredBefore)}::date`);

  const column = SORT_COLUMNS[f.sortBy];
  const direction = f.sortOrder === 'desc' ? 'DESC' : 'ASC';
  const order = `${column} ${direction}, id ${direction}`;
  const limit = bind(Math.min(Math.max(1, Math.trunc(f.limit)), MAX_PAGE_SIZE));
  const offset = bind(Math.max(0, Math.trunc(f.offset)));

  const sql = `
    WITH filtered AS (
      SELECT ${COLUMNS} FROM employees
      ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
    ), page AS (
      SELECT * FROM filtered ORDER BY ${order} LIMIT ${limit} OFFSET ${offset}
    )
    SELECT
      (SELECT count(*) FROM filtered)::int AS total,
      COALESCE((SELECT json_agg(page ORDER BY ${order}) FROM page), '[]'::json) AS rows`;
  return { sql, params };
}

/** Reads the columns of `employees` from `information_schema`, plus the row count. */
export const EMPLOYEE_SCHEMA_SQL = `
  SELECT c.column_name, c.data_type, c.is_nullable, c.column_default,
         c.character_maximum_length, c.numeric_precision, c.numeric_scale
  FROM information_schema.columns c
  WHERE c.table_schema = current_schema() AND c.table_name = 'employees'
  ORDER BY c.ordinal_position`;

/** Counts the employees. */
export const EMPLOYEE_COUNT_SQL = `SELECT count(*)::int AS count FROM employees`;
