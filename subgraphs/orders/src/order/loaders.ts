import DataLoader from 'dataloader';
import type { OrderItemRow, OrderRepository, OrderRow, OrderStatus, UserOrderStats } from './repository.ts';

export interface UserPageKey {
  userId: number;
  /** Rows to fetch per user: the page size plus one. */
  limit: number;
  after?: number;
  status?: OrderStatus;
  /**
   * The query certainly selects the page's orders' items: they are read with the page, in the same batch, so that
   * each order's items are there when asked for (itemsOf), without a load and a promise per order.
   */
  withItems?: boolean;
}

export interface UserCountKey {
  userId: number;
  status?: OrderStatus;
}

/** Groups keys that share the same arguments: each group is one statement covering all its users. */
function groupBy<TKey>(keys: readonly TKey[], signature: (key: TKey) => string): TKey[][] {
  const groups = new Map<string, TKey[]>();
  for (const key of keys) {
    const id = signature(key);
    const group = groups.get(id) ?? [];
    group.push(key);
    groups.set(id, group);
  }
  return [...groups.values()];
}

const pageSignature = ({ limit, after, status }: UserPageKey) => `${limit}:${after ?? ''}:${status ?? ''}`;
const pageCacheKey = (key: UserPageKey) => `${key.userId}:${pageSignature(key)}`;
const countCacheKey = ({ userId, status }: UserCountKey) => `${userId}:${status ?? ''}`;

/**
 * Per-request DataLoaders. Each honours the DataLoader contract (one result per key, same order, null or
 * empty for missing), and each batch is one SQL statement per distinct argument set, never per parent.
 */
export function createOrderLoaders(repository: OrderRepository) {
  // Orders this request has read already (its pages), by id: byId answers from here before it asks the database.
  // DataLoader's prime() would do the same with a resolved promise built per row, asked for again or not (a
  // nested page's hundred rows, rarely any).
  const known = new Map<number, OrderRow>();
  const remember = (rows: readonly OrderRow[]) => {
    for (const row of rows) if (!known.has(row.id)) known.set(row.id, row);
  };
  const byId = new DataLoader<number, OrderRow | null>(async (ids) => {
    const missing = ids.filter((id) => !known.has(id));
    if (missing.length > 0) remember(await repository.findByIds(missing));
    return ids.map((id) => known.get(id) ?? null);
  });

  /** Each order's items, in position order; a fresh empty list per order without items (a caller may add to it). */
  const readItems = async (orderIds: readonly number[]) => {
    const byOrder = new Map<number, OrderItemRow[]>();
    for (const id of orderIds) byOrder.set(id, []);
    for (const row of await repository.itemsByOrderIds(orderIds)) byOrder.get(row.orderId)?.push(row);
    return byOrder;
  };
  const itemsByOrderId = new DataLoader<number, OrderItemRow[]>(async (orderIds) => {
    const byOrder = await readItems(orderIds);
    return orderIds.map((id) => byOrder.get(id)!);
  });
  // Items read with a page (UserPageKey.withItems), by order id.
  const itemsRead = new Map<number, OrderItemRow[]>();
  /** An order's items when a page read them already; else undefined, and itemsByOrderId loads them. */
  const itemsOf = (orderId: number): OrderItemRow[] | undefined => itemsRead.get(orderId);

  const pageByUser = new DataLoader<UserPageKey, OrderRow[], string>(
    async (keys) => {
      // Per distinct argument set, each user's rows: keyed by user id, so no key string is built per row.
      const results = new Map<string, Map<number, OrderRow[]>>();
      // Distinct argument sets (aliases with other page sizes, say) run side by side on the pool.
      await Promise.all(
        groupBy(keys, pageSignature).map(async (group) => {
          const [first] = group as [UserPageKey];
          const { limit, after, status } = first;
          const byUser = new Map<number, OrderRow[]>();
          for (const key of group) byUser.set(key.userId, []);
          results.set(pageSignature(first), byUser);
          const rows = await repository.pagesByUser({ userIds: group.map((key) => key.userId), limit, after, status });
          for (const row of rows) byUser.get(row.userId)?.push(row);
          remember(rows);
          if (group.some((key) => key.withItems)) {
            // The orders each page shows (not the extra row that only tells whether a next page exists).
            const shown = [...byUser.values()].flatMap((page) => page.slice(0, limit - 1).map((row) => row.id)).filter((id) => !itemsRead.has(id));
            try {
              if (shown.length > 0) for (const [id, items] of await readItems(shown)) itemsRead.set(id, items);
            } catch {
              // The page stands without them: each order's items are then loaded, and fail, as they would have
              // without this read ahead (an error per order's items, not one for the page).
            }
          }
        }),
      );
      return keys.map((key) => results.get(pageSignature(key))?.get(key.userId) ?? []);
    },
    { cacheKeyFn: pageCacheKey },
  );

  const countByUser = new DataLoader<UserCountKey, number, string>(
    async (keys) => {
      const results = new Map<string, number>();
      await Promise.all(
        groupBy(keys, ({ status }) => status ?? '').map(async (group) => {
          const status = group[0]?.status;
          const rows = await repository.countByUser({ userIds: group.map((key) => key.userId), status });
          for (const row of rows) results.set(countCacheKey({ userId: row.userId, status }), row.total);
        }),
      );
      return keys.map((key) => results.get(countCacheKey(key)) ?? 0);
    },
    { cacheKeyFn: countCacheKey },
  );

  const statsByUser = new DataLoader<number, UserOrderStats>(async (userIds) => {
    const found = new Map<number, UserOrderStats>();
    for (const row of await repository.statsByUser(userIds)) found.set(row.userId, row);
    return userIds.map((userId) => found.get(userId) ?? { userId, orderCount: 0, spentCents: 0 });
  });

  return { byId, remember, itemsByOrderId, itemsOf, pageByUser, countByUser, statsByUser };
}

export type OrderLoaders = ReturnType<typeof createOrderLoaders>;
