import { InMemoryLRUCache, type KeyValueCache } from '@apollo/utils.keyvaluecache';
import type { RedisClient } from '../redis.ts';
import type { Logger } from '../logger.ts';

export type { KeyValueCache };

/**
 * The cache edge: Apollo's KeyValueCache interface, so Apollo Server (APQ, response cache) plugs straight in.
 * Values are strings; ttl is in seconds (fractions allowed); no ttl, null or 0 means no expiry; a negative ttl
 * stores nothing. Both implementations below behave the same way.
 */
export function createMemoryCache(maxSizeBytes = 64 * 1024 * 1024): KeyValueCache<string> {
  return new InMemoryLRUCache<string>({
    maxSize: maxSizeBytes,
    // Apollo's default counts UTF-16 units and rejects '' (size 0); count real bytes, at least 1 per entry.
    sizeCalculation: (value) => Math.max(1, Buffer.byteLength(value, 'utf8')),
  });
}

export class RedisCache implements KeyValueCache<string> {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  async get(key: string): Promise<string | undefined> {
    return (await this.redis.get(this.prefix + key)) ?? undefined;
  }

  async set(key: string, value: string, options?: { ttl?: number | null }): Promise<void> {
    const ttl = options?.ttl;
    if (typeof ttl === 'number' && ttl < 0) {
      // Already expired, as InMemoryLRUCache treats it: nothing stays readable under the key.
      await this.redis.del(this.prefix + key);
    } else if (typeof ttl === 'number' && ttl > 0 && Number.isFinite(ttl)) {
      // PX 0 is an error in Redis; a sub-millisecond ttl rounds up to the shortest expiry Redis has.
      await this.redis.set(this.prefix + key, value, 'PX', Math.max(1, Math.ceil(ttl * 1000)));
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
 * is just a miss (get), a skipped write (set) or a no-op (delete), logged. Apollo's own ErrorsAreMissesCache
 * only guards get: its set and delete still throw.
 */
export function resilientCache(cache: KeyValueCache<string>, logger: Logger): KeyValueCache<string> {
  const warn = (error: unknown) => logger.warn({ err: error }, 'cache unavailable; treating as a miss');
  return {
    async get(key) {
      try {
        return await cache.get(key);
      } catch (error) {
        warn(error);
        return undefined;
      }
    },
    async set(key, value, options) {
      try {
        await cache.set(key, value, options);
      } catch (error) {
        warn(error);
      }
    },
    async delete(key) {
      try {
        return await cache.delete(key);
      } catch (error) {
        warn(error);
        return false;
      }
    },
  };
}
