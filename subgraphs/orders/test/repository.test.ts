// The repository's reads build their rows straight from the driver (preparedRows). Each must give exactly what
// drizzle's query builder gives for the same question, on real Postgres and on the embedded PGlite: same rows,
// same order, same JavaScript types.
import { createDatabase, migrateDatabase, type DatabaseHandle, type DatabaseLocation } from '@fed/platform';
import { createTestDatabase } from '@fed/platform/testing';
import { and, asc, count, desc, eq, inArray, lt, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrationsFolder, schema } from '../src/db/index.ts';
import { orderItems, orders, type OrderStatus } from '../src/db/schema.ts';
import { createOrderRepository } from '../src/order/repository.ts';

const drivers: [string, () => Promise<{ location: DatabaseLocation; drop(): Promise<void> }>][] = [
  [
    'postgres.js',
    async () => {
      const database = await createTestDatabase('orders_repository');
      return { location: { url: database.url }, drop: database.drop };
    },
  ],
  ['PGlite', async () => ({ location: { dataDir: 'memory://' }, drop: async () => {} })],
];

const STATUSES: OrderStatus[] = ['PENDING', 'PAID', 'SHIPPED', 'DELIVERED', 'CANCELLED'];

describe.each(drivers)('order repository reads on %s', (_, open) => {
  let handle: DatabaseHandle<typeof schema>;
  let drop: () => Promise<void>;
  const userIds = [11, 12, 13, 14];
  let orderIds: number[] = [];

  beforeAll(async () => {
    const opened = await open();
    drop = opened.drop;
    handle = await createDatabase({ location: opened.location, schema });
    await migrateDatabase(handle, migrationsFolder);
    // User 14 has no orders; the others between 1 and 9, of every status, some without items.
    const placed = await handle.db
      .insert(orders)
      .values(
        [11, 11, 11, 12, 12, 12, 12, 12, 12, 12, 12, 12, 13].map((userId, index) => ({
          userId,
          status: STATUSES[index % STATUSES.length]!,
          totalCents: index * 101,
          currency: index % 2 ? 'EUR' : 'USD',
          createdAt: new Date(Date.UTC(2026, 10, 1 + index, 12, 0, 0, index)),
        })),
      )
      .returning();
    orderIds = placed.map((order) => order.id);
    await handle.db
      .insert(orderItems)
      .values(orderIds.filter((_, index) => index % 3 !== 2).flatMap((orderId, index) => [0, 1, 2].slice(0, 1 + (index % 3)).map((position) => ({ orderId, position, sku: `SKU-${orderId}-${position}`, quantity: 1 + position, unitPriceCents: 250 * position }))));
  }, 60_000);
  afterAll(async () => {
    await handle?.close();
    await drop?.();
  });

  const orderColumns = () => ({
    id: orders.id,
    userId: orders.userId,
    status: orders.status,
    totalCents: orders.totalCents,
    currency: orders.currency,
    createdAt: orders.createdAt,
  });

  it('orders by ids and items by order ids', async () => {
    const repository = createOrderRepository(handle.db);
    const ids = [...orderIds.slice(2, 7), 999_999];
    const found = await repository.findByIds(ids);
    const expected = await handle.db.select().from(orders).where(inArray(orders.id, ids));
    expect([...found].sort((a, b) => a.id - b.id)).toEqual(expected.sort((a, b) => a.id - b.id));
    expect(found[0]!.createdAt).toBeInstanceOf(Date);

    const items = await repository.itemsByOrderIds(orderIds);
    expect(items).toEqual(await handle.db.select().from(orderItems).where(inArray(orderItems.orderId, orderIds)).orderBy(asc(orderItems.orderId), asc(orderItems.position)));
  });

  it('pages and counts, with and without each filter', async () => {
    const repository = createOrderRepository(handle.db);
    for (const status of [undefined, 'PAID' as const]) {
      for (const after of [undefined, orderIds[8]!]) {
        const where = and(after === undefined ? undefined : lt(orders.id, after), status === undefined ? undefined : eq(orders.status, status));
        expect(await repository.list({ after, limit: 4, status })).toEqual(await handle.db.select().from(orders).where(where).orderBy(desc(orders.id)).limit(4));
      }
      const [total] = await handle.db.select({ total: count() }).from(orders).where(status === undefined ? undefined : eq(orders.status, status));
      expect(await repository.count({ status })).toBe(total!.total);
    }
  });

  it("each user's first page, counts and stats, in one statement each", async () => {
    const repository = createOrderRepository(handle.db);
    for (const status of [undefined, 'PENDING' as const]) {
      for (const after of [undefined, orderIds[10]!]) {
        const rows = await repository.pagesByUser({ userIds, after, limit: 3, status });
        const expected = [];
        for (const userId of userIds) {
          const where = and(eq(orders.userId, userId), after === undefined ? undefined : lt(orders.id, after), status === undefined ? undefined : eq(orders.status, status));
          expected.push(...(await handle.db.select(orderColumns()).from(orders).where(where).orderBy(desc(orders.id)).limit(3)));
        }
        expect(rows).toEqual(expected);
      }
      const counts = await repository.countByUser({ userIds, status });
      expect([...counts].sort((a, b) => a.userId - b.userId)).toEqual(
        await handle.db
          .select({ userId: orders.userId, total: count() })
          .from(orders)
          .where(and(inArray(orders.userId, userIds), status === undefined ? undefined : eq(orders.status, status)))
          .groupBy(orders.userId)
          .orderBy(orders.userId),
      );
    }
    const stats = await repository.statsByUser(userIds);
    expect([...stats].sort((a, b) => a.userId - b.userId)).toEqual(
      await handle.db
        .select({
          userId: orders.userId,
          orderCount: count(),
          spentCents: sql<number>`coalesce(sum(${orders.totalCents}) filter (where ${orders.status} <> 'CANCELLED'), 0)`.mapWith(Number),
        })
        .from(orders)
        .where(inArray(orders.userId, userIds))
        .groupBy(orders.userId)
        .orderBy(orders.userId),
    );
    expect(stats.every((row) => typeof row.spentCents === 'number' && typeof row.orderCount === 'number')).toBe(true);
  });
});
