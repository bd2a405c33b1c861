import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { failOpenRateLimiter, MemoryRateLimiter, RedisRateLimiter, type RateLimiter } from '../src/rate-limit/index.ts';
import { createRedis, waitForRedis, type RedisClient } from '../src/redis.ts';
import { testRedisUrl, uniqueName } from '../src/testing/services.ts';
import { clusterForThisFile } from './cluster.ts';
import { captureLogger, timed } from './support.ts';

const RUN_PREFIX = `${uniqueName('platform_ratelimit_test')}:`;
let redis: Redis;
let otherClient: Redis;
let clusterRedis: RedisClient;
const cluster = clusterForThisFile();

beforeAll(async () => {
  redis = createRedis(testRedisUrl());
  otherClient = createRedis(testRedisUrl());
  await Promise.all([waitForRedis(redis), waitForRedis(otherClient)]);
  clusterRedis = await cluster.client();
});

afterAll(async () => {
  // Never FLUSHDB: other runs share this Redis. Remove only what this run wrote.
  const keys = await redis.keys(`${RUN_PREFIX}*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
  otherClient.disconnect();
});

let keyCounter = 0;
const freshKey = () => `client:${++keyCounter}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const implementations: { name: string; create: () => RateLimiter }[] = [
  { name: 'MemoryRateLimiter', create: () => new MemoryRateLimiter() },
  { name: 'RedisRateLimiter', create: () => new RedisRateLimiter(redis, RUN_PREFIX) },
  { name: 'RedisRateLimiter on a Redis Cluster', create: () => new RedisRateLimiter(clusterRedis, RUN_PREFIX) },
];

describe.each(implementations)('RateLimiter contract: $name', ({ create }) => {
  let limiter: RateLimiter;
  beforeAll(() => {
    limiter = create();
  });

  it('allows a burst of `limit`, counting down what remains, then refuses with the time until the next slot', async () => {
    const key = freshKey();
    const policy = { limit: 5, windowMs: 60_000 };
    const remaining: number[] = [];
    for (let i = 0; i < 5; i++) {
      const decision = await limiter.consume(key, policy);
      expect(decision.allowed).toBe(true);
      remaining.push(decision.remaining);
    }
    expect(remaining).toEqual([4, 3, 2, 1, 0]);
    const refused = await limiter.consume(key, policy);
    expect(refused).toMatchObject({ allowed: false, remaining: 0 });
    // One slot frees every windowMs / limit = 12 s.
    expect(refused.retryAfterMs).toBeGreaterThan(11_000);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(12_000);
  });

  it('counts requests that arrive together each on its own: exactly `limit` of a burst on one key are allowed', async () => {
    const [key, other] = [freshKey(), freshKey()];
    const policy = { limit: 5, windowMs: 60_000 };
    const decisions = await Promise.all([...Array.from({ length: 8 }, () => limiter.consume(key, policy)), limiter.consume(other, policy)]);
    const burst = decisions.slice(0, 8);
    expect(burst.filter((decision) => decision.allowed)).toHaveLength(5);
    expect(burst.filter((decision) => decision.allowed).map((decision) => decision.remaining).sort()).toEqual([0, 1, 2, 3, 4]);
    expect(decisions[8]).toMatchObject({ allowed: true, remaining: 4 });
  });

  it('allows every request under a limit so high that one step is below the clock’s precision', async () => {
    const key = freshKey();
    const policy = { limit: 1_000_000_000, windowMs: 60_000 };
    for (let i = 0; i < 3; i++) expect((await limiter.consume(key, policy)).allowed).toBe(true);
  });

  it('keeps clients apart', async () => {
    const policy = { limit: 1, windowMs: 60_000 };
    const [first, second] = [freshKey(), freshKey()];
    expect((await limiter.consume(first, policy)).allowed).toBe(true);
    expect((await limiter.consume(first, policy)).allowed).toBe(false);
    expect((await limiter.consume(second, policy)).allowed).toBe(true);
  });

  it('allows again once the slot it named has passed, and a refusal does not push that time back', async () => {
    const key = freshKey();
    const policy = { limit: 2, windowMs: 400 };
    await limiter.consume(key, policy);
    await limiter.consume(key, policy);
    const refused = await limiter.consume(key, policy);
    expect(refused.allowed).toBe(false);
    expect((await limiter.consume(key, policy)).allowed).toBe(false);
    await sleep(refused.retryAfterMs + 30);
    expect((await limiter.consume(key, policy)).allowed).toBe(true);
  });

  it('handles a limit that does not divide the window evenly without refusing the last of a burst', async () => {
    const key = freshKey();
    const policy = { limit: 7, windowMs: 1_000 };
    const decisions = [];
    for (let i = 0; i < 8; i++) decisions.push((await limiter.consume(key, policy)).allowed);
    expect(decisions).toEqual([true, true, true, true, true, true, true, false]);
  });
});

describe('RedisRateLimiter across replicas', () => {
  it('shares one count between two gateway processes’ clients', async () => {
    const policy = { limit: 3, windowMs: 60_000 };
    const key = freshKey();
    const a = new RedisRateLimiter(redis, RUN_PREFIX);
    const b = new RedisRateLimiter(otherClient, RUN_PREFIX);
    const allowed = [];
    for (const limiter of [a, b, a, b]) allowed.push((await limiter.consume(key, policy)).allowed);
    expect(allowed).toEqual([true, true, true, false]);
  });

  it('leaves no key behind once the window has passed', async () => {
    const key = freshKey();
    await new RedisRateLimiter(redis, RUN_PREFIX).consume(key, { limit: 10, windowMs: 200 });
    expect(await redis.pttl(RUN_PREFIX + key)).toBeGreaterThan(0);
    await sleep(250);
    expect(await redis.exists(RUN_PREFIX + key)).toBe(0);
  });
});

describe('RedisRateLimiter on a Redis Cluster', () => {
  it('answers a burst over keys on every shard (one pipeline per node), each key counted on its own', async () => {
    const limiter = new RedisRateLimiter(clusterRedis, RUN_PREFIX);
    const keys = Array.from({ length: 60 }, () => freshKey());
    const policy = { limit: 2, windowMs: 60_000 };
    const first = await Promise.all(keys.map((key) => limiter.consume(key, policy)));
    expect(first.every((decision) => decision.allowed && decision.remaining === 1)).toBe(true);
    const second = await Promise.all(keys.map((key) => limiter.consume(key, policy)));
    expect(second.every((decision) => decision.allowed && decision.remaining === 0)).toBe(true);
    const third = await Promise.all(keys.map((key) => limiter.consume(key, policy)));
    expect(third.every((decision) => !decision.allowed)).toBe(true);
  });

  it('shares one count between two processes’ cluster clients', async () => {
    const policy = { limit: 3, windowMs: 60_000 };
    const key = freshKey();
    const a = new RedisRateLimiter(clusterRedis, RUN_PREFIX);
    const b = new RedisRateLimiter(await cluster.client(), RUN_PREFIX);
    const allowed = [];
    for (const limiter of [a, b, a, b]) allowed.push((await limiter.consume(key, policy)).allowed);
    expect(allowed).toEqual([true, true, true, false]);
  });
});

describe('failOpenRateLimiter over a Redis that is unreachable', () => {
  it('allows every request quickly and logs the outage once, not once per request', async () => {
    const dead = createRedis('redis://127.0.0.1:1');
    dead.on('error', () => {});
    try {
      const { logger, lines } = captureLogger();
      const limiter = failOpenRateLimiter(new RedisRateLimiter(dead, 'dead:'), logger);
      for (let i = 0; i < 20; i++) {
        const { value, ms } = await timed(() => limiter.consume('client', { limit: 1, windowMs: 60_000 }));
        expect(value.allowed).toBe(true);
        expect(ms).toBeLessThan(1_000);
      }
      // Requests that arrive together go to Redis as one pipeline, which fails as a whole.
      const together = await Promise.all(Array.from({ length: 5 }, () => limiter.consume('client', { limit: 1, windowMs: 60_000 })));
      expect(together.every((decision) => decision.allowed)).toBe(true);
      const warnings = lines.filter((line) => line.msg === 'rate-limit store unavailable; allowing requests');
      expect(warnings).toHaveLength(1);
      expect(warnings[0]?.level).toBe(40);
    } finally {
      dead.disconnect();
    }
  });
});
