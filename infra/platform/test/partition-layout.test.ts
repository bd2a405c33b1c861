// Changing EVENT_STREAM_PARTITIONS between deployments (the README, "A partitioned event stream"): processes with the old and the new count
// share one stream, on one Redis and on a cluster. Nothing a reader was promised is lost or repeated: users keep
// their partition, old cursors keep their meaning, consumer groups and the firehose cover partitions added later.
import { afterAll, describe, expect, it } from 'vitest';
import { followEvents, locate, partitionKeySpace, RedisEventStream, spreadPartition, subscribeToEveryEvent, type DomainEvent, type Followed, type StoredEvent } from '../src/events/index.ts';
import { RedisPubSub } from '../src/pubsub/index.ts';
import { eventChannelShard } from '../src/events/index.ts';
import { slotOf, slotTag, type RedisClient } from '../src/redis.ts';
import { askRedisNode } from '../src/testing/redis-node.ts';
import type { Cluster } from 'ioredis';
import { eventStreams } from './event-streams.ts';
import { clusterForThisFile } from './cluster.ts';
import { userEvent, waitFor } from './support.ts';

const { runPrefix, connectedRedis, cleanup } = eventStreams('platform_partition_layout_test');
const cluster = clusterForThisFile();
afterAll(cleanup);

let counter = 0;
const event = userEvent;
const ids = (events: readonly { id: string }[]) => events.map((stored) => stored.id);
const partitionOf = (position: string) => locate(position)!.partition;
const sorted = (list: readonly string[]) => [...list].sort();

const targets: { name: string; client(): Promise<RedisClient> }[] = [
  { name: 'one Redis', client: () => connectedRedis() },
  { name: 'a Redis Cluster', client: () => cluster.client() },
];

describe.each(targets)('changing the partition count on $name', ({ client }) => {
  const streams: RedisEventStream[] = [];
  const open = async (prefix: string, partitions: number) => {
    const stream = new RedisEventStream(await client(), prefix, undefined, { partitions });
    streams.push(stream);
    return stream;
  };
  afterAll(async () => {
    for (const stream of streams) await stream.close();
  });

  it('rings what each partition stored for whoever listens to every event, in the append itself: also when another partition failed, each event once', async () => {
    const prefix = `${runPrefix}${++counter}:`;
    const redis = await client();
    const stream = await open(prefix, 4);
    const pubsub = new RedisPubSub(redis, prefix, eventChannelShard);
    const heard: string[] = [];
    await subscribeToEveryEvent(pubsub, (message) => heard.push((message as DomainEvent).id));
    // Two users in two different partitions past 0 (reading a user's channel assigns their partition).
    const users = new Map<number, string>();
    for (let n = 0; users.size < 2; n++) {
      const partition = Number(/^p(\d+):/.exec(await stream.channel({ userId: `spread-${n}` }))?.[1] ?? 0);
      if (partition > 0 && !users.has(partition)) users.set(partition, `spread-${n}`);
    }
    const [[healthy, ok], [broken, unlucky]] = [...users] as [[number, string], [number, string]];
    // The broken partition's log is not a stream: its append fails, as a timed-out script or a failed WAIT would.
    const brokenLog = `${prefix}${slotTag(redis, partitionKeySpace(broken))}:log`;
    await redis.set(brokenLog, 'not a stream');
    const batch = [event(ok), event(unlucky)];
    await expect(stream.append(batch)).rejects.toThrow();
    // What the healthy partition stored is heard though the relay will send the whole batch again.
    await waitFor(() => expect(heard).toContain(batch[0]!.id));
    expect(partitionOf((await stream.read({ userId: ok }, null, 10))[0]!.position)).toBe(healthy);

    await redis.del(brokenLog);
    await stream.append(batch);
    // The resend: the healthy partition's event is a repeat now (announced already), the other one new.
    await waitFor(() => expect(heard.filter((id) => id === batch[1]!.id)).toHaveLength(1));
    expect(heard.filter((id) => id === batch[0]!.id)).toHaveLength(1);
    await pubsub.close();
  });

  it('from 1 to 4: existing users stay in partition 0 with their cursors, new users spread, and readers of every user miss nothing', async () => {
    const prefix = `${runPrefix}${++counter}:`;
    const before = await open(prefix, 1);
    const group = before.group('projection');
    await group.ensure('0-0');
    const [a1] = await before.append([event('a'), event('b')]);
    // A firehose reader and the group, each at its place under the old layout.
    const firehose = await before.last({});
    expect(firehose).toMatch(/^\d+-\d+$/);
    const delivered = await group.read('c1', 10, 20);
    expect(delivered).toHaveLength(2);
    await group.ack(delivered.map((stored) => stored.position));

    const after = await open(prefix, 4);
    const newUsers = Array.from({ length: 8 }, (_, i) => `new-${i}`);
    const later = [event('a'), event('b'), ...newUsers.map(event)];
    const positions = await after.append(later);
    // a and b had events in partition 0: they stay there, unprefixed, and a cursor of theirs from before still works.
    expect(positions.slice(0, 2).map(partitionOf)).toEqual([0, 0]);
    expect(ids(await after.read({ userId: 'a' }, a1!, 10))).toEqual([later[0]!.id]);
    // New users go to the four partitions.
    expect(new Set(positions.slice(2).map(partitionOf)).size).toBeGreaterThan(1);
    expect(await after.partitions()).toBe(4);

    // A process still configured for 1 partition puts a new user's events where the others would: it learns the
    // layout from its append, which refuses to treat the stream as unpartitioned any more.
    const latecomer = event('late-user');
    const [latePosition] = await before.append([latecomer]);
    expect(ids(await after.read({ userId: 'late-user' }, null, 10))).toEqual([latecomer.id]);
    expect(partitionOf((await after.read({ userId: 'late-user' }, null, 10))[0]!.position)).toBe(partitionOf(latePosition!));
    expect(await before.partitions()).toBe(4);

    // The firehose cursor from before resumes over every partition: exactly the events since.
    const since = await after.read({}, firehose, 100);
    expect(sorted(ids(since))).toEqual(sorted(ids([...later, latecomer])));
    // The group made before the change takes each later event once, from every partition.
    const taken: StoredEvent[] = [];
    await waitFor(async () => {
      taken.push(...(await after.group('projection').read('c2', 100, 20)));
      expect(taken).toHaveLength(later.length + 1);
    });
    expect(sorted(ids(taken))).toEqual(sorted(ids([...later, latecomer])));
    await after.group('projection').ack(taken.map((stored) => stored.position));
    expect(await after.group('projection').caughtUp(await after.last({}))).toBe(true);
    expect(await after.group('projection').read('c2', 100, 20)).toEqual([]);
  });

  it('from 4 to 2: nobody moves, and readers still read all four partitions', async () => {
    const prefix = `${runPrefix}${++counter}:`;
    const four = await open(prefix, 4);
    const users = Array.from({ length: 8 }, (_, i) => `user-${i}`);
    const first = await four.append(users.map(event));
    const placed = new Map(users.map((user, i) => [user, partitionOf(first[i]!)]));
    expect(Math.max(...placed.values())).toBeGreaterThanOrEqual(2);

    const two = await open(prefix, 2);
    const again = users.map(event);
    const second = await two.append(again);
    expect(second.map(partitionOf)).toEqual(users.map((user) => placed.get(user)));
    for (const [i, user] of users.entries()) expect(ids(await two.read({ userId: user }, first[i]!, 10))).toEqual([again[i]!.id]);
    // A user new to the stream goes to one of the two partitions now configured.
    const [fresh] = await two.append([event('brand-new')]);
    expect(partitionOf(fresh!)).toBeLessThan(2);
    expect(await two.partitions()).toBe(4);
    expect(await two.read({}, null, 100)).toHaveLength(users.length * 2 + 1);
  });

  it("a follower of every user's events started before the change also follows the partitions added after it", async () => {
    const prefix = `${runPrefix}${++counter}:`;
    const redis = await client();
    const pubsub = new RedisPubSub(redis, prefix, eventChannelShard);
    const before = new RedisEventStream(redis, prefix);
    streams.push(before);
    try {
      const iterator = await followEvents(before, pubsub, {}, null, 10);
      const after = await open(prefix, 4);
      const appended = Array.from({ length: 8 }, (_, i) => event(`grown-${i}`));
      const positions = await after.append(appended);
      expect(new Set(positions.map(partitionOf)).size).toBeGreaterThan(1);
      const got: Followed[] = [];
      while (got.length < appended.length) {
        const next = await Promise.race([iterator.next(), new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`only ${got.length} events came`)), 10_000))]);
        if (next.done) break;
        got.push(next.value);
      }
      expect(sorted(ids(got as StoredEvent[]))).toEqual(sorted(ids(appended)));
      await iterator.return?.();
    } finally {
      await pubsub.close();
    }
  });
});

describe('new users on a Redis Cluster', () => {
  it("spread evenly over the primaries serving the partitions, not over the partitions (4 partitions sit 1/2/1 on 3 primaries)", async () => {
    const redis = (await cluster.client()) as Cluster;
    const prefix = `${runPrefix}${++counter}:`;
    const stream = new RedisEventStream(redis, prefix, undefined, { partitions: 4 });
    try {
      const positions = await stream.append(Array.from({ length: 900 }, (_, i) => event(`spread-${i}`)));
      const ownerOf = (partition: number) => redis.slots[slotOf(`${prefix}${slotTag(redis, partitionKeySpace(partition))}:log`)]?.[0] as string;
      const owners = new Set(Array.from({ length: 4 }, (_, partition) => ownerOf(partition)));
      const perOwner = new Map<string, number>();
      for (const position of positions) perOwner.set(ownerOf(partitionOf(position)), (perOwner.get(ownerOf(partitionOf(position))) ?? 0) + 1);
      expect(new Set(perOwner.keys())).toEqual(owners);
      // Each primary's share is its fair one (a third with three), give or take what a hash of 900 ids leaves.
      for (const [owner, count] of perOwner) expect(count / positions.length, owner).toBeCloseTo(1 / owners.size, 1);
    } finally {
      await stream.close();
    }
  });

  describe('with EVENT_STREAM_REPLICA_WAIT_MS (each append confirmed by a replica)', () => {
    /** A 4-partition stream and a user of each of two partitions past 0, with the primary of the first one's. */
    const setUp = async () => {
      const redis = (await cluster.client()) as Cluster;
      const prefix = `${runPrefix}${++counter}:`;
      const stream = new RedisEventStream(redis, prefix, undefined, { partitions: 4, replicaWaitMs: 2_000 });
      const users = new Map<number, string>();
      for (let n = 0; users.size < 2; n++) {
        const partition = Number(/^p(\d+):/.exec(await stream.channel({ userId: `wait-${n}` }))?.[1] ?? 0);
        if (partition > 0 && !users.has(partition)) users.set(partition, `wait-${n}`);
      }
      const [[partition, user], [otherPartition, other]] = [...users] as [[number, string], [number, string]];
      const slotOfPartition = (p: number) => slotOf(`${prefix}${slotTag(redis, partitionKeySpace(p))}:log`);
      return { redis, stream, user, other, slot: slotOfPartition(partition), otherSlot: slotOfPartition(otherPartition) };
    };
    /** How many WAITs each primary has run (its own count, from INFO commandstats). */
    const waitsPerPrimary = async (redis: Cluster) =>
      new Map<string, number>(
        await Promise.all(
          redis.nodes('master').map(async (node) => [`${node.options.host}:${node.options.port}`, Number(/cmdstat_wait:calls=(\d+)/.exec(await node.info('commandstats'))?.[1] ?? 0)] as const),
        ),
      );

    it('appends to every partition, each confirmed on the primary that stored it', async () => {
      const { redis, stream, user, other, slot, otherSlot } = await setUp();
      try {
        const before = await waitsPerPrimary(redis);
        const batch = [event(user), event(other), event(user)];
        const positions = await stream.append(batch);
        expect(positions).toHaveLength(3);
        const after = await waitsPerPrimary(redis);
        const expected = new Map<string, number>([...before.keys()].map((node) => [node, 0]));
        for (const owner of [redis.slots[slot]![0]!, redis.slots[otherSlot]![0]!]) expected.set(owner, expected.get(owner)! + 1);
        expect(new Map([...after].map(([node, calls]) => [node, calls - before.get(node)!]))).toEqual(expected);
        expect(ids(await stream.read({ userId: user }, null, 10))).toEqual([batch[0]!.id, batch[2]!.id]);
        expect(ids(await stream.read({ userId: other }, null, 10))).toEqual([batch[1]!.id]);
      } finally {
        await stream.close();
      }
    });

    it("goes on appending after the client lost its connection to the partition's primary (no other command to that slot)", async () => {
      const { redis, stream, user, slot } = await setUp();
      try {
        const [host, port] = redis.slots[slot]![0]!.split(':') as [string, string];
        const dropped = new Promise((resolve) => redis.once('-node', resolve));
        // Every client connection to that primary goes, as when it restarts or a proxy in between times out.
        await askRedisNode({ host, port: Number(port) }, ['CLIENT', 'KILL', 'TYPE', 'normal']);
        await dropped;
        // The first try: nothing else would bring the node back to the client's pool.
        const next = event(user);
        expect(await stream.append([next])).toHaveLength(1);
        expect(ids(await stream.read({ userId: user }, null, 10))).toEqual([next.id]);
      } finally {
        await stream.close();
      }
    });

    it('with a stale slot map, fails the append on the node it picked (never confirmed by another), then sends it once', async () => {
      const { redis, stream, user, slot } = await setUp();
      try {
        const owner = redis.slots[slot]![0]!;
        const elsewhere = redis.nodes('master').map(({ options }) => `${options.host}:${options.port}`).find((node) => node !== owner)!;
        // As after a failover this client has not heard of yet: the map names another primary for the slot.
        redis.slots[slot] = [elsewhere];
        const late = event(user);
        await expect(stream.append([late])).rejects.toThrow(/MOVED/);
        // The relay's next try finds the owner again, and the event goes in once.
        await waitFor(() => stream.append([late]), 10_000, 100);
        expect(ids(await stream.read({ userId: user }, null, 10))).toEqual([late.id]);
      } finally {
        await stream.close();
      }
    });
  });

  it('proposes the same partitions after a failover (a replica at another address serving its primary’s slots)', () => {
    // Partition 0's primary replaced by its replica, whose address sorts last rather than first.
    const before = ['127.0.0.1:7000', '127.0.0.1:7001', '127.0.0.1:7001', '127.0.0.1:7002'];
    const after = ['127.0.0.1:7999', ...before.slice(1)];
    const users = Array.from({ length: 300 }, (_, i) => `user-${i}`);
    expect(users.map((user) => spreadPartition(user, after))).toEqual(users.map((user) => spreadPartition(user, before)));
    // Still spread over the three primaries.
    expect(new Set(users.map((user) => before[spreadPartition(user, before)]))).toEqual(new Set(before));
  });
});
