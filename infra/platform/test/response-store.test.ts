import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createRedis, waitForRedis, type Cluster, type RedisClient, type RedisNode } from '../src/redis.ts';
import { askRedisNode } from '../src/testing/redis-node.ts';
import {
  MemoryResponseStore,
  PURGE_WAIT_MS,
  RedisResponseStore,
  ResponseStoreUnavailableError,
  type CachedResponse,
  type ResponseStore,
  type StoreTicket,
} from '../src/response-cache/index.ts';
import { startRedisServer, type PrivateRedis } from '../src/testing/redis-server.ts';
import { testRedisUrl, uniqueName } from '../src/testing/services.ts';
import { clusterForThisFile } from './cluster.ts';
import { deleteRedisKeys, startTcpProxy, timed, waitFor } from './support.ts';

/** Every Redis key this file writes starts with this; afterAll deletes exactly those keys. */
const RUN_PREFIX = `${uniqueName('platform_response_store_test')}:`;
let redis: Redis;
let storeCounter = 0;
let clusterRedis: RedisClient;
const cluster = clusterForThisFile();

beforeAll(async () => {
  redis = createRedis(testRedisUrl());
  await waitForRedis(redis);
  clusterRedis = await cluster.client();
});

afterAll(async () => {
  try {
    await deleteRedisKeys(RUN_PREFIX);
  } finally {
    redis.disconnect();
  }
});

const response = (body: string, overrides: Partial<CachedResponse> = {}): CachedResponse => ({
  body,
  maxAge: 60,
  scope: 'PUBLIC',
  storedAt: Date.now(),
  ...overrides,
});

async function ticketOf(store: ResponseStore, key: string): Promise<StoreTicket> {
  const lookup = await store.lookup([key]);
  if (lookup.hit) throw new Error(`expected a miss for ${key}`);
  return lookup.ticket;
}

/** Looks a key up and stores `body` under it with the ticket of that miss: a request's whole life. */
async function fill(store: ResponseStore, key: string, body: string, tags: string[], overrides: Partial<CachedResponse> = {}) {
  await store.store(key, response(body, overrides), tags, await ticketOf(store, key));
}

// Hits carry the bytes to send; the tests compare their text.
const text = (body: Uint8Array | undefined) => body && Buffer.from(body).toString('utf8');
const bodyAt = async (store: ResponseStore, ...keys: string[]) => text((await store.lookup(keys)).hit?.body);

// Each store gets its own namespace, so one test's purges never touch another's entries.
const implementations: { name: string; create: (maxTtlSeconds?: number) => Promise<ResponseStore> }[] = [
  { name: 'MemoryResponseStore', create: async (maxTtlSeconds = 300) => new MemoryResponseStore({ maxTtlSeconds }) },
  {
    name: 'RedisResponseStore',
    create: async (maxTtlSeconds = 300) => {
      const store = new RedisResponseStore(redis, `${RUN_PREFIX}${++storeCounter}:`, { maxTtlSeconds });
      // Usable once its connection is ready.
      await waitFor(async () => expect((await store.lookup(['probe'])).hit).toBeUndefined());
      return store;
    },
  },
  {
    name: 'RedisResponseStore on a Redis Cluster',
    create: async (maxTtlSeconds = 300) => {
      const store = new RedisResponseStore(clusterRedis, `${RUN_PREFIX}${++storeCounter}:`, { maxTtlSeconds });
      await waitFor(async () => expect((await store.lookup(['probe'])).hit).toBeUndefined());
      return store;
    },
  },
];

describe.each(implementations)('ResponseStore contract: $name', ({ create }) => {
  it('misses, then serves exactly what was stored, with its policy and age', async () => {
    const store = await create();
    const stored = response('{"data":{"user":{"name":"Ada ✓"}}}\n', { maxAge: 42, scope: 'PRIVATE', storedAt: 1_700_000_000_000 });
    const miss = await store.lookup(['k']);
    expect(miss.hit).toBeUndefined();
    await store.store('k', stored, ['users/User:1'], (miss as { ticket: StoreTicket }).ticket);
    const { hit } = await store.lookup(['k']);
    expect(hit && { ...hit, body: text(hit.body) }).toEqual(stored);
  });

  it('answers from the first key that holds a valid entry', async () => {
    const store = await create();
    await fill(store, 'public', 'public body', []);
    expect(await bodyAt(store, 'private', 'public')).toBe('public body');
    await fill(store, 'private', 'private body', []);
    expect(await bodyAt(store, 'private', 'public')).toBe('private body');
  });

  it('stops serving every entry tagged with a purged tag, and only those', async () => {
    const store = await create();
    await fill(store, 'ada', 'ada', ['users/User:1']);
    await fill(store, 'list', 'list', ['users/Query.users', 'users/User:1', 'users/User:2']);
    await fill(store, 'bob', 'bob', ['users/User:2']);
    // The same entity seen through another subgraph is another tag.
    await fill(store, 'ada-orders', 'ada-orders', ['orders/User:1']);

    await store.invalidate(['users/User:1']);
    expect(await bodyAt(store, 'ada')).toBeUndefined();
    expect(await bodyAt(store, 'list')).toBeUndefined();
    expect(await bodyAt(store, 'bob')).toBe('bob');
    expect(await bodyAt(store, 'ada-orders')).toBe('ada-orders');

    // Computed again after the purge, an entry with the same tag is served.
    await fill(store, 'ada', 'ada v2', ['users/User:1']);
    expect(await bodyAt(store, 'ada')).toBe('ada v2');
  });

  it('checks every tag of a large answer, however many (a purge of the 2 200th of 2 500 counts)', async () => {
    const store = await create();
    const tags = Array.from({ length: 2_500 }, (_, i) => `orders/Order:${i}`);
    await fill(store, 'big', 'big', tags);
    expect(await bodyAt(store, 'big')).toBe('big');
    await store.invalidate(['orders/Order:2199']);
    expect(await bodyAt(store, 'big')).toBeUndefined();
  });

  it('never serves a response whose data was read before a purge, even when it is stored after it', async () => {
    const store = await create();
    const slowRead = await ticketOf(store, 'user');
    // A write commits and purges while the slow request is still reading the old data...
    await store.invalidate(['users/User:1']);
    // ...and only then does the slow request store what it read.
    await store.store('user', response('old name'), ['users/User:1'], slowRead);
    expect(await bodyAt(store, 'user')).toBeUndefined();

    // A purge of other tags in between does not spoil an unrelated response.
    const other = await ticketOf(store, 'other');
    await store.invalidate(['users/User:99']);
    await store.store('other', response('other'), ['users/User:2'], other);
    expect(await bodyAt(store, 'other')).toBe('other');
  });

  it('tells whether any of some tags was purged since a ticket (is an answer computed since then still fresh?)', async () => {
    const store = await create();
    const ticket = await ticketOf(store, 'flight');
    expect(await store.purgedSince(['users/User:1', 'users/Query.users'], ticket)).toBe(false);
    await store.invalidate(['users/User:2']);
    expect(await store.purgedSince(['users/User:1', 'users/Query.users'], ticket)).toBe(false);
    await store.invalidate(['users/Query.users']);
    expect(await store.purgedSince(['users/User:1', 'users/Query.users'], ticket)).toBe(true);
    await store.invalidateAll();
    expect(await store.purgedSince([], await ticketOf(store, 'after')).valueOf()).toBe(false);
    expect(await store.purgedSince([], ticket)).toBe(true);
  });

  it('after invalidateAll serves nothing stored or started before it, and caches again afterwards', async () => {
    const store = await create();
    await fill(store, 'a', 'a', ['users/User:1']);
    await fill(store, 'b', 'b', []);
    const inFlight = await ticketOf(store, 'c');

    await store.invalidateAll();
    expect(await bodyAt(store, 'a')).toBeUndefined();
    expect(await bodyAt(store, 'b')).toBeUndefined();
    await store.store('c', response('c'), [], inFlight);
    expect(await bodyAt(store, 'c')).toBeUndefined();

    await fill(store, 'a', 'a again', ['users/User:1']);
    expect(await bodyAt(store, 'a')).toBe('a again');
  });

  it('expires entries after their max-age, and never keeps one longer than the store cap', async () => {
    const store = await create(0.3);
    const started = Date.now();
    await fill(store, 'short', 'short', [], { maxAge: 0.15 });
    await fill(store, 'capped', 'capped', [], { maxAge: 3_600 });
    expect(await bodyAt(store, 'short')).toBe('short');
    expect(await bodyAt(store, 'capped')).toBe('capped');

    await waitFor(async () => expect(await bodyAt(store, 'short')).toBeUndefined(), 2_000);
    await waitFor(async () => expect(await bodyAt(store, 'capped')).toBeUndefined(), 2_000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
  });

  it('stores nothing with a max-age of 0', async () => {
    const store = await create();
    await fill(store, 'zero', 'zero', [], { maxAge: 0 });
    expect(await bodyAt(store, 'zero')).toBeUndefined();
  });

  it('keeps a purge in force for as long as an entry from before it could live', async () => {
    const store = await create(0.4);
    const before = await ticketOf(store, 'late');
    await store.invalidate(['users/User:1']);
    // Stored late but with the old ticket: it stays invalid until it expires by the cap, never "revives".
    await store.store('late', response('late', { maxAge: 0.4 }), ['users/User:1'], before);
    for (let i = 0; i < 4; i += 1) {
      expect(await bodyAt(store, 'late')).toBeUndefined();
      await new Promise((resolve) => setTimeout(resolve, 120));
    }
  });
});

describe('RedisResponseStore on a Redis Cluster', () => {
  /** How many primaries hold at least one entry of the store under `prefix`. */
  const primariesWithEntries = async (prefix: string) => {
    const primaries = (clusterRedis as Cluster).nodes('master');
    const counts = await Promise.all(primaries.map(async (node) => (await node.keys(`${prefix}*entry:*`)).length));
    return counts.filter((count) => count > 0).length;
  };

  it('spreads entries over every primary, and a purge by one replica reaches entries on all of them', async () => {
    const prefix = `${RUN_PREFIX}${++storeCounter}:`;
    const [a, b] = [new RedisResponseStore(clusterRedis, prefix, { maxTtlSeconds: 300 }), new RedisResponseStore(await cluster.client(), prefix, { maxTtlSeconds: 300 })];
    await waitFor(async () => expect((await b.lookup(['probe'])).hit).toBeUndefined());
    const keys = Array.from({ length: 24 }, (_, index) => `spread:${index}`);
    for (const key of keys) await fill(a, key, key, ['users/User:1', `users/User:${key}`]);
    expect(await primariesWithEntries(prefix)).toBe(3);
    for (const key of keys) expect(await bodyAt(b, key)).toBe(key);

    await b.invalidate(['users/User:1']);
    for (const key of keys) expect(await bodyAt(a, key)).toBeUndefined();
    await fill(b, 'spread:0', 'again', ['users/User:1']);
    expect(await bodyAt(a, 'spread:0')).toBe('again');
  });

  it('serves an entry numbered by a purge that has not reached its bucket yet (the fan-out still on its way)', async () => {
    const prefix = `${RUN_PREFIX}${++storeCounter}:`;
    const store = new RedisResponseStore(clusterRedis, prefix, { maxTtlSeconds: 300 });
    await waitFor(async () => expect((await store.lookup(['probe'])).hit).toBeUndefined());
    await store.invalidate(['users/Query.users']);
    // A purge's first step, alone: bucket 0 numbers it; the other buckets have not heard of it yet.
    const primaries = (clusterRedis as Cluster).nodes('master');
    const [sequence] = (await Promise.all(primaries.map((node) => node.keys(`${prefix}{rc0.*}:seq`)))).flat();
    await clusterRedis.incr(sequence as string);
    const keys = Array.from({ length: 12 }, (_, index) => `list:${index}`);
    for (const key of keys) await fill(store, key, key, ['users/Query.users']);
    for (const key of keys) expect(await bodyAt(store, key)).toBe(key);
  });

  describe('purges whose fan-outs reach a bucket out of order (two replicas purging one event at once)', () => {
    type Scripted = { responseCacheInvalidate(...args: (string | number)[]): Promise<number> };
    const tag = 'users/User:1';
    const lifetime = 600_000;
    /** A store, one of its keys outside bucket 0, and that key's bucket's and bucket 0's key prefixes. */
    const setUp = async () => {
      const prefix = `${RUN_PREFIX}${++storeCounter}:`;
      const store = new RedisResponseStore(clusterRedis, prefix, { maxTtlSeconds: 300 });
      await waitFor(async () => expect((await store.lookup(['probe'])).hit).toBeUndefined());
      await store.invalidate(['warm-up']);
      const keysLike = async (pattern: string) => (await Promise.all((clusterRedis as Cluster).nodes('master').map((node) => node.keys(pattern)))).flat();
      for (let index = 0; ; index += 1) {
        const key = `entry-${index}`;
        await fill(store, key, 'before', [tag]);
        const [stored] = await keysLike(`${prefix}*entry:${key}`);
        const space = (stored as string).slice(0, (stored as string).lastIndexOf('entry:'));
        if (space.includes('{rc0.')) continue;
        const [zeroSeq] = await keysLike(`${prefix}{rc0.*}:seq`);
        return { store, key, space, zero: (zeroSeq as string).slice(0, -'seq'.length) };
      }
    };
    const purge = (space: string, seq: number | '') =>
      (clusterRedis as unknown as Scripted).responseCacheInvalidate(`${space}seq`, `${space}stamps`, `${space}stamp-expiry`, String(seq), lifetime, tag);

    it('stores again right after both, and keeps the later purge in force for answers read between them', async () => {
      const { store, key, space, zero } = await setUp();
      const earlier = await purge(zero, '');
      const later = await purge(zero, '');
      expect(later).toBeGreaterThan(earlier);
      const between = { ...(await ticketOf(store, 'elsewhere')), seq: earlier };
      await purge(space, later);
      await purge(space, earlier);
      expect(await bodyAt(store, key)).toBeUndefined();
      // Read after both purges were numbered: fresh, stored, served.
      await fill(store, key, 'after', [tag]);
      expect(await bodyAt(store, key)).toBe('after');
      // Read between them: it may predate the later purge's write, so the late earlier purge must not lower its stamp.
      await store.store(key, response('between'), [tag], between);
      expect(await bodyAt(store, key)).toBe('after');
    });

    it('still covers every entry when the sequence went back (bucket 0 lost it): the stamp goes past what the bucket heard', async () => {
      const { store, key, space, zero } = await setUp();
      const heard = await purge(zero, '');
      await purge(space, heard);
      await fill(store, key, 'stored late', [tag]);
      expect(await bodyAt(store, key)).toBe('stored late');
      // A purge numbered far below what this bucket heard (a minute, in microseconds) cannot be told from a lost
      // sequence.
      await purge(space, heard - 60_000_000);
      expect(await bodyAt(store, key)).toBeUndefined();
    });

    it('numbers purges past every earlier number even when bucket 0 lost its sequence', async () => {
      const { zero } = await setUp();
      const before = await purge(zero, '');
      await clusterRedis.del(`${zero}seq`);
      expect(await purge(zero, '')).toBeGreaterThan(before);
    });
  });

  it('after a node connection drops, serves nothing until a full invalidation has landed on every bucket', async () => {
    const client = await cluster.client();
    const store = new RedisResponseStore(client, `${RUN_PREFIX}${++storeCounter}:`, { maxTtlSeconds: 300 });
    await waitFor(async () => expect((await store.lookup(['probe'])).hit).toBeUndefined());
    const keys = Array.from({ length: 12 }, (_, index) => `before:${index}`);
    for (const key of keys) await fill(store, key, key, []);
    const inFlight = await ticketOf(store, 'in-flight');

    // Every client connection to one primary goes (a restart would look the same to this replica), killed from a
    // connection of its own.
    const dropped = new Promise((resolve) => client.once('-node', resolve));
    await askRedisNode((await cluster.cluster()).nodes[0] as RedisNode, ['CLIENT', 'KILL', 'TYPE', 'normal']);
    await dropped;
    // Purges heard while the node was away may be lost: nothing from before may be served, and nothing computed
    // since is stored with its old ticket. Serving nothing includes refusing to answer at all: the client's
    // reconnection can drop and restore the node more than once (a busy machine), and each time the store stays
    // unusable until its full invalidation lands.
    const served = (key: string) => bodyAt(store, key).catch((error: unknown) => (error instanceof ResponseStoreUnavailableError ? undefined : Promise.reject(error)));
    await waitFor(async () => expect(await bodyAt(store, 'probe')).toBeUndefined());
    for (const key of keys) expect(await served(key)).toBeUndefined();
    await store.store('in-flight', response('stale'), [], inFlight).catch((error: unknown) => {
      if (!(error instanceof ResponseStoreUnavailableError)) throw error;
    });
    expect(await served('in-flight')).toBeUndefined();
    // Then it serves again what is stored after.
    await waitFor(async () => {
      await fill(store, 'after', 'after', []);
      expect(await bodyAt(store, 'after')).toBe('after');
    });
  });

  it('keeps keys that share a hash tag in one bucket (a viewer’s private key with its public twin: one script per lookup)', async () => {
    const prefix = `${RUN_PREFIX}${++storeCounter}:`;
    const store = new RedisResponseStore(clusterRedis, prefix, { maxTtlSeconds: 300 });
    await waitFor(async () => expect((await store.lookup(['probe'])).hit).toBeUndefined());
    const tags = Array.from({ length: 8 }, (_, index) => `request-${index}`);
    for (const tag of tags) {
      await fill(store, `private:{${tag}}:viewer`, 'mine', []);
      await fill(store, `public:{${tag}}`, 'everyone', []);
    }
    const stored = (await Promise.all((clusterRedis as Cluster).nodes('master').map((node) => node.keys(`${prefix}*entry:*`)))).flat();
    const bucketOf = (key: string) => /^[^{]*\{(rc[^}]*)\}/.exec(key)?.[1];
    const buckets = new Set<string | undefined>();
    for (const tag of tags) {
      const pair = stored.filter((key) => key.includes(`{${tag}}`));
      expect(pair).toHaveLength(2);
      expect(bucketOf(pair[0] ?? '')).toBe(bucketOf(pair[1] ?? ''));
      buckets.add(bucketOf(pair[0] ?? ''));
      expect(await bodyAt(store, `private:{${tag}}:viewer`, `public:{${tag}}`)).toBe('mine');
    }
    // The pairs themselves still spread.
    expect(buckets.size).toBeGreaterThan(1);
  });

  it('answers from the first valid key when the keys live in different buckets', async () => {
    const store = new RedisResponseStore(clusterRedis, `${RUN_PREFIX}${++storeCounter}:`, { maxTtlSeconds: 300 });
    await waitFor(async () => expect((await store.lookup(['probe'])).hit).toBeUndefined());
    // Twenty keys: certain to span several of the 16 buckets.
    const keys = Array.from({ length: 20 }, (_, index) => `k${index}`);
    await fill(store, 'k19', 'last', []);
    expect(await bodyAt(store, ...keys)).toBe('last');
    await fill(store, 'k3', 'third', ['users/User:3']);
    expect(await bodyAt(store, ...keys)).toBe('third');
    await store.invalidate(['users/User:3']);
    expect(await bodyAt(store, ...keys)).toBe('last');
    // A miss's ticket comes from the sequence the purges advance, wherever the keys were.
    const miss = await store.lookup(['nowhere', 'neither']);
    expect(miss.hit === undefined && miss.ticket.seq).toBeGreaterThan(0);
  });
});

describe('RedisResponseStore when Redis goes away', () => {
  it('fails fast while Redis is unreachable, then invalidates everything it may have missed before it serves again', async () => {
    const proxy = await startTcpProxy(testRedisUrl());
    const viaProxy = createRedis(proxy.url);
    viaProxy.on('error', () => {});
    const prefix = `${RUN_PREFIX}outage:`;
    const store = new RedisResponseStore(viaProxy, prefix, { maxTtlSeconds: 300 });
    // A second replica with its own connection, which stays up throughout.
    const other = new RedisResponseStore(redis, prefix, { maxTtlSeconds: 300 });
    try {
      await waitForRedis(viaProxy);
      await waitFor(async () => expect((await store.lookup(['probe'])).hit).toBeUndefined());
      await fill(store, 'user', 'before the outage', ['users/User:1']);
      expect(await bodyAt(store, 'user')).toBe('before the outage');

      await proxy.setListening(false);
      await waitFor(() => expect(viaProxy.status).not.toBe('ready'));
      const failed = await timed(() => store.lookup(['user']).catch((error: unknown) => error));
      expect(failed.value).toBeInstanceOf(ResponseStoreUnavailableError);
      expect(failed.ms).toBeLessThan(100);
      await expect(store.invalidate(['users/User:1'])).rejects.toBeInstanceOf(ResponseStoreUnavailableError);

      // The entry is still in Redis and, to a replica that missed nothing, still valid.
      await waitFor(async () => expect(text((await other.lookup(['user'])).hit?.body)).toBe('before the outage'));

      await proxy.setListening(true);
      // Back: the replica that was cut off may have missed the purge, so that entry is never served again.
      await waitFor(async () => expect((await store.lookup(['user'])).hit).toBeUndefined(), 5_000);
      expect((await other.lookup(['user'])).hit).toBeUndefined();
      await fill(store, 'user', 'after the outage', ['users/User:1']);
      expect(await bodyAt(store, 'user')).toBe('after the outage');
    } finally {
      viaProxy.disconnect();
      await proxy.close();
    }
  });
});

describe('RedisResponseStore when Redis stalls (a Redis of its own, paused with CLIENT PAUSE)', () => {
  let server: PrivateRedis;
  /** Two replicas on their own connections, as two gateway processes would be. */
  let replicas: { a: RedisResponseStore; b: RedisResponseStore; connections: Redis[] };
  const fresh = async () => {
    const connections = [createRedis(server.url), createRedis(server.url)];
    for (const connection of connections) await waitForRedis(connection);
    const prefix = `${uniqueName('stall')}:`;
    const [a, b] = connections.map((connection) => new RedisResponseStore(connection, prefix, { maxTtlSeconds: 300 })) as [RedisResponseStore, RedisResponseStore];
    return { a, b, connections };
  };
  /** A's reads time out (the 200 ms command timeout) while Redis is paused: its breaker opens. */
  const tripBreaker = async (store: ResponseStore) => expect(store.lookup(['probe'])).rejects.toThrow();

  beforeAll(async () => {
    server = await startRedisServer();
  });
  beforeEach(async () => {
    replicas = await fresh();
  });
  afterEach(() => {
    for (const connection of replicas.connections) connection.disconnect();
  });
  afterAll(() => server?.stop());

  it('purges while the breaker is open (a read just timed out): no replica serves the purged entry', async () => {
    const { a, b } = replicas;
    await fill(a, 'user', 'old name', ['users/User:1']);
    await server.pause(300);
    await tripBreaker(a);
    await expect(a.lookup(['user'])).rejects.toBeInstanceOf(ResponseStoreUnavailableError);
    await a.invalidate(['users/User:1']);
    expect(await bodyAt(b, 'user')).toBeUndefined();
  });

  it('replaces a purge that timed out by a full invalidation, and resolves only once that landed', async () => {
    const { a, b } = replicas;
    await fill(a, 'user', 'old name', ['users/User:1']);
    await fill(a, 'other', 'other', ['users/User:2']);
    // Longer than a command may take: the purge itself times out, and may or may not have run.
    await server.pause(600);
    await a.invalidate(['users/User:1']);
    expect(await bodyAt(b, 'user')).toBeUndefined();
    // Everything went, not only the purged tag: the purge's fate was unknown.
    expect(await bodyAt(b, 'other')).toBeUndefined();
    // And the replica whose purge failed caches again.
    await waitFor(async () => {
      await fill(a, 'user', 'new name', ['users/User:1']);
      expect(await bodyAt(a, 'user')).toBe('new name');
    });
  });

  it('when the purge cannot be made good in time: rejects, and invalidates everything by itself once Redis answers', async () => {
    const { a, b } = replicas;
    await fill(a, 'other', 'other', ['users/User:2']);
    await server.pause(PURGE_WAIT_MS + 1_000);
    await expect(a.invalidate(['users/User:1'])).rejects.toBeInstanceOf(ResponseStoreUnavailableError);
    // Nothing calls A from here on (a lookup would start its recovery too): the full invalidation is its own
    // doing, and B sees it.
    await waitFor(async () => expect(await bodyAt(b, 'other')).toBeUndefined(), 10_000, 50);
  });
});
