import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  comparePositions,
  CursorExpiredError,
  formatVector,
  InvalidCursorError,
  locate,
  parsePosition,
  qualify,
  subscribeToEveryEvent,
  userEventsChannel,
  type DomainEvent,
  type StoredEvent,
} from '../src/events/index.ts';
import { waitFor } from './support.ts';
import { eventStreams, partitionOfUser, type CreateOptions, type StreamHarness } from './event-streams.ts';

const { implementations, cleanup } = eventStreams('platform_event_stream_test');
type Harness = StreamHarness;

afterAll(cleanup);

let eventCounter = 0;
const event = (userId: string, overrides: Partial<DomainEvent> = {}): DomainEvent => {
  const n = ++eventCounter;
  return {
    id: randomUUID(),
    kind: 'ORDER_PLACED',
    userId,
    orderId: `order-${n}`,
    occurredAt: new Date(1_700_000_000_000 + n).toISOString(),
    source: 'orders',
    changed: [`Order:${n}`, `User:${userId}`],
    ...overrides,
  };
};

const positions = (events: readonly StoredEvent[]) => events.map((stored) => stored.position);
const ids = (events: readonly { id: string }[]) => events.map((stored) => stored.id);
const stored = (source: DomainEvent, position: string): StoredEvent => ({ ...source, position });

/** The positions of each partition, in the order given (one partition: all of them). */
const byPartition = (list: readonly string[]) => {
  const partitions = new Map<number, string[]>();
  for (const position of list) {
    const { partition } = locate(position)!;
    partitions.set(partition, [...(partitions.get(partition) ?? []), position]);
  }
  return [...partitions.values()];
};

/** Increasing within each partition: with one, in the order appended; over several, each user's in theirs. */
function expectIncreasing(list: readonly string[]) {
  for (const position of list) expect(locate(position), position).toBeDefined();
  for (const partition of byPartition(list)) {
    for (let i = 1; i < partition.length; i++) expect(comparePositions(partition[i - 1]!, partition[i]!), `${partition[i - 1]} < ${partition[i]}`).toBeLessThan(0);
  }
}

/** A position strictly after `position`, in its partition, that the stream never handed out. */
const beyond = (position: string) => {
  const { partition, id } = locate(position)!;
  const [ms, seq] = parsePosition(id)!;
  return qualify(partition, `${ms}-${seq + 1}`);
};

/** The partition-wise cursor just after `list` (no events: the start of each). */
const cursorAfter = (list: readonly string[], partitions: number) =>
  formatVector(new Map(byPartition(list).map((partition) => [locate(partition.at(-1)!)!.partition, locate(partition.at(-1)!)!.id])), partitions);

const withoutCursor = ({ cursor: _cursor, ...event }: StoredEvent): StoredEvent => event;

/** A read that should not wait for anything: blockMs 0 has its own test below, so it cannot hang these. */
const BRIEF = 20;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(implementations)('EventStream contract: $name', ({ name, create, partitions }) => {
  const partitioned = partitions > 1;
  const harnesses: Harness[] = [];

  /**
   * The whole log as read. One partition: exactly `expected`, in append order. Several: the same events, each
   * user's in their order (the partitions interleave), each carrying the cursor that resumes after it.
   */
  const expectLog = (log: readonly StoredEvent[], expected: readonly StoredEvent[]) => {
    if (!partitioned) return expect(log).toEqual(expected);
    for (const event of log) expect(event.cursor, event.id).toMatch(/,/);
    const sorted = (list: readonly StoredEvent[]) => [...list].sort((a, b) => comparePositions(a.position, b.position));
    expect(sorted(log.map(withoutCursor))).toEqual(sorted(expected));
    for (const userId of new Set(expected.map((event) => event.userId))) {
      expect(ids(log.filter((event) => event.userId === userId)), userId).toEqual(ids(expected.filter((event) => event.userId === userId)));
    }
  };
  /**
   * What a group handed out, against the positions expected. One partition: exactly those, in order. Several:
   * the same ones, each partition's in order (the group reads the partitions in turn).
   */
  const expectDelivered = (events: readonly StoredEvent[], expected: readonly string[]) => {
    if (!partitioned) return expect(positions(events)).toEqual(expected);
    expect(positions(events).sort(comparePositions)).toEqual([...expected].sort(comparePositions));
    expectIncreasing(positions(events));
  };
  /** As expectLog, for events known by their ids. */
  const expectLogIds = (log: readonly StoredEvent[], expected: readonly DomainEvent[]) => {
    if (!partitioned) return expect(ids(log)).toEqual(ids(expected));
    expect(log).toHaveLength(expected.length);
    expect([...ids(log)].sort()).toEqual([...ids(expected)].sort());
    for (const userId of new Set(expected.map((event) => event.userId))) {
      expect(ids(log.filter((event) => event.userId === userId)), userId).toEqual(ids(expected.filter((event) => event.userId === userId)));
    }
  };
  const open = async (options?: CreateOptions) => {
    const harness = await create(options);
    harnesses.push(harness);
    return harness;
  };

  afterEach(async () => {
    for (const harness of harnesses.splice(0)) await harness.close();
  });

  it('appends events in order and returns each one its position, in increasing order', async () => {
    const { stream } = await open();
    const first = [event('u1'), event('u2'), event('u1')];
    const second = [event('u3'), event('u1')];
    const p1 = await stream.append(first);
    const p2 = await stream.append(second);
    expect(p1).toHaveLength(3);
    expect(p2).toHaveLength(2);
    expectIncreasing([...p1, ...p2]);
    expect(await stream.append([])).toEqual([]);

    const log = await stream.read({}, null, 100);
    expectLog(log, [...first, ...second].map((source, i) => stored(source, [...p1, ...p2][i]!)));
  });

  it('drops a re-appended event id: same position back, no second entry, no second doorbell', async () => {
    const { stream, pubsub } = await open();
    const heard: unknown[] = [];
    await subscribeToEveryEvent(pubsub, (message) => heard.push(message));

    const a = event('u1');
    const b = event('u2');
    const [pa, pb] = await stream.append([a, b]);
    // A relay that crashed after appending sends the same rows again, plus a new one.
    const c = event('u1');
    const again = await stream.append([b, a, c]);
    expect(again.slice(0, 2)).toEqual([pb, pa]);
    expectIncreasing([pb!, again[2]!]);
    // The same id twice in one batch is one entry too.
    const d = event('u1');
    const twice = await stream.append([d, { ...d }]);
    expect(twice[0]).toBe(twice[1]);

    expectLogIds(await stream.read({}, null, 100), [a, b, c, d]);
    expect(ids(await stream.read({ userId: 'u1' }, null, 100))).toEqual([a.id, c.id, d.id]);
    expect(ids(await stream.read({ userId: 'u2' }, null, 100))).toEqual([b.id]);

    const marker = event('u9');
    await stream.append([marker]);
    await waitFor(() => expect(ids(heard as StoredEvent[])).toContain(marker.id));
    expectLogIds(heard as StoredEvent[], [a, b, c, d, marker]);
  });

  it("reads one user's events or the whole log, after a position (exclusive), up to a limit", async () => {
    const { stream } = await open();
    const e = [event('u1'), event('u2'), event('u1'), event('u1'), event('u2')];
    const p = await stream.append(e);
    const [p1, p2, p3, p4, p5] = p as [string, string, string, string, string];

    expect(await stream.read({ userId: 'u1' }, null, 10)).toEqual([stored(e[0]!, p1), stored(e[2]!, p3), stored(e[3]!, p4)]);
    expect(positions(await stream.read({ userId: 'u1' }, p1, 10))).toEqual([p3, p4]);
    expect(positions(await stream.read({ userId: 'u1' }, p1, 1))).toEqual([p3]);
    expect(positions(await stream.read({ userId: 'u1' }, p3, 10))).toEqual([p4]);
    expect(await stream.read({ userId: 'u1' }, p4, 10)).toEqual([]);
    expect(await stream.read({ userId: 'nobody' }, null, 10)).toEqual([]);
    if (!partitioned) {
      // Positions are shared by the log and every user's stream: any of them works as a cursor on a feed.
      expect(positions(await stream.read({ userId: 'u2' }, p1, 10))).toEqual([p2, p5]);
      expect(positions(await stream.read({ userId: 'u2' }, p3, 10))).toEqual([p5]);
      expect(await stream.read({ userId: 'nobody' }, p2, 10)).toEqual([]);

      expect(positions(await stream.read({}, null, 2))).toEqual([p1, p2]);
      expect(positions(await stream.read({}, p2, 2))).toEqual([p3, p4]);
      expect(positions(await stream.read({}, p4, 100))).toEqual([p5]);
      expect(await stream.read({}, p5, 100)).toEqual([]);
      expect(await stream.read({}, null, 100)).toEqual(e.map((source, i) => stored(source, p[i]!)));
      return;
    }
    // u1 and u2 live in different partitions: one's position says nothing about where the other's feed is.
    expect(locate(p1)!.partition).not.toBe(locate(p2)!.partition);
    await expect(stream.read({ userId: 'u2' }, p1, 10)).rejects.toBeInstanceOf(InvalidCursorError);
    expect(positions(await stream.read({ userId: 'u2' }, p2, 10))).toEqual([p5]);
    // The whole log page by page, each page after the cursor of the last event of the one before.
    const first = await stream.read({}, null, 2);
    const second = await stream.read({}, first.at(-1)!.cursor!, 2);
    const rest = await stream.read({}, second.at(-1)!.cursor!, 100);
    expect([first.length, second.length, rest.length]).toEqual([2, 2, 1]);
    expectLog([...first, ...second, ...rest], e.map((source, i) => stored(source, p[i]!)));
    expect(await stream.read({}, rest[0]!.cursor!, 100)).toEqual([]);
    expect(rest[0]!.cursor).toBe(cursorAfter(p, partitions));
  });

  it('reads an empty stream as empty, from the start or from 0-0', async () => {
    const { stream } = await open();
    expect(await stream.read({}, null, 10)).toEqual([]);
    expect(await stream.read({ userId: 'u1' }, null, 10)).toEqual([]);
    expect(await stream.read({}, '0-0', 10)).toEqual([]);
    expect(await stream.read({ userId: 'u1' }, '0-0', 10)).toEqual([]);
  });

  it('tells the newest position of the log and of each user, 0-0 when there is none', async () => {
    const { stream } = await open();
    expect(await stream.last({})).toBe(cursorAfter([], partitions));
    expect(await stream.last({ userId: 'u1' })).toBe('0-0');
    const [p1, p2, p3] = await stream.append([event('u1'), event('u2'), event('u1')]);
    // Over several partitions, a cursor naming each one's newest.
    expect(await stream.last({})).toBe(cursorAfter([p1!, p2!, p3!], partitions));
    expect(await stream.last({ userId: 'u1' })).toBe(p3);
    expect(await stream.last({ userId: 'u2' })).toBe(p2);
    expect(await stream.last({ userId: 'nobody' })).toBe('0-0');
    expect(p1).toBeDefined();
  });

  it('tells the newest position of each source, so a consumer of one source knows how far it must have got', async () => {
    const { stream } = await open();
    expect(await stream.lastFrom('users')).toBe(cursorAfter([], partitions));
    const [fromUsers, fromOrders] = await stream.append([event('u1', { source: 'users', kind: 'USER_UPDATED' }), event('u1')]);
    // Over several partitions, a cursor naming each one's newest of that source.
    expect(await stream.lastFrom('users')).toBe(cursorAfter([fromUsers!], partitions));
    expect(await stream.lastFrom('orders')).toBe(cursorAfter([fromOrders!], partitions));
  });

  it("keeps only the retained events of a user: a cursor before the trimmed ones expires, the newest trimmed one still works", async () => {
    const { stream } = await open({ retention: { perUser: 3, log: 1_000 } });
    const mine = [event('u1'), event('u1'), event('u1'), event('u1'), event('u1')];
    const theirs = event('u2');
    const [p1, p2] = (await stream.append(mine.slice(0, 2))) as [string, string];
    await stream.append([theirs]);
    const [p3, p4, p5] = (await stream.append(mine.slice(2))) as [string, string, string];

    // Only the newest three of u1 are kept...
    expect(positions(await stream.read({ userId: 'u1' }, null, 10))).toEqual([p3, p4, p5]);
    // ...so a reader at p1 has missed p2 for good and must be told so, not handed p3 as if nothing was lost.
    await expect(stream.read({ userId: 'u1' }, p1, 10)).rejects.toBeInstanceOf(CursorExpiredError);
    await expect(stream.read({ userId: 'u1' }, qualify(locate(p1)!.partition, '0-1'), 10)).rejects.toBeInstanceOf(CursorExpiredError);
    // p2 was trimmed, but everything after it is still there.
    expect(positions(await stream.read({ userId: 'u1' }, p2, 10))).toEqual([p3, p4, p5]);
    expect(positions(await stream.read({ userId: 'u1' }, p3, 10))).toEqual([p4, p5]);
    // Another user's stream and the log are not trimmed by u1's retention.
    expect(ids(await stream.read({ userId: 'u2' }, null, 10))).toEqual([theirs.id]);
    expect(await stream.read({}, null, 10)).toHaveLength(6);
    if (!partitioned) expect(await stream.read({ userId: 'u2' }, p1, 10)).toHaveLength(1);
  });

  it('rejects a malformed cursor, and one beyond the newest position, as invalid', async () => {
    const { stream } = await open();
    for (const after of ['5-0', '1-1']) {
      // Nothing was handed out yet: any position but 0-0 is one the stream never gave.
      await expect(stream.read({}, after, 10), after).rejects.toBeInstanceOf(InvalidCursorError);
    }
    const [ofU1] = await stream.append([event('u1'), event('u2')]);
    // Over several partitions, the log's newest is a cursor naming them all; u1's newest is in u1's partition.
    const newest = partitioned ? ofU1! : await stream.last({});
    const { partition, id } = locate(newest)!;
    const [ms] = parsePosition(id)!;
    const invalid = ['', 'abc', '12', '1-2-3', '-1-0', '1-x', ' 1-0', '1234567890123456-0', beyond(newest), qualify(partition, `${ms + 60_000}-0`)];
    // Partitions the stream does not have, partition 0 spelled with a prefix (never handed out), one named twice.
    if (partitioned) invalid.push('7:1-0', '99:1-0', '0:1-0', `${newest},${newest}`);
    for (const after of invalid) {
      await expect(stream.read({}, after, 10), JSON.stringify(after)).rejects.toBeInstanceOf(InvalidCursorError);
      await expect(stream.read({ userId: 'u1' }, after, 10), JSON.stringify(after)).rejects.toBeInstanceOf(InvalidCursorError);
    }
    // The newest position itself is a fine cursor, also for a user whose newest it is not (one partition).
    expect(await stream.read({ userId: 'u1' }, newest, 10)).toEqual([]);
    expect(await stream.read({}, await stream.last({}), 10)).toEqual([]);
  });

  it("rings the doorbell: a subscriber of the user's channel (and of the domain channel) gets the stored event with its position", async () => {
    const { stream, pubsub } = await open();
    const forU1: unknown[] = [];
    const forU2: unknown[] = [];
    const all: unknown[] = [];
    // One partition keeps the channel names of old; over several, a user's channel is their partition's.
    const [channelU1, channelU2] = [await stream.channel({ userId: 'u1' }), await stream.channel({ userId: 'u2' })];
    if (!partitioned) expect([channelU1, channelU2]).toEqual([userEventsChannel('u1'), userEventsChannel('u2')]);
    await pubsub.subscribe(channelU1, (message) => forU1.push(message));
    await pubsub.subscribe(channelU2, (message) => forU2.push(message));
    // Whoever listens to every event (the gateway's cache purges) hears them, rung by the append, partitioned or not.
    await subscribeToEveryEvent(pubsub, (message) => all.push(message));

    const mine = event('u1');
    const [position] = await stream.append([mine]);
    await waitFor(() => expect(forU1).toEqual([stored(mine, position!)]));
    await waitFor(() => expect(all).toEqual([stored(mine, position!)]));

    // Messages travel in order: once u2 hears its own event, it would have heard u1's before it.
    const theirs = event('u2');
    const [theirPosition] = await stream.append([theirs]);
    await waitFor(() => expect(forU2).toEqual([stored(theirs, theirPosition!)]));
    await waitFor(() => expect(all).toHaveLength(2));
    expect(forU1).toHaveLength(1);
  });

  describe('consumer groups', () => {
    it('creates a group once: ensure is true the first time, false after, and does not move the group', async () => {
      const { stream } = await open();
      const [p1] = await stream.append([event('u1')]);
      const group = stream.group('projection');
      expect(await group.ensure('0-0')).toBe(true);
      expect(await group.ensure(p1!)).toBe(false);
      expect(await stream.group('projection').ensure('0-0')).toBe(false);
      // Still at 0-0: the event before the second ensure is delivered.
      expect(positions(await group.read('c1', 10, BRIEF))).toEqual([p1]);

      // A group created at the newest position receives only what follows.
      const late = stream.group('late');
      expect(await late.ensure(await stream.last({}))).toBe(true);
      const next = event('u2');
      const [p2] = await stream.append([next]);
      expect(await late.read('c1', 10, BRIEF)).toEqual([stored(next, p2!)]);
    });

    it('delivers each event to exactly one of two consumers, in log order', async () => {
      const { stream } = await open();
      const group = stream.group('workers');
      await group.ensure('0-0');
      const appended = await stream.append(Array.from({ length: 10 }, (_, i) => event(`u${i % 3}`)));

      const first = await group.read('a', 4, BRIEF);
      const second = await group.read('b', 100, BRIEF);
      const third = await group.read('a', 100, 50);
      if (partitioned) {
        // Four of them, whichever partitions they came from, then the rest: each once, each partition's in order.
        expect(first).toHaveLength(4);
        expectDelivered([...first, ...second], appended);
      } else {
        expect(positions(first)).toEqual(appended.slice(0, 4));
        expect(positions(second)).toEqual(appended.slice(4));
      }
      expect(third).toEqual([]);

      const more = await stream.append([event('u1'), event('u2')]);
      const [x, y] = await Promise.all([group.read('a', 1, BRIEF), group.read('b', 1, BRIEF)]);
      expect([...positions(x!), ...positions(y!)].sort(comparePositions)).toEqual([...more].sort(comparePositions));
      expect(await group.read('b', 10, BRIEF)).toEqual([]);
    });

    it('is caught up to a position only once every event up to it was delivered and acknowledged', async () => {
      const { stream } = await open();
      const group = stream.group('caught-up');
      await group.ensure('0-0');
      // A group reads the partitions in turn from partition 0: u2's events come first unless they share one.
      let [u1, u2] = ['u1', 'u2'];
      if ((await partitionOfUser(stream, u1)) < (await partitionOfUser(stream, u2))) [u1, u2] = [u2, u1];
      const [p1, p2, p3] = (await stream.append([event(u1), event(u2), event(u1)])) as [string, string, string];

      // Not yet delivered.
      expect(await group.caughtUp(p1)).toBe(false);
      expectDelivered(await group.read('a', 2, BRIEF), [p1, p2]);
      // Delivered, but pending.
      expect(await group.caughtUp(p1)).toBe(false);
      expect(await group.caughtUp(p2)).toBe(false);
      await group.ack([p1]);
      expect(await group.caughtUp(p1)).toBe(true);
      expect(await group.caughtUp(p2)).toBe(false);
      await group.ack([p2]);
      expect(await group.caughtUp(p2)).toBe(true);
      // p3 is acknowledged by nobody and not even delivered.
      expect(await group.caughtUp(p3)).toBe(false);
      expect(positions(await group.read('b', 10, BRIEF))).toEqual([p3]);
      expect(await group.caughtUp(p3)).toBe(false);
      await group.ack([p3]);
      expect(await group.caughtUp(p3)).toBe(true);
      // Acknowledging again, or nothing, changes nothing.
      await group.ack([p3]);
      await group.ack([]);
      expect(await group.caughtUp(p3)).toBe(true);
    });

    it('wakes a blocked read as soon as an event is appended', async () => {
      const { stream } = await open();
      const group = stream.group('blocking');
      await group.ensure('0-0');
      let settled = false;
      const started = performance.now();
      const reading = group.read('a', 10, 5_000).finally(() => (settled = true));
      await sleep(150);
      // Nothing to read: it is still waiting.
      expect(settled).toBe(false);
      const mine = event('u1');
      const [position] = await stream.append([mine]);
      const appendedAt = performance.now();
      expect(await reading).toEqual([stored(mine, position!)]);
      expect(performance.now() - appendedAt).toBeLessThan(1_000);
      expect(appendedAt - started).toBeGreaterThanOrEqual(140);
    });

    it('returns at once, empty, from a read with blockMs 0 when nothing is new', async () => {
      const { stream } = await open();
      const group = stream.group('no-wait');
      await group.ensure('0-0');
      const started = performance.now();
      const result = await Promise.race([group.read('a', 10, 0), sleep(1_500).then(() => 'still waiting after 1.5 s')]);
      expect(result).toEqual([]);
      expect(performance.now() - started).toBeLessThan(500);
    });

    it("hands a dead consumer's unacknowledged events to another after minIdleMs, and only then", async () => {
      const { stream } = await open();
      const group = stream.group('claims');
      await group.ensure('0-0');
      const appended = await stream.append([event('u1'), event('u2')]);
      const taken = await group.read('dies', 10, BRIEF);
      expectDelivered(taken, appended);

      // Not idle long enough yet.
      expect(await group.claim('rescuer', 400, 10)).toEqual([]);
      // Partitions are read in turn, so their events turn idle at slightly different moments: gather until all have.
      const claimed: StoredEvent[] = [];
      await waitFor(async () => {
        claimed.push(...(await group.claim('rescuer', 400, 10)));
        expect(claimed).toHaveLength(taken.length);
      }, 3_000, 50);
      expectDelivered(claimed, positions(taken));
      expect([...claimed].sort((a, b) => comparePositions(a.position, b.position))).toEqual([...taken].sort((a, b) => comparePositions(a.position, b.position)));
      // Claimed anew: idle again only after another minIdleMs.
      expect(await group.claim('third', 400, 10)).toEqual([]);
      // Still pending until the new owner acknowledges.
      expect(await group.caughtUp(appended[1]!)).toBe(false);
      await group.ack(positions(claimed));
      expect(await group.caughtUp(appended[1]!)).toBe(true);
      expect(await group.claim('third', 0, 10)).toEqual([]);
      // Fresh reads never hand out a claimed event again.
      expect(await group.read('dies', 10, BRIEF)).toEqual([]);
    });

    it('reset moves the group: it receives what follows the new position, and forgets pending events', async () => {
      const { stream } = await open();
      const group = stream.group('rebuild');
      await group.ensure('0-0');
      const [p1, p2, p3] = (await stream.append([event('u1'), event('u2'), event('u3')])) as [string, string, string];
      expectDelivered(await group.read('a', 10, BRIEF), [p1, p2, p3]);
      await group.ack([p1]);
      expect(await group.caughtUp(p1)).toBe(true);

      // A projection rebuilt from a snapshot taken at p1.
      await group.reset(p1);
      expect(await group.caughtUp(p3)).toBe(false);
      // The old pending entries (p2, p3 held by `a`) are not handed out by claim...
      expect(await group.claim('b', 0, 10)).toEqual([]);
      // ...they come again, once each, as fresh reads after p1.
      expectDelivered(await group.read('b', 10, BRIEF), [p2, p3]);
      await group.ack([p2, p3]);
      expect(await group.caughtUp(p3)).toBe(true);

      // Back to the start.
      await group.reset('0-0');
      expectDelivered(await group.read('c', 10, BRIEF), [p1, p2, p3]);
    });

    it(`serves a consumer's very first read on a freshly created stream (${name})`, async () => {
      const { stream } = await open({ warm: false });
      const group = stream.group('first');
      await group.ensure('0-0');
      const mine = event('u1');
      const [position] = await stream.append([mine]);
      // A projection process starting up: its first read must not fail.
      expect(await group.read('a', 10, 100)).toEqual([stored(mine, position!)]);
    });
  });
  describe('causal fences across sources', () => {
    const T = 1_800_000_000_000;
    const at = (ms: number) => new Date(T + ms).toISOString();
    const fence = (source: string, instance: string, clearance: number, now = T, reachableSince = T) => ({
      source,
      instance,
      now,
      clearance: T + clearance,
      reachableSince,
      maxStallMs: 10_000,
    });

    it(`holds back a source's events that another source's clearance does not cover, until it does (${name})`, async () => {
      const { stream } = await open();
      // users vouches for everything it acknowledged before T+100 (and then could not reach the stream).
      expect(await stream.append([], fence('users', 'u-1', 100))).toEqual([]);
      const early = event('u1', { occurredAt: at(50) });
      const late = event('u1', { occurredAt: at(150) });
      const later = event('u2', { occurredAt: at(120) });
      const sent = await stream.append([early, late, later], fence('orders', 'o-1', 1_000));
      // A prefix goes in: `late` and everything after it wait, whatever their users.
      expect(sent).toHaveLength(1);
      expect(ids(await stream.read({}, null, 10))).toEqual([early.id]);

      // users' backlog goes in (orders' clearance is now at most the oldest stamp it holds back: 120).
      const update = event('u1', { source: 'users', kind: 'USER_UPDATED', occurredAt: at(110) });
      expect(await stream.append([update], fence('users', 'u-1', 2_000))).toHaveLength(1);
      // Now orders' held events are covered: they go in after the update they followed.
      expect(await stream.append([late, later], fence('orders', 'o-1', 1_000))).toHaveLength(2);
      expect(ids(await stream.read({ userId: 'u1' }, null, 10))).toEqual([early.id, update.id, late.id]);
    });

    it(`takes a source's highest clearance among its instances, and never holds a source back by itself (${name})`, async () => {
      const { stream } = await open();
      await stream.append([], fence('users', 'u-1', 10));
      await stream.append([], fence('users', 'u-2', 500));
      expect(await stream.append([event('u1', { occurredAt: at(400) })], fence('orders', 'o-1', 1_000))).toHaveLength(1);
      // users' own instances never hold users back; orders (clearance T+1000) covers this one.
      expect(await stream.append([event('u1', { source: 'users', occurredAt: at(900) })], fence('users', 'u-1', 6_000))).toHaveLength(1);
      expect(await stream.append([event('u1', { source: 'users', occurredAt: at(1_100) })], fence('users', 'u-1', 6_000))).toEqual([]);
      // An instance that stopped after sending everything withdraws; its source no longer holds anyone.
      await stream.withdraw('users', 'u-2');
      await stream.withdraw('users', 'u-1');
      expect(await stream.append([event('u1', { occurredAt: at(9_000) })], fence('orders', 'o-1', 10_000))).toHaveLength(1);
    });

    it(`forgets an instance presumed gone only once the caller has itself reached the stream for that long (${name})`, async () => {
      const { stream } = await open();
      await stream.append([], fence('users', 'u-1', 0));
      const stamped = event('u1', { occurredAt: at(20_000) });
      // 30 s after users' clearance, but orders has only just reached the stream again (after an outage of it):
      // users gets its chance to come back.
      expect(await stream.append([stamped], fence('orders', 'o-1', 31_000, T + 30_000, T + 29_000))).toEqual([]);
      // Reaching it for longer than the stall bound, orders goes on without users.
      expect(await stream.append([stamped], fence('orders', 'o-1', 31_000, T + 40_000, T + 29_000))).toHaveLength(1);
      // And users, forgotten, holds nobody back any more.
      expect(await stream.append([event('u1', { occurredAt: at(30_500) })], fence('orders', 'o-1', 31_000, T + 30_000, T))).toHaveLength(1);
    });

    it(`appends re-sent events it already has without a check, and unfenced appends as before (${name})`, async () => {
      const { stream } = await open();
      const first = event('u1', { occurredAt: at(1) });
      const [position] = await stream.append([first]);
      await stream.append([], fence('users', 'u-1', 0));
      expect(await stream.append([first], fence('orders', 'o-1', 1_000))).toEqual([position]);
      expect(await stream.append([event('u1', { occurredAt: at(5_000) })])).toHaveLength(1);
    });
  });
});
