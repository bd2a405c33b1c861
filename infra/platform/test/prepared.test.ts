import { sql, TransactionRollbackError } from 'drizzle-orm';
import { bigint, integer, pgTable, text, timestamp } from 'drizzle-orm/pg-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, type DatabaseHandle, type DatabaseLocation } from '../src/db/index.ts';
import { preparedOn, preparedRows } from '../src/db/prepared.ts';
import { createTestDatabase } from '../src/testing/index.ts';

describe('preparedOn', () => {
  it('prepares on first use, once, on the database itself when it has no replicas', () => {
    const db = { name: 'primary' };
    const prepared: string[] = [];
    const statement = preparedOn(db, (target) => {
      prepared.push(target.name);
      return `statement on ${target.name}`;
    });
    expect(prepared).toEqual([]);
    expect(statement()).toBe('statement on primary');
    expect(statement()).toBe('statement on primary');
    expect(prepared).toEqual(['primary']);
  });

  it('on a reader over replicas (drizzle withReplicas), prepares once per replica and spreads executions over them', () => {
    const replicas = [{ name: 'replica1' }, { name: 'replica2' }];
    const reader = { name: 'primary', $replicas: replicas };
    const prepared: string[] = [];
    const statement = preparedOn(reader, (target) => {
      prepared.push(target.name);
      return target.name;
    });
    const used = new Set(Array.from({ length: 200 }, () => statement()));
    expect(prepared).toEqual(['replica1', 'replica2']);
    // Never the primary: reads stay on the replicas, as drizzle sends them.
    expect([...used].sort()).toEqual(['replica1', 'replica2']);
  });
});

describe('preparedRows: rows straight from the driver, equal to what drizzle maps', () => {
  // Every conversion preparedRows makes, with nulls, and a type it leaves alone (int4, text).
  const things = pgTable('things', {
    id: bigint('id', { mode: 'number' }).primaryKey(),
    ownerId: bigint('owner_id', { mode: 'number' }),
    size: integer('size').notNull(),
    label: text('label').notNull(),
    seenAt: timestamp('seen_at', { withTimezone: true }),
  });
  const schema = { things };
  const COLUMNS = 'id, owner_id as "ownerId", size, label, seen_at as "seenAt"';
  const CONVERSIONS = { id: 'int8', ownerId: 'int8', seenAt: 'timestamptz' } as const;
  type Thing = typeof things.$inferSelect;

  const drivers: [string, () => Promise<{ location: DatabaseLocation; drop(): Promise<void> }>][] = [
    [
      'postgres.js',
      async () => {
        const database = await createTestDatabase('prepared_rows');
        return { location: { url: database.url }, drop: database.drop };
      },
    ],
    ['PGlite', async () => ({ location: { dataDir: 'memory://' }, drop: async () => {} })],
  ];

  describe.each(drivers)('on %s', (_, open) => {
    let handle: DatabaseHandle<typeof schema>;
    let drop: () => Promise<void>;
    const logged: string[] = [];
    beforeAll(async () => {
      const opened = await open();
      drop = opened.drop;
      handle = await createDatabase({ location: opened.location, schema, onQuery: (query) => logged.push(query) });
      await handle.db.execute(sql`create table things (id bigint primary key, owner_id bigint, size integer not null, label text not null, seen_at timestamptz)`);
      await handle.db.insert(things).values([
        { id: 1, ownerId: 7, size: 3, label: 'a', seenAt: new Date('2026-11-22T13:42:00.123Z') },
        { id: 2, ownerId: null, size: -1, label: 'b "quoted"', seenAt: null },
        { id: 9_007_199_254_740_991, ownerId: 2 ** 40, size: 0, label: '', seenAt: new Date('1999-12-31T23:59:59.999Z') },
      ]);
    }, 30_000);
    afterAll(async () => {
      await handle?.close();
      await drop?.();
    });

    it('gives the same rows, types and values as drizzle, and goes through the logger', async () => {
      const read = preparedRows<Thing>(handle.db, `select ${COLUMNS} from things where id = any($1) order by id`, CONVERSIONS);
      logged.length = 0;
      const rows = await read([[1, 2, 9_007_199_254_740_991]]);
      expect(logged).toEqual([`select ${COLUMNS} from things where id = any($1) order by id`]);
      const mapped = await handle.db.select().from(things).orderBy(things.id);
      expect(rows).toEqual(mapped);
      expect(rows[0]!.seenAt).toBeInstanceOf(Date);
      expect(typeof rows[2]!.id).toBe('number');
      // A second execution of the same statement (prepared by then) reads the same.
      expect(await read([[2]])).toEqual([mapped[1]]);
      const [count] = await preparedRows<{ total: number }>(handle.db, 'select count(*) as total from things', { total: 'int8' })([]);
      expect(count).toEqual({ total: 3 });
    });

    it('reads inside a transaction on its connection: it sees the transaction’s own write', async () => {
      await handle.db.transaction(async (tx) => {
        await tx.insert(things).values({ id: 5, ownerId: 1, size: 1, label: 'tx', seenAt: null });
        const rows = await preparedRows<Thing>(tx, `select ${COLUMNS} from things where id = $1`, CONVERSIONS)([5]);
        expect(rows).toEqual([{ id: 5, ownerId: 1, size: 1, label: 'tx', seenAt: null }]);
        tx.rollback();
      }).catch((error: unknown) => {
        if (!(error instanceof TransactionRollbackError)) throw error;
      });
    });
  });
});
