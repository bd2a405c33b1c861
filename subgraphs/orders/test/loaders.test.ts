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

describe('a page read with its items (withItems)', () => {
  const item = (orderId: number, position: number) => ({ orderId, position, sku: `S${orderId}-${position}`, quantity: 1, unitPriceCents: 100 });

  function recording(rows: OrderRow[], items: ReturnType<typeof item>[], failItems = false) {
    const asked: { method: string; ids: readonly number[] }[] = [];
    const repository = {
      pagesByUser: async ({ userIds }: { userIds: readonly number[] }) => {
        asked.push({ method: 'pagesByUser', ids: [...userIds] });
        return rows.filter((row) => userIds.includes(row.userId));
      },
      itemsByOrderIds: async (ids: readonly number[]) => {
        asked.push({ method: 'itemsByOrderIds', ids: [...ids] });
        if (failItems) throw new Error('connection lost');
        return items.filter((row) => ids.includes(row.orderId));
      },
    } as unknown as OrderRepository;
    return { repository, asked };
  }

  it('reads the shown orders’ items in the same batch, one statement, and itemsOf has them without a load', async () => {
    // Pages of one (limit 2): user 10's second order is the extra row that only tells of a next page.
    const rows = [order(1, 10), order(2, 10), order(3, 20)];
    const { repository, asked } = recording(rows, [item(1, 0), item(1, 1), item(2, 0)]);
    const loaders = createOrderLoaders(repository);
    await Promise.all([loaders.pageByUser.load({ userId: 10, limit: 2, withItems: true }), loaders.pageByUser.load({ userId: 20, limit: 2, withItems: true })]);
    expect(asked).toEqual([
      { method: 'pagesByUser', ids: [10, 20] },
      { method: 'itemsByOrderIds', ids: [1, 3] },
    ]);
    expect(loaders.itemsOf(1)?.map((row) => row.sku)).toEqual(['S1-0', 'S1-1']);
    // An order without items gets a list of its own, empty.
    expect(loaders.itemsOf(3)).toEqual([]);
    expect(loaders.itemsOf(2)).toBeUndefined();
  });

  it('without withItems reads no items; when the items read fails the page stands and items load per order', async () => {
    const rows = [order(1, 10)];
    const plain = recording(rows, [item(1, 0)]);
    const loaders = createOrderLoaders(plain.repository);
    await loaders.pageByUser.load({ userId: 10, limit: 2 });
    expect(plain.asked.map((call) => call.method)).toEqual(['pagesByUser']);
    expect(loaders.itemsOf(1)).toBeUndefined();

    const failing = recording(rows, [item(1, 0)], true);
    const failingLoaders = createOrderLoaders(failing.repository);
    expect(await failingLoaders.pageByUser.load({ userId: 10, limit: 2, withItems: true })).toEqual(rows);
    expect(failingLoaders.itemsOf(1)).toBeUndefined();
    await expect(failingLoaders.itemsByOrderId.load(1)).rejects.toThrow('connection lost');
  });
});
