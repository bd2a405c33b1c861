// placeOrder depends on the users subgraph to know whether the buyer exists. When that answer cannot be had,
// the client must learn it (SUBGRAPH_UNAVAILABLE, "try again") and nothing may be written. This file breaks
// and stops its own users subgraph, so it has its own databases.
import { errorCodes } from '@fed/platform/testing';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLACE_ORDER, placeOrder, startOrdersSubgraph, startUsersSubgraph, uniqueEmail, type OrdersSubgraph, type UsersSubgraph } from './harness.ts';

let users: UsersSubgraph;
let orders: OrdersSubgraph;
let buyer: string;
const items = [{ sku: 'SKU-1', quantity: 2, unitPriceCents: 500 }];

beforeAll(async () => {
  users = await startUsersSubgraph('orders_down_users');
  orders = await startOrdersSubgraph({ users, prefix: 'orders_down' });
  buyer = await users.createUser({ email: uniqueEmail(), name: 'Buyer' });
  // The path works while the users subgraph is healthy.
  await placeOrder(orders, { userId: buyer, items });
});

afterAll(async () => {
  await orders?.close();
  await users?.close();
});

describe('placeOrder when the users subgraph cannot answer', () => {
  it('answers SUBGRAPH_UNAVAILABLE, not NOT_FOUND, when the users subgraph fails to look the user up', async () => {
    // The users service is reachable but its database is broken: it answers `_entities: [null]` plus an error.
    // That is "could not tell", not "no such user"; an existing buyer must not be told they do not exist.
    await users.handle.db.execute(sql`alter table users rename to users_broken_for_test`);
    try {
      const before = await orders.countRows();

      const response = await orders.request(PLACE_ORDER, { input: { userId: buyer, items } });

      expect(response.data).toBeNull();
      expect(errorCodes(response)).toEqual(['SUBGRAPH_UNAVAILABLE']);
      expect(await orders.countRows()).toEqual(before);
    } finally {
      await users.handle.db.execute(sql`alter table users_broken_for_test rename to users`);
    }
    // Repaired, the same request succeeds.
    await expect(placeOrder(orders, { userId: buyer, items })).resolves.toMatchObject({ totalCents: 1_000 });
  });

  it('answers SUBGRAPH_UNAVAILABLE and writes nothing while the users subgraph is stopped', async () => {
    await users.stop();
    const before = await orders.countRows();

    const started = performance.now();
    const response = await orders.request(PLACE_ORDER, { input: { userId: buyer, items } });
    const elapsedMs = performance.now() - started;

    expect(response.data).toBeNull();
    expect(errorCodes(response)).toEqual(['SUBGRAPH_UNAVAILABLE']);
    expect(response.errors?.[0]?.message).toMatch(/nothing was written/i);
    // The client is not shown where the users service lives.
    expect(JSON.stringify(response)).not.toContain(new URL(users.url).host);
    expect(await orders.countRows()).toEqual(before);
    // A refused connection fails fast; it does not sit out the 2 s lookup timeout.
    expect(elapsedMs).toBeLessThan(2_000);

    // Reads that do not need the users subgraph keep working.
    const listed = await orders.request<{ orders: { totalCount: number } }>('{ orders { totalCount } }');
    expect(listed.errors).toBeUndefined();
    expect(listed.data!.orders.totalCount).toBe(before.orders);
  });
});
