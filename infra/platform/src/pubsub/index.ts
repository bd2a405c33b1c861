import { Cluster } from 'ioredis';
import { duplicateRedis, slotOf, type RedisClient } from '../redis.ts';

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
 * Which key space a channel belongs to (a hash tag's text), for channels rung by a script on that key space's
 * data; undefined for any other channel.
 */
export type ShardOf = (channel: string) => string | undefined;

interface Route {
  /** The channel's name in Redis. */
  name: string;
  /** SPUBLISH/SSUBSCRIBE: the channel lives on the node that owns its slot, not on every node. */
  sharded: boolean;
}

/**
 * One subscriber connection per process, with reference-counted SUBSCRIBE/UNSUBSCRIBE per channel, so
 * thousands of listeners on one channel cost Redis a single subscription.
 *
 * On a Redis Cluster, plain pub/sub is broadcast to every node over the cluster bus. A channel that belongs to
 * one key space (`shardOf`) uses sharded pub/sub instead: it is named with that key space's hash tag, so it
 * lives in the same slot as the data whose script rings it, and only that slot's node carries it. On one server
 * every channel keeps its plain name and plain pub/sub, as before.
 */
export class RedisPubSub implements PubSub {
  private readonly subscriber: RedisClient;
  /**
   * Per channel: its listeners, and the SUBSCRIBE every subscribe() call on it waits for, so none returns
   * before Redis routes the channel to this connection (a message published right after would be lost).
   */
  private readonly channels = new Map<string, { listeners: Set<Listener>; ready: Promise<unknown> }>();
  /** Redis channel name → the channel as callers name it. */
  private readonly names = new Map<string, string>();
  private readonly gapListeners = new Set<GapListener>();

  constructor(
    private readonly publisher: RedisClient,
    private readonly prefix = '',
    private readonly shardOf: ShardOf = () => undefined,
  ) {
    // A subscribed connection can run nothing else, and it must queue commands while reconnecting.
    this.subscriber = duplicateRedis(publisher, { enableOfflineQueue: true, commandTimeout: undefined });
    const deliver = (name: string, raw: string) => {
      const channel = this.names.get(name);
      const state = channel === undefined ? undefined : this.channels.get(channel);
      if (!state) return;
      for (const listener of [...state.listeners]) listener(JSON.parse(raw));
    };
    this.subscriber.on('message', deliver);
    this.subscriber.on('smessage', deliver);
    this.subscriber.on('error', () => {
      // ioredis reconnects by itself; without a listener an outage would crash the process.
    });
    let dropped = false;
    const lost = () => {
      if (dropped) return;
      dropped = true;
      for (const listener of [...this.gapListeners]) listener('lost');
    };
    const restored = () => {
      if (!dropped || this.subscriber.status !== 'ready') return;
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
    };
    this.subscriber.on('close', lost);
    this.subscriber.on('ready', restored);
    if (this.subscriber instanceof Cluster) {
      // A cluster's sharded subscribers are connections of their own, one per primary, replaced when one drops
      // or the slots move; ioredis re-subscribes their channels and then reports them ready.
      this.subscriber.on('-subscriber', lost);
      this.subscriber.on('subscribersReady', restored);
    }
  }

  private route(channel: string): Route {
    const shard = this.publisher instanceof Cluster ? this.shardOf(channel) : undefined;
    return shard === undefined ? { name: this.prefix + channel, sharded: false } : { name: `${this.prefix}{${shard}}:${channel}`, sharded: true };
  }

  /** Counts connections subscribed to the channel (each process holds one per channel, however many listeners). */
  async subscribers(channel: string): Promise<number> {
    const { name, sharded } = this.route(channel);
    if (!(this.publisher instanceof Cluster)) return numsub(this.publisher, 'NUMSUB', name);
    // A sharded channel is known to the primary owning its slot; a plain one to each node a subscriber chose.
    const nodes = this.publisher.nodes(sharded ? 'master' : 'all');
    const owner = sharded ? this.publisher.slots[slotOf(name)]?.[0] : undefined;
    const asked = owner === undefined ? nodes : nodes.filter(({ options }) => `${options.host}:${options.port}` === owner);
    const counts = await Promise.all(asked.map((node) => numsub(node, sharded ? 'SHARDNUMSUB' : 'NUMSUB', name)));
    return counts.reduce((sum, count) => sum + count, 0);
  }

  onGap(listener: GapListener): () => void {
    this.gapListeners.add(listener);
    return () => this.gapListeners.delete(listener);
  }

  async publish(channel: string, message: unknown): Promise<void> {
    const { name, sharded } = this.route(channel);
    if (sharded) await this.publisher.spublish(name, JSON.stringify(message));
    else await this.plainPublisher(name).publish(name, JSON.stringify(message));
  }

  /**
   * Where a plain message is published. A cluster client sends PUBLISH (it has no key) to any node, and messages
   * that entered the bus at different nodes overtake each other on the way to a subscriber's node; published
   * always at the node owning the channel name's slot, one channel's messages keep their order.
   */
  private plainPublisher(name: string): RedisClient {
    if (!(this.publisher instanceof Cluster)) return this.publisher;
    const owner = this.publisher.slots[slotOf(name)]?.[0];
    return this.publisher.nodes('master').find(({ options }) => `${options.host}:${options.port}` === owner) ?? this.publisher;
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
    const { name, sharded } = this.route(channel);
    if (!state) {
      this.names.set(name, channel);
      const ready = this.afterHandshake().then(() => (sharded ? this.subscriber.ssubscribe(name) : this.subscriber.subscribe(name)));
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
      this.names.delete(name);
      await this.afterHandshake();
      // During an outage UNSUBSCRIBE fails; the listeners are gone already, so at worst Redis keeps sending
      // this connection messages that nobody hears. Shutting down must not fail on it.
      await (sharded ? this.subscriber.sunsubscribe(name) : this.subscriber.unsubscribe(name)).catch(() => {});
    };
  }

  async close(): Promise<void> {
    this.channels.clear();
    this.names.clear();
    this.subscriber.disconnect();
  }
}

/** How many connections one node has subscribed to `name`. */
async function numsub(node: RedisClient, kind: 'NUMSUB' | 'SHARDNUMSUB', name: string): Promise<number> {
  const [, count] = (await node.call('PUBSUB', kind, name)) as [string, number];
  return Number(count);
}
