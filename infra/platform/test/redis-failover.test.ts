// The Redis client through failovers that keep an address: a managed Redis's primary endpoint (a DNS name or a
// virtual IP) moves to the promoted replica, while connections made before still reach the old primary, now a
// replica that answers every write READONLY. The client must leave such a connection, not write into it forever.
// Real redis-server processes on loopback; the endpoint is a TCP proxy moved from one to the other.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisClient, waitForRedis, type RedisClient } from '../src/redis.ts';
import { askRedisNode } from '../src/testing/redis-node.ts';
import { startRedisSentinel, type PrivateRedisSentinel } from '../src/testing/redis-sentinel.ts';
import { startTcpProxy, type TcpProxy } from '../src/testing/tcp-proxy.ts';
import { waitFor } from '../src/testing/wait.ts';

describe('a primary demoted behind the address the client uses', () => {
  // A primary with one replica, and no Sentinel: the switchover here is the managed service's, done by hand.
  let servers: PrivateRedisSentinel;
  let endpoint: TcpProxy;
  let client: RedisClient;

  beforeAll(async () => {
    servers = await startRedisSentinel({ replicas: 1, sentinels: 0 });
    endpoint = await startTcpProxy(`redis://${servers.primary.host}:${servers.primary.port}`);
    client = createRedisClient(endpoint.url);
    client.on('error', () => {});
    await waitForRedis(client, 30_000);
  });

  afterAll(async () => {
    client?.disconnect();
    await endpoint?.close();
    await servers?.stop();
  });

  it('reconnects after a READONLY answer and writes to the promoted replica, plain commands and scripts alike', async () => {
    await client.set('failover:before', '1');
    const [replica] = servers.replicas as [{ host: string; port: number }];
    // A switchover as a managed service does it (as Redis's FAILOVER does): wait for the replica to catch up, then
    // promote it, demote the primary under it, and move the address. Without the wait, a busy machine could
    // promote a replica the write had not reached yet.
    await waitFor(async () => expect(await askRedisNode(replica, ['GET', 'failover:before'])).toBe('1'));
    await askRedisNode(replica, ['REPLICAOF', 'NO', 'ONE']);
    await askRedisNode(servers.primary, ['REPLICAOF', replica.host, String(replica.port)]);
    endpoint.retarget(`redis://${replica.host}:${replica.port}`);

    // The connection made before the move meets the demoted primary: at most the commands in flight fail.
    const first = await client.set('failover:after', '1').then(
      () => 'written',
      (error: Error) => error.message,
    );
    expect(first === 'written' || /READONLY/.test(first)).toBe(true);
    await waitFor(() => client.set('failover:after', '2'));
    await waitFor(() => client.eval("return redis.call('SET', KEYS[1], ARGV[1])", 1, 'failover:script', 'x'));
    expect(await askRedisNode(replica, ['GET', 'failover:after'])).toBe('2');
    expect(await askRedisNode(replica, ['GET', 'failover:script'])).toBe('x');
    // What was written before the switchover came along with the replica.
    expect(await askRedisNode(replica, ['GET', 'failover:before'])).toBe('1');
  });
});
