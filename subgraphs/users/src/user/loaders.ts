import DataLoader from 'dataloader';
import type { UserRepository, UserRow } from './repository.ts';

/** Per request: one `select … where id in (…)` however many users a response references. */
export function createUserLoaders(repository: UserRepository) {
  return {
    byId: new DataLoader<number, UserRow | null>(async (ids) => {
      const byId = new Map<number, UserRow>();
      for (const row of await repository.findByIds(ids)) byId.set(row.id, row);
      return ids.map((id) => byId.get(id) ?? null);
    }),
  };
}

export type UserLoaders = ReturnType<typeof createUserLoaders>;
