/** A row as the drivers return it. */
export type Row = Record<string, unknown>;

/**
 * Read-only access to the application database. Each call runs one parameterized statement in its own
 * read-only transaction with a statement timeout; SQL text never comes from a client.
 */
export interface Database {
  /** Which driver serves this database. */
  readonly kind: 'postgres' | 'pglite';
  /**
   * Runs `sql` with positional parameters (`$1`, `$2`, …) in a read-only transaction.
   * @param signal - aborting it gives up on the statement: one not started yet never runs, and (PostgreSQL
   * only) a running one is cancelled on the server. PGlite cannot interrupt a statement already running.
   * @throws the driver's error (with a PostgreSQL `code` where there is one); callers log it and show a
   * generic message. After `signal` aborted: its reason, or the driver's cancellation error (`57014`).
   */
  query<R extends Row = Row>(sql: string, params?: readonly unknown[], signal?: AbortSignal): Promise<R[]>;
  /** Runs a trivial statement: `undefined` when it succeeds, else the driver's error. Never throws. */
  check(): Promise<Error | undefined>;
  /** Releases connections. Idempotent. */
  close(): Promise<void>;
}

/** A statement runner with write access, used only to create and seed the schema. */
export type SqlRunner = (sql: string, params?: unknown[]) => Promise<unknown>;

/** Default statement timeout of {@link Database.query}, in milliseconds. */
export const DEFAULT_STATEMENT_TIMEOUT_MS = 5_000;

/** The SQLSTATE of a driver error, when it has one (`57014` = statement timeout). */
export function sqlState(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null || !('code' in err)) return undefined;
  const code = (err as { code: unknown }).code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/**
 * The words of a driver error an operator acts on: its SQLSTATE or errno code and message, and for an
 * `AggregateError` (a host name with several addresses, each refused: its own message is empty) every
 * attempt's message.
 */
export function describeDbError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const parts =
    err instanceof AggregateError && err.errors.length > 0
      ? err.errors.map((e: unknown) => (e instanceof Error ? e.message : String(e)))
      : [err.message || err.name];
  const code = (err as { code?: unknown }).code;
  return `${typeof code === 'string' && code !== '' ? `${code} ` : ''}${[...new Set(parts)].join('; ')}`;
}

/** Where a PostgreSQL URL points, without credentials: `host:port/database`. */
export function describeDbUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname || 'localhost'}:${u.port || '5432'}${u.pathname || '/'}`;
  } catch {
    return '(unparsable DATABASE_URL)'; // validated at start: only a library caller can get here
  }
}
