import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from 'ioredis';
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
