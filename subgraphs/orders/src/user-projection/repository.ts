import { eq, sql, type SQL } from 'drizzle-orm';
import type { OrdersDatabase } from '../db/index.ts';
import { knownUsers, projections } from '../db/schema.ts';

export interface KnownUser {
  userId: number;
  deleted: boolean;
  position: string;
}

/**
 * A stream position (`<ms>-<seq>`, or `<p>:<ms>-<seq>` outside partition 0) as a row value that compares in stream
 * order. A user's events are all in one partition, so the partition can be dropped.
 */
const position = (column: SQL) => {
  const id = sql`split_part(${column}, ':', -1)`;
  return sql`(split_part(${id}, '-', 1)::bigint, split_part(${id}, '-', 2)::bigint)`;
};

/** SQL only: orders' projection of which users exist, and which projections were built. */
export function createKnownUserRepository(db: OrdersDatabase) {
  return {
    /**
     * The user's row, share-locked until the transaction ends: a deletion applied meanwhile waits, then
     * cancels what this transaction placed, instead of racing it.
     */
    findForShare: async (userId: number): Promise<KnownUser | undefined> => {
      const [row] = await db
        .select({ userId: knownUsers.userId, deleted: knownUsers.deleted, position: knownUsers.position })
        .from(knownUsers)
        .where(eq(knownUsers.userId, userId))
        .for('share');
      return row;
    },

    /**
     * Writes each row unless the stored one reflects a newer event, in one statement, and returns the rows it
     * wrote. Deciding in the statement (under the row lock ON CONFLICT takes) means two consumers applying a
     * user's events out of order, even for a user with no row yet, end with the newest.
     */
    upsertNewer: async (rows: readonly KnownUser[]): Promise<KnownUser[]> => {
      if (rows.length === 0) return [];
      return db
        .insert(knownUsers)
        .values([...rows])
        .onConflictDoUpdate({
          target: knownUsers.userId,
          set: { deleted: sql`excluded.deleted`, position: sql`excluded.position`, updatedAt: sql`now()` },
          setWhere: sql`${position(sql`${knownUsers.position}`)} < ${position(sql`excluded.position`)}`,
        })
        .returning({ userId: knownUsers.userId, deleted: knownUsers.deleted, position: knownUsers.position });
    },

    /** Replaces the whole projection with these users, as of `position`. */
    replaceAll: async (userIds: readonly number[], position: string): Promise<void> => {
      await db.delete(knownUsers);
      for (let start = 0; start < userIds.length; start += 1_000) {
        await db.insert(knownUsers).values(userIds.slice(start, start + 1_000).map((userId) => ({ userId, position })));
      }
    },

    builtAt: async (name: string): Promise<string | undefined> => {
      const [row] = await db.select({ position: projections.position }).from(projections).where(eq(projections.name, name));
      return row?.position;
    },

    markBuilt: async (name: string, position: string): Promise<void> => {
      await db
        .insert(projections)
        .values({ name, position })
        .onConflictDoUpdate({ target: projections.name, set: { position, builtAt: sql`now()` } });
    },

    /** Serialises builders of the same projection across replicas, until the transaction ends. */
    lockBuild: async (): Promise<void> => {
      await db.execute(sql`select pg_advisory_xact_lock(727003)`);
    },
  };
}

export type KnownUserRepository = ReturnType<typeof createKnownUserRepository>;
