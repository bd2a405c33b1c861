import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from 'ioredis';
import { eventChannelShard, RedisEventStream, userEventsChannel } from '../src/events/index.ts';
import { RedisPubSub } from '../src/pubsub/index.ts';
import { userEvent, waitFor } from './support.ts';
import { createRedisClient, groupByNode, slotOf, waitForRedis, type RedisClient } from '../src/redis.ts';
import { startRedisCluster, type PrivateRedisCluster } from '../src/testing/redis-cluster.ts';

let cluster: PrivateRedisCluster;
let client: RedisClient;

beforeAll(async () => {
  cluster = await startRedisCluster();
  client = createRedisClient(cluster.url);
  client.on('error', () => {});
  await waitForRedis(client, 30_000);
});

afterAll(async () => {
  client?.disconnect();
  await cluster?.stop();
});

describe('a private Redis Cluster', () => {
  it('has 3 primaries with a replica each, and REDIS_URL in its cluster form makes a Cluster client', async () => {
    expect(client).toBeInstanceOf(Cluster);
    const flags = String(await client.call('CLUSTER', 'NODES'))
      .trim()
      .split('\n')
      .map((line) => (line.split(' ')[2] ?? '').split(','));
    expect(flags.filter((flag) => flag.includes('master'))).toHaveLength(3);
    expect(flags.filter((flag) => flag.includes('slave'))).toHaveLength(3);
    expect(cluster.nodes.every(({ port }) => port !== 6379)).toBe(true);
  });

  it('computes slots as the cluster does, hash tags included', async () => {
    for (const key of ['foo', 'user:42', 'x{user:42}y', '{}empty', 'a{b', 'ünïcødé{ü}', 'prefix:{events}:log']) {
      expect(slotOf(key)).toBe(Number(await client.call('CLUSTER', 'KEYSLOT', key)));
    }
  });

  it('groups keys so that each group is served by one node, which a cluster pipeline accepts', async () => {
    const keys = Array.from({ length: 60 }, (_, index) => `spread:${index}`);
    const groups = groupByNode(client, keys, (key) => key);
    expect(groups.length).toBe(3);
    for (const group of groups) {
      const pipeline = client.pipeline();
      for (const key of group) pipeline.set(key, 'v', 'PX', 60_000);
      expect((await pipeline.exec())?.every(([error]) => error === null)).toBe(true);
    }
    expect(await client.get('spread:7')).toBe('v');
  });
});

describe('the durable stream on a cluster', () => {
  it('keeps every key of the stream in the {events} slot, and rings sharded channels in that slot', async () => {
    const prefix = 'layout:';
    const stream = new RedisEventStream(client, prefix);
    const pubsub = new RedisPubSub(client, prefix, eventChannelShard);
    const heard: unknown[] = [];
    const unsubscribe = await pubsub.subscribe(userEventsChannel('7'), (message) => heard.push(message));
    try {
      const event = userEvent;
      await stream.append([event('7'), event('8'), event('9')]);
      await stream.group('projection').ensure('0-0');

      const slot = slotOf('{events}');
      const keys = (await Promise.all((client as Cluster).nodes('master').map((node) => node.keys(`${prefix}*`)))).flat();
      expect(keys.length).toBeGreaterThanOrEqual(6);
      expect(new Set(keys.map(slotOf))).toEqual(new Set([slot]));
      expect(await pubsub.subscribers(userEventsChannel('7'))).toBe(1);
      await waitFor(() => expect(heard).toHaveLength(1));
    } finally {
      await unsubscribe();
      await pubsub.close();
    }
  });
});
