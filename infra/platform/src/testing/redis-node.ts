import { Redis } from 'ioredis';
import type { RedisNode } from '../redis.ts';

/**
 * One command on one Redis process, over a connection of its own that never retries: for harnesses asking a
 * node about itself before (or regardless of) any cluster or Sentinel client.
 */
export async function askRedisNode({ host, port }: RedisNode, command: [string, ...string[]]): Promise<unknown> {
  const client = new Redis({ host, port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => {});
  try {
    await client.connect();
    return await client.call(...command);
  } finally {
    client.disconnect();
  }
}
