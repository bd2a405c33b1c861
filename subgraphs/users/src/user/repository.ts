import { asc, count, eq, gt, inArray, sql } from 'drizzle-orm';
import type { UsersDatabase } from '../db/index.ts';
import { users, type UserRow } from '../db/schema.ts';

export type { UserRow };

/** SQL only: no validation, no GraphQL. Every method is one statement. */
export function createUserRepository(db: UsersDatabase) {
  return {
    findByIds: (ids: readonly number[]): Promise<UserRow[]> =>
      db.select().from(users).where(inArray(users.id, [...ids])),

    /** Keyset page in id order; `limit` is the caller's page size plus one to detect a next page. */
    list: ({ after, limit }: { after?: number; limit: number }): Promise<UserRow[]> =>
      db
        .select()
        .from(users)
        .where(after === undefined ? undefined : gt(users.id, after))
        .orderBy(asc(users.id))
        .limit(limit),

    count: async (): Promise<number> => {
      const [row] = await db.select({ total: count() }).from(users);
      return row?.total ?? 0;
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
