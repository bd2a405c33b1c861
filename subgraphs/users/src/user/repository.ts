import { eq, sql } from 'drizzle-orm';
import { preparedOn, preparedRows } from '@fed/platform';
import type { UsersDatabase } from '../db/index.ts';
import { users, type UserRow } from '../db/schema.ts';

export type { UserRow };

/** A user row as the resolvers read it: the driver builds each row object with these names. */
const USER_COLUMNS = 'id, email, name, created_at as "createdAt", updated_at as "updatedAt"';
const USER_CONVERSIONS = { id: 'int8', createdAt: 'timestamptz', updatedAt: 'timestamptz' } as const;

/**
 * SQL only: no validation, no GraphQL. Every method is one statement; the reads are prepared once per database
 * client (see preparedOn), when first used, so a repository made for one transaction prepares nothing it does
 * not run.
 */
export function createUserRepository(db: UsersDatabase) {
  // Rows come from the driver as the resolvers use them (see preparedRows), one statement text each: ids are one
  // array parameter (`= any($1)`), not one per id, whatever the batch size.
  const byIds = preparedOn(db, (target) => preparedRows<UserRow>(target, `select ${USER_COLUMNS} from users where id = any($1)`, USER_CONVERSIONS));
  const pages = [
    preparedOn(db, (target) => preparedRows<UserRow>(target, `select ${USER_COLUMNS} from users order by id limit $1`, USER_CONVERSIONS)),
    preparedOn(db, (target) => preparedRows<UserRow>(target, `select ${USER_COLUMNS} from users where id > $1 order by id limit $2`, USER_CONVERSIONS)),
  ] as const;
  const total = preparedOn(db, (target) => preparedRows<{ total: number }>(target, 'select count(*) as total from users', { total: 'int8' }));
  const stats = preparedOn(db, (target) =>
    preparedRows<{ total: number; createdLastDay: number }>(
      target,
      `select count(*) as total, count(*) filter (where created_at > now() - interval '1 day') as "createdLastDay" from users`,
      { total: 'int8', createdLastDay: 'int8' },
    ),
  );
  return {
    findByIds: (ids: readonly number[]): Promise<UserRow[]> => byIds()([ids]),

    /** Keyset page in id order; `limit` is the caller's page size plus one to detect a next page. */
    list: ({ after, limit }: { after?: number; limit: number }): Promise<UserRow[]> => (after === undefined ? pages[0]()([limit]) : pages[1]()([after, limit])),

    count: async (): Promise<number> => {
      const [row] = await total()([]);
      return row?.total ?? 0;
    },

    stats: async (): Promise<{ total: number; createdLastDay: number }> => {
      const [row] = await stats()([]);
      return row ?? { total: 0, createdLastDay: 0 };
    },

    /** Returns undefined when the email is taken (the unique index decides, so concurrent creates are safe). */
    insert: async (values: { email: string; name: string }): Promise<UserRow | undefined> => {
      const [row] = await db.insert(users).values(values).onConflictDoNothing({ target: users.email }).returning();
      return row;
    },

    update: async (id: number, patch: { email?: string; name?: string }): Promise<UserRow | undefined> => {
      const [row] = await db
        .update(users)
        .set({ ...patch, updatedAt: sql`now()` })
        .where(eq(users.id, id))
        .returning();
      return row;
    },

    delete: async (id: number): Promise<boolean> => {
      const rows = await db.delete(users).where(eq(users.id, id)).returning({ id: users.id });
      return rows.length > 0;
    },
  };
}

export type UserRepository = ReturnType<typeof createUserRepository>;
