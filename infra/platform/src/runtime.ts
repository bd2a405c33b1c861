import type { Logger } from './logger.ts';
import { DataDirInUseError } from './db/index.ts';
import { PortInUseError } from './http/server.ts';
import { createMemoryCache, RedisCache, resilientCache, type KeyValueCache } from './cache/index.ts';
import { MemoryResponseStore, RedisResponseStore, type ResponseStore, type ResponseStoreOptions } from './response-cache/index.ts';
import { MemoryPubSub, RedisPubSub, type PubSub } from './pubsub/index.ts';
import { eventChannelShard, MemoryEventStream, RedisEventStream, type EventStream, type Retention } from './events/index.ts';
import { failOpenRateLimiter, MemoryRateLimiter, RedisRateLimiter, type RateLimiter } from './rate-limit/index.ts';
import { createRedisClient, waitForRedis, type RedisClient, type RedisTarget } from './redis.ts';

/** The shared-state edges of a process: Redis when REDIS_URL is set, in-memory otherwise. */
export interface Infrastructure {
  kind: 'redis' | 'memory';
  pubsub: PubSub;
  /** The durable event stream the outbox relays feed: Redis Streams, or in memory. */
  events: EventStream;
  cache: KeyValueCache<string>;
  rateLimiter: RateLimiter;
  /** The gateway's response cache, shared by every replica on Redis. */
  createResponseStore(options: ResponseStoreOptions): ResponseStore;
  close(): Promise<void>;
}

export interface InfrastructureOptions {
  /** REDIS_URL as the config parsed it (one server, a cluster or Sentinels), or the URL itself. */
  redisUrl?: RedisTarget | string;
  logger: Logger;
  /** Namespaces keys and channels, so several deployments (or test runs) can share one Redis. */
  keyPrefix?: string;
  /** How many events the stream keeps, per user and overall, and over how many partitions (Redis only). */
  retention?: Retention;
}

export async function createInfrastructure({ redisUrl, logger, keyPrefix = '', retention }: InfrastructureOptions): Promise<Infrastructure> {
  if (!redisUrl) {
    const pubsub = new MemoryPubSub();
    const events = new MemoryEventStream(pubsub, retention);
    return {
      kind: 'memory',
      pubsub,
      events,
      cache: createMemoryCache(),
      rateLimiter: new MemoryRateLimiter(),
      createResponseStore: (storeOptions) => new MemoryResponseStore(storeOptions),
      close: async () => {
        await events.close();
        await pubsub.close();
      },
    };
  }
  const redis: RedisClient = createRedisClient(redisUrl);
  redis.on('error', (error: Error) => logger.warn({ err: error }, 'redis error'));
  // Redis is shared state, not a dependency to die for: start degraded (cache misses, events dropped and
  // logged) and let ioredis reconnect, rather than refuse to serve during a Redis restart.
  await waitForRedis(redis).catch((error: unknown) => logger.warn({ err: error }, 'redis not ready; starting without it'));
  const pubsub = new RedisPubSub(redis, keyPrefix, eventChannelShard);
  const events = new RedisEventStream(redis, keyPrefix, retention);
  return {
    kind: 'redis',
    pubsub,
    events,
    cache: resilientCache(new RedisCache(redis, `${keyPrefix}cache:`), logger),
    rateLimiter: failOpenRateLimiter(new RedisRateLimiter(redis, `${keyPrefix}ratelimit:`), logger),
    createResponseStore: (storeOptions) => new RedisResponseStore(redis, `${keyPrefix}responses:`, storeOptions),
    close: async () => {
      await events.close();
      await pubsub.close();
      redis.disconnect();
    },
  };
}

/** Runs `stop` once on SIGINT/SIGTERM, then exits; a second signal exits at once. */
export function onShutdown(logger: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(1);
    stopping = true;
    logger.info({ signal }, 'shutting down');
    stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
}

/**
 * Runs a composition root's startup. Failures a user can fix (a taken port, a data dir in use) are printed as
 * one line; anything else keeps its stack. Either way the process exits non-zero.
 */
export async function startOrExit(start: () => Promise<void>, label = 'Cannot start'): Promise<void> {
  try {
    await start();
  } catch (error) {
    if (error instanceof PortInUseError || error instanceof DataDirInUseError) {
      process.stderr.write(`${label}: ${error.message}\n`);
    } else {
      process.stderr.write(`${label}: ${(error as Error).stack ?? String(error)}\n`);
    }
    process.exit(1);
  }
}
