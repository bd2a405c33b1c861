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
