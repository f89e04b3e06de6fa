import type { AppConfig } from '../config.js';
import type { AppLogger } from '../logger.js';
import type { Database } from './database.js';
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
  if (await db.ping()) logger.info({ database: 'postgres' }, 'PostgreSQL reachable');
  else
    logger.warn({ database: 'postgres' }, 'PostgreSQL not reachable at start; tools will fail until it is');
  return db;
}
