import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryCache, RedisCache, type KeyValueCache } from '../src/cache/index.ts';
import { createRedis, waitForRedis, type RedisClient } from '../src/redis.ts';
import { testRedisUrl, uniqueName } from '../src/testing/services.ts';
import { clusterForThisFile } from './cluster.ts';
import { deleteRedisKeys, waitFor } from './support.ts';

/** Every Redis key this file writes starts with this; afterAll deletes exactly those keys. */
const RUN_PREFIX = `${uniqueName('platform_cache_test')}:`;

let redis: Redis;
let clusterRedis: RedisClient;
const cluster = clusterForThisFile();

beforeAll(async () => {
  redis = createRedis(testRedisUrl());
  await waitForRedis(redis);
  clusterRedis = await cluster.client();
});

afterAll(async () => {
  try {
    await deleteRedisKeys(RUN_PREFIX);
  } finally {
    redis.disconnect();
  }
});

let keyCounter = 0;
const freshKey = (label = 'key') => `${label}:${++keyCounter}`;

const implementations: { name: string; create: () => KeyValueCache<string> }[] = [
  { name: 'createMemoryCache()', create: () => createMemoryCache() },
  { name: 'RedisCache', create: () => new RedisCache(redis, `${RUN_PREFIX}contract:`) },
  { name: 'RedisCache on a Redis Cluster', create: () => new RedisCache(clusterRedis, `${RUN_PREFIX}contract:`) },
];

describe.each(implementations)('KeyValueCache contract: $name', ({ create }) => {
  let cache: KeyValueCache<string>;
  beforeAll(() => {
    cache = create();
  });

  it('returns what was set, overwrites on a second set, and forgets it on delete', async () => {
    const key = freshKey();
    await cache.set(key, 'first');
    expect(await cache.get(key)).toBe('first');

    await cache.set(key, 'second');
    expect(await cache.get(key)).toBe('second');

    expect(await cache.delete(key)).toBe(true);
    expect(await cache.get(key)).toBeUndefined();
    expect(await cache.delete(key)).toBe(false);
  });

  it('gives undefined (not null) for a key that was never set', async () => {
    const value = await cache.get(freshKey('missing'));
    expect(value).toBeUndefined();
  });

  it('stores any string exactly, including empty, unicode and large values', async () => {
    const values = ['', 'ünïcødé ✓ 🚀', JSON.stringify({ data: { hello: 'world' } }), 'x'.repeat(256 * 1024)];
    const keys = values.map(() => freshKey('exact'));
    for (const [index, value] of values.entries()) await cache.set(keys[index]!, value);
    for (const [index, value] of values.entries()) expect(await cache.get(keys[index]!)).toBe(value);
  });

  it('treats ttl as seconds: an entry with ttl 0.2 is there at once and expires after about 200 ms', async () => {
    const key = freshKey('ttl');
    const started = performance.now();
    await cache.set(key, 'short-lived', { ttl: 0.2 });
    expect(await cache.get(key)).toBe('short-lived');

    await waitFor(async () => expect(await cache.get(key)).toBeUndefined(), 3_000);
    const livedMs = performance.now() - started;
    // Not milliseconds (gone at once) and not minutes (still there after the wait above).
    expect(livedMs).toBeGreaterThanOrEqual(150);
  });

  it('keeps entries without a ttl, with ttl null or ttl 0, and drops a ttl when a key is set again without one', async () => {
    const noOptions = freshKey('forever');
    const nullTtl = freshKey('forever');
    const zeroTtl = freshKey('forever');
    const reset = freshKey('reset');
    const expiring = freshKey('expiring');
    await cache.set(noOptions, 'a');
    await cache.set(nullTtl, 'b', { ttl: null });
    await cache.set(zeroTtl, 'c', { ttl: 0 });
    await cache.set(reset, 'old', { ttl: 0.2 });
    await cache.set(reset, 'new');
    await cache.set(expiring, 'd', { ttl: 0.2 });

    // Once the entry set with the same ttl has expired, the others have outlived that ttl.
    await waitFor(async () => expect(await cache.get(expiring)).toBeUndefined(), 3_000);
    expect(await cache.get(noOptions)).toBe('a');
    expect(await cache.get(nullTtl)).toBe('b');
    expect(await cache.get(zeroTtl)).toBe('c');
    expect(await cache.get(reset)).toBe('new');
  });

  it('accepts a ttl below one millisecond, which expires almost at once', async () => {
    const key = freshKey('tiny-ttl');
    await expect(cache.set(key, 'blink', { ttl: 0.0001 })).resolves.toBeUndefined();
    await waitFor(async () => expect(await cache.get(key)).toBeUndefined(), 1_000);
  });

  it('stores nothing for a negative ttl, replacing any earlier value', async () => {
    const key = freshKey('negative-ttl');
    await cache.set(key, 'earlier');
    await cache.set(key, 'already expired', { ttl: -1 });
    expect(await cache.get(key)).toBeUndefined();
  });
});

describe('RedisCache key prefixes', () => {
  it('keeps caches with different prefixes apart on the same Redis', async () => {
    const users = new RedisCache(redis, `${RUN_PREFIX}users:`);
    const orders = new RedisCache(redis, `${RUN_PREFIX}orders:`);
    const key = freshKey('shared-name');

    await users.set(key, 'user value');
    expect(await orders.get(key)).toBeUndefined();

    await orders.set(key, 'order value');
    expect(await users.get(key)).toBe('user value');
    expect(await orders.get(key)).toBe('order value');

    expect(await orders.delete(key)).toBe(true);
    expect(await users.get(key)).toBe('user value');
    expect(await orders.get(key)).toBeUndefined();
  });

  it('writes under prefix + key, so other processes using the same prefix share entries', async () => {
    const prefix = `${RUN_PREFIX}shared:`;
    const key = freshKey();
    await new RedisCache(redis, prefix).set(key, 'visible');

    const otherProcess = createRedis(testRedisUrl());
    try {
      await waitForRedis(otherProcess);
      expect(await otherProcess.get(prefix + key)).toBe('visible');
      expect(await new RedisCache(otherProcess, prefix).get(key)).toBe('visible');
    } finally {
      otherProcess.disconnect();
    }
  });
});

describe('createMemoryCache size budget', () => {
  it('evicts least recently used entries instead of growing past maxSizeBytes', async () => {
    const cache = createMemoryCache(100);
    await cache.set('a', 'x'.repeat(40));
    await cache.set('b', 'y'.repeat(40));
    expect(await cache.get('a')).toBe('x'.repeat(40)); // touch a, so b is now the least recently used
    await cache.set('c', 'z'.repeat(40));

    expect(await cache.get('a')).toBe('x'.repeat(40));
    expect(await cache.get('b')).toBeUndefined();
    expect(await cache.get('c')).toBe('z'.repeat(40));
  });
});
