import { and, eq, inArray } from 'drizzle-orm';
import { preparedOn, preparedRows, type ColumnConversion } from '@fed/platform';
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

/** The columns of an order row as the resolvers read them: the driver builds each row object with these names. */
const ORDER_COLUMNS = 'id, user_id as "userId", status, total_cents as "totalCents", currency, created_at as "createdAt"';
const ORDER_CONVERSIONS = { id: 'int8', userId: 'int8', createdAt: 'timestamptz' } as const;
const ITEM_COLUMNS = 'order_id as "orderId", position, sku, quantity, unit_price_cents as "unitPriceCents"';

/**
 * One statement text with optional filters, and the order of its parameters: each filter present takes the next
 * `$n`. Ids are one array parameter (`= any($1)`), not one per id, so a statement has one text whatever the
 * number of ids, and is prepared once, not once per batch size.
 */
function statement<TArgs>(build: (param: (name: keyof TArgs & string) => string) => string) {
  const names: (keyof TArgs & string)[] = [];
  const text = build((name) => `$${names.push(name)}`);
  return { text, params: (args: TArgs) => names.map((name) => args[name]) };
}

const whereAll = (conditions: (string | false)[]) => {
  const present = conditions.filter((condition) => condition !== false);
  return present.length > 0 ? ` where ${present.join(' and ')}` : '';
};

/**
 * A read with optional `after` and `status` filters, as four prepared variants (each built on first use): a
 * filter written as `($n is null or …)` would keep one plan for every case, and lose the index on status.
 */
function withFilters<TRead>(prepare: (filters: { after: boolean; status: boolean }) => TRead) {
  const variants = [false, true].flatMap((status) => [false, true].map((after) => prepare({ after, status })));
  return (after: number | undefined, status: OrderStatus | undefined) => variants[(after === undefined ? 0 : 1) + (status === undefined ? 0 : 2)]!;
}

/**
 * A prepared read (see preparedRows: rows come from the driver as the resolvers use them) on this database or its
 * replicas (see preparedOn).
 */
function read<TArgs, TRow extends object>(db: OrdersDatabase, { text, params }: ReturnType<typeof statement<TArgs>>, conversions: Partial<Record<keyof TRow & string, ColumnConversion>>) {
  const reader = preparedOn(db, (target) => preparedRows<TRow>(target, text, conversions));
  return (args: TArgs): Promise<TRow[]> => reader()(params(args));
}

interface Filters {
  after?: number;
  status?: OrderStatus;
}

/**
 * SQL only: no validation, no GraphQL. Every read is one statement whatever the number of ids, and the hot ones
 * are prepared once per database client (see preparedOn), when first used: a repository made for one
 * transaction prepares only what that transaction runs.
 */
export function createOrderRepository(db: OrdersDatabase) {
  const byIds = read<{ ids: readonly number[] }, OrderRow>(db, statement((param) => `select ${ORDER_COLUMNS} from orders where id = any(${param('ids')})`), ORDER_CONVERSIONS);
  const itemsOf = read<{ orderIds: readonly number[] }, OrderItemRow>(
    db,
    statement((param) => `select ${ITEM_COLUMNS} from order_items where order_id = any(${param('orderIds')}) order by order_id, position`),
    { orderId: 'int8' },
  );
  const page = withFilters(({ after, status }) =>
    read<Filters & { limit: number }, OrderRow>(
      db,
      statement(
        (param) =>
          `select ${ORDER_COLUMNS} from orders${whereAll([after && `id < ${param('after')}`, status && `status = ${param('status')}`])} order by id desc limit ${param('limit')}`,
      ),
      ORDER_CONVERSIONS,
    ),
  );
  const countAll = [false, true].map((status) =>
    read<{ status?: OrderStatus }, { total: number }>(db, statement((param) => `select count(*) as total from orders${whereAll([status && `status = ${param('status')}`])}`), {
      total: 'int8',
    }),
  );
  // The first `limit` orders of each user: a window function ranks each user's orders, so one statement serves
  // every user of the batch.
  const pages = withFilters(({ after, status }) =>
    read<Filters & { userIds: readonly number[]; limit: number }, OrderRow>(
      db,
      statement(
        (param) =>
          `select id, "userId", status, "totalCents", currency, "createdAt" from (` +
          `select ${ORDER_COLUMNS}, row_number() over (partition by user_id order by id desc) as rank from orders` +
          `${whereAll([`user_id = any(${param('userIds')})`, after && `id < ${param('after')}`, status && `status = ${param('status')}`])}` +
          `) ranked where rank <= ${param('limit')} order by "userId", id desc`,
      ),
      ORDER_CONVERSIONS,
    ),
  );
  const countsByUser = [false, true].map((status) =>
    read<{ userIds: readonly number[]; status?: OrderStatus }, { userId: number; total: number }>(
      db,
      statement(
        (param) =>
          `select user_id as "userId", count(*) as total from orders${whereAll([`user_id = any(${param('userIds')})`, status && `status = ${param('status')}`])} group by user_id`,
      ),
      { userId: 'int8', total: 'int8' },
    ),
  );
  const stats = read<{ userIds: readonly number[] }, UserOrderStats>(
    db,
    statement(
      (param) =>
        `select user_id as "userId", count(*) as "orderCount", coalesce(sum(total_cents) filter (where status <> 'CANCELLED'), 0) as "spentCents"` +
        ` from orders where user_id = any(${param('userIds')}) group by user_id`,
    ),
    { userId: 'int8', orderCount: 'int8', spentCents: 'int8' },
  );

  return {
    findByIds: (ids: readonly number[]): Promise<OrderRow[]> => byIds({ ids }),

    itemsByOrderIds: (orderIds: readonly number[]): Promise<OrderItemRow[]> => itemsOf({ orderIds }),

    /** Keyset page, newest first; `limit` is the page size plus one to detect a next page. */
    list: ({ after, limit, status }: { after?: number; limit: number; status?: OrderStatus }): Promise<OrderRow[]> =>
      page(after, status)({ after, limit, status }),

    count: async ({ status }: { status?: OrderStatus }): Promise<number> => {
      const [row] = await countAll[status === undefined ? 0 : 1]!({ status });
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
    }): Promise<OrderRow[]> => pages(after, status)({ userIds, after, limit, status }),

    countByUser: ({ userIds, status }: { userIds: readonly number[]; status?: OrderStatus }): Promise<{ userId: number; total: number }[]> =>
      countsByUser[status === undefined ? 0 : 1]!({ userIds, status }),

    /** Order count and money spent (cancelled orders excluded) per user, in one statement. */
    statsByUser: (userIds: readonly number[]): Promise<UserOrderStats[]> => stats({ userIds }),

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
