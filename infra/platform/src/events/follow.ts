import type { PubSub } from '../pubsub/index.ts';
import { channelOf, comparePositions, CursorExpiredError, isStoredEvent, type EventStream, type Feed, type StoredEvent } from './stream.ts';

/** What a follower yields: the next event, or, once, the news that it fell out of the retention window. */
export type Followed = StoredEvent | CursorExpiredError;

/**
 * A feed as an async iterator for a subscription resolver: the retained events after `after` (none: from
 * now), then live ones, in stream order, with no gap and no repeat at the seam.
 *
 * Live events arrive by the pub/sub doorbell and are taken as they come while they follow on from the last one
 * delivered. Whenever that chain may be broken (the bus dropped, or a slow reader let its buffer fill), the
 * follower is `behind` and reads the stream from its last position instead. Every doorbell and every read runs
 * in one serial chain, so a doorbell is judged only after the read before it has landed. The buffer never
 * holds more than two pages: a stalled client costs memory only up to that, and loses nothing within retention.
 *
 * Throws CursorExpiredError or InvalidCursorError at once for a bad `after`.
 */
export async function followEvents(stream: EventStream, pubsub: PubSub, feed: Feed, after: string | null, pageSize = 100): Promise<AsyncIterableIterator<Followed>> {
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

  const unsubscribe = await pubsub.subscribe(channelOf(feed), (message) => {
    void serial(() => {
      if (finished || !isStoredEvent(message) || comparePositions(message.position, last) <= 0) return;
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

  const iterator: AsyncIterableIterator<Followed> = {
    [Symbol.asyncIterator]: () => iterator,
    async next() {
      if (buffer.length === 0 && behind && !finished && !retry) await serial(catchUp);
      if (buffer.length > 0) return { value: buffer.shift() as Followed, done: false };
      if (finished) return { value: undefined, done: true };
      return new Promise<IteratorResult<Followed>>((resolve) => (waiting = resolve));
    },
    async return() {
      buffer.length = 0;
      await end();
      waiting?.({ value: undefined, done: true });
      return { value: undefined, done: true };
    },
    async throw(error?: unknown) {
      await iterator.return?.();
      throw error;
    },
  };
  return iterator;
}
