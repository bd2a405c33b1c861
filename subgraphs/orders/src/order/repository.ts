import { and, asc, count, desc, eq, inArray, lt, lte, sql, type SQL } from 'drizzle-orm';
import type { OrdersDatabase } from '../db/index.ts';
import { orderItems, orders, type OrderItemRow, type OrderRow, type OrderStatus } from '../db/schema.ts';

export type { OrderItemRow, OrderRow, OrderStatus };

export interface NewOrder {
  userId: number;
  currency: string;
  totalCents: number;
  items: { sku: string; quantity: number; unitPriceCents: number }[];
}

export interface UserOrderStats {
  userId: number;
  orderCount: number;
  spentCents: number;
}

const filters = (...conditions: (SQL | undefined)[]) => and(...conditions.filter((c) => c !== undefined));

/** SQL only: no validation, no GraphQL. Every read is one statement whatever the number of ids. */
export function createOrderRepository(db: OrdersDatabase) {
  return {
    findByIds: (ids: readonly number[]): Promise<OrderRow[]> =>
      db.select().from(orders).where(inArray(orders.id, [...ids])),

    itemsByOrderIds: (orderIds: readonly number[]): Promise<OrderItemRow[]> =>
      db
        .select()
        .from(orderItems)
        .where(inArray(orderItems.orderId, [...orderIds]))
        .orderBy(asc(orderItems.orderId), asc(orderItems.position)),

    /** Keyset page, newest first; `limit` is the page size plus one to detect a next page. */
    list: ({ after, limit, status }: { after?: number; limit: number; status?: OrderStatus }): Promise<OrderRow[]> =>
      db
        .select()
        .from(orders)
        .where(
          filters(
            after === undefined ? undefined : lt(orders.id, after),
            status === undefined ? undefined : eq(orders.status, status),
          ),
        )
        .orderBy(desc(orders.id))
        .limit(limit),

    count: async ({ status }: { status?: OrderStatus }): Promise<number> => {
      const [row] = await db
        .select({ total: count() })
        .from(orders)
        .where(status === undefined ? undefined : eq(orders.status, status));
      return row?.total ?? 0;
    },

    /**
     * The first `limit` orders of each user (newest first) in a single statement: a window function ranks
     * each user's orders, so the cost does not grow with the number of users.
     */
    pagesByUser: async ({
      userIds,
      after,
      limit,
      status,
    }: {
      userIds: readonly number[];
      after?: number;
      limit: number;
      status?: OrderStatus;
    }): Promise<OrderRow[]> => {
      const ranked = db
        .select({
          id: orders.id,
          userId: orders.userId,
          status: orders.status,
          totalCents: orders.totalCents,
          currency: orders.currency,
          createdAt: orders.createdAt,
          rank: sql<number>`row_number() over (partition by ${orders.userId} order by ${orders.id} desc)`.as('rank'),
        })
        .from(orders)
        .where(
          filters(
            inArray(orders.userId, [...userIds]),
            after === undefined ? undefined : lt(orders.id, after),
            status === undefined ? undefined : eq(orders.status, status),
          ),
        )
        .as('ranked');
      return db
        .select({
          id: ranked.id,
          userId: ranked.userId,
          status: ranked.status,
          totalCents: ranked.totalCents,
          currency: ranked.currency,
          createdAt: ranked.createdAt,
        })
        .from(ranked)
        .where(lte(ranked.rank, limit))
        .orderBy(asc(ranked.userId), desc(ranked.id));
    },

    countByUser: ({ userIds, status }: { userIds: readonly number[]; status?: OrderStatus }) =>
      db
        .select({ userId: orders.userId, total: count() })
        .from(orders)
        .where(filters(inArray(orders.userId, [...userIds]), status === undefined ? undefined : eq(orders.status, status)))
        .groupBy(orders.userId),

    /** Order count and money spent (cancelled orders excluded) per user, in one statement. */
    statsByUser: (userIds: readonly number[]): Promise<UserOrderStats[]> =>
      db
        .select({
          userId: orders.userId,
          orderCount: count(),
          spentCents: sql<number>`coalesce(sum(${orders.totalCents}) filter (where ${orders.status} <> 'CANCELLED'), 0)`.mapWith(
            Number,
          ),
        })
        .from(orders)
        .where(inArray(orders.userId, [...userIds]))
        .groupBy(orders.userId),

    /** The order and its items: two statements, so the caller runs this inside its transaction. */
    insert: async (order: NewOrder): Promise<{ order: OrderRow; items: OrderItemRow[] }> => {
      const [row] = await db
        .insert(orders)
        .values({ userId: order.userId, currency: order.currency, totalCents: order.totalCents })
        .returning();
      if (!row) throw new Error('insert into orders returned no row');
      const items = await db
        .insert(orderItems)
        .values(order.items.map((item, position) => ({ ...item, orderId: row.id, position })))
        .returning();
      return { order: row, items };
    },

    /** Cancels every PENDING order of these users in one statement; returns the cancelled orders. */
    cancelPendingOf: (userIds: readonly number[]): Promise<OrderRow[]> =>
      db
        .update(orders)
        .set({ status: 'CANCELLED' })
        .where(and(inArray(orders.userId, [...userIds]), eq(orders.status, 'PENDING')))
        .returning(),

    /**
     * Cancels only while the order has not shipped; the status check and the write are one statement, so a
     * concurrent "ship" cannot slip in between. Undefined means unknown or not cancellable.
     */
    cancel: async (id: number): Promise<OrderRow | undefined> => {
      const [row] = await db
        .update(orders)
        .set({ status: 'CANCELLED' })
        .where(and(eq(orders.id, id), inArray(orders.status, ['PENDING', 'PAID', 'CANCELLED'])))
        .returning();
      return row;
    },
  };
}

export type OrderRepository = ReturnType<typeof createOrderRepository>;
