// Two sources (two databases with their own outbox, as users and orders have) relaying into one Redis stream:
// the relays' clearances keep a source's events behind what another source acknowledged while it could not reach
// the stream, and a relay that stopped cleanly holds nobody back. Real Postgres, real Redis.
import { sql } from 'drizzle-orm';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, type DatabaseHandle } from '../src/db/index.ts';
import { createOutboxRelay, createUnitOfWork, outbox, RedisEventStream, type OutboxRelay, type StoredEvent } from '../src/events/index.ts';
import { createRedis, waitForRedis } from '../src/redis.ts';
import { createTestDatabase, testRedisUrl, uniqueName, type TestDatabase } from '../src/testing/services.ts';
import { captureLogger, deleteRedisKeys, startTcpProxy, waitFor } from './support.ts';

const RUN_PREFIX = `${uniqueName('platform_causal_fence_test')}:`;
const schema = { outbox };
const DDL = [
  `create table outbox (seq bigint generated always as identity primary key, event jsonb not null, created_at timestamptz not null default now(), sent_at timestamptz)`,
  `create index outbox_unsent_idx on outbox (seq) where sent_at is null`,
];

const databases: TestDatabase[] = [];
const handles: DatabaseHandle<typeof schema>[] = [];
const clients: Redis[] = [];
const relays: OutboxRelay[] = [];
let counter = 0;

async function source(name: 'users' | 'orders', redisUrl: string, prefix: string, partitions: number, ackWaitMs = 300) {
  const database = await createTestDatabase(`platform_fence_${name}`);
  databases.push(database);
  const handle = await createDatabase({ location: { url: database.url }, schema });
  handles.push(handle);
  for (const statement of DDL) await handle.db.execute(sql.raw(statement));
  const redis = createRedis(redisUrl);
  redis.on('error', () => {});
  clients.push(redis);
  await waitForRedis(redis);
  const relay = createOutboxRelay({ db: handle.db, stream: new RedisEventStream(redis, prefix, undefined, { partitions }), logger: captureLogger().logger });
  relays.push(relay);
  const transact = createUnitOfWork({ db: handle.db, source: name, relay, flushTimeoutMs: ackWaitMs })();
  relay.start();
  const write = (userId: string) =>
    transact(async (_tx, emit) => emit({ kind: name === 'users' ? 'USER_UPDATED' : 'ORDER_PLACED', userId, changed: [`User:${userId}`] }));
  return { relay, write };
}

let redis: Redis;
beforeAll(async () => {
  redis = createRedis(testRedisUrl());
  redis.on('error', () => {});
  await waitForRedis(redis);
});
afterEach(async () => {
  for (const relay of relays.splice(0)) await relay.stop();
});
afterAll(async () => {
  for (const handle of handles) await handle.close();
  for (const client of [...clients, redis]) client.disconnect();
  for (const database of databases) await database.drop();
  await deleteRedisKeys(RUN_PREFIX);
});

/** Each user's event kinds, in their order. */
const timelines = (events: readonly StoredEvent[]) => {
  const byUser: Record<string, string[]> = {};
  for (const event of events) (byUser[event.userId] ??= []).push(event.kind);
  return byUser;
};

// With several partitions, u1 and u2 live in different ones (3 and 2 of 4): a relay's clearance must hold in each.
describe.each([1, 4])('relays of two sources on one stream in %i partition(s)', (partitions) => {
  it("keeps a source's events behind a write another source acknowledged while it could not reach the stream", async () => {
    const prefix = `${RUN_PREFIX}${++counter}:`;
    const proxy = await startTcpProxy(testRedisUrl());
    try {
      const users = await source('users', proxy.url, prefix, partitions);
      const orders = await source('orders', testRedisUrl(), prefix, partitions);
      const stream = new RedisEventStream(redis, prefix, undefined, { partitions });
      await users.write('u1');
      await orders.write('u1');
      await waitFor(async () => expect(await stream.read({ userId: 'u1' }, null, 10)).toHaveLength(2));

      // users loses the stream: its write is acknowledged (after its wait) with the event still in its outbox.
      await proxy.setListening(false);
      await users.write('u1');
      // Sent after that acknowledgement: orders' event waits behind it, and so does everything orders sends after.
      await orders.write('u1');
      await orders.write('u2');
      expect((await stream.read({}, null, 10)).map((event) => event.kind)).toEqual(['USER_UPDATED', 'ORDER_PLACED']);

      await proxy.setListening(true);
      await waitFor(async () => expect(await stream.read({}, null, 10)).toHaveLength(5), 60_000);
      const log = await stream.read({}, null, 10);
      if (partitions === 1) {
        expect(log.map((event) => [event.kind, event.userId])).toEqual([
          ['USER_UPDATED', 'u1'],
          ['ORDER_PLACED', 'u1'],
          ['USER_UPDATED', 'u1'],
          ['ORDER_PLACED', 'u1'],
          ['ORDER_PLACED', 'u2'],
        ]);
      }
      // Partitions interleave in the log; each user's timeline is in causal order.
      expect(timelines(log)).toEqual({ u1: ['USER_UPDATED', 'ORDER_PLACED', 'USER_UPDATED', 'ORDER_PLACED'], u2: ['ORDER_PLACED'] });
      expect(timelines(await stream.read({ userId: 'u1' }, null, 10))).toEqual({ u1: ['USER_UPDATED', 'ORDER_PLACED', 'USER_UPDATED', 'ORDER_PLACED'] });
    } finally {
      await proxy.close();
    }
  });

  it('holds nobody back once a relay stopped after sending everything', async () => {
    const prefix = `${RUN_PREFIX}${++counter}:`;
    const users = await source('users', testRedisUrl(), prefix, partitions);
    const orders = await source('orders', testRedisUrl(), prefix, partitions);
    await users.write('u1');
    // Every partition's clearances, as `<partition> <source>`.
    const clearances = async () => {
      const keys = Array.from({ length: partitions }, (_, partition) => `${prefix}events${partition === 0 ? '' : `:${partition}`}:clearance`);
      return (await Promise.all(keys.map(async (key, partition) => (await redis.hkeys(key)).map((field) => `${partition} ${field.split('/')[0]}`)))).flat().sort();
    };
    const everywhere = (...sources: string[]) => Array.from({ length: partitions }, (_, partition) => sources.map((name) => `${partition} ${name}`)).flat().sort();
    await waitFor(async () => expect(await clearances()).toEqual(everywhere('orders', 'users')));

    await users.relay.stop();
    expect(await clearances()).toEqual(everywhere('orders'));
    // Long after users' last clearance would have lapsed, orders' events still go in at once.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(await orders.relay.flush()).toBe(true);
    await orders.write('u1');
    expect((await new RedisEventStream(redis, prefix, undefined, { partitions }).read({ userId: 'u1' }, null, 10)).map((event) => event.kind)).toEqual([
      'USER_UPDATED',
      'ORDER_PLACED',
    ]);
  });

  it('keeps its clearance fresh on every partition, also those it has not written to for a while', async () => {
    const prefix = `${RUN_PREFIX}${++counter}:`;
    const users = await source('users', testRedisUrl(), prefix, partitions);
    const orders = await source('orders', testRedisUrl(), prefix, partitions);
    const stream = new RedisEventStream(redis, prefix, undefined, { partitions });
    // users writes u2's partition once, then only u1's, for longer than its clearance there would last unrenewed.
    await users.write('u2');
    for (const end = Date.now() + 1_500; Date.now() < end; ) await users.write('u1');
    // orders' write for u2 answers with its event in the stream: users holds it back nowhere.
    await orders.write('u2');
    expect((await stream.read({ userId: 'u2' }, null, 10)).map((event) => event.kind)).toEqual(['USER_UPDATED', 'ORDER_PLACED']);
  });
});
