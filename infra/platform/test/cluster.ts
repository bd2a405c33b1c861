// One Redis Cluster per test file (6 nodes take a few seconds to start): started when a suite first asks for
// it, stopped with every client made from it when the file ends. Each file gets its own cluster, so no test
// shares state with another file's, and nothing needs deleting afterwards.
import { afterAll } from 'vitest';
import { createRedisClient, waitForRedis, type RedisClient } from '../src/redis.ts';
import { startRedisCluster, type PrivateRedisCluster } from '../src/testing/redis-cluster.ts';

export interface FileCluster {
  cluster(): Promise<PrivateRedisCluster>;
  /** A new Cluster client, ready. */
  client(): Promise<RedisClient>;
}

export function clusterForThisFile(): FileCluster {
  let started: Promise<PrivateRedisCluster> | undefined;
  const clients: RedisClient[] = [];
  afterAll(async () => {
    for (const client of clients) client.disconnect();
    if (started) await (await started).stop();
  });
  const cluster = () => (started ??= startRedisCluster());
  return {
    cluster,
    client: async () => {
      // The contracts are about what the cluster answers: six nodes and the test share two busy cores.
      const client = createRedisClient((await cluster()).url, { commandTimeoutMs: 5_000 });
      clients.push(client);
      client.on('error', () => {});
      await waitForRedis(client, 30_000);
      return client;
    },
  };
}
