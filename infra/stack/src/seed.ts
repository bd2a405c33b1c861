import { sql } from 'drizzle-orm';
import type { OrdersDatabase } from '@fed/orders/db';
import { schema as ordersSchema } from '@fed/orders/db';
import { USER_PROJECTION } from '@fed/orders';
import type { UsersDatabase } from '@fed/users/db';
import { schema as usersSchema } from '@fed/users/db';

export interface SeedOptions {
  users: number;
  ordersPerUser: number;
  /** Rows per INSERT statement. */
  batchSize?: number;
  log?: (line: string) => void;
}

/** Both subgraphs' databases, as `openDatabases` returns them. */
export interface SeedTarget {
  users: { db: UsersDatabase };
  orders: { db: OrdersDatabase };
}

export const DEFAULT_SEED = { users: 300, ordersPerUser: 4 } as const;

const FIRST = ['Ada', 'Alan', 'Barbara', 'Claude', 'Donald', 'Edsger', 'Frances', 'Grace', 'Hedy', 'John', 'Katherine', 'Linus', 'Margaret', 'Niklaus', 'Radia', 'Tim'];
const LAST = ['Lovelace', 'Turing', 'Liskov', 'Shannon', 'Knuth', 'Dijkstra', 'Allen', 'Hopper', 'Lamarr', 'Backus', 'Johnson', 'Torvalds', 'Hamilton', 'Wirth', 'Perlman', 'Berners-Lee'];
const STATUSES = ['PENDING', 'PAID', 'PAID', 'SHIPPED', 'DELIVERED', 'DELIVERED', 'CANCELLED'] as const;
const EPOCH = Date.UTC(2026, 0, 1);

/** mulberry32: a tiny PRNG, so the same arguments always produce the same rows. */
function random(seed: number) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = <T>(rng: () => number, values: readonly T[]): T => values[Math.floor(rng() * values.length)] as T;
const between = (rng: () => number, min: number, max: number) => min + Math.floor(rng() * (max - min + 1));

async function inBatches<T>(rows: Iterable<T>, size: number, insert: (batch: T[]) => Promise<unknown>, progress: (n: number) => void) {
  let batch: T[] = [];
  let done = 0;
  for (const row of rows) {
    batch.push(row);
    if (batch.length === size) {
      await insert(batch);
      progress((done += batch.length));
      batch = [];
    }
  }
  if (batch.length > 0) {
    await insert(batch);
    progress((done += batch.length));
  }
}

/**
 * Replaces all data with a deterministic dataset: ids 1..N, and for each user `ordersPerUser` orders of
 * one to four items whose totals add up. Writes in batches and reports progress.
 */
export async function seed({ users: { db: usersDb }, orders: { db: ordersDb } }: SeedTarget, options: SeedOptions): Promise<void> {
  const { users: userCount, ordersPerUser, batchSize = 1_000, log = () => {} } = options;
  const rng = random(20261122);
  const every = (label: string, total: number) => (n: number) => log(`${label}: ${n}/${total}`);

  function* users() {
    for (let id = 1; id <= userCount; id++) {
      const first = pick(rng, FIRST);
      const last = pick(rng, LAST);
      const createdAt = new Date(EPOCH + id * 60_000);
      yield { id, name: `${first} ${last}`, email: `${first}.${last}.${id}@example.com`.toLowerCase(), createdAt, updatedAt: createdAt };
    }
  }

  const orderTotal = userCount * ordersPerUser;
  const items: (typeof ordersSchema.orderItems.$inferInsert)[] = [];
  function* orders() {
    let id = 0;
    for (let userId = 1; userId <= userCount; userId++) {
      for (let n = 0; n < ordersPerUser; n++) {
        id++;
        let totalCents = 0;
        const itemCount = between(rng, 1, 4);
        for (let position = 0; position < itemCount; position++) {
          const quantity = between(rng, 1, 5);
          const unitPriceCents = between(rng, 1, 200) * 50 - 1;
          totalCents += quantity * unitPriceCents;
          items.push({ orderId: id, position, sku: `SKU-${String(between(rng, 1, 500)).padStart(4, '0')}`, quantity, unitPriceCents });
        }
        yield { id, userId, status: pick(rng, STATUSES), totalCents, currency: 'USD', createdAt: new Date(EPOCH + id * 30_000) };
      }
    }
  }

  // Each database is replaced in one transaction, sequences included: an interrupted seed leaves that
  // database as it was, never half-filled with ids the sequence would hand out again.
  await usersDb.transaction(async (tx) => {
    await tx.execute(sql`truncate table users restart identity`);
    await inBatches(users(), batchSize, (batch) => tx.insert(usersSchema.users).values(batch), every('users', userCount));
    // Explicit ids leave the identity sequence behind; move it past the seeded rows.
    await tx.execute(sql`select setval(pg_get_serial_sequence('users', 'id'), greatest(${userCount}, 1), ${userCount > 0})`);
  });
  await ordersDb.transaction(async (tx) => {
    await tx.execute(sql`truncate table order_items, orders restart identity`);
    await inBatches(orders(), batchSize, (batch) => tx.insert(ordersSchema.orders).values(batch), every('orders', orderTotal));
    await inBatches(items, batchSize, (batch) => tx.insert(ordersSchema.orderItems).values(batch), every('items', items.length));
    await tx.execute(sql`select setval(pg_get_serial_sequence('orders', 'id'), greatest(${orderTotal}, 1), ${orderTotal > 0})`);
    // The seed writes users behind the event stream's back, so it also writes orders' projection of them,
    // as the snapshot a new deployment would take ('0-0': any later event about them applies).
    await tx.delete(ordersSchema.knownUsers);
    const ids = Array.from({ length: userCount }, (_, index) => ({ userId: index + 1, position: '0-0' }));
    await inBatches(ids, batchSize, (batch) => tx.insert(ordersSchema.knownUsers).values(batch), every('known users', userCount));
    await tx
      .insert(ordersSchema.projections)
      .values({ name: USER_PROJECTION, position: '0-0' })
      .onConflictDoUpdate({ target: ordersSchema.projections.name, set: { position: '0-0' } });
  });
}

/**
 * True when neither database has rows: the signal for seeding on a first start. Both must be empty, so a
 * start never wipes data someone created.
 */
export async function isEmpty({ users, orders }: SeedTarget): Promise<boolean> {
  const [user] = await users.db.select({ id: usersSchema.users.id }).from(usersSchema.users).limit(1);
  const [order] = await orders.db.select({ id: ordersSchema.orders.id }).from(ordersSchema.orders).limit(1);
  return !user && !order;
}
