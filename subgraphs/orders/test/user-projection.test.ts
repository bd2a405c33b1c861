// The projection's one rule, in the database: a row only ever moves to a newer event. Two orders replicas can
// apply one user's events out of order (a redelivery, a claim after a crash); whichever lands last, the
// newest event wins, and only the rows that changed come back (they decide which orders get cancelled).
import { createDatabase, migrateDatabase, type DatabaseHandle } from '@fed/platform';
import { createTestDatabase, type TestDatabase } from '@fed/platform/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrationsFolder, schema } from '../src/db/index.ts';
import { createKnownUserRepository } from '../src/user-projection/repository.ts';

let database: TestDatabase;
let handle: DatabaseHandle<typeof schema>;

beforeAll(async () => {
  database = await createTestDatabase('orders_projection');
  handle = await createDatabase({ location: { url: database.url }, schema });
  await migrateDatabase(handle, migrationsFolder);
});

afterAll(async () => {
  await handle?.close();
  await database?.drop();
});

describe('the user projection', () => {
  it('keeps the newest event of a user whatever order they are applied in, comparing positions as numbers', async () => {
    const users = createKnownUserRepository(handle.db);
    // The deletion (newer) lands first; the creation (older) arrives late, from another consumer.
    expect(await users.upsertNewer([{ userId: 7, deleted: true, position: '1700000000000-10' }])).toHaveLength(1);
    expect(await users.upsertNewer([{ userId: 7, deleted: false, position: '1700000000000-9' }])).toEqual([]);
    expect(await users.findForShare(7)).toEqual({ userId: 7, deleted: true, position: '1700000000000-10' });

    // A newer event does apply, and says so.
    expect(await users.upsertNewer([{ userId: 7, deleted: false, position: '1700000000001-0' }])).toEqual([
      { userId: 7, deleted: false, position: '1700000000001-0' },
    ]);
    // Applying the same event again (a redelivery) changes nothing.
    expect(await users.upsertNewer([{ userId: 7, deleted: false, position: '1700000000001-0' }])).toEqual([]);
  });

  it('lets concurrent writers of a new user settle on the newest event', async () => {
    const writers = Array.from({ length: 20 }, (_, index) =>
      createKnownUserRepository(handle.db).upsertNewer([{ userId: 8, deleted: index % 2 === 0, position: `1700000000000-${index}` }]),
    );
    await Promise.all(writers);
    expect(await createKnownUserRepository(handle.db).findForShare(8)).toEqual({ userId: 8, deleted: false, position: '1700000000000-19' });
  });
});
