import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq, sql, type SQL } from 'drizzle-orm';
import { integer, pgTable, text } from 'drizzle-orm/pg-core';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databasePrepare, parseConfig } from '../src/config.ts';
import { createDatabase, databaseLocation, type DatabaseHandle, type DatabaseLocation } from '../src/db/index.ts';
import { migrateDatabase } from '../src/db/migrate.ts';
import { preparedRows } from '../src/db/prepared.ts';
import { createTestDatabase, hasPgBouncer, startPgBouncer, type PrivatePgBouncer, type TestDatabase } from '../src/testing/index.ts';
import { z } from 'zod';

const things = pgTable('things', { id: integer('id').primaryKey(), label: text('label').notNull() });
const schema = { things };
type Handle = DatabaseHandle<typeof schema>;

/**
 * Every kind of statement the services send: a drizzle query with parameters, a drizzle `.prepare()`d statement,
 * preparedRows (which asks postgres.js for a named statement), the same in a transaction, and a write.
 */
async function sendEveryKind(handle: Handle, round: number): Promise<void> {
  const { db } = handle;
  await db.insert(things).values({ id: round, label: `thing ${round}` });
  expect(await db.select().from(things).where(eq(things.id, round))).toEqual([{ id: round, label: `thing ${round}` }]);
  const byId = db.select().from(things).where(eq(things.id, sql.placeholder('id'))).prepare(`thing_by_id_${round}`);
  expect(await byId.execute({ id: round })).toEqual([{ id: round, label: `thing ${round}` }]);
  const labels = preparedRows<{ label: string }>(db, 'select label from things where id = $1');
  expect(await labels([round])).toEqual([{ label: `thing ${round}` }]);
  await db.transaction(async (tx) => {
    expect(await preparedRows<{ label: string }>(tx, 'select label from things where id = $1 and label <> $2')([round, ''])).toEqual([{ label: `thing ${round}` }]);
    await tx.update(things).set({ label: `thing ${round}!` }).where(eq(things.id, round));
  });
}

/** Named prepared statements on the server connection this statement runs on (one, in these tests). */
const namedStatements = async (handle: Handle) => countOf(handle, sql`select count(*)::int as n from pg_prepared_statements`);

/** A `count(*)::int as n` query's answer (postgres.js hands rows over as an array). */
const countOf = async (handle: Handle, query: SQL) => ((await handle.db.execute(query)) as unknown as { n: number }[])[0]?.n;

describe('DATABASE_PREPARE: on or off', () => {
  it('parses on and off, defaults to on, and refuses anything else', () => {
    const shape = z.object({ USERS_DATABASE_PREPARE: databasePrepare });
    expect(parseConfig(shape, {}).USERS_DATABASE_PREPARE).toBe(true);
    expect(parseConfig(shape, { USERS_DATABASE_PREPARE: 'off' }).USERS_DATABASE_PREPARE).toBe(false);
    expect(parseConfig(shape, { USERS_DATABASE_PREPARE: 'on' }).USERS_DATABASE_PREPARE).toBe(true);
    expect(() => parseConfig(shape, { USERS_DATABASE_PREPARE: 'false' })).toThrow(/USERS_DATABASE_PREPARE: must be on or off/);
  });

  it('reaches the location only for Postgres, and only when it changes something', () => {
    expect(databaseLocation('postgres://a@b/c', '/data', 'users', [], { prepare: true })).toEqual({ url: 'postgres://a@b/c' });
    expect(databaseLocation('postgres://a@b/c', '/data', 'users', [], { prepare: false, migrationUrl: 'postgres://a@d/c' })).toEqual({
      url: 'postgres://a@b/c',
      prepare: false,
      migrationUrl: 'postgres://a@d/c',
    });
    expect(databaseLocation(undefined, '/data', 'users', [], { prepare: false })).toEqual({ dataDir: '/data/users' });
  });
});

describe('prepared statements, on one direct connection', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase('prepare_direct');
    const admin = postgres(database.url, { max: 1, onnotice: () => {} });
    await admin`create table things (id int primary key, label text not null)`;
    await admin.end();
  });
  afterAll(async () => {
    await database.drop();
  });

  const open = (location: DatabaseLocation) => createDatabase({ location, schema, maxConnections: 1 });

  it('on (the default): the connection keeps named statements, so the count below can see them', async () => {
    const handle = await open({ url: database.url });
    try {
      await sendEveryKind(handle, 1);
      expect(await namedStatements(handle)).toBeGreaterThan(0);
    } finally {
      await handle.close();
    }
  });

  it('off: not one named statement, whatever asked for one (drizzle .prepare(), preparedRows, in a transaction)', async () => {
    const handle = await open({ url: database.url, prepare: false });
    try {
      await sendEveryKind(handle, 2);
      expect(await namedStatements(handle)).toBe(0);
    } finally {
      await handle.close();
    }
  });
});

describe.skipIf(!hasPgBouncer())('behind PgBouncer in transaction mode (prepared statements off)', () => {
  let database: TestDatabase;
  let bouncer: PrivatePgBouncer;
  let migrations: string;
  beforeAll(async () => {
    database = await createTestDatabase('prepare_bouncer');
    // One server connection for every client: what the count of named statements looks at is the very
    // connection every statement ran on.
    bouncer = await startPgBouncer({ poolSize: 1 });
    // A drizzle migrations folder of one migration, creating the table the statements use.
    migrations = mkdtempSync(join(tmpdir(), 'migrations-'));
    mkdirSync(join(migrations, 'meta'));
    writeFileSync(join(migrations, '0000_things.sql'), 'create table things (id int primary key, label text not null);\n');
    writeFileSync(
      join(migrations, 'meta', '_journal.json'),
      JSON.stringify({ version: '7', dialect: 'postgresql', entries: [{ idx: 0, version: '7', when: 1_700_000_000_000, tag: '0000_things', breakpoints: true }] }),
    );
  });
  afterAll(async () => {
    await bouncer?.stop();
    await database?.drop();
    rmSync(migrations, { recursive: true, force: true });
  });

  it('migrates on the direct migration URL and leaves no advisory lock behind; every kind of statement runs, none is kept named', async () => {
    const handle = await createDatabase({
      location: { url: bouncer.urlFor(database.url), prepare: false, migrationUrl: database.url },
      schema,
      maxConnections: 4,
    });
    try {
      await migrateDatabase(handle as unknown as DatabaseHandle<Record<string, unknown>>, migrations);
      await Promise.all([1, 2, 3].map((round) => sendEveryKind(handle, round)));
      expect(await namedStatements(handle)).toBe(0);
      // The migrator's session lock was taken and released on its own direct connection: none is held here.
      expect(await countOf(handle, sql`select count(*)::int as n from pg_locks where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database())`)).toBe(0);
    } finally {
      await handle.close();
    }
  });
});
