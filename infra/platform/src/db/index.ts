import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import { sql } from 'drizzle-orm';
import { withReplicas, type PgDatabase, type PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { instrumentPglite, instrumentPostgres, observeDatabase } from '../observability/database.ts';
import type { Telemetry } from '../observability/telemetry.ts';

/**
 * The one database type repositories see. Both drivers (postgres.js for real Postgres, PGlite for the
 * embedded default) implement it, so no repository knows which one it runs on.
 */
export type Database<TSchema extends Record<string, unknown>> = PgDatabase<PgQueryResultHKT, TSchema>;

/**
 * How a service reaches its Postgres, beyond the URL. Both matter behind a pooler in transaction mode
 * (PgBouncer's `pool_mode = transaction`), where each transaction may run on a different server connection.
 */
export interface PostgresConnectionSettings {
  /**
   * false: every statement is sent unnamed (parse, bind and execute in one go), none is kept on the server as a
   * named prepared statement. PgBouncer before 1.21 (Debian's is 1.18) does not track protocol-level prepared
   * statements in transaction mode: a statement prepared on one server connection would be executed on another
   * that never saw it ("prepared statement does not exist"). Default true: named statements, parsed and planned
   * once per connection.
   */
  prepare?: boolean;
  /**
   * A direct connection for migrations, which hold a session-level advisory lock (`pg_advisory_lock`) from
   * before the first migration to after the last: through a transaction-mode pooler, the lock and its unlock
   * could land on different server connections, leaving the lock held on a pooled connection. Unset: `url`.
   */
  migrationUrl?: string;
}

/**
 * Where a database lives: a Postgres URL (with optional streaming read replicas of it, and how to connect, see
 * PostgresConnectionSettings), or a directory for an embedded PGlite ("memory://" keeps it in RAM).
 */
export type DatabaseLocation = ({ url: string; replicaUrls?: readonly string[] } & PostgresConnectionSettings) | { dataDir: string };

/**
 * A URL means real Postgres; without one the service gets an embedded PGlite in `dataDir/name` (which has no
 * pooler to mind, so `settings` apply to a URL only).
 */
export const databaseLocation = (
  url: string | undefined,
  dataDir: string,
  name: string,
  replicaUrls: readonly string[] = [],
  settings: PostgresConnectionSettings = {},
): DatabaseLocation =>
  url
    ? {
        url,
        ...(replicaUrls.length > 0 && { replicaUrls }),
        ...(settings.prepare === false && { prepare: false }),
        ...(settings.migrationUrl && { migrationUrl: settings.migrationUrl }),
      }
    : { dataDir: join(dataDir, name) };

export interface DatabaseOptions<TSchema extends Record<string, unknown>> {
  location: DatabaseLocation;
  schema: TSchema;
  /** Pool size for real Postgres. PGlite is always a single connection. */
  maxConnections?: number;
  /** Sees every SQL statement drizzle sends, and where: `primary` or `replicaN`. Query counting, debug logging. */
  onQuery?: (sql: string, target: string) => void;
  /** Records `db_` metrics and statement spans into a service's telemetry, labelled `name`. */
  telemetry?: Telemetry;
  name?: string;
}

export interface DatabaseHandle<TSchema extends Record<string, unknown>> {
  /** The primary: every write and transaction, and reads that must see the latest writes. */
  db: Database<TSchema>;
  /**
   * Selects go to a read replica (a random one per statement), anything else to the primary. Without replicas
   * it is `db`. Replicas lag behind the primary, so a request that writes reads from `db` instead.
   */
  reader: Database<TSchema>;
  kind: 'postgres' | 'pglite';
  location: DatabaseLocation;
  /** The primary's pool size (1 for PGlite). */
  maxConnections: number;
  close(): Promise<void>;
}

/**
 * How long a pooled connection waits before its next connect after a failed one. postgres.js's default grows
 * to 20 s after a few refused attempts, and a query arriving meanwhile waits all of it, even once the database
 * is back: a 1.2 s restart kept requests waiting past the gateway's 10 s timeout. Capped at a quarter of a
 * second (jittered, so a pool's connections do not retry in step), a request during an outage still fails fast
 * with DATABASE_UNAVAILABLE, the server still sees at most a few attempts a second per connection, and service
 * resumes within that cap of the database's return.
 */
export const reconnectDelaySeconds = (failedAttempts: number) => Math.min(0.25, 0.01 * 2 ** failedAttempts) * (0.5 + Math.random() / 2);

export async function createDatabase<TSchema extends Record<string, unknown>>(
  options: DatabaseOptions<TSchema>,
): Promise<DatabaseHandle<TSchema>> {
  const { location, schema, onQuery } = options;
  const logger = (target: string) => (onQuery ? { logQuery: (query: string) => onQuery(query, target) } : false);
  const maxConnections = 'url' in location ? (options.maxConnections ?? 10) : 1;
  const observed = options.telemetry && observeDatabase(options.telemetry, options.name ?? 'db', maxConnections);

  if ('url' in location) {
    const connect = (url: string, role: string) => {
      const raw = postgres(url, {
        max: maxConnections,
        // Fail fast when Postgres is down instead of hanging requests; reconnects happen on the next query.
        connect_timeout: 5,
        idle_timeout: 30,
        backoff: reconnectDelaySeconds,
        // The pool's setting wins over any statement's own: postgres.js sends a statement named only when both
        // the pool and the statement ask for it, so `false` here also covers drizzle's `.prepare()` and
        // preparedRows (which ask with `prepare: true`), and transactions.
        prepare: location.prepare ?? true,
        onnotice: () => {},
      });
      const watched = options.telemetry && (role === 'primary' ? observed : observeDatabase(options.telemetry, `${options.name ?? 'db'}_${role}`, maxConnections));
      const client = watched ? instrumentPostgres(raw, watched.observe, watched.pool) : raw;
      return { client, db: drizzlePostgres(client, { schema, logger: logger(role) }) };
    };
    const primary = connect(location.url, 'primary');
    const replicas = (location.replicaUrls ?? []).map((url, index) => connect(url, `replica${index + 1}`));
    const [first, ...rest] = replicas.map((replica) => replica.db);
    const reader = first ? withReplicas(primary.db, [first, ...rest]) : primary.db;
    return {
      db: primary.db as unknown as Database<TSchema>,
      reader: reader as unknown as Database<TSchema>,
      kind: 'postgres',
      location,
      maxConnections,
      close: async () => {
        await Promise.all([primary, ...replicas].map(({ client }) => client.end({ timeout: 5 })));
      },
    };
  }

  // Loaded only here: PGlite and its driver hold about 110 MB, which services on real Postgres and the gateway
  // (which has no database at all) should not carry.
  const [{ PGlite: Engine }, { drizzle: drizzlePglite }] = await Promise.all([import('@electric-sql/pglite'), import('drizzle-orm/pglite')]);
  const inMemory = location.dataDir.startsWith('memory://');
  const release = inMemory ? () => {} : lockDataDir(location.dataDir);
  let client: PGlite;
  try {
    client = await Engine.create(location.dataDir);
  } catch (error) {
    release();
    throw error;
  }
  if (observed) instrumentPglite(client, observed.observe, observed.pool);
  const db = drizzlePglite(client, { schema, logger: logger('primary') });
  return {
    db: db as unknown as Database<TSchema>,
    reader: db as unknown as Database<TSchema>,
    kind: 'pglite',
    location,
    maxConnections,
    close: async () => {
      await client.close();
      release();
    },
  };
}

export class DataDirInUseError extends Error {}

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * PGlite is one process's private Postgres: a second process opening the same directory would corrupt it.
 * A pid file next to the directory makes the second start fail with a clear message instead.
 */
function lockDataDir(dataDir: string): () => void {
  mkdirSync(dataDir, { recursive: true });
  const lockFile = `${dataDir}.pid`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(lockFile, String(process.pid), { flag: 'wx' });
      return () => rmSync(lockFile, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = Number(readFileSync(lockFile, 'utf8'));
      if (Number.isInteger(owner) && (owner === process.pid || isAlive(owner))) {
        throw new DataDirInUseError(`${dataDir} is in use by process ${owner} (another npm start?). Stop it, or set DATA_DIR.`);
      }
      rmSync(lockFile, { force: true }); // left behind by a process that died
    }
  }
  throw new DataDirInUseError(`Could not lock ${dataDir}`);
}

/** The Postgres error code behind a failed query, whichever driver raised it (drizzle wraps it in `cause`). */
export function pgErrorCode(error: unknown): string | undefined {
  for (let current: unknown = error; current instanceof Error; current = current.cause) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return undefined;
}

export const isUniqueViolation = (error: unknown) => pgErrorCode(error) === '23505';

/** Resolves when the database answers a trivial query: readiness. */
export const pingDatabase = (db: Database<Record<string, unknown>>) => db.execute(sql`select 1`);
