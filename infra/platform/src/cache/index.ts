import { ErrorsAreMissesCache, InMemoryLRUCache, type KeyValueCache } from '@apollo/utils.keyvaluecache';
import type { Redis } from 'ioredis';
import type { Logger } from '../logger.ts';

export type { KeyValueCache };

/**
 * The cache edge: Apollo's KeyValueCache interface, so Apollo Server (APQ, response cache) plugs straight in.
 * Values are strings; ttl is in seconds.
 */
export function createMemoryCache(maxSizeBytes = 64 * 1024 * 1024): KeyValueCache<string> {
  return new InMemoryLRUCache<string>({ maxSize: maxSizeBytes });
}

export class RedisCache implements KeyValueCache<string> {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  async get(key: string): Promise<string | undefined> {
    return (await this.redis.get(this.prefix + key)) ?? undefined;
  }

  async set(key: string, value: string, options?: { ttl?: number | null }): Promise<void> {
    const ttl = options?.ttl;
    if (typeof ttl === 'number' && ttl > 0) {
      await this.redis.set(this.prefix + key, value, 'PX', Math.round(ttl * 1000));
    } else {
      await this.redis.set(this.prefix + key, value);
    }
  }

  async delete(key: string): Promise<boolean> {
    return (await this.redis.del(this.prefix + key)) > 0;
  }
}

/**
 * Apollo's plugins await the cache without a try, so an outage would fail requests. Wrapped, a dead cache
 * is just a miss, logged.
 */
export function resilientCache(cache: KeyValueCache<string>, logger: Logger): KeyValueCache<string> {
  const warn = (message: unknown) => logger.warn({ err: message }, 'cache unavailable; treating as a miss');
  return new ErrorsAreMissesCache(cache, { debug: () => {}, info: () => {}, warn, error: warn });
}
