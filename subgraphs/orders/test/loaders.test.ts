// The loaders against a repository that records what it is asked: what a page read, byId answers without asking
// again, and every key still gets its own answer in order (the DataLoader contract).
import { describe, expect, it } from 'vitest';
import { createOrderLoaders } from '../src/order/loaders.ts';
import type { OrderRepository, OrderRow } from '../src/order/repository.ts';

const order = (id: number, userId: number): OrderRow => ({ id, userId, status: 'PAID', totalCents: id, currency: 'USD', createdAt: new Date(0) });

function fakeRepository(rows: OrderRow[]) {
  const asked: { method: string; ids: readonly number[] }[] = [];
  const repository = {
    findByIds: async (ids: readonly number[]) => {
      asked.push({ method: 'findByIds', ids: [...ids] });
      return rows.filter((row) => ids.includes(row.id));
    },
    pagesByUser: async ({ userIds }: { userIds: readonly number[] }) => {
      asked.push({ method: 'pagesByUser', ids: [...userIds] });
      return rows.filter((row) => userIds.includes(row.userId));
    },
  } as unknown as OrderRepository;
  return { repository, asked };
}

describe('order loaders', () => {
  it('byId answers orders a page read without a statement, and asks only for the others', async () => {
    const rows = [order(1, 10), order(2, 10), order(3, 20), order(4, 30)];
    const { repository, asked } = fakeRepository(rows);
    const loaders = createOrderLoaders(repository);
    const [page10, page20] = await Promise.all([loaders.pageByUser.load({ userId: 10, limit: 5 }), loaders.pageByUser.load({ userId: 20, limit: 5 })]);
    expect(page10.map((row) => row.id)).toEqual([1, 2]);
    expect(page20.map((row) => row.id)).toEqual([3]);
    asked.length = 0;

    // The very rows, not copies; one per key, in order; null for an unknown id.
    const found = await loaders.byId.loadMany([3, 1, 99]);
    expect(found).toEqual([rows[2], rows[0], null]);
    expect(found[0]).toBe(page20[0]);
    expect(asked).toEqual([{ method: 'findByIds', ids: [99] }]);

    asked.length = 0;
    expect(await loaders.byId.load(2)).toBe(page10[1]);
    expect(asked).toEqual([]);

    // Rows the root list read (remember) count as read too.
    loaders.remember([rows[3]!]);
    expect(await loaders.byId.load(4)).toBe(rows[3]);
    expect(asked).toEqual([]);
  });
});
