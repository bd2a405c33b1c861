import { schema as ordersSchema } from '@fed/orders/db';
import { errorCodes } from '@fed/platform/testing';
import { schema as usersSchema } from '@fed/users/db';
import { count, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from './harness.ts';

describe('mutations through the gateway', () => {
  let stack: TestStack;
  let userId: string;

  const rowCounts = async () => {
    const [users] = await stack.databases.users.db.select({ n: count() }).from(usersSchema.users);
    const [orders] = await stack.databases.orders.db.select({ n: count() }).from(ordersSchema.orders);
    const [items] = await stack.databases.orders.db.select({ n: count() }).from(ordersSchema.orderItems);
    return { users: users?.n, orders: orders?.n, items: items?.n };
  };

  beforeAll(async () => {
    stack = await startTestStack();
    const created = await stack.request<{ createUser: { id: string } }>('mutation { createUser(input: { email: "ada@example.com", name: "Ada" }) { id } }',
    );
    userId = created.data?.createUser.id ?? '';
    expect(userId).not.toBe('');
  });
  afterAll(() => stack?.teardown());

  const placeOrder = (input: Record<string, unknown>) =>
    stack.request('mutation ($input: PlaceOrderInput!) { placeOrder(input: $input) { id totalCents } }', { input });

  it.each([
    ['a malformed email', 'BAD_USER_INPUT', 'input.email', { email: 'not-an-email', name: 'X' }],
    ['a taken email (any case)', 'EMAIL_TAKEN', 'input.email', { email: 'ADA@example.com', name: 'Other Ada' }],
    ['an empty name', 'BAD_USER_INPUT', 'input.name', { email: 'x@example.com', name: '   ' }],
    ['a NUL in the name', 'BAD_USER_INPUT', 'input.name', { email: 'nul@example.com', name: 'A\u0000B' }],
  ])('createUser with %s fails with %s on %s and writes nothing', async (_case, code, field, input) => {
    const before = await rowCounts();
    const response = await stack.request('mutation ($input: CreateUserInput!) { createUser(input: $input) { id } }', { input });
    expect(response.data).toBeNull();
    expect(response.errors?.[0]?.extensions).toEqual({ code, field, serviceName: 'users' });
    expect(await rowCounts()).toEqual(before);
  });

  it.each([
    ['an empty item list', 'BAD_USER_INPUT', 'input.items', { items: [] }],
    ['a zero quantity', 'BAD_USER_INPUT', 'input.items[0].quantity', { items: [{ sku: 'A', quantity: 0, unitPriceCents: 100 }] }],
    ['a negative price', 'BAD_USER_INPUT', 'input.items[1].unitPriceCents', { items: [{ sku: 'A', quantity: 1, unitPriceCents: 100 }, { sku: 'B', quantity: 1, unitPriceCents: -1 }] }],
    ['an oversized item list', 'BAD_USER_INPUT', 'input.items', { items: Array.from({ length: 101 }, (_, i) => ({ sku: `S${i}`, quantity: 1, unitPriceCents: 1 })) }],
    ['a NUL in a SKU', 'BAD_USER_INPUT', 'input.items[0].sku', { items: [{ sku: 'B\u0000AD', quantity: 1, unitPriceCents: 1 }] }],
    ['an unknown user', 'USER_NOT_FOUND', 'input.userId', { userId: '987654', items: [{ sku: 'A', quantity: 1, unitPriceCents: 1 }] }],
  ])('placeOrder with %s fails with %s on %s and writes nothing', async (_case, code, field, partial) => {
    const before = await rowCounts();
    const response = await placeOrder({ userId, ...partial });
    expect(response.data).toBeNull();
    expect(response.errors?.[0]?.extensions).toEqual({ code, field, serviceName: 'orders' });
    expect(await rowCounts()).toEqual(before);
  });

  it('computes the total on write, and the user sees it in orderCount and totalSpentCents', async () => {
    const placed = await placeOrder({
      userId,
      items: [
        { sku: 'BOOK', quantity: 2, unitPriceCents: 1250 },
        { sku: 'PEN', quantity: 3, unitPriceCents: 199 },
      ],
    });
    expect(placed.errors).toBeUndefined();
    expect(placed.data).toMatchObject({ placeOrder: { totalCents: 2 * 1250 + 3 * 199 } });

    const user = await stack.request<{ user: { orderCount: number; totalSpentCents: number; orders: { totalCount: number } } }>('query ($id: ID!) { user(id: $id) { orderCount totalSpentCents orders { totalCount } } }',
      { id: userId },
    );
    expect(user.data?.user).toEqual({ orderCount: 1, totalSpentCents: 3097, orders: { totalCount: 1 } });
  });

  it('refuses to cancel a shipped order and leaves it shipped', async () => {
    const placed = await stack.request<{ placeOrder: { id: string } }>('mutation ($u: ID!) { placeOrder(input: { userId: $u, items: [{ sku: "A", quantity: 1, unitPriceCents: 5 }] }) { id } }',
      { u: userId },
    );
    const orderId = placed.data?.placeOrder.id;
    await stack.databases.orders.db.execute(sql`update orders set status = 'SHIPPED' where id = ${Number(orderId)}`);

    const cancelled = await stack.request('mutation ($id: ID!) { cancelOrder(id: $id) { status } }', { id: orderId });
    expect(errorCodes(cancelled)).toEqual(['ORDER_NOT_CANCELLABLE']);
    const order = await stack.request<{ order: { status: string } }>('query ($id: ID!) { order(id: $id) { status } }', { id: orderId });
    expect(order.data?.order.status).toBe('SHIPPED');
  });

  it('answers unknown ids with null and NOT_FOUND, and bad ids or page sizes with BAD_USER_INPUT', async () => {
    const unknown = await stack.request<{ user: null; order: null }>('{ user(id: "424242") { id } order(id: "424242") { id } }');
    expect(unknown.data).toEqual({ user: null, order: null });
    expect(errorCodes(unknown).sort()).toEqual(['NOT_FOUND', 'NOT_FOUND']);

    const badId = await stack.request('{ user(id: "abc") { id } }');
    expect(badId.errors?.[0]?.extensions).toEqual({ code: 'BAD_USER_INPUT', field: 'id', serviceName: 'users' });

    for (const first of [101, -1]) {
      const page = await stack.request('query ($first: Int) { users(first: $first) { totalCount } }', { first });
      expect(page.data).toBeNull();
      expect(page.errors?.[0]?.extensions).toEqual({ code: 'BAD_USER_INPUT', field: 'first', serviceName: 'users' });
    }
    const nested = await stack.request<{ user: { orders: null } }>('query ($id: ID!) { user(id: $id) { name orders(first: 1000) { totalCount } } }', { id: userId });
    expect(nested.data?.user).toEqual({ name: 'Ada', orders: null });
    expect(nested.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'first' });
  });

  it('writes neither the order nor any item when the item insert fails inside the transaction', async () => {
    const before = await rowCounts();
    // A real database-side failure after the order row is already written: only the transaction can undo it.
    await stack.databases.orders.db.execute(sql`
      create function refuse_items() returns trigger language plpgsql as $$
      begin raise exception 'items refused for this test'; end $$`);
    await stack.databases.orders.db.execute(sql`create trigger refuse_items before insert on order_items for each row execute function refuse_items()`);
    try {
      const response = await placeOrder({ userId, items: [{ sku: 'A', quantity: 1, unitPriceCents: 100 }] });
      expect(response.data).toBeNull();
      expect(response.errors?.[0]?.extensions).toEqual({ code: 'INTERNAL_SERVER_ERROR', serviceName: 'orders' });
      expect(JSON.stringify(response)).not.toContain('refused');
    } finally {
      await stack.databases.orders.db.execute(sql`drop trigger refuse_items on order_items`);
      await stack.databases.orders.db.execute(sql`drop function refuse_items()`);
    }
    expect(await rowCounts()).toEqual(before);
  });

  it('answers a lifetime total beyond a GraphQL Int with VALUE_OUT_OF_RANGE rather than a wrong number', async () => {
    const created = await stack.request<{ createUser: { id: string } }>('mutation { createUser(input: { email: "big.spender@example.com", name: "Big Spender" }) { id } }',
    );
    const id = created.data?.createUser.id;
    for (let i = 0; i < 2; i++) {
      const placed = await placeOrder({ userId: id, items: [{ sku: 'YACHT', quantity: 1, unitPriceCents: 2_000_000_000 }] });
      expect(placed.errors).toBeUndefined();
    }
    const user = await stack.request<{ user: { name: string; orderCount: number; totalSpentCents: number | null } }>('query ($id: ID!) { user(id: $id) { name orderCount totalSpentCents } }',
      { id },
    );
    expect(user.data?.user).toEqual({ name: 'Big Spender', orderCount: 2, totalSpentCents: null });
    expect(user.errors?.[0]?.extensions).toEqual({ code: 'VALUE_OUT_OF_RANGE', serviceName: 'orders' });
  });
});
