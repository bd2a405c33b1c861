import DataLoader from 'dataloader';
import type { OrderItemRow, OrderRepository, OrderRow, OrderStatus, UserOrderStats } from './repository.ts';

export interface UserPageKey {
  userId: number;
  /** Rows to fetch per user: the page size plus one. */
  limit: number;
  after?: number;
  status?: OrderStatus;
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

  const itemsByOrderId = new DataLoader<number, OrderItemRow[]>(async (orderIds) => {
    const byOrder = new Map<number, OrderItemRow[]>();
    for (const row of await repository.itemsByOrderIds(orderIds)) {
      const items = byOrder.get(row.orderId);
      if (items) items.push(row);
      else byOrder.set(row.orderId, [row]);
    }
    // A fresh empty list per order without items: a caller may add to what a loader returned.
    return orderIds.map((id) => byOrder.get(id) ?? []);
  });

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

  return { byId, remember, itemsByOrderId, pageByUser, countByUser, statsByUser };
}

export type OrderLoaders = ReturnType<typeof createOrderLoaders>;
