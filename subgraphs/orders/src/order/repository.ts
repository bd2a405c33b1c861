import { and, asc, count, desc, eq, inArray, lt, lte, sql, type SQL, type SQLWrapper } from 'drizzle-orm';
import { preparedOn } from '@fed/platform';
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

// One array parameter (`= any($1)`) rather than one parameter per id: one statement text whatever the number of
// ids, so it is prepared once, not once per batch size.
const anyOf = (column: SQLWrapper, name: string) => sql`${column} = any(${sql.placeholder(name)})`;

/**
 * A statement with optional `after` and `status` filters, as four prepared variants (each built on first use):
 * a filter written as `($n is null or …)` would keep one plan for every case, and lose the index on status.
 */
function withFilters<TStatement>(prepare: (filters: { after: boolean; status: boolean }) => () => TStatement) {
  const variants = [false, true].flatMap((status) => [false, true].map((after) => prepare({ after, status })));
  return (after: number | undefined, status: OrderStatus | undefined) => variants[(after === undefined ? 0 : 1) + (status === undefined ? 0 : 2)]!();
}

/**
 * SQL only: no validation, no GraphQL. Every read is one statement whatever the number of ids, and the hot ones
 * are prepared once per database client (see preparedOn), when first used: a repository made for one
 * transaction prepares only what that transaction runs.
 */
export function createOrderRepository(db: OrdersDatabase) {
  const byIds = preparedOn(db, (target) => target.select().from(orders).where(anyOf(orders.id, 'ids')).prepare('orders_by_ids'));
  const itemsOf = preparedOn(db, (target) =>
    target.select().from(orderItems).where(anyOf(orderItems.orderId, 'orderIds')).orderBy(asc(orderItems.orderId), asc(orderItems.position)).prepare('order_items_by_order_ids'),
  );
  const page = withFilters(({ after, status }) =>
    preparedOn(db, (target) =>
      target
        .select()
        .from(orders)
        .where(filters(after ? lt(orders.id, sql.placeholder('after')) : undefined, status ? eq(orders.status, sql.placeholder('status')) : undefined))
        .orderBy(desc(orders.id))
        .limit(sql.placeholder('limit'))
        .prepare(`orders_page_${Number(after)}${Number(status)}`),
    ),
  );
  const countAll = [false, true].map((status) =>
    preparedOn(db, (target) =>
      target
        .select({ total: count() })
        .from(orders)
        .where(status ? eq(orders.status, sql.placeholder('status')) : undefined)
        .prepare(`orders_count_${Number(status)}`),
    ),
  );
  const pages = withFilters(({ after, status }) =>
    preparedOn(db, (target) => {
      const ranked = target
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
            anyOf(orders.userId, 'userIds'),
            after ? lt(orders.id, sql.placeholder('after')) : undefined,
            status ? eq(orders.status, sql.placeholder('status')) : undefined,
          ),
        )
        .as('ranked');
      return target
        .select({
          id: ranked.id,
          userId: ranked.userId,
          status: ranked.status,
          totalCents: ranked.totalCents,
          currency: ranked.currency,
          createdAt: ranked.createdAt,
        })
        .from(ranked)
        .where(lte(ranked.rank, sql.placeholder('limit')))
        .orderBy(asc(ranked.userId), desc(ranked.id))
        .prepare(`orders_pages_by_user_${Number(after)}${Number(status)}`);
    }),
  );
  const countsByUser = [false, true].map((status) =>
    preparedOn(db, (target) =>
      target
        .select({ userId: orders.userId, total: count() })
        .from(orders)
        .where(filters(anyOf(orders.userId, 'userIds'), status ? eq(orders.status, sql.placeholder('status')) : undefined))
        .groupBy(orders.userId)
        .prepare(`orders_count_by_user_${Number(status)}`),
    ),
  );
  const stats = preparedOn(db, (target) =>
    target
      .select({
        userId: orders.userId,
        orderCount: count(),
        spentCents: sql<number>`coalesce(sum(${orders.totalCents}) filter (where ${orders.status} <> 'CANCELLED'), 0)`.mapWith(Number),
      })
      .from(orders)
      .where(anyOf(orders.userId, 'userIds'))
      .groupBy(orders.userId)
      .prepare('orders_stats_by_user'),
  );

  return {
    findByIds: (ids: readonly number[]): Promise<OrderRow[]> => byIds().execute({ ids }),

    itemsByOrderIds: (orderIds: readonly number[]): Promise<OrderItemRow[]> => itemsOf().execute({ orderIds }),

    /** Keyset page, newest first; `limit` is the page size plus one to detect a next page. */
    list: ({ after, limit, status }: { after?: number; limit: number; status?: OrderStatus }): Promise<OrderRow[]> =>
      page(after, status).execute({ after, limit, status }),

    count: async ({ status }: { status?: OrderStatus }): Promise<number> => {
      const [row] = await countAll[status === undefined ? 0 : 1]!().execute({ status });
      return row?.total ?? 0;
    },

    /**
     * The first `limit` orders of each user (newest first) in a single statement: a window function ranks
     * each user's orders, so the cost does not grow with the number of users.
     */
    pagesByUser: ({
      userIds,
      after,
      limit,
      status,
    }: {
      userIds: readonly number[];
      after?: number;
      limit: number;
      status?: OrderStatus;
    }): Promise<OrderRow[]> => pages(after, status).execute({ userIds, after, limit, status }),

    countByUser: ({ userIds, status }: { userIds: readonly number[]; status?: OrderStatus }): Promise<{ userId: number; total: number }[]> =>
      countsByUser[status === undefined ? 0 : 1]!().execute({ userIds, status }),

    /** Order count and money spent (cancelled orders excluded) per user, in one statement. */
    statsByUser: (userIds: readonly number[]): Promise<UserOrderStats[]> => stats().execute({ userIds }),

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
