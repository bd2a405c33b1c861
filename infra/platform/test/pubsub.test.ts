import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MemoryPubSub, RedisPubSub, type Listener, type PubSub } from '../src/pubsub/index.ts';
import { createRedis, slotOf, waitForRedis, type Cluster } from '../src/redis.ts';
import { clusterForThisFile } from './cluster.ts';
import { testRedisUrl, uniqueName } from '../src/testing/services.ts';
import { startTcpProxy, waitFor } from './support.ts';

/** Every key and channel this file touches starts with this, so parallel runs never see each other. */
const RUN_PREFIX = `${uniqueName('platform_pubsub_test')}:`;

interface Harness {
  pubsub: PubSub;
  close(): Promise<void>;
}

interface Implementation {
  name: string;
  create(): Promise<Harness>;
}

/** Redis clients opened by this file, disconnected in afterAll even if a test fails half-way. */
const openClients: Redis[] = [];

async function connectedRedis(): Promise<Redis> {
  const redis = createRedis(testRedisUrl());
  openClients.push(redis);
  await waitForRedis(redis);
  return redis;
}

const cluster = clusterForThisFile();

/** On a cluster: every channel plain (broadcast over the bus), or every channel sharded in a slot of its own. */
const onCluster = (sharded: boolean): Implementation => ({
  name: `RedisPubSub on a Redis Cluster, ${sharded ? 'sharded' : 'plain'} channels`,
  create: async () => {
    const publisher = await cluster.client();
    const pubsub = new RedisPubSub(publisher, RUN_PREFIX, sharded ? (channel) => channel : undefined);
    return {
      pubsub,
      close: async () => {
        await pubsub.close();
        publisher.disconnect();
      },
    };
  },
});

const implementations: Implementation[] = [
  {
    name: 'MemoryPubSub',
    create: async () => {
      const pubsub = new MemoryPubSub();
      return { pubsub, close: () => pubsub.close() };
    },
  },
  {
    name: 'RedisPubSub',
    create: async () => {
      const publisher = await connectedRedis();
      const pubsub = new RedisPubSub(publisher, RUN_PREFIX);
      return {
        pubsub,
        close: async () => {
          await pubsub.close();
          publisher.disconnect();
        },
      };
    },
  },
  onCluster(false),
  onCluster(true),
];

afterAll(() => {
  for (const client of openClients) client.disconnect();
});

let channelCounter = 0;
/** A channel no other test uses. */
const freshChannel = (label = 'channel') => `${label}:${++channelCounter}`;

function recorder() {
  const received: unknown[] = [];
  const listener: Listener = (message) => received.push(message);
  return { received, listener };
}

/**
 * Waits until everything published before this call has been delivered: messages travel in order, so once a
 * marker published after them arrives, anything that was going to arrive has. Lets a test assert that a message
 * was *not* delivered without sleeping.
 */
async function settle(pubsub: PubSub): Promise<void> {
  const channel = freshChannel('barrier');
  const marker = recorder();
  const unsubscribe = await pubsub.subscribe(channel, marker.listener);
  try {
    await pubsub.publish(channel, 'marker');
    await waitFor(() => expect(marker.received).toEqual(['marker']));
  } finally {
    await unsubscribe();
  }
}

describe.each(implementations)('PubSub contract: $name', ({ create }) => {
  let harness: Harness;
  let pubsub: PubSub;
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    harness = await create();
    pubsub = harness.pubsub;
  });

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup();
  });

  afterAll(async () => {
    await harness.close();
  });

  const subscribe = async (channel: string, listener: Listener) => {
    const unsubscribe = await pubsub.subscribe(channel, listener);
    cleanups.push(unsubscribe);
    return unsubscribe;
  };

  it('tells whether anyone subscribes to a channel (how a first listener knows it may have missed messages)', async () => {
    const channel = freshChannel('count');
    expect(await pubsub.subscribers(channel)).toBe(0);
    const unsubscribe = await pubsub.subscribe(channel, () => {});
    expect(await pubsub.subscribers(channel)).toBeGreaterThan(0);
    await unsubscribe();
    expect(await pubsub.subscribers(channel)).toBe(0);
  });

  it('delivers a published JSON value to a subscriber of the channel', async () => {
    const channel = freshChannel();
    const { received, listener } = recorder();
    await subscribe(channel, listener);

    const message = { id: 7, name: 'Ada', tags: ['a', 'b'], nested: { ok: true, none: null }, total: 12.5 };
    await pubsub.publish(channel, message);

    await waitFor(() => expect(received).toEqual([message]));
  });

  it('delivers messages as JSON, the same way in every implementation', async () => {
    const channel = freshChannel();
    const { received, listener } = recorder();
    await subscribe(channel, listener);

    await pubsub.publish(channel, { at: new Date('2026-11-22T13:42:00.000Z'), skipped: undefined });
    await pubsub.publish(channel, 'plain string');
    await pubsub.publish(channel, 42);

    await waitFor(() => expect(received).toHaveLength(3));
    expect(received).toStrictEqual([{ at: '2026-11-22T13:42:00.000Z' }, 'plain string', 42]);
  });

  it('keeps the publish order of messages on a channel', async () => {
    const channel = freshChannel();
    const { received, listener } = recorder();
    await subscribe(channel, listener);

    const sent = Array.from({ length: 25 }, (_, index) => ({ seq: index }));
    for (const message of sent) await pubsub.publish(channel, message);

    await waitFor(() => expect(received).toEqual(sent));
  });

  it('delivers only to subscribers of the channel a message was published on', async () => {
    const target = freshChannel('orders');
    const other = freshChannel('orders');
    const longer = `${target}:extra`;
    const onTarget = recorder();
    const onOther = recorder();
    const onLonger = recorder();
    await subscribe(target, onTarget.listener);
    await subscribe(other, onOther.listener);
    await subscribe(longer, onLonger.listener);

    await pubsub.publish(target, { for: 'target' });

    await waitFor(() => expect(onTarget.received).toEqual([{ for: 'target' }]));
    await settle(pubsub);
    expect(onOther.received).toEqual([]);
    expect(onLonger.received).toEqual([]);
    expect(onTarget.received).toEqual([{ for: 'target' }]);
  });

  it('gives every subscriber of a channel its own copy of each message', async () => {
    const channel = freshChannel();
    const recorders = [recorder(), recorder(), recorder()];
    for (const { listener } of recorders) await subscribe(channel, listener);

    await pubsub.publish(channel, { n: 1 });
    await pubsub.publish(channel, { n: 2 });

    for (const { received } of recorders) {
      await waitFor(() => expect(received).toEqual([{ n: 1 }, { n: 2 }]));
    }
    await settle(pubsub);
    for (const { received } of recorders) expect(received).toHaveLength(2);
  });

  it('hands out copies: neither the publisher nor another listener can change what a listener receives', async () => {
    const channel = freshChannel();
    const mutator: unknown[] = [];
    const observer = recorder();
    // The mutating listener subscribes first, so it runs first and would corrupt a shared object.
    await subscribe(channel, (message) => {
      mutator.push(message);
      const order = message as { status: string; items: string[] };
      order.status = 'MUTATED';
      order.items.push('injected');
    });
    await subscribe(channel, observer.listener);

    const published = { status: 'PLACED', items: ['book'] };
    await pubsub.publish(channel, published);
    published.status = 'CHANGED_BY_PUBLISHER';
    published.items.push('also-changed');

    await waitFor(() => expect(observer.received).toHaveLength(1));
    await waitFor(() => expect(mutator).toHaveLength(1));
    expect(observer.received[0]).toEqual({ status: 'PLACED', items: ['book'] });
    expect(observer.received[0]).not.toBe(mutator[0]);
    expect(observer.received[0]).not.toBe(published);
    expect(mutator[0]).toEqual({ status: 'MUTATED', items: ['book', 'injected'] });
  });

  it('stops delivering to a listener once it unsubscribes, while other listeners keep receiving', async () => {
    const channel = freshChannel();
    const leaving = recorder();
    const staying = recorder();
    const unsubscribe = await subscribe(channel, leaving.listener);
    await subscribe(channel, staying.listener);

    await pubsub.publish(channel, 'before');
    await waitFor(() => expect(leaving.received).toEqual(['before']));

    await unsubscribe();
    await pubsub.publish(channel, 'after');

    await waitFor(() => expect(staying.received).toEqual(['before', 'after']));
    await settle(pubsub);
    expect(leaving.received).toEqual(['before']);
  });

  it('stops delivery when the last listener of a channel unsubscribes', async () => {
    const channel = freshChannel();
    const { received, listener } = recorder();
    const unsubscribe = await subscribe(channel, listener);
    await pubsub.publish(channel, 'before');
    await waitFor(() => expect(received).toEqual(['before']));

    await unsubscribe();
    await pubsub.publish(channel, 'after');

    await settle(pubsub);
    expect(received).toEqual(['before']);
  });

  it('treats the same listener subscribed twice as two subscriptions', async () => {
    const channel = freshChannel();
    const { received, listener } = recorder();
    const first = await subscribe(channel, listener);
    await subscribe(channel, listener);

    await pubsub.publish(channel, 'twice');
    await waitFor(() => expect(received).toEqual(['twice', 'twice']));

    await first();
    await pubsub.publish(channel, 'once');

    await waitFor(() => expect(received).toEqual(['twice', 'twice', 'once']));
    await settle(pubsub);
    expect(received).toEqual(['twice', 'twice', 'once']);
  });

  it('makes a second call of the same unsubscribe a no-op that cannot cancel anyone else', async () => {
    const channel = freshChannel();
    const gone = recorder();
    const unsubscribe = await pubsub.subscribe(channel, gone.listener);
    await unsubscribe();

    // A new subscriber on the same channel, then the stale unsubscribe again.
    const fresh = recorder();
    await subscribe(channel, fresh.listener);
    await unsubscribe();

    await pubsub.publish(channel, 'still here');
    await waitFor(() => expect(fresh.received).toEqual(['still here']));
    expect(gone.received).toEqual([]);
  });

  it('accepts a publish to a channel nobody listens on', async () => {
    await expect(pubsub.publish(freshChannel('nobody'), { lonely: true })).resolves.toBeUndefined();

    const channel = freshChannel();
    const unsubscribe = await pubsub.subscribe(channel, () => {});
    await unsubscribe();
    await expect(pubsub.publish(channel, 'everyone left')).resolves.toBeUndefined();
  });

  it('keeps working when a channel is subscribed again right after its last listener left', async () => {
    const channel = freshChannel();
    const first = recorder();
    const unsubscribe = await pubsub.subscribe(channel, first.listener);

    // Not awaited: the resubscription races the teardown of the old subscription.
    const leaving = unsubscribe();
    const second = recorder();
    await subscribe(channel, second.listener);
    await leaving;

    await pubsub.publish(channel, 'back');
    await waitFor(() => expect(second.received).toEqual(['back']));
    await settle(pubsub);
    expect(first.received).toEqual([]);
  });

  it('receives a message published right after subscribe() resolves, even with concurrent subscribes', async () => {
    // A brand-new instance: its connection is still being set up when subscribe() is called.
    const own = await create();
    try {
      const channel = freshChannel('fresh');
      const a = recorder();
      const b = recorder();
      const firstSubscription = own.pubsub.subscribe(channel, a.listener);
      await own.pubsub.subscribe(channel, b.listener);
      await own.pubsub.publish(channel, 'right away');

      await waitFor(() => expect(b.received).toEqual(['right away']));
      await firstSubscription;
      await waitFor(() => expect(a.received).toEqual(['right away']));
    } finally {
      await own.close();
    }
  });
});

describe('RedisPubSub against a real Redis', () => {
  let publisher: Redis;
  let probe: Redis;
  let pubsub: RedisPubSub;
  const prefix = `${RUN_PREFIX}redis:`;

  beforeAll(async () => {
    publisher = await connectedRedis();
    // A plain client for inspecting server state, never put into subscriber mode.
    probe = new Redis(testRedisUrl());
    openClients.push(probe);
    pubsub = new RedisPubSub(publisher, prefix);
  });

  afterAll(async () => {
    await pubsub.close();
  });

  /** How many connections Redis itself has subscribed to the (prefixed) channel. */
  const numsub = async (rawChannel: string): Promise<number> => {
    const reply = (await probe.pubsub('NUMSUB', rawChannel)) as [string, number];
    return Number(reply[1]);
  };

  it('holds one Redis subscription per channel however many listeners, and UNSUBSCRIBEs after the last one', async () => {
    const channel = freshChannel('refcount');
    expect(await numsub(prefix + channel)).toBe(0);

    const unsubscribers: (() => Promise<void>)[] = [];
    for (let index = 0; index < 3; index++) unsubscribers.push(await pubsub.subscribe(channel, () => {}));
    expect(await numsub(prefix + channel)).toBe(1);

    await unsubscribers[0]!();
    await unsubscribers[1]!();
    expect(await numsub(prefix + channel)).toBe(1);

    await unsubscribers[2]!();
    expect(await numsub(prefix + channel)).toBe(0);

    // Unsubscribing again must not disturb a later subscription.
    const again = await pubsub.subscribe(channel, () => {});
    await unsubscribers[2]!();
    expect(await numsub(prefix + channel)).toBe(1);
    await again();
    expect(await numsub(prefix + channel)).toBe(0);
  });

  it('completes the SUBSCRIBE before any concurrent subscribe() on a new channel resolves', async () => {
    const own = new RedisPubSub(publisher, prefix);
    try {
      const channel = freshChannel('concurrent');
      const calls = [own.subscribe(channel, () => {}), own.subscribe(channel, () => {}), own.subscribe(channel, () => {})];
      const checks = calls.map(async (call) => {
        await call;
        // At the moment each subscribe() resolves, Redis must already route the channel to us.
        expect(await numsub(prefix + channel)).toBe(1);
      });
      await Promise.all(checks);
      for (const unsubscribe of await Promise.all(calls)) await unsubscribe();
      expect(await numsub(prefix + channel)).toBe(0);
    } finally {
      await own.close();
    }
  });

  it('keeps a subscription made while its connection is still in the handshake', async () => {
    const own = new RedisPubSub(publisher, prefix);
    try {
      const channel = freshChannel('handshake');
      const { received, listener } = recorder();
      // White-box timing only: call subscribe() the moment the subscriber connection reports 'connect', i.e.
      // TCP is up but ioredis's handshake (CLIENT SETINFO, INFO ready check) has not run yet.
      const subscriber = (own as unknown as { subscriber: Redis }).subscriber;
      expect(subscriber.status).toBe('connecting');
      const subscribed = new Promise<() => Promise<void>>((resolve, reject) => {
        subscriber.once('connect', () => {
          own.subscribe(channel, listener).then(resolve, reject);
        });
      });
      const unsubscribe = await subscribed;

      await own.publish(channel, 'first');
      await waitFor(() => expect(received).toEqual(['first']));
      // Still subscribed afterwards: the handshake did not tear the connection down and lose the channel.
      await waitFor(async () => expect(subscriber.status).toBe('ready'));
      expect(await numsub(prefix + channel)).toBe(1);
      await own.publish(channel, 'second');
      await waitFor(() => expect(received).toEqual(['first', 'second']));
      await unsubscribe();
      expect(await numsub(prefix + channel)).toBe(0);
    } finally {
      await own.close();
    }
  });

  it('delivers between instances sharing a prefix, as between two processes', async () => {
    const otherPublisher = await connectedRedis();
    const otherProcess = new RedisPubSub(otherPublisher, prefix);
    try {
      const channel = freshChannel('cross');
      const { received, listener } = recorder();
      const unsubscribe = await pubsub.subscribe(channel, listener);
      await otherProcess.publish(channel, { from: 'the other process' });
      await waitFor(() => expect(received).toEqual([{ from: 'the other process' }]));
      await unsubscribe();
    } finally {
      await otherProcess.close();
    }
  });

  it('isolates instances with different prefixes, and publishes under the prefix', async () => {
    const otherPrefix = `${RUN_PREFIX}other:`;
    const isolated = new RedisPubSub(publisher, otherPrefix);
    try {
      const channel = freshChannel('shared-name');
      const mine = recorder();
      const theirs = recorder();
      const unsubscribeMine = await pubsub.subscribe(channel, mine.listener);
      const unsubscribeTheirs = await isolated.subscribe(channel, theirs.listener);

      await pubsub.publish(channel, 'for mine');
      await waitFor(() => expect(mine.received).toEqual(['for mine']));
      // A raw PUBLISH on the prefixed name reaches the instance using that prefix, and only it.
      expect(await probe.publish(otherPrefix + channel, JSON.stringify('for theirs'))).toBe(1);
      await waitFor(() => expect(theirs.received).toEqual(['for theirs']));

      await settle(pubsub);
      await settle(isolated);
      expect(mine.received).toEqual(['for mine']);
      expect(theirs.received).toEqual(['for theirs']);

      await unsubscribeMine();
      await unsubscribeTheirs();
    } finally {
      await isolated.close();
    }
  });

  describe('through an outage', () => {
    it('rejects subscribe() while Redis is unreachable, and the channel works once Redis is back', async () => {
      const proxy = await startTcpProxy(testRedisUrl());
      const outagePublisher = createRedis(proxy.url);
      openClients.push(outagePublisher);
      outagePublisher.on('error', () => {});
      const outagePubSub = new RedisPubSub(outagePublisher, prefix);
      try {
        proxy.setUp(false);
        const channel = freshChannel('outage');
        const { received, listener } = recorder();
        await expect(outagePubSub.subscribe(channel, listener)).rejects.toThrow();

        proxy.setUp(true);
        await waitForRedis(outagePublisher);
        // The failed attempt must not leave the channel looking subscribed (or permanently failed).
        const unsubscribe = await waitFor(() => outagePubSub.subscribe(channel, listener), 5_000);
        expect(await numsub(prefix + channel)).toBe(1);
        await outagePubSub.publish(channel, 'after the outage');
        await waitFor(() => expect(received).toEqual(['after the outage']));
        await unsubscribe();
      } finally {
        await outagePubSub.close();
        outagePublisher.disconnect();
        await proxy.close();
      }
    });

    it('resubscribes by itself after the connection to Redis drops', async () => {
      const proxy = await startTcpProxy(testRedisUrl());
      const outagePublisher = createRedis(proxy.url);
      openClients.push(outagePublisher);
      outagePublisher.on('error', () => {});
      const outagePubSub = new RedisPubSub(outagePublisher, prefix);
      try {
        await waitForRedis(outagePublisher);
        const channel = freshChannel('reconnect');
        const { received, listener } = recorder();
        const unsubscribe = await outagePubSub.subscribe(channel, listener);

        const gaps: string[] = [];
        outagePubSub.onGap((state) => gaps.push(state));
        proxy.dropConnections();
        // Delivery is at-most-once: keep publishing (straight to Redis) until one arrives after the reconnect.
        await waitFor(async () => {
          await probe.publish(prefix + channel, JSON.stringify('after the drop'));
          expect(received).toContain('after the drop');
        }, 10_000, 50);
        // Subscribers are told, once each, that messages may be missed from the drop on, and when it is over.
        await waitFor(() => expect(gaps).toEqual(['lost', 'restored']));
        await unsubscribe();
      } finally {
        await outagePubSub.close();
        outagePublisher.disconnect();
        await proxy.close();
      }
    });
  });
});

describe('RedisPubSub on a Redis Cluster', () => {
  it('keeps a sharded channel on the primary owning its slot only, and hears it again after that connection drops', async () => {
    const publisher = (await cluster.client()) as Cluster;
    const pubsub = new RedisPubSub(publisher, RUN_PREFIX, (channel) => channel);
    try {
      const channel = freshChannel('sharded');
      const { received, listener } = recorder();
      const unsubscribe = await pubsub.subscribe(channel, listener);
      const name = `${RUN_PREFIX}{${channel}}:${channel}`;
      const owner = publisher.slots[slotOf(name)]?.[0];
      const primaries = publisher.nodes('master');
      const shardChannels = await Promise.all(primaries.map(async (node) => [`${node.options.host}:${node.options.port}`, (await node.call('PUBSUB', 'SHARDCHANNELS')) as string[]] as const));
      expect(shardChannels.filter(([, channels]) => channels.includes(name)).map(([node]) => node)).toEqual([owner]);

      const gaps: string[] = [];
      pubsub.onGap((state) => gaps.push(state));
      const ownerNode = primaries.find(({ options }) => `${options.host}:${options.port}` === owner);
      await ownerNode?.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
      // At-most-once: publish until one arrives over the new connection.
      await waitFor(async () => {
        await pubsub.publish(channel, 'after the drop');
        expect(received).toContain('after the drop');
      }, 10_000, 100);
      await waitFor(() => expect(gaps).toEqual(['lost', 'restored']));
      await unsubscribe();
    } finally {
      await pubsub.close();
    }
  });
});
