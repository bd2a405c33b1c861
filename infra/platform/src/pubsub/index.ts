import type { Redis } from 'ioredis';

export type Unsubscribe = () => Promise<void>;
export type Listener = (message: unknown) => void;
export type GapListener = (state: 'lost' | 'restored') => void;

/**
 * The pub/sub edge. Messages are JSON values; every implementation delivers a copy, so a listener can never
 * share state with the publisher (exactly as across processes). Delivery is at-most-once.
 */
export interface PubSub {
  publish(channel: string, message: unknown): Promise<void>;
  subscribe(channel: string, listener: Listener): Promise<Unsubscribe>;
  /**
   * Tells `listener` when messages may be missed: `'lost'` as soon as the connection to the bus drops (nothing
   * heard from then on follows on from what came before), `'restored'` once it is back with its subscriptions.
   * Consumers that must not miss anything (cache purges, event followers) resynchronise on `'restored'`.
   */
  onGap(listener: GapListener): () => void;
  /** How many subscriptions a channel has right now, in every process on the bus. */
  subscribers(channel: string): Promise<number>;
  close(): Promise<void>;
}

export class MemoryPubSub implements PubSub {
  private readonly channels = new Map<string, Set<Listener>>();

  async publish(channel: string, message: unknown): Promise<void> {
    const payload = JSON.stringify(message);
    for (const listener of [...(this.channels.get(channel) ?? [])]) {
      // Asynchronous, like Redis: a publisher never runs its subscribers' code on its own stack.
      queueMicrotask(() => listener(JSON.parse(payload)));
    }
  }

  async subscribe(channel: string, listener: Listener): Promise<Unsubscribe> {
    const listeners = this.channels.get(channel) ?? new Set<Listener>();
    this.channels.set(channel, listeners);
    // Wrap so the same function subscribed twice gets two independent subscriptions.
    const entry: Listener = (message) => listener(message);
    listeners.add(entry);
    return async () => {
      listeners.delete(entry);
      // Only drop the channel if it is still this set: a repeated unsubscribe must not remove a newer one.
      if (listeners.size === 0 && this.channels.get(channel) === listeners) this.channels.delete(channel);
    };
  }

  async subscribers(channel: string): Promise<number> {
    return this.channels.get(channel)?.size ?? 0;
  }

  /** Nothing between a publisher and its listeners can drop in one process. */
  onGap(): () => void {
    return () => {};
  }

  async close(): Promise<void> {
    this.channels.clear();
  }
}

/**
 * One subscriber connection per process, with reference-counted SUBSCRIBE/UNSUBSCRIBE per channel, so
 * thousands of listeners on one channel cost Redis a single subscription.
 */
export class RedisPubSub implements PubSub {
  private readonly subscriber: Redis;
  /**
   * Per channel: its listeners, and the SUBSCRIBE every subscribe() call on it waits for, so none returns
   * before Redis routes the channel to this connection (a message published right after would be lost).
   */
  private readonly channels = new Map<string, { listeners: Set<Listener>; ready: Promise<unknown> }>();
  private readonly gapListeners = new Set<GapListener>();

  constructor(
    private readonly publisher: Redis,
    private readonly prefix = '',
  ) {
    // A subscribed connection can run nothing else, and it must queue commands while reconnecting.
    this.subscriber = publisher.duplicate({ enableOfflineQueue: true, commandTimeout: undefined });
    this.subscriber.on('message', (channel: string, raw: string) => {
      const state = this.channels.get(channel.slice(this.prefix.length));
      if (!state) return;
      for (const listener of [...state.listeners]) listener(JSON.parse(raw));
    });
    this.subscriber.on('error', () => {
      // ioredis reconnects by itself; without a listener an outage would crash the process.
    });
    let dropped = false;
    this.subscriber.on('close', () => {
      if (dropped) return;
      dropped = true;
      for (const listener of [...this.gapListeners]) listener('lost');
    });
    this.subscriber.on('ready', () => {
      if (!dropped) return;
      dropped = false;
      // ioredis re-subscribes on reconnect; a PING on the same connection answers only after those SUBSCRIBEs.
      this.subscriber.ping().then(
        () => {
          for (const listener of [...this.gapListeners]) listener('restored');
        },
        () => {
          dropped = true;
        },
      );
    });
  }

  /** Counts connections subscribed to the channel (each process holds one per channel, however many listeners). */
  async subscribers(channel: string): Promise<number> {
    const [, count] = (await this.publisher.pubsub('NUMSUB', this.prefix + channel)) as [string, number];
    return Number(count);
  }

  onGap(listener: GapListener): () => void {
    this.gapListeners.add(listener);
    return () => this.gapListeners.delete(listener);
  }

  async publish(channel: string, message: unknown): Promise<void> {
    await this.publisher.publish(this.prefix + channel, JSON.stringify(message));
  }

  /**
   * ioredis writes SUBSCRIBE at once even while a new connection is still in its handshake (status 'connect',
   * before CLIENT SETINFO and the INFO ready check). The connection then enters subscriber mode, the handshake
   * commands are refused, ioredis drops the connection and, as it never was 'ready', does not resubscribe: the
   * channel is silently lost although subscribe() resolved. So (UN)SUBSCRIBE waits for the handshake to end;
   * while disconnected, ioredis's offline queue holds it until the connection is ready.
   */
  private async afterHandshake(): Promise<void> {
    while (this.subscriber.status === 'connect') {
      await new Promise<void>((resolve) => {
        const done = () => {
          this.subscriber.off('ready', done);
          this.subscriber.off('close', done);
          resolve();
        };
        this.subscriber.on('ready', done);
        this.subscriber.on('close', done);
      });
    }
  }

  async subscribe(channel: string, listener: Listener): Promise<Unsubscribe> {
    let state = this.channels.get(channel);
    if (!state) {
      const ready = this.afterHandshake().then(() => this.subscriber.subscribe(this.prefix + channel));
      state = { listeners: new Set(), ready };
      this.channels.set(channel, state);
    }
    const owner = state;
    const { listeners, ready } = owner;
    // Counted at once, so an unsubscribe by another listener while this SUBSCRIBE is in flight keeps the channel.
    const entry: Listener = (message) => listener(message);
    listeners.add(entry);
    try {
      await ready;
    } catch (error) {
      listeners.delete(entry);
      if (listeners.size === 0 && this.channels.get(channel) === owner) this.channels.delete(channel);
      throw error;
    }
    return async () => {
      // A repeated call, or a call after the channel was torn down and subscribed anew, changes nothing.
      if (!listeners.delete(entry) || listeners.size > 0 || this.channels.get(channel) !== owner) return;
      this.channels.delete(channel);
      await this.afterHandshake();
      // During an outage UNSUBSCRIBE fails; the listeners are gone already, so at worst Redis keeps sending
      // this connection messages that nobody hears. Shutting down must not fail on it.
      await this.subscriber.unsubscribe(this.prefix + channel).catch(() => {});
    };
  }

  async close(): Promise<void> {
    this.channels.clear();
    this.subscriber.disconnect();
  }
}
