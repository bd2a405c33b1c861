// Orders applies the contract's ownership rules to the viewer the gateway signed: on root fields, on the
// User fields it contributes, on mutations and on Order references.
import type { Viewer } from '@fed/platform';
import { errorCodes } from '@fed/platform/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN,
  PLACE_ORDER,
  placeOrder,
  startOrdersSubgraph,
  startUsersSubgraph,
  uniqueEmail,
  type OrderFields,
  type OrdersSubgraph,
  type UsersSubgraph,
} from './harness.ts';

let users: UsersSubgraph;
let orders: OrdersSubgraph;
let alice: Viewer;
let bob: Viewer;
let aliceOrder: OrderFields;
const items = [{ sku: 'SKU-1', quantity: 2, unitPriceCents: 300 }];

beforeAll(async () => {
  users = await startUsersSubgraph('orders_auth_users');
  orders = await startOrdersSubgraph({ users, prefix: 'orders_auth' });
  alice = { userId: await users.createUser({ email: uniqueEmail('alice'), name: 'Alice' }), role: 'user' };
  bob = { userId: await users.createUser({ email: uniqueEmail('bob'), name: 'Bob' }), role: 'user' };
  aliceOrder = await placeOrder(orders, { userId: alice.userId, items });
});

afterAll(async () => {
  await orders?.close();
  await users?.close();
});

const ORDER = 'query ($id: ID!) { order(id: $id) { id totalCents } }';
const CANCEL = 'mutation ($id: ID!) { cancelOrder(id: $id) { id status } }';
const USER_FIELDS = `query ($r: [_Any!]!) { _entities(representations: $r) {
  ... on User { id orderCount totalSpentCents orders(first: 5) { totalCount } } } }`;
const ORDER_REFS = 'query ($r: [_Any!]!) { _entities(representations: $r) { ... on Order { id totalCents } } }';

describe('reads', () => {
  it('order(id) is for its owner or an admin; anyone else gets null plus FORBIDDEN', async () => {
    for (const viewer of [alice, ADMIN]) {
      const allowed = await orders.request<{ order: { id: string } }>(ORDER, { id: aliceOrder.id }, viewer);
      expect(allowed.data?.order.id).toBe(aliceOrder.id);
    }
    for (const viewer of [bob, null]) {
      const denied = await orders.request(ORDER, { id: aliceOrder.id }, viewer);
      expect(denied.data).toEqual({ order: null });
      expect(errorCodes(denied)).toEqual(['FORBIDDEN']);
    }
  });

  it('does not tell a non-admin whether an order exists: unknown and someone else’s look the same', async () => {
    const unknown = String(Number(aliceOrder.id) + 100_000);
    for (const id of [unknown, aliceOrder.id]) {
      const read = await orders.request(ORDER, { id }, bob);
      expect({ data: read.data, codes: errorCodes(read), message: read.errors?.[0]?.message }).toEqual({
        data: { order: null },
        codes: ['FORBIDDEN'],
        message: 'Only the user it belongs to or an admin may read this order',
      });
      const cancel = await orders.request(CANCEL, { id }, bob);
      expect(errorCodes(cancel)).toEqual(['FORBIDDEN']);
    }
    const admin = await orders.request(ORDER, { id: unknown }, ADMIN);
    expect(errorCodes(admin)).toEqual(['NOT_FOUND']);
  });

  it('orders (every user’s) is for admins only', async () => {
    const admin = await orders.request<{ orders: { totalCount: number } }>('{ orders { totalCount } }', {}, ADMIN);
    expect(admin.data?.orders.totalCount).toBeGreaterThan(0);
    for (const viewer of [alice, null]) {
      const denied = await orders.request('{ orders { totalCount } }', {}, viewer);
      expect(denied.data).toEqual({ orders: null });
      expect(errorCodes(denied)).toEqual(['FORBIDDEN']);
    }
  });

  it('a user’s orders, orderCount and totalSpentCents are for that user or an admin, field by field', async () => {
    const representations = [{ __typename: 'User', id: alice.userId }, { __typename: 'User', id: bob.userId }];
    type Entities = { _entities: ({ id: string; orderCount: number | null; totalSpentCents: number | null; orders: { totalCount: number } | null } | null)[] };

    const asAlice = await orders.request<Entities>(USER_FIELDS, { r: representations }, alice);
    expect(asAlice.data?._entities[0]).toEqual({ id: alice.userId, orderCount: 1, totalSpentCents: 600, orders: { totalCount: 1 } });
    expect(asAlice.data?._entities[1]).toEqual({ id: bob.userId, orderCount: null, totalSpentCents: null, orders: null });
    expect(errorCodes(asAlice)).toEqual(['FORBIDDEN', 'FORBIDDEN', 'FORBIDDEN']);
    expect(asAlice.errors?.every((error) => error.path?.[1] === 1)).toBe(true);

    const asAdmin = await orders.request<Entities>(USER_FIELDS, { r: representations }, ADMIN);
    expect(asAdmin.errors).toBeUndefined();
    expect(asAdmin.data?._entities[1]).toEqual({ id: bob.userId, orderCount: 0, totalSpentCents: 0, orders: { totalCount: 0 } });
  });

  it('an Order reference resolves only for its owner or an admin: holding an id is no licence', async () => {
    const representations = [{ __typename: 'Order', id: aliceOrder.id }];
    const owner = await orders.request<{ _entities: ({ id: string } | null)[] }>(ORDER_REFS, { r: representations }, alice);
    expect(owner.data?._entities).toEqual([{ id: aliceOrder.id, totalCents: 600 }]);
    const other = await orders.request<{ _entities: unknown[] }>(ORDER_REFS, { r: representations }, bob);
    expect(other.data?._entities).toEqual([null]);
    expect(errorCodes(other)).toEqual(['FORBIDDEN']);
  });
});

describe('writes', () => {
  it('placeOrder is for yourself, or for anyone as an admin; a refusal writes nothing', async () => {
    const before = await orders.countRows();
    for (const viewer of [bob, null]) {
      const denied = await orders.request(PLACE_ORDER, { input: { userId: alice.userId, items } }, viewer);
      expect(denied.data).toBeNull();
      expect(errorCodes(denied)).toEqual(['FORBIDDEN']);
    }
    expect(await orders.countRows()).toEqual(before);

    const own = await orders.request<{ placeOrder: { user: { id: string } } }>(PLACE_ORDER, { input: { userId: bob.userId, items } }, bob);
    expect(own.data?.placeOrder.user.id).toBe(bob.userId);
    const forSomeone = await orders.request<{ placeOrder: { user: { id: string } } }>(PLACE_ORDER, { input: { userId: alice.userId, items } }, ADMIN);
    expect(forSomeone.data?.placeOrder.user.id).toBe(alice.userId);
  });

  it('cancelOrder is for the order’s owner or an admin; a refusal leaves the order as it was', async () => {
    const order = await placeOrder(orders, { userId: alice.userId, items });
    for (const viewer of [bob, null]) {
      const denied = await orders.request(CANCEL, { id: order.id }, viewer);
      expect(denied.data).toBeNull();
      expect(errorCodes(denied)).toEqual(['FORBIDDEN']);
    }
    const still = await orders.request<{ order: { status: string } }>('query ($id: ID!) { order(id: $id) { status } }', { id: order.id });
    expect(still.data?.order.status).toBe('PENDING');

    const own = await orders.request<{ cancelOrder: { status: string } }>(CANCEL, { id: order.id }, alice);
    expect(own.data?.cancelOrder.status).toBe('CANCELLED');
  });
});

describe('service-to-service calls', () => {
  it('are signed: orders holding the wrong users secret cannot take its snapshot of users, and writes nothing', async () => {
    const misconfigured = await startOrdersSubgraph({ users: { url: users.url, ordersSecret: 'w'.repeat(43), stream: users.stream }, prefix: 'orders_auth_wrong' });
    try {
      const response = await misconfigured.request(PLACE_ORDER, { input: { userId: alice.userId, items } });
      expect(response.data).toBeNull();
      expect(errorCodes(response)).toEqual(['SUBGRAPH_UNAVAILABLE']);
      expect(await misconfigured.countRows()).toEqual({ orders: 0, items: 0 });
    } finally {
      await misconfigured.close();
    }
  });
});
