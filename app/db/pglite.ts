import { PGlite } from '@electric-sql/pglite';
import { DEFAULT_STATEMENT_TIMEOUT_MS, type Database, type Row } from './database.js';
import { seedEmployees } from './seed.js';

/**
 * {@link Database} over an embedded, in-memory PGlite, created and seeded with the sample employees. The data
 * lives in this process only: every instance has its own identical copy.
 *
 * PGlite runs PostgreSQL single-threaded inside WebAssembly; `statement_timeout` is set like on a real server
 * but cannot interrupt a running statement there, and neither can a cancelled call (it is only skipped while
 * still queued). Use `DATABASE_URL` for production.
 */
export async function createPgliteDatabase(): Promise<Database> {
  const db = await PGlite.create();
  await db.transaction((tx) => seedEmployees((sql, params) => tx.query(sql, params)));
  let closing: Promise<void> | undefined;

  return {
    kind: 'pglite',
    async query<R extends Row = Row>(
      sql: string,
      params: readonly unknown[] = [],
      signal?: AbortSignal,
    ): Promise<R[]> {
      signal?.throwIfAborted();
      return await db.transaction(async (tx) => {
        // PGlite runs one transaction at a time: a call cancelled while queued behind others is skipped.
        // A statement already running cannot be interrupted (single-threaded WebAssembly).
        signal?.throwIfAborted();
        await tx.query('SET TRANSACTION READ ONLY');
        await tx.query(`SELECT set_config('statement_timeout', $1, true)`, [
          String(DEFAULT_STATEMENT_TIMEOUT_MS),
        ]);
        const result = await tx.query<R>(sql, [...params]);
        return result.rows;
      });
    },
    async check() {
      try {
        await db.query('SELECT 1');
        return undefined;
      } catch (err) {
        return err instanceof Error ? err : new Error(String(err));
      }
    },
    close() {
      closing ??= db.close();
      return closing;
    },
  };
}
