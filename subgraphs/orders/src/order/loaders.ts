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
  const byId = new DataLoader<number, OrderRow | null>(async (ids) => {
    const rows = await repository.findByIds(ids);
    const found = new Map(rows.map((row) => [row.id, row]));
    return ids.map((id) => found.get(id) ?? null);
  });

  const itemsByOrderId = new DataLoader<number, OrderItemRow[]>(async (orderIds) => {
    const rows = await repository.itemsByOrderIds(orderIds);
    const byOrder = new Map<number, OrderItemRow[]>();
    for (const row of rows) byOrder.set(row.orderId, [...(byOrder.get(row.orderId) ?? []), row]);
    return orderIds.map((id) => byOrder.get(id) ?? []);
  });

  const pageByUser = new DataLoader<UserPageKey, OrderRow[], string>(
    async (keys) => {
      const results = new Map<string, OrderRow[]>();
      // Distinct argument sets (aliases with other page sizes, say) run side by side on the pool.
      await Promise.all(
        groupBy(keys, pageSignature).map(async (group) => {
          const [{ limit, after, status }] = group as [UserPageKey];
          const rows = await repository.pagesByUser({ userIds: group.map((key) => key.userId), limit, after, status });
          for (const key of group) results.set(pageCacheKey(key), []);
          for (const row of rows) {
            results.get(pageCacheKey({ userId: row.userId, limit, after, status }))?.push(row);
            byId.prime(row.id, row);
          }
        }),
      );
      return keys.map((key) => results.get(pageCacheKey(key)) ?? []);
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
    const rows = await repository.statsByUser(userIds);
    const found = new Map(rows.map((row) => [row.userId, row]));
    return userIds.map((userId) => found.get(userId) ?? { userId, orderCount: 0, spentCents: 0 });
  });

  return { byId, itemsByOrderId, pageByUser, countByUser, statsByUser };
}

export type OrderLoaders = ReturnType<typeof createOrderLoaders>;
