import { createServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { Cluster, type Redis } from 'ioredis';
import { createRedisClient, slotOf, waitForRedis, type RedisClient } from '../redis.ts';

/**
 * Tests find Postgres and Redis at the standard loopback ports unless these variables point elsewhere.
 * TEST_REDIS_URL takes every REDIS_URL form, so a suite that only goes through the platform can run against a
 * cluster (`redis+cluster://...`) or Sentinels as they are.
 */
export const testPostgresUrl = () => process.env.TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
export const testRedisUrl = () => process.env.TEST_REDIS_URL || 'redis://127.0.0.1:6379/0';

const HOW_TO_START = {
  postgres: 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start   (or set TEST_DATABASE_URL)',
  redis:
    'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no   (or set TEST_REDIS_URL)',
};

/** A unique, short-lived name so parallel runs and leftovers from crashed runs never collide. */
export const uniqueName = (prefix: string) => `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;

/**
 * vitest globalSetup: fail the whole run at once, with the command that fixes it, when a service is down,
 * instead of letting every test time out separately.
 */
export async function assertServicesUp(): Promise<void> {
  const problems: string[] = [];
  const sql = postgres(testPostgresUrl(), { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await sql`select 1`;
  } catch (error) {
    problems.push(`Postgres is not reachable at ${testPostgresUrl()} (${(error as Error).message}).\n  Start it: ${HOW_TO_START.postgres}`);
  } finally {
    await sql.end({ timeout: 1 });
  }
  try {
    const redis = createRedisClient(testRedisUrl());
    // The failure is reported below; without a listener ioredis would also print it as an unhandled event.
    redis.on('error', () => {});
    try {
      await waitForRedis(redis, 3_000);
      await redis.ping();
    } finally {
      redis.disconnect();
    }
  } catch (error) {
    problems.push(`Redis is not reachable at ${testRedisUrl()} (${(error as Error).message}).\n  Start it: ${HOW_TO_START.redis}`);
  }
  if (problems.length > 0) throw new Error(`The tests need real services:\n${problems.join('\n')}`);
}

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** Creates a fresh, uniquely named database on the test server; drop() removes it. */
export async function createTestDatabase(prefix = 'test'): Promise<TestDatabase> {
  const adminUrl = testPostgresUrl();
  const name = uniqueName(prefix).toLowerCase();
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database "${name}"`);
  } finally {
    await admin.end({ timeout: 1 });
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: async () => {
      const dropper = postgres(adminUrl, { max: 1, onnotice: () => {} });
      try {
        await dropper.unsafe(`drop database if exists "${name}" with (force)`);
      } finally {
        await dropper.end({ timeout: 1 });
      }
    },
  };
}

/**
 * SQL the outbox relays send on their own (polling every second): a test counting what a request costs
 * leaves these out, or it counts a poll that happened to run alongside.
 */
export const isRelayStatement = (sql: string) => /pg_advisory_xact_lock|lock_timeout|"outbox"/.test(sql);

// A port is free only until whoever asked for it listens: one handed to a server still starting is not handed
// out again in this process (a set-up of several nodes asks for its ports one after another).
const handedOut = new Set<number>();

/** A TCP port nothing listens on right now, on loopback: for a server a test starts in another process. */
export async function freePort(): Promise<number> {
  for (;;) {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    await new Promise((resolve) => server.close(resolve));
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

/** Every key matching `pattern` (SCAN's MATCH), on each primary of a cluster (SCAN sees one node's keys). */
export async function redisKeys(client: RedisClient, pattern: string): Promise<string[]> {
  const nodes: Redis[] = client instanceof Cluster ? client.nodes('master') : [client];
  const keys: string[] = [];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, found] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      keys.push(...found);
      cursor = next;
    } while (cursor !== '0');
  }
  return keys;
}

/** Deletes the keys a test file (or a bench run) wrote under its prefix. Never FLUSHDB: other runs share this Redis. */
export async function deleteRedisKeys(prefix: string): Promise<void> {
  const cleaner = createRedisClient(testRedisUrl(), { patient: true });
  cleaner.on('error', () => {});
  try {
    await waitForRedis(cleaner);
    const keys = await redisKeys(cleaner, `${prefix}*`);
    // A DEL of many keys must stay in one slot on a cluster: one DEL per slot there.
    const groups = cleaner instanceof Cluster ? groupBySlot(keys) : [keys];
    for (const group of groups) for (let at = 0; at < group.length; at += 1000) await cleaner.del(...group.slice(at, at + 1000));
  } finally {
    cleaner.disconnect();
  }
}

function groupBySlot(keys: readonly string[]): string[][] {
  const groups = new Map<number, string[]>();
  for (const key of keys) groups.set(slotOf(key), [...(groups.get(slotOf(key)) ?? []), key]);
  return [...groups.values()];
}
