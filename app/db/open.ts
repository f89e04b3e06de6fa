import type { AppConfig } from '../config.js';
import type { AppLogger } from '../logger.js';
import { describeDbError, describeDbUrl, type Database } from './database.js';
import { createPgliteDatabase } from './pglite.js';
import { createPostgresDatabase } from './postgres.js';

/**
 * Opens the configured database: PostgreSQL through `pg` when `DATABASE_URL` is set, else an embedded
 * in-memory PGlite seeded with sample data. An unreachable PostgreSQL is logged, not fatal: the tools report
 * it per call and recover when it comes back.
 */
export async function openDatabase(
  config: Pick<AppConfig, 'databaseUrl'>,
  logger: AppLogger,
): Promise<Database> {
  if (config.databaseUrl === undefined) {
    const db = await createPgliteDatabase();
    logger.info({ database: 'pglite' }, 'embedded PGlite database ready with sample employees');
    return db;
  }
  const db = createPostgresDatabase({
    url: config.databaseUrl,
    onIdleError: (err) => logger.warn({ err }, 'idle PostgreSQL connection failed'),
  });
  const where = describeDbUrl(config.databaseUrl);
  const failure = await db.check();
  if (failure === undefined) logger.info({ database: 'postgres', where }, `PostgreSQL reachable at ${where}`);
  else {
    // The driver's own words (refused, unknown host, wrong password, no such database, TLS), which a bare
    // "not reachable" would hide.
    logger.warn(
      { database: 'postgres', where, err: failure },
      `PostgreSQL unreachable at ${where}: ${describeDbError(failure)}; the postgres_* tools fail until it answers`,
    );
  }
  return db;
}
