import pg from 'pg';
import { DEFAULT_STATEMENT_TIMEOUT_MS, type Database, type Row } from './database.js';

/** Options of {@link createPostgresDatabase}. */
export interface PostgresOptions {
  /** `postgres://` URL. */
  url: string;
  /** Server-side statement timeout per query. @default 5000 */
  statementTimeoutMs?: number;
  /** Most pooled connections of this instance. @default 10 */
  maxConnections?: number;
  /** How long to wait for a pooled connection. @default 5000 */
  connectTimeoutMs?: number;
  /** Called when an idle pooled connection fails (the pool replaces it). */
  onIdleError?: (err: Error) => void;
}

/**
 * {@link Database} over a `pg.Pool`. Connections are opened lazily. Aborting a query's signal cancels its
 * statement on the server (`pg_cancel_backend` over a separate connection, opened on the first cancel); the
 * cancelled statement's connection is then closed rather than reused.
 */
export function createPostgresDatabase(options: PostgresOptions): Database {
  const statementTimeoutMs = options.statementTimeoutMs ?? DEFAULT_STATEMENT_TIMEOUT_MS;
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.maxConnections ?? 10,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000,
    idleTimeoutMillis: 30_000,
    // A transaction left open by a crashed request must not hold locks forever.
    idle_in_transaction_session_timeout: statementTimeoutMs * 2,
    // Client-side guard in case the server does not answer at all (network partition).
    query_timeout: statementTimeoutMs + 2_000,
    application_name: 'mcp-fleet-reference',
  });
  // Without a listener an idle client's error would crash the process.
  pool.on('error', (err) => options.onIdleError?.(err));
  let closing: Promise<void> | undefined;
  // Cancel requests get a connection of their own, so they never queue behind the statements they cancel.
  let cancelPool: pg.Pool | undefined;
  const canceller = (): pg.Pool => {
    if (cancelPool === undefined) {
      cancelPool = new pg.Pool({
        connectionString: options.url,
        max: 1,
        connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000,
        idleTimeoutMillis: 10_000,
        query_timeout: 5_000,
        application_name: 'mcp-fleet-reference-cancel',
      });
      cancelPool.on('error', (err) => options.onIdleError?.(err));
    }
    return cancelPool;
  };

  return {
    kind: 'postgres',
    async query<R extends Row = Row>(
      sql: string,
      params: readonly unknown[] = [],
      signal?: AbortSignal,
    ): Promise<R[]> {
      signal?.throwIfAborted();
      const client = await pool.connect();
      // Destroy instead of returning to the pool: the connection failed, or a cancel was sent to its backend
      // (which might otherwise land on the next statement of whoever gets this connection).
      let discard: Error | boolean = false;
      let pid: number | undefined;
      let running = false;
      let cancelling: Promise<unknown> | undefined;
      const cancel = (): void => {
        if (!running || pid === undefined || cancelling !== undefined || closing !== undefined) return;
        // pg has no public per-query cancel: ask the server, over a separate connection, to cancel the
        // statement running on this one (same role, so no extra privilege). Best effort: the statement timeout
        // still bounds the statement when this fails.
        cancelling = canceller()
          .query('SELECT pg_cancel_backend($1)', [pid])
          .catch(() => undefined);
      };
      try {
        signal?.throwIfAborted(); // cancelled while waiting for a connection
        await client.query('BEGIN TRANSACTION READ ONLY');
        const setup = await client.query<{ pid: number }>(
          `SELECT set_config('statement_timeout', $1, true), pg_backend_pid() AS pid`,
          [String(statementTimeoutMs)],
        );
        pid = setup.rows[0]?.pid;
        signal?.throwIfAborted();
        let result: pg.QueryResult<R>;
        running = true;
        signal?.addEventListener('abort', cancel, { once: true });
        try {
          result = await client.query<R>(sql, [...params]);
        } finally {
          running = false;
          signal?.removeEventListener('abort', cancel);
        }
        await client.query('COMMIT');
        return result.rows;
      } catch (err) {
        try {
          await client.query('ROLLBACK');
        } catch (rollbackErr) {
          // The connection itself is gone: destroy it instead of returning it to the pool.
          discard = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
        }
        throw err;
      } finally {
        if (cancelling !== undefined) {
          await cancelling;
          discard ||= true;
        }
        client.release(discard);
      }
    },
    async check() {
      try {
        await pool.query('SELECT 1');
        return undefined;
      } catch (err) {
        return err instanceof Error ? err : new Error(String(err));
      }
    },
    close() {
      closing ??= Promise.all([pool.end(), cancelPool?.end()]).then(() => undefined);
      return closing;
    },
  };
}
