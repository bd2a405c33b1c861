import { redisServerPids, startRedisCluster, startRedisServer, testRedisUrl } from '@fed/platform/testing';
import { processCpu, type CpuWatch } from './cpu.ts';

/** A Redis the bench runs against: its REDIS_URL, and the CPU of every server process behind it. */
export interface BenchRedis {
  /** What the sides' tables call it. */
  label: string;
  url: string;
  cpu: CpuWatch;
  stop(): Promise<void>;
}

/**
 * `redis`: one private redis-server; `cluster`: a private 3-primary cluster (each primary with
 * `replicasPerPrimary` replicas, as in production); `shared`: the machine's Redis (TEST_REDIS_URL). The private
 * ones are started the same way (same binary, no persistence, loopback), so that the single server and the
 * cluster differ only in being one or several; the machine's Redis also carries the other engineers' tests.
 */
export type RedisKind = 'redis' | 'cluster' | 'shared';

export const isRedisKind = (kind: string): kind is RedisKind => kind === 'redis' || kind === 'cluster' || kind === 'shared';

/** Every server's CPU, summed under the name `redis` (the bench's reports call it that). */
async function serversCpu(nodes: readonly { host: string; port: number }[]): Promise<CpuWatch> {
  const watches = (await redisServerPids(nodes)).map((pid) => processCpu('redis', pid));
  return {
    name: 'redis',
    sample: async () => new Map((await Promise.all(watches.map((watch) => watch.sample()))).flatMap((sampled) => [...sampled])),
  };
}

export async function startBenchRedis(kind: RedisKind, { replicasPerPrimary = 1 } = {}): Promise<BenchRedis> {
  if (kind === 'cluster') {
    const cluster = await startRedisCluster({ primaries: 3, replicasPerPrimary });
    try {
      return { label: `cluster (3 primaries${replicasPerPrimary ? ` + ${3 * replicasPerPrimary} replicas` : ', no replicas'})`, url: cluster.url, cpu: await serversCpu(cluster.nodes), stop: cluster.stop };
    } catch (error) {
      await cluster.stop();
      throw error;
    }
  }
  const server = kind === 'redis' ? await startRedisServer() : undefined;
  const url = server?.url ?? testRedisUrl();
  try {
    const { hostname, port } = new URL(url);
    return { label: kind === 'redis' ? 'one Redis' : 'the shared Redis', url, cpu: await serversCpu([{ host: hostname, port: Number(port || 6379) }]), stop: async () => server?.stop() };
  } catch (error) {
    await server?.stop();
    throw error;
  }
}
