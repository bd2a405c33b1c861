import type { PubSub } from '../pubsub/index.ts';
import { formatVector, locate, parseVector, qualify, type Vector } from './partitions.ts';
import { comparePositions, CursorExpiredError, InvalidCursorError, isStoredEvent, type EventStream, type Feed, type StoredEvent } from './stream.ts';

/** What a follower yields: the next event, or, once, the news that it fell out of the retention window. */
export type Followed = StoredEvent | CursorExpiredError;

/**
 * A feed as an async iterator for a subscription resolver: the retained events after `after` (none: from
 * now), then live ones, in stream order, with no gap and no repeat at the seam.
 *
 * Every user's events (a feed without a user) are followed partition by partition (see followAll); each event
 * then carries the cursor to resume after it.
 *
 * Throws CursorExpiredError or InvalidCursorError at once for a bad `after`.
 */
export async function followEvents(stream: EventStream, pubsub: PubSub, feed: Feed, after: string | null, pageSize = 100): Promise<AsyncIterableIterator<Followed>> {
  if (feed.userId === undefined && feed.partition === undefined) return followAll(stream, pubsub, after, pageSize);
  return followFeed(stream, pubsub, feed, after, pageSize);
}

/**
 * One user's feed, or one partition's log.
 *
 * Live events arrive by the pub/sub doorbell and are taken as they come while they follow on from the last one
 * delivered. Whenever that chain may be broken (the bus dropped, or a slow reader let its buffer fill), the
 * follower is `behind` and reads the stream from its last position instead. Every doorbell and every read runs
 * in one serial chain, so a doorbell is judged only after the read before it has landed. The buffer never
 * holds more than two pages: a stalled client costs memory only up to that, and loses nothing within retention.
 *
 * Throws CursorExpiredError or InvalidCursorError at once for a bad `after`.
 */
async function followFeed(stream: EventStream, pubsub: PubSub, feed: Feed, after: string | null, pageSize: number): Promise<AsyncIterableIterator<Followed>> {
  // A partition's log channel may also carry other partitions' events (partition 0's is every event's, for the
  // listeners that want them all): they belong to other followers.
  const partition = feed.userId === undefined ? (feed.partition ?? 0) : undefined;
  const buffer: Followed[] = [];
  let last = '0-0';
  let behind = after !== null;
  let finished = false;
  let retry: NodeJS.Timeout | undefined;
  let waiting: ((result: IteratorResult<Followed>) => void) | undefined;
  let chain: Promise<unknown> = Promise.resolve();
  const serial = <T>(task: () => Promise<T> | T): Promise<T> => {
    const run = chain.then(task);
    chain = run.catch(() => {});
    return run;
  };

  const push = (item: Followed) => {
    if (waiting) {
      const deliver = waiting;
      waiting = undefined;
      deliver({ value: item, done: false });
    } else {
      buffer.push(item);
    }
  };

  const end = async () => {
    if (finished) return;
    finished = true;
    clearTimeout(retry);
    stopGap();
    await unsubscribe();
    if (buffer.length === 0) waiting?.({ value: undefined, done: true });
  };

  const read = async () => {
    const events = await stream.read(feed, last, pageSize);
    for (const event of events) push(event);
    if (events.length > 0) last = (events.at(-1) as StoredEvent).position;
    if (events.length < pageSize) behind = false;
  };

  /** Reads while behind; a failed read (the bus is down) is retried shortly, as the doorbell may never ring. */
  const catchUp = async () => {
    if (!behind || finished) return;
    try {
      await read();
    } catch (error) {
      if (error instanceof CursorExpiredError) {
        push(error);
        await end();
        return;
      }
      retry ??= setTimeout(() => {
        retry = undefined;
        void serial(catchUp);
      }, 500);
    }
  };

  const unsubscribe = await pubsub.subscribe(await stream.channel(feed), (message) => {
    void serial(() => {
      if (finished || !isStoredEvent(message) || comparePositions(message.position, last) <= 0) return;
      if (partition !== undefined && locate(message.position)?.partition !== partition) return;
      if (behind || buffer.length >= pageSize) {
        behind = true;
        return;
      }
      push(message);
      last = message.position;
    });
  });
  // From the moment the bus drops, a doorbell no longer proves it follows on from the last event: until a read
  // after the reconnect has landed, doorbells only say "read".
  const stopGap = pubsub.onGap((state) => {
    void serial(() => {
      behind = true;
      // With a reader waiting, nobody else would start the read.
      if (state === 'restored' && waiting) return catchUp();
    });
  });

  try {
    await serial(async () => {
      if (after === null) {
        last = await stream.last(feed);
      } else {
        last = after;
        await read();
      }
    });
  } catch (error) {
    await end();
    throw error;
  }

  return iteratorOf(
    async () => {
      if (buffer.length === 0 && behind && !finished && !retry) await serial(catchUp);
      if (buffer.length > 0) return { value: buffer.shift() as Followed, done: false };
      if (finished) return { value: undefined, done: true };
      return new Promise<IteratorResult<Followed>>((resolve) => (waiting = resolve));
    },
    async () => {
      buffer.length = 0;
      await end();
      waiting?.({ value: undefined, done: true });
    },
  );
}

/** A follower's iterator: `stop` ends it, by return() or throw() alike. */
function iteratorOf(next: () => Promise<IteratorResult<Followed>>, stop: () => Promise<void>): AsyncIterableIterator<Followed> {
  const iterator: AsyncIterableIterator<Followed> = {
    [Symbol.asyncIterator]: () => iterator,
    next,
    async return() {
      await stop();
      return { value: undefined, done: true };
    },
    async throw(error?: unknown) {
      await stop();
      throw error;
    },
  };
  return iterator;
}

/** How often a follower of every user's events looks for partitions added since it started. */
const NEW_PARTITIONS_EVERY_MS = 1_000;

/**
 * Every user's events: one follower per partition, merged as they come (each partition in its order, so each
 * user's events in theirs). Each event carries the vector cursor of everything delivered up to it, so resuming
 * with it misses nothing and repeats nothing in any partition. A partition added while it runs is followed from
 * its start: everything in it came after the follower's cursor. The merged buffer holds at most `pageSize`
 * events; past that, each partition's follower holds back on its own (reading from the stream later).
 */
async function followAll(stream: EventStream, pubsub: PubSub, after: string | null, pageSize: number): Promise<AsyncIterableIterator<Followed>> {
  const vector: Vector | undefined = after === null ? new Map() : parseVector(after);
  if (!vector) throw new InvalidCursorError(`malformed position ${after}`);
  let count = await stream.partitions();
  for (const partition of vector.keys()) if (partition >= count) throw new InvalidCursorError(`position ${after} names a partition this stream does not have`);
  if (after === null) {
    // An explicit start for each, so that the first event's cursor also names where the others are.
    const newest = parseVector(await stream.last({})) as Vector;
    for (const [partition, id] of newest) vector.set(partition, id);
  }
  const cursor: Vector = new Map(Array.from({ length: count }, (_, partition) => [partition, vector.get(partition) ?? '0-0']));

  const buffer: { partition: number; item: Followed }[] = [];
  const followers: AsyncIterableIterator<Followed>[] = [];
  let finished = false;
  let waiting: (() => void) | undefined;
  /** Pumps waiting for room in the buffer. */
  const held = new Set<() => void>();
  const drained = () => {
    for (const resume of [...held]) resume();
    held.clear();
  };
  const wake = () => {
    waiting?.();
    waiting = undefined;
  };

  const pump = async (partition: number, follower: AsyncIterableIterator<Followed>) => {
    for (;;) {
      while (buffer.length >= pageSize && !finished) await new Promise<void>((resolve) => held.add(resolve));
      if (finished) return;
      const result = await follower.next();
      if (result.done || finished) return;
      buffer.push({ partition, item: result.value });
      wake();
    }
  };

  const add = async (partition: number, from: string) => {
    const follower = await followFeed(stream, pubsub, { partition }, qualify(partition, from), pageSize);
    followers.push(follower);
    // A follower's next() does not fail (it reports expiry as an item); should one, end rather than hang.
    void pump(partition, follower).catch(() => end());
  };

  let adding: Promise<void> = Promise.resolve();
  const growing = setInterval(() => {
    adding = adding
      .then(async () => {
        const now = await stream.partitions();
        for (; count < now && !finished; count++) {
          cursor.set(count, '0-0');
          await add(count, '0-0');
        }
      })
      .catch(() => {}); // the stream is unreachable: look again next time
  }, NEW_PARTITIONS_EVERY_MS);
  growing.unref();

  const end = async () => {
    if (finished) return;
    finished = true;
    clearInterval(growing);
    drained();
    await Promise.all(followers.map((follower) => follower.return?.()));
    wake();
  };

  try {
    for (let partition = 0; partition < count; partition++) await add(partition, cursor.get(partition) as string);
  } catch (error) {
    await end();
    throw error;
  }

  return iteratorOf(
    async () => {
      for (;;) {
        const next = buffer.shift();
        if (next) {
          drained();
          if (next.item instanceof CursorExpiredError) {
            // One partition fell out of its window: the whole cursor is stale.
            await end();
            buffer.length = 0;
            return { value: next.item, done: false };
          }
          cursor.set(next.partition, (locate(next.item.position) as { id: string }).id);
          return { value: { ...next.item, cursor: formatVector(cursor, count) }, done: false };
        }
        if (finished) return { value: undefined, done: true };
        await new Promise<void>((resolve) => (waiting = resolve));
      }
    },
    async () => {
      buffer.length = 0;
      await end();
    },
  );
}
