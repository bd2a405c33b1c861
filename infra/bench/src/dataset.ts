import { count } from 'drizzle-orm';
import { schema as ordersSchema } from '@fed/orders/db';
import { createTestDatabase, type TestDatabase } from '@fed/platform/testing';
import { openDatabases } from '@fed/stack/databases';
import { seed } from '@fed/stack/seed';
import { schema as usersSchema } from '@fed/users/db';

export interface Dataset {
  users: TestDatabase;
  orders: TestDatabase;
  counts: { users: number; orders: number; items: number };
  seedSeconds: number;
  drop(): Promise<void>;
}

/**
 * Two fresh Postgres databases, migrated and filled with the seed's fixed, deterministic rows: `users` users with
 * `ordersPerUser` orders each, of one to four items. Fresh every run, because the read/write scenario writes.
 */
export async function seedDataset(size: { users: number; ordersPerUser: number }, log: (line: string) => void): Promise<Dataset> {
  const users = await createTestDatabase('bench_users');
  const orders = await createTestDatabase('bench_orders');
  const drop = async () => {
    await Promise.all([users.drop(), orders.drop()]);
  };
  try {
    const started = performance.now();
    const opened = await openDatabases({ users: { url: users.url }, orders: { url: orders.url } });
    try {
      // A line per quarter of each table: enough to see it move without flooding the log.
      const reported = new Map<string, number>();
      await seed(opened, {
        ...size,
        log: (line) => {
          const [label, progress] = line.split(': ') as [string, string];
          const [done, total] = progress.split('/').map(Number) as [number, number];
          const quarter = Math.floor((4 * done) / total);
          if (quarter > (reported.get(label) ?? 0)) {
            reported.set(label, quarter);
            log(`  seeding ${label}: ${done.toLocaleString('en')} / ${total.toLocaleString('en')}`);
          }
        },
      });
      // Counted, not assumed: the report states what the run really served.
      const total = async (rows: Promise<{ n: number }[]>) => (await rows)[0]?.n ?? 0;
      const counts = {
        users: await total(opened.users.db.select({ n: count() }).from(usersSchema.users)),
        orders: await total(opened.orders.db.select({ n: count() }).from(ordersSchema.orders)),
        items: await total(opened.orders.db.select({ n: count() }).from(ordersSchema.orderItems)),
      };
      return { users, orders, counts, seedSeconds: Number(((performance.now() - started) / 1000).toFixed(1)), drop };
    } finally {
      await opened.close();
    }
  } catch (error) {
    await drop();
    throw error;
  }
}
