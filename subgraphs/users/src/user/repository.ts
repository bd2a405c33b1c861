import { asc, count, eq, gt, sql } from 'drizzle-orm';
import { preparedOn } from '@fed/platform';
import type { UsersDatabase } from '../db/index.ts';
import { users, type UserRow } from '../db/schema.ts';

export type { UserRow };

/**
 * SQL only: no validation, no GraphQL. Every method is one statement; the reads are prepared once per database
 * client (see preparedOn), when first used, so a repository made for one transaction prepares nothing it does
 * not run.
 */
export function createUserRepository(db: UsersDatabase) {
  // One array parameter (`= any($1)`), not one per id: one statement text whatever the batch size.
  const byIds = preparedOn(db, (target) => target.select().from(users).where(sql`${users.id} = any(${sql.placeholder('ids')})`).prepare('users_by_ids'));
  const pages = [false, true].map((after) =>
    preparedOn(db, (target) =>
      target
        .select()
        .from(users)
        .where(after ? gt(users.id, sql.placeholder('after')) : undefined)
        .orderBy(asc(users.id))
        .limit(sql.placeholder('limit'))
        .prepare(`users_page_${Number(after)}`),
    ),
  );
  const total = preparedOn(db, (target) => target.select({ total: count() }).from(users).prepare('users_count'));
  return {
    findByIds: (ids: readonly number[]): Promise<UserRow[]> => byIds().execute({ ids }),

    /** Keyset page in id order; `limit` is the caller's page size plus one to detect a next page. */
    list: ({ after, limit }: { after?: number; limit: number }): Promise<UserRow[]> => pages[after === undefined ? 0 : 1]!().execute({ after, limit }),

    count: async (): Promise<number> => {
      const [row] = await total().execute();
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
