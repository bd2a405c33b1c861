import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  CursorExpiredError,
  followEvents,
  InvalidCursorError,
  locate,
  qualify,
  RedisEventStream,
  type DomainEvent,
  type Followed,
  type Retention,
  type StoredEvent,
} from '../src/events/index.ts';
import { RedisPubSub } from '../src/pubsub/index.ts';
import { testRedisUrl } from '../src/testing/services.ts';
import { startTcpProxy, waitFor } from './support.ts';
import { eventStreams, partitionOfUser, type StreamHarness } from './event-streams.ts';

const { runPrefix: RUN_PREFIX, implementations, connectedRedis, cleanup } = eventStreams('platform_follow_test');
type Harness = StreamHarness;

afterAll(cleanup);

let eventCounter = 0;
const event = (userId: string): DomainEvent => {
  const n = ++eventCounter;
  return {
    id: randomUUID(),
    kind: 'ORDER_STATUS_CHANGED',
    userId,
    orderId: `order-${n}`,
    occurredAt: new Date(1_700_000_000_000 + n).toISOString(),
    source: 'orders',
    changed: [`Order:${n}`],
  };
};
const events = (userId: string, count: number) => Array.from({ length: count }, () => event(userId));

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const idsOf = (items: readonly Followed[]) => items.map((item) => (item instanceof Error ? `error:${item.constructor.name}` : item.id));

/** The next item, or a failure naming what did not come within `ms` (so a lost event fails fast instead of hanging). */
async function nextWithin(iterator: AsyncIterator<Followed>, ms = 3_000): Promise<IteratorResult<Followed>> {
  return within(iterator.next(), ms);
}

async function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no item within ${ms} ms`)), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Takes `count` items, each within `ms`. */
async function take(iterator: AsyncIterator<Followed>, count: number, ms = 3_000): Promise<Followed[]> {
  const items: Followed[] = [];
  while (items.length < count) {
    const result = await nextWithin(iterator, ms);
    if (result.done) break;
    items.push(result.value);
  }
  return items;
}

/**
 * Waits until everything published on the user's channel before this call has reached the listeners of this
 * pubsub: messages travel in order, so once a marker's doorbell arrives, the ones before it have.
 */
async function settleDoorbells(harness: Harness, userId: string, marker: DomainEvent) {
  const heard: string[] = [];
  const unsubscribe = await harness.pubsub.subscribe(await harness.stream.channel({ userId }), (message) => heard.push((message as StoredEvent).id));
  try {
    await harness.stream.append([marker]);
    await waitFor(() => expect(heard).toContain(marker.id));
  } finally {
    await unsubscribe();
  }
}

describe.each(implementations)('followEvents on $name', ({ create, partitions }) => {
  const cleanups: (() => Promise<unknown>)[] = [];
  const open = async (retention?: Retention) => {
    const harness = await create({ retention });
    cleanups.push(() => harness.close());
    return harness;
  };
  const follow = async (harness: Harness, userId: string, after: string | null, pageSize?: number) => {
    const iterator = await followEvents(harness.stream, harness.pubsub, { userId }, after, pageSize);
    cleanups.unshift(() => iterator.return!());
    return iterator;
  };

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup();
  });

  it('from now (after = null) yields only the events appended after it started, then live ones', async () => {
    const harness = await open();
    await harness.stream.append(events('u1', 3));
    const iterator = await follow(harness, 'u1', null);

    const later = events('u1', 2);
    await harness.stream.append([later[0]!, event('u2')]);
    await harness.stream.append([later[1]!]);
    const got = await take(iterator, 2);
    expect(idsOf(got)).toEqual(later.map((e) => e.id));
    // Each comes as stored, with its position.
    // Outside partition 0 a position names its partition.
    expect(got[0]).toMatchObject({ ...later[0], position: expect.stringMatching(partitions === 1 ? /^\d+-\d+$/ : /^(\d+:)?\d+-\d+$/) });

    const live = event('u1');
    await harness.stream.append([live]);
    expect(idsOf(await take(iterator, 1))).toEqual([live.id]);
  });

  it('after a position replays exactly what followed it, then live events, with no gap and no repeat at the seam', async () => {
    const harness = await open();
    const retained = events('u1', 250);
    const positions: string[] = [];
    // Interleaved with another user's events, which the follower must never see.
    for (let i = 0; i < retained.length; i += 50) {
      positions.push(...(await harness.stream.append(retained.slice(i, i + 50))));
      await harness.stream.append(events('u2', 3));
    }
    const from = 9;
    const iterator = await follow(harness, 'u1', positions[from]!, 100);

    // Appended while the replay is still being read, page by page.
    const concurrent = events('u1', 120);
    const appending = (async () => {
      for (const e of concurrent) {
        await harness.stream.append([e, event('u2')]);
        await sleep(0);
      }
    })();
    const expected = [...retained.slice(from + 1), ...concurrent];
    const got = await take(iterator, expected.length);
    await appending;
    expect(idsOf(got)).toEqual(expected.map((e) => e.id));

    // Nothing left over from the seam: the next item is the next live event.
    const last = event('u1');
    await harness.stream.append([last]);
    expect(idsOf(await take(iterator, 1))).toEqual([last.id]);
  });

  it('gives a slow reader every event, in order, after it fell far behind the live ones', async () => {
    const harness = await open();
    const iterator = await follow(harness, 'u1', null, 100);
    const appended = events('u1', 500);
    for (let i = 0; i < appended.length; i += 5) await harness.stream.append(appended.slice(i, i + 5));
    const marker = event('u1');
    // Every doorbell has reached the follower before it reads anything.
    await settleDoorbells(harness, 'u1', marker);

    const got = await take(iterator, appended.length + 1);
    expect(idsOf(got)).toEqual([...appended, marker].map((e) => e.id));
    const positions = got.map((item) => (item as StoredEvent).position);
    expect(new Set(positions).size).toBe(positions.length);
  });

  it('refuses a bad cursor at once, and leaves no subscription behind', async () => {
    const harness = await open({ perUser: 3, log: 1_000 });
    const [p1] = await harness.stream.append(events('u1', 6));
    const { partition, id } = locate(await harness.stream.last({ userId: 'u1' }))!;
    const [ms] = id.split('-').map(Number) as [number, number];

    await expect(followEvents(harness.stream, harness.pubsub, { userId: 'u1' }, 'not-a-position')).rejects.toBeInstanceOf(InvalidCursorError);
    await expect(followEvents(harness.stream, harness.pubsub, { userId: 'u1' }, qualify(partition, `${ms + 60_000}-0`))).rejects.toBeInstanceOf(InvalidCursorError);
    // Events after p1 were trimmed: the client must refetch, not silently skip them.
    await expect(followEvents(harness.stream, harness.pubsub, { userId: 'u1' }, p1!)).rejects.toBeInstanceOf(CursorExpiredError);
    expect(await harness.pubsub.subscribers(await harness.stream.channel({ userId: 'u1' }))).toBe(0);
  });

  it('tells a reader that fell out of the retention window, once, and ends', async () => {
    const harness = await open({ perUser: 5, log: 1_000 });
    const iterator = await follow(harness, 'u1', null, 2);
    const appended = events('u1', 20);
    for (const e of appended) await harness.stream.append([e]);
    await settleDoorbells(harness, 'u1', event('u1'));

    // The first page was buffered; everything up to the 16th was trimmed before the reader came back.
    const got = await take(iterator, 3);
    expect(idsOf(got)).toEqual([appended[0]!.id, appended[1]!.id, 'error:CursorExpiredError']);
    expect(await nextWithin(iterator)).toEqual({ value: undefined, done: true });
  });

  it('return() ends it at once: a waiting next() resolves done, and nothing more arrives', async () => {
    const harness = await open();
    const iterator = await follow(harness, 'u1', null);
    const pending = iterator.next();
    await sleep(20);
    const started = performance.now();
    await iterator.return!();
    expect(await within(pending, 500)).toEqual({ value: undefined, done: true });
    expect(performance.now() - started).toBeLessThan(500);

    await harness.stream.append(events('u1', 2));
    expect(await nextWithin(iterator, 500)).toEqual({ value: undefined, done: true });
    expect(await harness.pubsub.subscribers(await harness.stream.channel({ userId: 'u1' }))).toBe(0);
  });

  it("follows every user's events across the partitions, and resumes from an event's cursor with no gap and no repeat", async () => {
    const harness = await open();
    // Four users, in four different partitions when there are four.
    const users: string[] = [];
    const taken = new Set<number>();
    for (let n = 0; users.length < 4; n++) {
      const partition = await partitionOfUser(harness.stream, `u${n}`);
      if (taken.has(partition) && taken.size < partitions) continue;
      users.push(`u${n}`);
      taken.add(partition);
    }
    const placed = await harness.stream.append(users.map((userId) => event(userId)));
    expect(new Set(placed.map((position) => locate(position)!.partition)).size).toBe(partitions);
    const all = await followEvents(harness.stream, harness.pubsub, {}, null, 10);
    cleanups.unshift(() => all.return!());

    const first = users.flatMap((userId) => events(userId, 3));
    for (let i = 0; i < first.length; i += 4) await harness.stream.append(first.slice(i, i + 4));
    const got = (await take(all, first.length)) as StoredEvent[];
    expect(new Set(idsOf(got))).toEqual(new Set(first.map((e) => e.id)));
    for (const userId of users) {
      expect(idsOf(got.filter((e) => e.userId === userId)), userId).toEqual(first.filter((e) => e.userId === userId).map((e) => e.id));
    }
    // With one partition the position is the cursor; with several, each event says where every partition is.
    for (const item of got) expect(item.cursor ?? item.position).toMatch(partitions === 1 ? /^\d+-\d+$/ : /,/);
    await all.return!();

    // A client that handled the first five resumes after the fifth, while more are appended.
    const resumeFrom = got[4]!;
    const resumed = await followEvents(harness.stream, harness.pubsub, {}, resumeFrom.cursor ?? resumeFrom.position, 10);
    cleanups.unshift(() => resumed.return!());
    const second = users.flatMap((userId) => events(userId, 2));
    await harness.stream.append(second);
    const rest = (await take(resumed, first.length - 5 + second.length)) as StoredEvent[];
    expect(new Set(idsOf(rest))).toEqual(new Set([...got.slice(5), ...second].map((e) => e.id)));
    expect(rest).toHaveLength(first.length - 5 + second.length);
    for (const userId of users) {
      const expected = [...got.slice(5), ...second].filter((e) => e.userId === userId).map((e) => e.id);
      expect(idsOf(rest.filter((e) => e.userId === userId)), userId).toEqual(expected);
    }
  });
});

describe('followEvents on Redis through a connection blip', () => {
  it('delivers every event exactly once, in order, although its connections were cut while events were appended', async () => {
    const prefix = `${RUN_PREFIX}blip:`;
    const proxy = await startTcpProxy(testRedisUrl());
    const viaProxy = await connectedRedis(proxy.url);
    const pubsub = new RedisPubSub(viaProxy, prefix);
    const stream = new RedisEventStream(viaProxy, prefix);
    // White-box timing only: after a reconnect RedisPubSub resubscribes, then reports the gap once a PING
    // comes back. Messages on the resubscribed channels arrive during that round trip; on a real network it
    // takes a while, on loopback a fraction of a millisecond. Make it 100 ms, so the outcome is not luck.
    const subscriber = (pubsub as unknown as { subscriber: Redis }).subscriber;
    const ping = subscriber.ping.bind(subscriber) as () => Promise<string>;
    (subscriber as unknown as { ping: () => Promise<string> }).ping = async () => {
      await sleep(100);
      return ping();
    };
    // Another replica, whose connection stays up: it keeps committing events throughout.
    const writer = new RedisEventStream(await connectedRedis(), prefix);
    const iterator = await followEvents(stream, pubsub, { userId: 'u1' }, null, 50);

    const received: Followed[] = [];
    let ended = false;
    const pumping = (async () => {
      for await (const item of iterator) received.push(item);
      ended = true;
    })();
    const appended: string[] = [];
    const appendOne = async () => {
      const mine = event('u1');
      await writer.append([mine, event('u2')]);
      appended.push(mine.id);
    };
    let gaps = 0;
    pubsub.onGap(() => gaps++);

    try {
      for (let i = 0; i < 5; i++) await appendOne();
      await waitFor(() => expect(idsOf(received)).toEqual(appended));

      await proxy.setListening(false);
      await waitFor(() => expect(viaProxy.status).not.toBe('ready'));
      for (let i = 0; i < 30; i++) await appendOne();

      // Events keep coming while the follower reconnects and resubscribes, and for a while after it was told
      // it may have missed some.
      let reconnected = false;
      const appending = (async () => {
        while (!reconnected) {
          await appendOne();
          await sleep(2);
        }
      })();
      await proxy.setListening(true);
      await waitFor(() => expect(gaps).toBe(1), 10_000);
      await sleep(200);
      reconnected = true;
      await appending;

      // The newest event arrives in any case; whatever came before it must have arrived too, once, in order.
      await waitFor(() => expect(idsOf(received).at(-1)).toBe(appended.at(-1)), 10_000, 50);
      expect(ended).toBe(false);
      expect(idsOf(received)).toEqual(appended);
    } finally {
      await iterator.return!();
      await pumping;
      await stream.close();
      await pubsub.close();
      await proxy.close();
    }
  });
});
