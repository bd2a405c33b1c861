import { sql } from 'drizzle-orm';
import type { PgliteDatabase } from 'drizzle-orm/pglite';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import type { PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import { createDatabase, type DatabaseHandle, type DatabaseLocation } from './index.ts';

// drizzle's migrator takes no lock, so two replicas starting together would race. Any constant works as
// long as every migrator of the same database agrees on it.
const MIGRATION_LOCK_KEY = 727_001;

/**
 * Applies a subgraph's committed drizzle-kit migrations under a Postgres advisory lock, so concurrent runs
 * serialise instead of racing.
 */
export async function migrateDatabase(
  handle: DatabaseHandle<Record<string, unknown>>,
  migrationsFolder: string,
): Promise<void> {
  if (handle.kind === 'pglite') {
    // PGlite is one connection inside this process: nothing else can race it.
    const { migrate: migratePglite } = await import('drizzle-orm/pglite/migrator');
    await migratePglite(handle.db as unknown as PgliteDatabase, { migrationsFolder });
    return;
  }
  // A session-level lock must be taken and released on the same connection, so use a dedicated one, and a direct
  // one when the service goes through a transaction-mode pooler (migrationUrl): a pooler would hand each
  // transaction its own server connection, and the lock could outlive this run on one of its pooled connections.
  const { location } = handle;
  const direct: DatabaseLocation = 'url' in location && location.migrationUrl ? { url: location.migrationUrl } : location;
  const session = await createDatabase({ location: direct, schema: {}, maxConnections: 1 });
  try {
    await session.db.execute(sql`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`);
    try {
      await migratePostgres(session.db as unknown as PostgresJsDatabase, { migrationsFolder });
    } finally {
      await session.db.execute(sql`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`);
    }
  } finally {
    await session.close();
  }
}
