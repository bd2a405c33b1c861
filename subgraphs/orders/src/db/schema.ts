import { sql } from 'drizzle-orm';
import { bigint, boolean, check, index, integer, pgEnum, pgTable, primaryKey, text, timestamp } from 'drizzle-orm/pg-core';

export const orderStatus = pgEnum('order_status', ['PENDING', 'PAID', 'SHIPPED', 'DELIVERED', 'CANCELLED']);

export const orders = pgTable(
  'orders',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedByDefaultAsIdentity(),
    // A user id owned by the users subgraph's database: no foreign key can cross the two.
    userId: bigint('user_id', { mode: 'number' }).notNull(),
    status: orderStatus('status').notNull().default('PENDING'),
    totalCents: integer('total_cents').notNull(),
    currency: text('currency').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [
    // Serves User.orders (per-user pages, newest first) and the per-user count/sum.
    index('orders_user_id_id_idx').on(table.userId, table.id.desc()),
    // Serves orders(status:) pages.
    index('orders_status_id_idx').on(table.status, table.id.desc()),
    check('orders_total_cents_non_negative', sql`${table.totalCents} >= 0`),
  ],
);

export const orderItems = pgTable(
  'order_items',
  {
    orderId: bigint('order_id', { mode: 'number' })
      .notNull()
      .references(() => orders.id, { onDelete: 'cascade' }),
    position: integer('position').notNull(),
    sku: text('sku').notNull(),
    quantity: integer('quantity').notNull(),
    unitPriceCents: integer('unit_price_cents').notNull(),
  },
  (table) => [
    primaryKey({ columns: [table.orderId, table.position] }),
    // The service validates first; these make a bad row impossible even for a buggy writer.
    check('order_items_quantity_positive', sql`${table.quantity} > 0`),
    check('order_items_unit_price_non_negative', sql`${table.unitPriceCents} >= 0`),
  ],
);

/**
 * Which users exist, as far as orders knows: a projection of the users' event stream, so placing an order
 * needs no call to the users subgraph. A deleted user stays as a tombstone, so an older event that arrives
 * late (from another consumer) cannot bring them back.
 */
export const knownUsers = pgTable('known_users', {
  userId: bigint('user_id', { mode: 'number' }).primaryKey(),
  deleted: boolean('deleted').notNull().default(false),
  /** The stream position of the event this row reflects ('0-0' when it came from a snapshot). */
  position: text('position').notNull(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});

/** Projections that were built (from a snapshot, then the stream): a new deployment builds each once. */
export const projections = pgTable('projections', {
  name: text('name').primaryKey(),
  /** The stream position the snapshot was taken at; the consumer group starts after it. */
  position: text('position').notNull(),
  builtAt: timestamp('built_at', { withTimezone: true }).notNull().defaultNow(),
});

// The outbox lives in this database, so an event is written in the transaction of the change it describes.
export { outbox } from '@fed/platform';
// Idempotency keys too: a mutation's result is stored in the transaction of its write.
export { idempotencyKeys } from '@fed/platform';

export type KnownUserRow = typeof knownUsers.$inferSelect;
export type OrderRow = typeof orders.$inferSelect;
export type OrderItemRow = typeof orderItems.$inferSelect;
export type OrderStatus = (typeof orderStatus.enumValues)[number];
