/**
 * A statement prepared on first use, then reused for the life of the database client: drizzle builds its SQL and
 * its row mapping once, and postgres.js prepares it on the server once per connection instead of parsing and
 * planning it on every execution (drizzle sends unprepared statements otherwise). A reader over read replicas
 * (drizzle's withReplicas) gets one per replica, and each execution picks one at random, as withReplicas does for
 * every statement it sends.
 */
export function preparedOn<TDatabase extends object, TStatement>(db: TDatabase, prepare: (target: TDatabase) => TStatement): () => TStatement {
  const replicas = (db as { $replicas?: readonly TDatabase[] }).$replicas;
  const targets = replicas && replicas.length > 0 ? replicas : [db];
  let statements: TStatement[] | undefined;
  return () => {
    statements ??= targets.map(prepare);
    return statements.length === 1 ? statements[0]! : statements[Math.floor(Math.random() * statements.length)]!;
  };
}

/**
 * Column types whose text form is not what callers use: `int8` is a JavaScript number (drizzle's
 * `bigint({ mode: 'number' })`, `count()`), `timestamptz` a Date (drizzle's `timestamp({ withTimezone: true })`).
 * Every other column arrives as the driver parses it (int4, text, enums, booleans), as drizzle passes them on.
 */
export type ColumnConversion = 'int8' | 'timestamptz';

/** One execution of a read: its positional parameters (`$1`, `$2`, …), in order. */
export type RowReader<TRow> = (params: readonly unknown[]) => Promise<TRow[]>;

interface PostgresJsClient {
  /** The pool's parsed options (postgres.js keeps them on the pool's `sql`, not on a transaction's). */
  options?: { prepare?: boolean };
  unsafe(text: string, params: unknown[], options: { prepare: boolean }): PromiseLike<Record<string, unknown>[]>;
}
interface PgliteClient {
  query(text: string, params: unknown[], options: { rowMode: 'object'; parsers: Record<number, (value: string) => unknown> }): Promise<{ rows: Record<string, unknown>[] }>;
}
/** What drizzle keeps of its driver on a database or a transaction: every statement it sends goes through it. */
interface DrizzleSession {
  client: PostgresJsClient | PgliteClient;
  logger: { logQuery(query: string, params: unknown[]): void };
}

const INT8 = 20;
const TIMESTAMPTZ = 1184;
const toDate = (value: string) => new Date(value);
// PGlite parses per query, so it hands over rows typed already; drizzle's postgres.js client keeps timestamps as
// text for every statement (drizzle-orm/postgres-js sets that on the client) and int8 is text there by default.
const PGLITE_PARSERS: Record<number, (value: string) => unknown> = { [INT8]: Number, [TIMESTAMPTZ]: toDate };

/**
 * A read whose rows come back as its callers use them, with no row mapper between: the SQL names each column as
 * the row's property (`user_id as "userId"`), so the driver builds each row object once, and only the columns
 * listed in `conversions` are converted, in place. drizzle's prepared statements hand rows over as arrays and map
 * each into a new object through a generic mapper (about 7 % of the orders subgraph's CPU, and garbage): this
 * skips both.
 *
 * Like a drizzle prepared statement: prepared by postgres.js once per connection (one text whatever the
 * parameters), seen by the database's `onQuery` logger (statement counting) and its instrumentation, on whichever
 * client `db` is (a transaction's too). The SQL is the caller's to keep in step with the drizzle schema; the
 * repositories' tests compare both mappings row for row.
 */
export function preparedRows<TRow extends object>(db: object, text: string, conversions: Partial<Record<keyof TRow & string, ColumnConversion>> = {}): RowReader<TRow> {
  const { client, logger } = (db as { session: DrizzleSession }).session;
  const ints: string[] = [];
  const dates: string[] = [];
  for (const [column, conversion] of Object.entries(conversions)) (conversion === 'int8' ? ints : dates).push(column);

  if ('unsafe' in client) {
    // Named, unless the pool has prepared statements off (see PostgresConnectionSettings.prepare): then this
    // asks for none either. A transaction's client carries no options of its own; there the pool's setting,
    // which postgres.js applies over every statement's, keeps it unnamed all the same.
    const options = { prepare: client.options?.prepare !== false };
    return async (params) => {
      const values = params as unknown[];
      logger.logQuery(text, values);
      const rows = await client.unsafe(text, values, options);
      if (ints.length > 0 || dates.length > 0) {
        for (const row of rows) {
          for (const column of ints) {
            const value = row[column];
            if (value !== null) row[column] = Number(value);
          }
          for (const column of dates) {
            const value = row[column];
            if (value !== null) row[column] = toDate(value as string);
          }
        }
      }
      return rows as TRow[];
    };
  }
  const options = { rowMode: 'object' as const, parsers: PGLITE_PARSERS };
  return async (params) => {
    const values = params as unknown[];
    logger.logQuery(text, values);
    const { rows } = await client.query(text, values, options);
    return rows as TRow[];
  };
}
