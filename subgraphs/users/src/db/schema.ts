import { bigint, pgTable, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';

export const users = pgTable(
  'users',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedByDefaultAsIdentity(),
    // Stored normalised (trimmed, lower-case) so the unique index catches case variants of one address.
    email: text('email').notNull(),
    name: text('name').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [uniqueIndex('users_email_key').on(table.email)],
);

export type UserRow = typeof users.$inferSelect;

// The outbox lives in this database, so an event is written in the transaction of the change it describes.
export { outbox } from '@fed/platform';
// Idempotency keys too: a mutation's result is stored in the transaction of its write.
export { idempotencyKeys } from '@fed/platform';
