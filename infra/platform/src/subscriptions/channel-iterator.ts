import type { PubSub } from '../pubsub/index.ts';

/**
 * A channel as an async iterator, for a subscription resolver. It resolves once the subscription is live (so
 * nothing published after it can be missed), ends at once on `return()` (graphql-ws calls it when the client
 * leaves; a plain async generator would hold the channel until the next message), and keeps at most
 * `maxQueued` messages for a slow reader, dropping the oldest: a stalled client never grows the process.
 */
export async function channelIterator<T = unknown>(pubsub: PubSub, channel: string, maxQueued = 256): Promise<AsyncIterableIterator<T>> {
  const queued: T[] = [];
  let waiting: ((result: IteratorResult<T>) => void) | undefined;
  let finished = false;
  const unsubscribe = await pubsub.subscribe(channel, (message) => {
    if (finished) return;
    if (waiting) {
      const deliver = waiting;
      waiting = undefined;
      deliver({ value: message as T, done: false });
      return;
    }
    if (queued.length >= maxQueued) queued.shift();
    queued.push(message as T);
  });
  const finish = async () => {
    if (finished) return;
    finished = true;
    queued.length = 0;
    waiting?.({ value: undefined, done: true });
    waiting = undefined;
    await unsubscribe();
  };
  const iterator: AsyncIterableIterator<T> = {
    [Symbol.asyncIterator]: () => iterator,
    async next() {
      if (queued.length > 0) return { value: queued.shift() as T, done: false };
      if (finished) return { value: undefined, done: true };
      return new Promise<IteratorResult<T>>((resolve) => (waiting = resolve));
    },
    async return() {
      await finish();
      return { value: undefined, done: true };
    },
    async throw(error?: unknown) {
      await finish();
      throw error;
    },
  };
  return iterator;
}
