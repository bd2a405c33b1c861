// Two sources (two databases with their own outbox, as users and orders have) relaying into one Redis stream:
// the relays' clearances keep a source's events behind what another source acknowledged while it could not reach
// the stream, and a relay that stopped cleanly holds nobody back. Real Postgres, real Redis.
import { sql } from 'drizzle-orm';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, type DatabaseHandle } from '../src/db/index.ts';
import { createOutboxRelay, createUnitOfWork, outbox, RedisEventStream, type OutboxRelay } from '../src/events/index.ts';
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

async function source(name: 'users' | 'orders', redisUrl: string, prefix: string, ackWaitMs = 300) {
  const database = await createTestDatabase(`platform_fence_${name}`);
  databases.push(database);
  const handle = await createDatabase({ location: { url: database.url }, schema });
  handles.push(handle);
  for (const statement of DDL) await handle.db.execute(sql.raw(statement));
  const redis = createRedis(redisUrl);
  redis.on('error', () => {});
  clients.push(redis);
  await waitForRedis(redis);
  const relay = createOutboxRelay({ db: handle.db, stream: new RedisEventStream(redis, prefix), logger: captureLogger().logger });
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

describe('relays of two sources on one stream', () => {
  it("keeps a source's events behind a write another source acknowledged while it could not reach the stream", async () => {
    const prefix = `${RUN_PREFIX}${++counter}:`;
    const proxy = await startTcpProxy(testRedisUrl());
    try {
      const users = await source('users', proxy.url, prefix);
      const orders = await source('orders', testRedisUrl(), prefix);
      const stream = new RedisEventStream(redis, prefix);
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
      expect(log.map((event) => [event.kind, event.userId])).toEqual([
        ['USER_UPDATED', 'u1'],
        ['ORDER_PLACED', 'u1'],
        ['USER_UPDATED', 'u1'],
        ['ORDER_PLACED', 'u1'],
        ['ORDER_PLACED', 'u2'],
      ]);
    } finally {
      await proxy.close();
    }
  });

  it('holds nobody back once a relay stopped after sending everything', async () => {
    const prefix = `${RUN_PREFIX}${++counter}:`;
    const users = await source('users', testRedisUrl(), prefix);
    const orders = await source('orders', testRedisUrl(), prefix);
    await users.write('u1');
    const clearances = () => redis.hkeys(`${prefix}events:clearance`);
    await waitFor(async () => expect((await clearances()).map((key) => key.split('/')[0]).sort()).toEqual(['orders', 'users']));

    await users.relay.stop();
    expect((await clearances()).map((key) => key.split('/')[0])).toEqual(['orders']);
    // Long after users' last clearance would have lapsed, orders' events still go in at once.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(await orders.relay.flush()).toBe(true);
    await orders.write('u1');
    expect((await new RedisEventStream(redis, prefix).read({ userId: 'u1' }, null, 10)).map((event) => event.kind)).toEqual(['USER_UPDATED', 'ORDER_PLACED']);
  });
});
