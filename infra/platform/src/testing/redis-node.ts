import { existsSync } from 'node:fs';
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

/** The pid of each Redis server at `nodes` (INFO server), for benches that read their CPU: each must run on this machine. */
export async function redisServerPids(nodes: readonly RedisNode[]): Promise<number[]> {
  return Promise.all(
    nodes.map(async (node) => {
      const info = String(await askRedisNode(node, ['INFO', 'server']));
      const pid = Number(/process_id:(\d+)/.exec(info)?.[1]);
      if (!Number.isInteger(pid) || !existsSync(`/proc/${pid}/stat`)) throw new Error(`Redis at ${node.host}:${node.port} is not a process of this machine`);
      return pid;
    }),
  );
}
