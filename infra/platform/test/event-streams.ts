// Both EventStream implementations, for the suites that run one contract against each (event-stream and
// follow tests). Each stream gets its own Redis namespace, so no test sees another's events.
import type { Redis } from 'ioredis';
import { eventChannelShard, MemoryEventStream, RedisEventStream, type EventStream, type Retention } from '../src/events/index.ts';
import { MemoryPubSub, RedisPubSub, type PubSub } from '../src/pubsub/index.ts';
import { createRedis, waitForRedis, type RedisClient } from '../src/redis.ts';
import { testRedisUrl, uniqueName } from '../src/testing/services.ts';
import { clusterForThisFile } from './cluster.ts';
import { deleteRedisKeys, waitFor } from './support.ts';

export interface StreamHarness {
  stream: EventStream;
  pubsub: PubSub;
  close(): Promise<void>;
}

export interface CreateOptions {
  retention?: Retention;
  /** Redis only: the partition count new users are spread over (the implementation's own by default). */
  partitions?: number;
  /**
   * Redis only: wait until a consumer group read works before handing the stream out (like the response store
   * tests wait for their store to be usable). `false` hands out a stream exactly as a fresh process has it.
   */
  warm?: boolean;
}

export interface Implementation {
  name: string;
  /** How many partitions its stream spreads users over: every-user reads and groups merge them. */
  partitions: number;
  create(options?: CreateOptions): Promise<StreamHarness>;
}

/** A stream and its pub/sub on `redis` under a namespace of their own, warmed as CreateOptions says. */
async function redisHarness(redis: RedisClient, prefix: string, { retention, warm = true, partitions }: CreateOptions, closeClient: () => void): Promise<StreamHarness> {
  const pubsub = new RedisPubSub(redis, prefix, eventChannelShard);
  const stream = new RedisEventStream(redis, prefix, retention, { partitions });
  if (warm) {
    const probe = stream.group('__probe');
    await probe.ensure('0-0');
    await waitFor(() => probe.read('probe', 1, 1), 5_000, 20);
  }
  return {
    stream,
    pubsub,
    close: async () => {
      await stream.close();
      await pubsub.close();
      closeClient();
    },
  };
}

/**
 * The implementations (in memory, on one Redis, on a Redis Cluster of the file's own), plus Redis connections that
 * `cleanup` closes along with every key under `runPrefix`.
 */
export function eventStreams(label: string) {
  /** Every Redis key and channel the suite touches starts with this; cleanup deletes exactly those keys. */
  const runPrefix = `${uniqueName(label)}:`;
  const openClients: Redis[] = [];
  let namespaceCounter = 0;
  const cluster = clusterForThisFile();

  const connectedRedis = async (url = testRedisUrl()): Promise<Redis> => {
    const redis = createRedis(url);
    openClients.push(redis);
    redis.on('error', () => {});
    await waitForRedis(redis);
    return redis;
  };

  const implementations: Implementation[] = [
    {
      name: 'MemoryEventStream',
      partitions: 1,
      create: async ({ retention } = {}) => {
        const pubsub = new MemoryPubSub();
        const stream = new MemoryEventStream(pubsub, retention);
        return {
          stream,
          pubsub,
          close: async () => {
            await stream.close();
            await pubsub.close();
          },
        };
      },
    },
    {
      name: 'RedisEventStream',
      partitions: 1,
      create: async (options = {}) => {
        const redis = await connectedRedis();
        return redisHarness(redis, `${runPrefix}${++namespaceCounter}:`, options, () => redis.disconnect());
      },
    },
    {
      name: 'RedisEventStream on a Redis Cluster',
      partitions: 1,
      create: async (options = {}) => {
        const redis = await cluster.client();
        return redisHarness(redis, `${runPrefix}${++namespaceCounter}:`, options, () => redis.disconnect());
      },
    },
    {
      name: 'RedisEventStream in 4 partitions',
      partitions: 4,
      create: async (options = {}) => {
        const redis = await connectedRedis();
        return redisHarness(redis, `${runPrefix}${++namespaceCounter}:`, { partitions: 4, ...options }, () => redis.disconnect());
      },
    },
    {
      name: 'RedisEventStream in 4 partitions on a Redis Cluster',
      partitions: 4,
      create: async (options = {}) => {
        const redis = await cluster.client();
        return redisHarness(redis, `${runPrefix}${++namespaceCounter}:`, { partitions: 4, ...options }, () => redis.disconnect());
      },
    },
  ];

  return {
    runPrefix,
    implementations,
    connectedRedis,
    cleanup: async () => {
      for (const client of openClients) client.disconnect();
      await deleteRedisKeys(runPrefix);
    },
  };
}

/** The partition a user's events go to (reading the user's channel assigns it, as a first event would). */
export async function partitionOfUser(stream: EventStream, userId: string): Promise<number> {
  return Number(/^p(\d+):/.exec(await stream.channel({ userId }))?.[1] ?? 0);
}
