// The response cache end to end: two gateway replicas on one Redis, real subgraphs on real Postgres, and
// every request over HTTP on loopback. Hits and misses are told apart by the Age header and by counting the
// requests that reach each subgraph's HTTP server.
import { createHash } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import { createRedisClient, isProbeRequest, RedisEventStream, waitForRedis, type RedisClient } from '@fed/platform';
import { graphql, signedGraphql, startRedisServer, testRedisUrl, waitFor, type GraphQLResponse, type PrivateRedis, type RedisBehindProxies } from '@fed/platform/testing';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { seed } from '../src/seed.ts';
import { signedInAs, startStackBehindRedisProxy, startTestStack, type TestStack } from './harness.ts';

/** Counts the requests each subgraph's HTTP server receives. */
function countRequests(servers: Record<'users' | 'orders', Server>) {
  const counts = { users: 0, orders: 0 };
  for (const name of ['users', 'orders'] as const) servers[name].on('request', (req: IncomingMessage) => isProbeRequest(req.headers['x-request-id']) || (counts[name] += 1));
  return {
    /** Runs `call` and reports how many requests each subgraph received meanwhile. */
    async during<T>(call: () => Promise<T>): Promise<{ value: T; users: number; orders: number }> {
      const before = { ...counts };
      const value = await call();
      return { value, users: counts.users - before.users, orders: counts.orders - before.orders };
    },
  };
}

const isHit = (response: GraphQLResponse<unknown>) => response.headers.get('age') !== null;

describe('the response cache across two gateway replicas on one Redis', () => {
  let stack: TestStack;
  let replicaB: string;
  let gatewayB: TestStack['gateway'];
  let subgraphs: ReturnType<typeof countRequests>;
  let streamReader: RedisClient;
  let stream: RedisEventStream;
  /** Through replica A (the stack's own gateway) or B. */
  const viaA = <T = Record<string, unknown>>(query: string, headers?: Record<string, string>, variables?: Record<string, unknown>) =>
    stack.request<T>(query, variables, headers);
  const viaB = <T = Record<string, unknown>>(query: string, headers?: Record<string, string>, variables?: Record<string, unknown>) =>
    graphql<T>(replicaB, query, variables, headers ?? stack.admin);

  beforeAll(async () => {
    stack = await startTestStack({ responseCache: { maxTtlSeconds: 300, typeTtlSeconds: { OrderItem: 7 } } });
    await seed(stack.databases, { users: 6, ordersPerUser: 2 });
    ({ url: replicaB, gateway: gatewayB } = await stack.addGateway());
    subgraphs = countRequests(stack.httpServers);
    streamReader = createRedisClient(testRedisUrl(), { patient: true });
    await waitForRedis(streamReader, 30_000);
    stream = new RedisEventStream(streamReader, stack.keyPrefix);
  });
  afterAll(async () => {
    streamReader?.disconnect();
    await stack?.teardown();
  });

  /**
   * Waits until both replicas have applied the purge of every event committed so far: a replica applies its own
   * writes' events before answering them, and the other's when it hears them on the bus, once each. That later
   * purge drops whatever matching answer the replica stored in between (it was fresh: the writer's purge came
   * first), so a test expecting the next read to be a hit waits for it. On a cluster the bus is often slower
   * than a read.
   */
  const purgesLanded = () =>
    waitFor(async () => {
      // Read each time: a write whose event was slow to reach the stream has already been applied by its writer.
      const committed = (await stream.read({}, null, 10_000)).length;
      // At least: a replica can purge more than the events (a full invalidation after Sentinel's client reconnects).
      for (const gateway of [stack.gateway, gatewayB]) expect(gateway.responseCache?.stats.invalidations ?? 0).toBeGreaterThanOrEqual(committed);
    });
  beforeEach(purgesLanded);

  it('answers a repeated query from the cache, with Age and the public policy, without asking a subgraph', async () => {
    const query = '{ user(id: "1") { name } }';
    const first = await subgraphs.during(() => viaA(query));
    expect(first.users).toBe(1);
    expect(isHit(first.value)).toBe(false);
    expect(first.value.headers.get('cache-control')).toBe('max-age=60, public');

    const second = await subgraphs.during(() => viaA(query));
    expect(second.value.data).toEqual(first.value.data);
    expect({ users: second.users, orders: second.orders }).toEqual({ users: 0, orders: 0 });
    expect(Number(second.value.headers.get('age'))).toBeGreaterThanOrEqual(0);
    expect(second.value.headers.get('cache-control')).toBe('max-age=60, public');
    expect(second.value.headers.get('content-type')).toBe(first.value.headers.get('content-type'));

    // The other replica shares the entry.
    const onB = await subgraphs.during(() => viaB(query));
    expect(isHit(onB.value)).toBe(true);
    expect(onB.users).toBe(0);

    // A replica that joins while others listen (a deploy, a scale-out) finds the shared cache warm.
    const joined = await stack.addGateway();
    const onNew = await subgraphs.during(() => graphql(joined.url, query, undefined, stack.admin));
    expect(isHit(onNew.value)).toBe(true);
    expect(onNew.users).toBe(0);
  });

  it('serves the new name through replica A immediately after updateUser through replica B', async () => {
    const query = '{ user(id: "2") { name } users(first: 20) { edges { node { name } } } }';
    await viaA(query);
    expect(isHit(await viaA(query))).toBe(true);

    const renamed = await viaB<{ updateUser: { name: string } }>('mutation { updateUser(id: "2", input: { name: "Renamed Via B" }) { name } }');
    expect(renamed.data?.updateUser.name).toBe('Renamed Via B');
    expect(renamed.headers.get('cache-control')).toBe('no-store');

    const after = await viaA<{ user: { name: string }; users: { edges: { node: { name: string } }[] } }>(query);
    expect(isHit(after)).toBe(false);
    expect(after.data?.user.name).toBe('Renamed Via B');
    expect(after.data?.users.edges.map((edge) => edge.node.name)).toContain('Renamed Via B');
  });

  it('leaves no stale list or totalCount after createUser and deleteUser', async () => {
    const list = '{ users(first: 50) { totalCount edges { node { id name } } } }';
    type List = { users: { totalCount: number; edges: { node: { id: string; name: string } }[] } };
    const before = await viaA<List>(list);
    expect(isHit(await viaA(list))).toBe(true);

    const created = await viaB<{ createUser: { id: string } }>('mutation { createUser(input: { email: "cache-new@example.com", name: "Cache New" }) { id } }');
    const id = created.data?.createUser.id;
    const withNew = await viaA<List>(list);
    expect(withNew.data?.users.totalCount).toBe(before.data!.users.totalCount + 1);
    expect(withNew.data?.users.edges.map((edge) => edge.node.name)).toContain('Cache New');
    await purgesLanded();
    await viaA(list);
    expect(isHit(await viaA(list))).toBe(true);

    await viaB(`mutation { deleteUser(id: "${id}") }`);
    const withoutNew = await viaA<List>(list);
    expect(withoutNew.data?.users.totalCount).toBe(before.data!.users.totalCount);
    expect(withoutNew.data?.users.edges.map((edge) => edge.node.id)).not.toContain(id);
  });

  it('keeps User.orders and orderCount fresh after placeOrder and cancelOrder', async () => {
    const owner = await signedInAs('3');
    const query = '{ user(id: "3") { orderCount totalSpentCents orders(first: 10) { totalCount edges { node { id status } } } } }';
    type Orders = { user: { orderCount: number; totalSpentCents: number; orders: { totalCount: number; edges: { node: { id: string; status: string } }[] } } };
    const before = await viaA<Orders>(query, owner);
    expect(before.headers.get('cache-control')).toBe('max-age=60, private');
    expect(isHit(await viaA(query, owner))).toBe(true);

    const placed = await viaB<{ placeOrder: { id: string } }>(
      'mutation { placeOrder(input: { userId: "3", items: [{ sku: "CACHE-1", quantity: 2, unitPriceCents: 500 }] }) { id } }',
      owner,
    );
    const orderId = placed.data?.placeOrder.id;
    const afterPlace = await viaA<Orders>(query, owner);
    expect(afterPlace.data?.user.orderCount).toBe(before.data!.user.orderCount + 1);
    expect(afterPlace.data?.user.totalSpentCents).toBe(before.data!.user.totalSpentCents + 1_000);
    expect(afterPlace.data?.user.orders.totalCount).toBe(before.data!.user.orders.totalCount + 1);
    await purgesLanded();
    await viaA(query, owner);
    expect(isHit(await viaA(query, owner))).toBe(true);

    await viaB(`mutation { cancelOrder(id: "${orderId}") { status } }`, owner);
    const afterCancel = await viaA<Orders>(query, owner);
    expect(afterCancel.data?.user.orders.edges.find((edge) => edge.node.id === orderId)?.node.status).toBe('CANCELLED');
    expect(afterCancel.data?.user.totalSpentCents).toBe(before.data!.user.totalSpentCents);
  });

  it('purges after a write made directly against a subgraph, from the event that subgraph publishes', async () => {
    const query = '{ user(id: "4") { name } }';
    await viaA(query);
    expect(isHit(await viaA(query))).toBe(true);

    // Another service (or a script) holding the users subgraph's secret: no gateway is involved in the write.
    const direct = await signedGraphql<{ updateUser: { name: string } }>(
      stack.urls.users,
      { secret: stack.secrets.users, audience: 'users', viewer: { userId: '4', role: 'user' } },
      'mutation { updateUser(id: "4", input: { name: "Written Directly" }) { name } }',
    );
    expect(direct.data?.updateUser.name).toBe('Written Directly');

    // The purge follows the event over Redis pub/sub: milliseconds, not the 60 s TTL.
    const started = Date.now();
    for (const via of [viaA, viaB]) {
      await waitFor(async () => expect((await via<{ user: { name: string } }>(query)).data?.user.name).toBe('Written Directly'));
    }
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('never serves one viewer’s private answer to another viewer or to an anonymous one', async () => {
    const query = '{ me { id email } }';
    const [ada, bob] = [await signedInAs('5'), await signedInAs('6')];
    const adaFirst = await viaA<{ me: { id: string; email: string } }>(query, ada);
    expect(adaFirst.headers.get('cache-control')).toBe('max-age=60, private');
    const adaAgain = await viaA<{ me: { id: string; email: string } }>(query, ada);
    expect(isHit(adaAgain)).toBe(true);
    expect(adaAgain.data?.me.id).toBe('5');

    const bobs = await viaA<{ me: { id: string; email: string } }>(query, bob);
    expect(isHit(bobs)).toBe(false);
    expect(bobs.data?.me.id).toBe('6');
    expect(bobs.data?.me.email).not.toBe(adaFirst.data?.me.email);

    // Anonymous viewers neither read nor create private entries: each asks the subgraph.
    for (let i = 0; i < 2; i += 1) {
      const anonymous = await subgraphs.during(() => viaA<{ me: null }>(query, {}));
      expect(anonymous.value.data?.me).toBeNull();
      expect(isHit(anonymous.value)).toBe(false);
      expect(anonymous.users).toBe(1);
    }

    // The same user with an admin token is another viewer: an admin's answers never reach their user token.
    const adaAsAdmin = await viaA(query, await signedInAs('5', 'admin'));
    expect(isHit(adaAsAdmin)).toBe(false);
  });

  it('never caches errors, partial answers or mutations', async () => {
    const unknown = '{ user(id: "999999") { name } }';
    for (let i = 0; i < 2; i += 1) {
      const response = await subgraphs.during(() => viaA(unknown));
      expect(response.value.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
      expect(isHit(response.value)).toBe(false);
      expect(response.users).toBe(1);
    }
    // Email of someone else: data with a FORBIDDEN error inside.
    const partial = '{ user(id: "1") { name email } }';
    const viewer = await signedInAs('2');
    for (let i = 0; i < 2; i += 1) {
      const response = await viaA(partial, viewer);
      expect(response.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
      expect(isHit(response)).toBe(false);
    }
    const mutation = 'mutation { updateUser(id: "1", input: { name: "Same Name" }) { name } }';
    for (let i = 0; i < 2; i += 1) expect((await subgraphs.during(() => viaA(mutation))).users).toBe(1);
  });

  it('runs identical concurrent misses once on a replica and shares the answer', async () => {
    const query = '{ users(first: 6) { edges { node { name orders(first: 2) { edges { node { id } } } } } } }';
    const burst = await subgraphs.during(() => Promise.all(Array.from({ length: 25 }, () => viaA(query))));
    // One execution: one users fetch and one orders fetch, for 25 clients.
    expect({ users: burst.users, orders: burst.orders }).toEqual({ users: 1, orders: 1 });
    const bodies = new Set(burst.value.map((response) => JSON.stringify(response.data)));
    expect(bodies.size).toBe(1);
    expect(burst.value.every((response) => response.errors === undefined)).toBe(true);
  });

  it('caps the TTL of answers that contain a capped type, in the Cache-Control header too', async () => {
    const withItems = '{ order(id: "1") { items { sku } } }';
    const first = await viaA(withItems);
    expect(first.headers.get('cache-control')).toBe('max-age=7, private');
    const again = await viaA(withItems);
    expect(isHit(again)).toBe(true);
    expect(again.headers.get('cache-control')).toBe('max-age=7, private');
  });

  it('supports automatic persisted queries on the shared cache: registered on A, used by hash on B', async () => {
    const query = '{ user(id: "1") { id createdAt } }';
    const sha256Hash = createHash('sha256').update(query).digest('hex');
    const extensions = { persistedQuery: { version: 1, sha256Hash } };
    const post = (url: string, body: unknown) =>
      fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...stack.admin }, body: JSON.stringify(body) });

    const unknownHash = (await (await post(replicaB, { extensions: { persistedQuery: { version: 1, sha256Hash: 'f'.repeat(64) } } })).json()) as {
      errors: { extensions: { code: string } }[];
    };
    expect(unknownHash.errors[0]?.extensions.code).toBe('PERSISTED_QUERY_NOT_FOUND');

    const registered = await post(stack.urls.gateway, { query, extensions });
    expect(registered.status).toBe(200);
    const byHash = await post(replicaB, { extensions });
    expect(await byHash.json()).toEqual(await registered.json());
    expect(byHash.headers.get('age')).not.toBeNull();

    // A GET by hash (what CDNs cache) works too, with the CSRF header Apollo asks for.
    const search = new URLSearchParams({ extensions: JSON.stringify(extensions) });
    const viaGet = await fetch(`${replicaB}?${search}`, { headers: { 'apollo-require-preflight': 'true', ...stack.admin } });
    expect(viaGet.status).toBe(200);
    expect(viaGet.headers.get('age')).not.toBeNull();
    // Without it, the cache does not answer either: Apollo refuses it.
    expect((await fetch(`${replicaB}?${search}`, { headers: stack.admin })).status).toBe(400);
  });

  it('answers what Apollo would refuse as Apollo does, even when an identical query is cached', async () => {
    const query = '{ user(id: "1") { name } }';
    await viaA(query);
    expect(isHit(await viaA(query))).toBe(true);
    const send = (headers: Record<string, string>, body: string) => fetch(stack.urls.gateway, { method: 'POST', headers: { ...stack.admin, ...headers }, body });
    // A content type a browser may send cross-site without a preflight: CSRF, even though the answer is cached.
    const csrf = await send({ 'content-type': 'text/plain; a=json' }, JSON.stringify({ query }));
    expect(csrf.status).toBe(400);
    // A client alias that clashes with the key the cache adds to subgraph fetches still gets its answer.
    const aliased = await viaA<{ user: { _cacheKey_id: string } }>('{ user(id: "1") { _cacheKey_id: name } }');
    expect(aliased.errors).toBeUndefined();
    expect(aliased.data?.user._cacheKey_id).toBeTruthy();
    // Variables nested too deep to key are answered by Apollo, not a 500.
    const deep = `${'['.repeat(200_000)}1${']'.repeat(200_000)}`;
    const nested = await send({ 'content-type': 'application/json' }, `{"query":"query ($x: Int) { user(id: \\"1\\") { name } }","variables":{"x":${deep}}}`);
    expect(nested.status).toBe(400);
  });

  it('keeps serving a cached answer while the subgraph behind it is down (nothing could have changed it)', async () => {
    const query = '{ user(id: "1") { id name } }';
    const live = await viaA(query);
    expect(live.errors).toBeUndefined();
    // Last test of the suite: the users subgraph does not come back.
    await stack.stopSubgraph('users');
    const cached = await viaB(query);
    expect(isHit(cached)).toBe(true);
    expect(cached.data).toEqual(live.data);
    const uncached = await viaB('{ user(id: "1") { id name updatedAt } }');
    expect(uncached.errors?.[0]?.extensions?.code).toBe('SUBGRAPH_UNAVAILABLE');
  });
});

describe('the response cache over four stream partitions (EVENT_STREAM_PARTITIONS=4)', () => {
  it("purges both replicas' answers about a user whose events go to a partition past 0, from the append's own doorbell", async () => {
    const retention = { perUser: 1_000, log: 100_000, partitions: 4 };
    const stack = await startTestStack({ retention, responseCache: { maxTtlSeconds: 300 } });
    const reader = createRedisClient(testRedisUrl(), { patient: true });
    try {
      await seed(stack.databases, { users: 6, ordersPerUser: 0 });
      const { url: replicaB, gateway: gatewayB } = await stack.addGateway();
      await waitForRedis(reader, 30_000);
      const stream = new RedisEventStream(reader, stack.keyPrefix, retention);
      let userId = '';
      for (let id = 1; id <= 6 && !userId; id += 1) if (/^p[1-9]/.test(await stream.channel({ userId: String(id) }))) userId = String(id);
      expect(userId).not.toBe('');
      const query = `{ user(id: "${userId}") { name } }`;
      await graphql(replicaB, query, undefined, stack.admin);
      expect(isHit(await graphql(replicaB, query, undefined, stack.admin))).toBe(true);
      const heardBefore = gatewayB.responseCache?.stats.invalidations ?? 0;

      // Written through replica A: B hears of it only from the stream's partition.
      const write = await stack.request('mutation ($id: ID!) { updateUser(id: $id, input: { name: "Partitioned" }) { id } }', { id: userId }, await signedInAs(userId));
      expect(write.errors).toBeUndefined();
      await waitFor(() => expect(gatewayB.responseCache?.stats.invalidations ?? 0).toBeGreaterThan(heardBefore));
      const after = await graphql<{ user: { name: string } }>(replicaB, query, undefined, stack.admin);
      expect(after.data?.user.name).toBe('Partitioned');
    } finally {
      reader.disconnect();
      await stack.teardown();
    }
  });
});

describe('the response cache when Redis goes away', () => {
  let stack: TestStack;
  let redis: RedisBehindProxies;
  let teardown: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    ({ stack, redis, teardown } = await startStackBehindRedisProxy({ users: 3, ordersPerUser: 1 }));
  });
  afterAll(() => teardown?.());

  it('answers every request uncached and quickly while Redis is down, and serves nothing stale once it is back', async () => {
    const query = '{ users(first: 3) { edges { node { id name } } } }';
    const names = (response: GraphQLResponse<{ users: { edges: { node: { name: string } }[] } }>) =>
      response.data?.users.edges.map((edge) => edge.node.name);
    await stack.request(query);
    await waitFor(async () => expect(isHit(await stack.request(query))).toBe(true));

    const latencies: number[] = [];
    const timed = async () => {
      const started = performance.now();
      const response = await stack.request<{ users: { edges: { node: { name: string } }[] } }>(query);
      latencies.push(performance.now() - started);
      return response;
    };
    const load = (async () => {
      const responses = [];
      for (let i = 0; i < 40; i += 1) responses.push(await timed());
      return responses;
    })();
    await new Promise((resolve) => setTimeout(resolve, 20));
    await redis.setListening(false);

    // A write while Redis is away: its purge cannot happen, and the cached list it changed stays in Redis.
    const renamed = await stack.request('mutation { updateUser(id: "1", input: { name: "Renamed During Outage" }) { name } }');
    expect(renamed.errors).toBeUndefined();
    const during = await load;
    expect(during.every((response) => response.errors === undefined && response.status === 200)).toBe(true);
    // Stated bound: no request waits on Redis; each stays well under half a second.
    expect(Math.max(...latencies)).toBeLessThan(500);
    const lastDuring = during.at(-1)!;
    expect(isHit(lastDuring)).toBe(false);
    expect(names(lastDuring)).toContain('Renamed During Outage');
    expect(stack.gateway.responseCache?.stats.errors).toBeGreaterThan(0);

    await redis.setListening(true);
    // Back: caching resumes by itself, and the entry from before the outage is never served.
    const resumed = await waitFor(async () => {
      await stack.request(query);
      const response = await stack.request<{ users: { edges: { node: { name: string } }[] } }>(query);
      expect(isHit(response)).toBe(true);
      return response;
    }, 10_000);
    expect(names(resumed)).toContain('Renamed During Outage');
  });
});

describe('the response cache when Redis stalls around a write (two replicas on a Redis of this test’s own)', () => {
  let redis: PrivateRedis;
  let stack: TestStack;
  let replicaB: { url: string; gateway: TestStack['gateway'] };
  const replicas = () => [stack.urls.gateway, replicaB.url];
  const read = (url: string, id: string) => graphql<{ user: { name: string } }>(url, `{ user(id: "${id}") { name } }`, undefined, stack.admin);
  const rename = (id: string, name: string) =>
    stack.request<{ updateUser: { name: string } }>('mutation ($id: ID!, $name: String!) { updateUser(id: $id, input: { name: $name }) { name } }', { id, name });
  /** Reads until the answer is a cache hit again (the cache serves again), returning every name it saw. */
  const readUntilHit = async (url: string, id: string) => {
    const names: (string | undefined)[] = [];
    await waitFor(
      async () => {
        const response = await read(url, id);
        names.push(response.data?.user.name);
        expect(isHit(response)).toBe(true);
      },
      15_000,
      50,
    );
    return names;
  };
  /**
   * Both replicas hold `id`'s answer, then Redis stalls for `ms` while a read on each replica asks it: each
   * read's rate-limit call and then its cache lookup exceed the 200 ms command timeout, and every store's
   * breaker opens (checked: both count the failure). `during` runs alongside those reads.
   */
  const stall = async (id: string, ms: number, during?: () => Promise<unknown>) => {
    for (const url of replicas()) await waitFor(async () => expect(isHit(await read(url, id))).toBe(true), 10_000, 50);
    const errors = () => [stack.gateway.responseCache?.stats.errors ?? 0, replicaB.gateway.responseCache?.stats.errors ?? 0];
    const before = errors();
    await redis.pause(ms);
    const [written] = await Promise.all([during?.(), ...replicas().map((url) => read(url, id))]);
    const after = errors();
    expect(after[0]).toBeGreaterThan(before[0]!);
    expect(after[1]).toBeGreaterThan(before[1]!);
    return written;
  };

  beforeAll(async () => {
    redis = await startRedisServer();
    stack = await startTestStack({ redisUrl: redis.url });
    await seed(stack.databases, { users: 4, ordersPerUser: 0 });
    replicaB = await stack.addGateway();
  });
  afterAll(async () => {
    await stack?.teardown();
    await redis?.stop();
  });

  it('shows a write made through a gateway just after the stall (breakers still open) on both replicas, from its answer on', async () => {
    await stall('1', 500);
    const renamed = await rename('1', 'Written After A Stall');
    expect(renamed.data?.updateUser.name).toBe('Written After A Stall');
    for (const url of replicas()) expect(new Set(await readUntilHit(url, '1'))).toEqual(new Set(['Written After A Stall']));
  });

  it('shows a write whose own purge times out on both replicas, from its answer on (the answer waits for the purge)', async () => {
    const renamed = (await stall('2', 800, () => rename('2', 'Written In A Stall'))) as Awaited<ReturnType<typeof rename>>;
    expect(renamed.data?.updateUser.name).toBe('Written In A Stall');
    for (const url of replicas()) expect(new Set(await readUntilHit(url, '2'))).toEqual(new Set(['Written In A Stall']));
  });

  it('purges on both replicas for a write made directly against a subgraph, heard over pub/sub while their breakers were open', async () => {
    await stall('3', 500);
    const direct = await signedGraphql<{ updateUser: { name: string } }>(
      stack.urls.users,
      { secret: stack.secrets.users, audience: 'users', viewer: { userId: '3', role: 'user' } },
      'mutation { updateUser(id: "3", input: { name: "Written Directly After A Stall" }) { name } }',
    );
    expect(direct.data?.updateUser.name).toBe('Written Directly After A Stall');
    // The event's trip over the bus is the documented window; once the cache serves again it serves the write.
    for (const url of replicas()) expect((await readUntilHit(url, '3')).at(-1)).toBe('Written Directly After A Stall');
  });
});

describe('the response cache switched off, and on the embedded in-memory default', () => {
  it('never answers from a cache when it is off', async () => {
    const stack = await startTestStack({ responseCache: null });
    try {
      await seed(stack.databases, { users: 2, ordersPerUser: 1 });
      const subgraphs = countRequests(stack.httpServers);
      for (let i = 0; i < 2; i += 1) {
        const response = await subgraphs.during(() => stack.request('{ user(id: "1") { name } }'));
        expect(isHit(response.value)).toBe(false);
        expect(response.users).toBe(1);
      }
      expect(stack.gateway.responseCache).toBeUndefined();
    } finally {
      await stack.teardown();
    }
  });

  it('caches and purges in memory when no Redis is configured', async () => {
    const stack = await startTestStack({ redisUrl: undefined });
    try {
      await seed(stack.databases, { users: 2, ordersPerUser: 1 });
      const query = '{ user(id: "1") { name } }';
      await stack.request(query);
      expect(isHit(await stack.request(query))).toBe(true);
      await stack.request('mutation { updateUser(id: "1", input: { name: "Memory Renamed" }) { name } }');
      const after = await stack.request<{ user: { name: string } }>(query);
      expect(after.data?.user.name).toBe('Memory Renamed');
    } finally {
      await stack.teardown();
    }
  });
});
