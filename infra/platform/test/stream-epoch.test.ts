// When Redis loses the stream (a FLUSHALL, a new server, a failover to a replica that never got the writes), a
// cursor from before the loss is reported as expired, never silently resumed past what was lost; and with
// EVENT_STREAM_REPLICA_WAIT_MS an append the relay would mark sent is confirmed by a replica first.
import { Cluster } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CursorExpiredError,
  eventChannelShard,
  followEvents,
  MemoryEventStream,
  RedisEventStream,
  type EventStream,
} from '../src/events/index.ts';
import { MemoryPubSub, RedisPubSub, type PubSub } from '../src/pubsub/index.ts';
import { createRedisClient, waitForRedis, type RedisClient } from '../src/redis.ts';
import { startRedisSentinel } from '../src/testing/redis-sentinel.ts';
import { clusterForThisFile } from './cluster.ts';
import { eventStreams } from './event-streams.ts';
import { userEvent, waitFor } from './support.ts';

const { runPrefix, connectedRedis, cleanup } = eventStreams('platform_stream_epoch_test');
const cluster = clusterForThisFile();
afterAll(cleanup);

let counter = 0;
const event = userEvent;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Every key under `prefix`, on every primary: what Redis losing the stream's data looks like to it. */
async function forget(redis: RedisClient, prefix: string): Promise<void> {
  const nodes = redis instanceof Cluster ? redis.nodes('master') : [redis];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1_000);
      cursor = next;
      for (const key of keys) await node.del(key);
    } while (cursor !== '0');
  }
}

interface Deployment {
  name: string;
  /** A stream as a process has it; `restart` gives the one a process has after Redis lost the data. */
  open(): Promise<{ stream: EventStream; pubsub: PubSub; restart(): Promise<{ stream: EventStream; pubsub: PubSub }> }>;
}

const onRedis = (name: string, client: () => Promise<RedisClient>, partitions: number): Deployment => ({
  name,
  open: async () => {
    const redis = await client();
    const prefix = `${runPrefix}${++counter}:`;
    const make = () => ({ stream: new RedisEventStream(redis, prefix, undefined, { partitions }), pubsub: new RedisPubSub(redis, prefix, eventChannelShard) });
    return {
      ...make(),
      restart: async () => {
        await forget(redis, prefix);
        return make();
      },
    };
  },
});

const deployments: Deployment[] = [
  {
    name: 'in memory (a process restart)',
    open: async () => {
      const make = () => {
        const pubsub = new MemoryPubSub();
        return { stream: new MemoryEventStream(pubsub), pubsub };
      };
      return {
        ...make(),
        restart: async () => {
          // A restart takes far longer than the millisecond positions are made of.
          await sleep(5);
          return make();
        },
      };
    },
  },
  onRedis('on one Redis', () => connectedRedis(), 1),
  onRedis('on one Redis in 4 partitions', () => connectedRedis(), 4),
  onRedis('on a Redis Cluster', () => cluster.client(), 1),
  onRedis('on a Redis Cluster in 4 partitions', () => cluster.client(), 4),
];

describe.each(deployments)('a stream that lost its data, $name', ({ open }) => {
  it("expires every cursor from before the loss once the stream is written again, and serves the new ones", async () => {
    const before = await open();
    const positions = await before.stream.append([event('u1'), event('u1'), event('u2'), event('u1')]);
    const userCursor = positions[1]!;
    const firehose = await before.stream.last({});
    // The client has seen u1's second event; the third is lost with the rest.

    const after = await before.restart();
    // The relays and the projection write the stream anew.
    const [fresh] = await after.stream.append([event('u1'), event('u2')]);

    await expect(after.stream.read({ userId: 'u1' }, userCursor, 10)).rejects.toBeInstanceOf(CursorExpiredError);
    await expect(after.stream.read({}, firehose, 10)).rejects.toBeInstanceOf(CursorExpiredError);
    await expect(followEvents(after.stream, after.pubsub, { userId: 'u1' }, userCursor)).rejects.toBeInstanceOf(CursorExpiredError);
    await expect(followEvents(after.stream, after.pubsub, {}, firehose)).rejects.toBeInstanceOf(CursorExpiredError);
    // What the new stream hands out works, and so does "from the start".
    expect(await after.stream.read({ userId: 'u1' }, fresh!, 10)).toEqual([]);
    expect(await after.stream.read({ userId: 'u1' }, '0-0', 10)).toHaveLength(1);
  });
});

describe('a stream from before epochs', () => {
  it('keeps every cursor it handed out: the epoch it is given starts before them', async () => {
    const redis = await connectedRedis();
    const prefix = `${runPrefix}${++counter}:`;
    const stream = new RedisEventStream(redis, prefix);
    const [first] = await stream.append([event('u1')]);
    // As if written by the version before epochs.
    await redis.del(`${prefix}events:epoch`);
    const [second] = await stream.append([event('u1')]);
    expect((await stream.read({ userId: 'u1' }, first!, 10)).map((stored) => stored.position)).toEqual([second]);
  });
});

describe('with EVENT_STREAM_REPLICA_WAIT_MS, on a primary with replicas', () => {
  it('fails an append no replica confirmed, so the relay sends it again; the repeat takes the same position once they are back', async () => {
    const sentinel = await startRedisSentinel({ replicationProxy: true });
    const redis = createRedisClient(`redis://127.0.0.1:${sentinel.primary.port}`);
    redis.on('error', () => {});
    try {
      await waitForRedis(redis, 10_000);
      const stream = new RedisEventStream(redis, 'wait:', undefined, { replicaWaitMs: 100 });
      const first = event('u1');
      expect(await stream.append([first])).toHaveLength(1);

      // The replicas lose the primary: it still takes writes, which a failover now would lose.
      sentinel.replication!.setUp(false);
      sentinel.replication!.dropConnections();
      const second = event('u1');
      await expect(stream.append([second])).rejects.toThrow(/no replica confirmed/);

      sentinel.replication!.setUp(true);
      // Sent again (the relay left its row unsent): the stream has it already, and now a replica confirms it.
      const [position] = await waitFor(() => stream.append([second]), 20_000, 200);
      const stored = await stream.read({ userId: 'u1' }, null, 10);
      expect(stored.map((entry) => entry.id)).toEqual([first.id, second.id]);
      expect(stored[1]!.position).toBe(position);
    } finally {
      redis.disconnect();
      await sentinel.stop();
    }
  });
});
