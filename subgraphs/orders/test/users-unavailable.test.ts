// placeOrder no longer asks the users subgraph anything: orders keeps its own projection of which users
// exist, fed from the event stream. So orders keeps taking orders while users is down. This file stops its
// own users subgraph, so it has its own databases.
import { errorCodes } from '@fed/platform/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLACE_ORDER, placeOrder, startOrdersSubgraph, startUsersSubgraph, uniqueEmail, type OrdersSubgraph, type UsersSubgraph } from './harness.ts';

let users: UsersSubgraph;
let orders: OrdersSubgraph;
let buyer: string;
const items = [{ sku: 'SKU-1', quantity: 2, unitPriceCents: 500 }];

beforeAll(async () => {
  users = await startUsersSubgraph('orders_down_users');
  // Existing before orders starts: orders learns of this user from its first snapshot, not from an event.
  buyer = await users.createUser({ email: uniqueEmail(), name: 'Buyer' });
  orders = await startOrdersSubgraph({ users, prefix: 'orders_down' });
});

afterAll(async () => {
  await orders?.close();
  await users?.close();
});

describe('placeOrder while the users subgraph is down', () => {
  it('places orders for known users, and refuses unknown ones with USER_NOT_FOUND, writing nothing for them', async () => {
    const late = await users.createUser({ email: uniqueEmail('late'), name: 'Late' }); // known from its event
    await users.stop();

    await expect(placeOrder(orders, { userId: buyer, items })).resolves.toMatchObject({ totalCents: 1_000, user: { id: buyer } });
    await expect(placeOrder(orders, { userId: late, items })).resolves.toMatchObject({ totalCents: 1_000, user: { id: late } });

    const before = await orders.countRows();
    const response = await orders.request(PLACE_ORDER, { input: { userId: String(Number(late) + 1_000), items } });
    expect(response.data).toBeNull();
    expect(errorCodes(response)).toEqual(['USER_NOT_FOUND']);
    expect(await orders.countRows()).toEqual(before);
  });
});
