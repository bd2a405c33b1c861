import { parseRedisTarget } from '../redis.ts';
import { startRedisCluster } from './redis-cluster.ts';
import { startRedisSentinel } from './redis-sentinel.ts';
import { testRedisUrl } from './services.ts';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.ts';

/** Redis behind loopback proxies that a test closes to take Redis away from everything that uses it. */
export interface RedisBehindProxies {
  /** REDIS_URL for it, of the same form as the one it was made for. */
  url: string;
  /**
   * `false`: every proxy stops listening and cuts its connections, so Redis refuses connections as when its host
   * is gone (its data stays); `true`: it listens again on the same ports.
   */
  setListening(listening: boolean): Promise<void>;
  stop(): Promise<void>;
}

const behind = (proxies: readonly TcpProxy[], url: string, stopRedis: () => Promise<void>): RedisBehindProxies => ({
  url,
  setListening: async (listening) => {
    await Promise.all(proxies.map((proxy) => proxy.setListening(listening)));
  },
  stop: async () => {
    await Promise.all(proxies.map((proxy) => proxy.close()));
    await stopRedis();
  },
});

/**
 * A Redis of the topology `url` names (TEST_REDIS_URL by default), that a test can take away and bring back.
 * One server: a proxy in front of it (keys stay under the test's prefix). A cluster or Sentinels: a private set-up
 * of the same shape (6 nodes; 1 primary, 2 replicas and 3 Sentinels), with a proxy in front of every data node
 * that the set-up announces as the node's address (see `clientProxies`), since a client of either learns the
 * nodes' addresses from Redis itself and one proxy could not stand for them all. Closing the proxies cuts the
 * services from every node while the nodes stay in touch with each other: no failover, an outage.
 */
export async function startRedisBehindProxies(url = testRedisUrl()): Promise<RedisBehindProxies> {
  const target = parseRedisTarget(url);
  if (typeof target === 'string') throw new Error(`Invalid Redis URL: ${target}`);
  switch (target.mode) {
    case 'standalone': {
      const proxy = await startTcpProxy(url);
      return behind([proxy], proxy.url, async () => {});
    }
    case 'cluster': {
      const cluster = await startRedisCluster({ clientProxies: true });
      return behind(cluster.proxies ?? [], cluster.url, () => cluster.stop());
    }
    case 'sentinel': {
      const sentinel = await startRedisSentinel({ clientProxies: true });
      return behind(sentinel.proxies ?? [], sentinel.url, () => sentinel.stop());
    }
  }
}
