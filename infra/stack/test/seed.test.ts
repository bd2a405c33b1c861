import { schema as ordersSchema } from '@fed/orders/db';
import { schema as usersSchema } from '@fed/users/db';
import { asc, eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isEmpty, seed } from '../src/seed.ts';
import { startTestStack, type TestStack } from './harness.ts';

describe('the seed', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(() => stack?.teardown());

  const snapshot = async () => ({
    users: await stack.databases.users.db.select().from(usersSchema.users).orderBy(asc(usersSchema.users.id)),
    orders: await stack.databases.orders.db.select().from(ordersSchema.orders).orderBy(asc(ordersSchema.orders.id)),
    items: await stack.databases.orders.db
      .select()
      .from(ordersSchema.orderItems)
      .orderBy(asc(ordersSchema.orderItems.orderId), asc(ordersSchema.orderItems.position)),
  });

  it('produces exactly the same rows for the same arguments, with totals that add up', async () => {
    expect(await isEmpty(stack.databases)).toBe(true);
    const progress: string[] = [];
    await seed(stack.databases, { users: 40, ordersPerUser: 3, batchSize: 25, log: (line) => progress.push(line) });
    const first = await snapshot();
    await seed(stack.databases, { users: 40, ordersPerUser: 3 });
    expect(await snapshot()).toEqual(first);

    expect(first.users).toHaveLength(40);
    expect(first.orders).toHaveLength(120);
    expect(new Set(first.users.map((user) => user.email)).size).toBe(40);
    for (const order of first.orders) {
      const items = first.items.filter((item) => item.orderId === order.id);
      expect(items.length).toBeGreaterThan(0);
      expect(order.totalCents).toBe(items.reduce((sum, item) => sum + item.quantity * item.unitPriceCents, 0));
    }
    // It wrote in batches and said so.
    expect(progress).toContain('users: 25/40');
    expect(progress).toContain('users: 40/40');
    expect(await isEmpty(stack.databases)).toBe(false);
  });

  it('leaves the identity sequences past the seeded ids, so new rows never collide', async () => {
    await seed(stack.databases, { users: 5, ordersPerUser: 1 });
    const [user] = await stack.databases.users.db
      .insert(usersSchema.users)
      .values({ email: 'after-seed@example.com', name: 'After Seed' })
      .returning();
    expect(user?.id).toBe(6);
  });

  it('rolls a database back whole when seeding fails part-way', async () => {
    await seed(stack.databases, { users: 5, ordersPerUser: 2 });
    const before = await snapshot();
    // Items of orders past id 50 are refused: the orders transaction fails after several batches went in.
    await stack.databases.orders.db.execute(sql`alter table order_items add constraint seed_test_fail check (order_id <= 50) not valid`);
    try {
      await expect(seed(stack.databases, { users: 5, ordersPerUser: 40, batchSize: 10 })).rejects.toThrow();
    } finally {
      await stack.databases.orders.db.execute(sql`alter table order_items drop constraint seed_test_fail`);
    }
    const after = await snapshot();
    // users were re-seeded identically; orders and items are exactly what they were, not half-written.
    expect(after.orders).toEqual(before.orders);
    expect(after.items).toEqual(before.items);
    const [fifth] = await stack.databases.users.db.select().from(usersSchema.users).where(eq(usersSchema.users.id, 5));
    expect(fifth).toEqual(before.users[4]);
  });
});
