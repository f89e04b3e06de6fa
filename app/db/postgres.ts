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

/** {@link Database} over a `pg.Pool`. Connections are opened lazily. */
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

  return {
    kind: 'postgres',
    async query<R extends Row = Row>(sql: string, params: readonly unknown[] = []): Promise<R[]> {
      const client = await pool.connect();
      let broken: Error | undefined;
      try {
        await client.query('BEGIN TRANSACTION READ ONLY');
        await client.query(`SELECT set_config('statement_timeout', $1, true)`, [String(statementTimeoutMs)]);
        const result = await client.query<R>(sql, [...params]);
        await client.query('COMMIT');
        return result.rows;
      } catch (err) {
        try {
          await client.query('ROLLBACK');
        } catch (rollbackErr) {
          // The connection itself is gone: destroy it instead of returning it to the pool.
          broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
        }
        throw err;
      } finally {
        client.release(broken);
      }
    },
    async ping() {
      try {
        await pool.query('SELECT 1');
        return true;
      } catch {
        return false; // the answer is the boolean; the caller logs
      }
    },
    close() {
      closing ??= pool.end();
      return closing;
    },
  };
}
