import { once } from 'node:events';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisCache, resilientCache } from '../src/cache/index.ts';
import { createRedis, waitForRedis } from '../src/redis.ts';
import { testRedisUrl, uniqueName } from '../src/testing/services.ts';
import { captureLogger, timed } from './support.ts';

/** A caller must never wait long on a dead cache; real calls take a few milliseconds, this is a loose bound. */
const WELL_UNDER_TWO_SECONDS = 1_000;

describe('resilientCache over a Redis that is unreachable', () => {
  let deadRedis: Redis;
  const connectionErrors: Error[] = [];

  beforeAll(() => {
    // Nothing listens on port 1: every connection attempt is refused.
    deadRedis = createRedis('redis://127.0.0.1:1');
    deadRedis.on('error', (error: Error) => connectionErrors.push(error));
  });

  afterAll(() => {
    deadRedis.disconnect();
  });

  it('shows that the bare RedisCache does throw, which is what the wrapper is for', async () => {
    const bare = new RedisCache(deadRedis, 'bare:');
    await expect(bare.get('k')).rejects.toThrow();
    await expect(bare.set('k', 'v')).rejects.toThrow();
    await expect(bare.delete('k')).rejects.toThrow();
  });

  it('turns get into a miss and set/delete into no-ops, each quickly, and logs a warning', async () => {
    const { logger, lines } = captureLogger();
    const cache = resilientCache(new RedisCache(deadRedis, 'dead:'), logger);

    const get = await timed(() => cache.get('some-key'));
    expect(get.value).toBeUndefined();
    expect(get.ms).toBeLessThan(WELL_UNDER_TWO_SECONDS);

    const set = await timed(() => cache.set('some-key', 'value', { ttl: 60 }));
    expect(set.value).toBeUndefined();
    expect(set.ms).toBeLessThan(WELL_UNDER_TWO_SECONDS);

    const deleted = await timed(() => cache.delete('some-key'));
    expect(deleted.value).toBe(false);
    expect(deleted.ms).toBeLessThan(WELL_UNDER_TWO_SECONDS);

    const warnings = lines.filter((line) => line.msg === 'cache unavailable; treating as a miss');
    expect(warnings).toHaveLength(3);
    for (const warning of warnings) {
      expect(warning.level).toBe(40);
      expect(warning.err).toMatchObject({ message: expect.any(String) });
    }
  });

  it('stays quick while the client keeps retrying the connection', async () => {
    if (connectionErrors.length === 0) await once(deadRedis, 'error');
    expect(connectionErrors[0]?.message).toMatch(/ECONNREFUSED/);

    const { logger } = captureLogger();
    const cache = resilientCache(new RedisCache(deadRedis, 'dead:'), logger);
    for (let attempt = 0; attempt < 5; attempt++) {
      const get = await timed(() => cache.get(`key-${attempt}`));
      const set = await timed(() => cache.set(`key-${attempt}`, 'value'));
      expect(get.value).toBeUndefined();
      expect(get.ms).toBeLessThan(WELL_UNDER_TWO_SECONDS);
      expect(set.ms).toBeLessThan(WELL_UNDER_TWO_SECONDS);
    }
  });
});

describe('resilientCache over a healthy Redis', () => {
  let redis: Redis;
  const prefix = `${uniqueName('platform_resilient_test')}:`;

  beforeAll(async () => {
    redis = createRedis(testRedisUrl());
    await waitForRedis(redis);
  });

  afterAll(async () => {
    await redis.del(`${prefix}hit`, `${prefix}ttl`);
    redis.disconnect();
  });

  it('passes values, ttls and deletes straight through, logging nothing', async () => {
    const { logger, lines } = captureLogger();
    const cache = resilientCache(new RedisCache(redis, prefix), logger);

    await cache.set('hit', 'cached');
    expect(await cache.get('hit')).toBe('cached');
    await cache.set('ttl', 'expiring', { ttl: 30 });
    const pttl = await redis.pttl(`${prefix}ttl`);
    expect(pttl).toBeGreaterThan(25_000);
    expect(pttl).toBeLessThanOrEqual(30_000);
    expect(await cache.delete('hit')).toBe(true);
    expect(await cache.get('hit')).toBeUndefined();
    expect(lines).toEqual([]);
  });
});
