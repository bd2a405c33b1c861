// Federated subscriptions end to end: real graphql-ws clients on the gateway, which runs the root field on the
// users subgraph over graphql-ws and completes every event from orders through _entities; real Redis pub/sub
// between the subgraphs and Postgres underneath.
import { createAuthenticator, createGateway } from '@fed/gateway';
import { createInfrastructure, createMemoryCache, listen, MemoryRateLimiter, type Infrastructure } from '@fed/platform';
import { graphql, recordStream, signedGraphql, startTcpProxy, testRedisUrl, waitFor, type RecordedStream } from '@fed/platform/testing';
import { createClient, type Client, type FormattedExecutionResult } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { seed } from '../src/seed.ts';
import { signedInAs, silentLogger, startGatewayTo, startTestStack, startUsersReplica, supergraphSdl, TEST_AUTH, tokenFor, type TestStack } from './harness.ts';

const EVENTS = `subscription Follow($userId: ID) {
  userEvents(userId: $userId) {
    kind
    user { name orders(first: 3) { totalCount } }
    order { status totalCents items { sku } }
  }
}`;

type Stream = RecordedStream<FormattedExecutionResult<Record<string, unknown>, unknown>>;


describe('federated subscriptions through the gateway', () => {
  let stack: TestStack;
  /** The stack's bus as another process of it sees it: a client of whatever topology TEST_REDIS_URL names. */
  let bus: Infrastructure;
  const clients: Client[] = [];
  const wsUrl = () => stack.urls.gateway.replace(/^http/, 'ws');

  const connect = async (sub?: string, role: 'user' | 'admin' = 'user') => {
    const token = sub ? await tokenFor(sub, role) : undefined;
    const client = createClient({
      url: wsUrl(),
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      connectionParams: token ? { authorization: `Bearer ${token}` } : {},
    });
    clients.push(client);
    return client;
  };

  const follow = (client: Client, variables: Record<string, unknown>, query = EVENTS): Stream => {
    const stream: Stream = recordStream();
    stream.stop = client.subscribe({ query, variables }, stream.sink);
    return stream;
  };

  /** Subscriptions Redis holds for a user's channel, across every process (on a cluster, on the node the channel lives on). */
  const listeners = (channel: string) => bus.pubsub.subscribers(channel);

  beforeAll(async () => {
    stack = await startTestStack();
    await seed(stack.databases, { users: 4, ordersPerUser: 1 });
    bus = await createInfrastructure({ redisUrl: testRedisUrl(), logger: silentLogger(), keyPrefix: stack.keyPrefix });
  });
  afterAll(async () => {
    for (const client of clients) await client.dispose();
    await bus?.close();
    await stack?.teardown();
  });

  it('delivers each committed event with fields from both subgraphs, in order, and releases the channel after complete', async () => {
    const client = await connect('2');
    const stream = follow(client, { userId: '2' });
    await waitFor(async () => expect(await listeners('user-events:2')).toBe(1));

    const viewer = await signedInAs('2');
    const renamed = await stack.request('mutation { updateUser(id: "2", input: { name: "Streamed Name" }) { id } }', undefined, viewer);
    expect(renamed.errors).toBeUndefined();
    // Fields of other subgraphs are read at delivery: the order waits until the rename's event is out, so that
    // the event shows the count from before it.
    await waitFor(() => expect(stream.results).toHaveLength(1));
    const placed = await stack.request(
      'mutation { placeOrder(input: { userId: "2", items: [{ sku: "SUB-1", quantity: 2, unitPriceCents: 250 }] }) { id } }',
      undefined,
      viewer,
    );
    expect(placed.errors).toBeUndefined();

    await waitFor(() => expect(stream.results).toHaveLength(2));
    const [updated, ordered] = stream.results.map((result) => result.data?.userEvents) as {
      kind: string;
      user: { name: string; orders: { totalCount: number } };
      order: { status: string; totalCents: number; items: { sku: string }[] } | null;
    }[];
    expect(updated).toMatchObject({ kind: 'USER_UPDATED', user: { name: 'Streamed Name', orders: { totalCount: 1 } }, order: null });
    expect(ordered).toMatchObject({
      kind: 'ORDER_PLACED',
      user: { name: 'Streamed Name', orders: { totalCount: 2 } },
      order: { status: 'PENDING', totalCents: 500, items: [{ sku: 'SUB-1' }] },
    });
    expect(stream.results.every((result) => result.errors === undefined)).toBe(true);

    stream.stop();
    await waitFor(async () => expect(await listeners('user-events:2')).toBe(0));
  });

  it("refuses another user's stream with FORBIDDEN, and a bad token by closing with 4403", async () => {
    const client = await connect('3');
    const refused = follow(client, { userId: '2' });
    await waitFor(() => expect(refused.completed || refused.error !== undefined).toBe(true));
    expect(refused.results[0]?.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');

    const socket = new WebSocket(wsUrl(), 'graphql-transport-ws');
    await new Promise((resolve) => socket.once('open', resolve));
    socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: 'Bearer not-a-token' } }));
    const code = await new Promise<number>((resolve) => socket.once('close', (closeCode: number) => resolve(closeCode)));
    expect(code).toBe(4403);
  });

  it('closes the socket with 4401 when the token it was opened with expires', async () => {
    const client = createClient({
      url: wsUrl(),
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      // exp is whole seconds: this token lives one to two seconds.
      connectionParams: { authorization: `Bearer ${await tokenFor('2', 'user', 2)}` },
    });
    clients.push(client);
    const closed = new Promise<number>((resolve) => client.on('closed', (event) => resolve((event as { code: number }).code)));
    follow(client, { userId: '2' });
    expect(await closed).toBe(4401);
  });

  it('closes at expiry whatever the spacing of the Authorization value (it is read as the authenticator reads it)', async () => {
    const client = createClient({
      url: wsUrl(),
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      connectionParams: { authorization: `  Bearer ${await tokenFor('2', 'user', 2)} ` },
    });
    clients.push(client);
    const closed = new Promise<number>((resolve) => client.on('closed', (event) => resolve((event as { code: number }).code)));
    follow(client, { userId: '2' });
    expect(await closed).toBe(4401);
  });

  it('completes fields that go back to the subgraph that owns the subscription (order → user)', async () => {
    const client = await connect('3');
    const stream = follow(client, { userId: '3' }, 'subscription ($userId: ID) { userEvents(userId: $userId) { kind order { id user { name } } } }');
    await waitFor(async () => expect(await listeners('user-events:3')).toBe(1));
    await stack.request('mutation { placeOrder(input: { userId: "3", items: [{ sku: "ROUND-TRIP", quantity: 1, unitPriceCents: 1 }] }) { id } }', undefined, await signedInAs('3'));
    await waitFor(() => expect(stream.results).toHaveLength(1));
    expect(stream.results[0]?.errors).toBeUndefined();
    expect(stream.results[0]?.data?.userEvents).toMatchObject({ kind: 'ORDER_PLACED', order: { user: { name: expect.any(String) } } });
    stream.stop();
  });

  it('caps the subscriptions one connection may hold at 200', async () => {
    const client = await connect('1000000', 'admin');
    // Distinct as sent (the same subscription again on a socket replaces the one running), the same once parsed.
    const streams = Array.from({ length: 201 }, (_, i) => follow(client, { userId: '1' }, EVENTS + ' '.repeat(i)));
    await waitFor(() => expect(streams[200]!.error ?? streams[200]!.results[0]).toBeDefined());
    expect(JSON.stringify(streams[200]!.error ?? streams[200]!.results)).toContain('At most 200 subscriptions per connection');
    expect(streams.slice(0, 200).every((stream) => stream.error === undefined && !stream.completed)).toBe(true);
    for (const stream of streams) stream.stop();
    await waitFor(async () => expect(await listeners('user-events:1')).toBe(0));
  });

  it('answers bad documents and variables with the codes HTTP uses', async () => {
    const client = await connect('2');
    const outcome = async (query: string, variables: Record<string, unknown> = {}) => {
      const stream = follow(client, variables, query);
      await waitFor(() => expect(stream.error ?? stream.results[0]).toBeDefined());
      return JSON.stringify(stream.error ?? stream.results);
    };
    expect(await outcome('subscription { userEvents(')).toContain('GRAPHQL_PARSE_FAILED');
    const unknownField = await outcome('subscription { userEvents { kinds } }');
    expect(unknownField).toContain('GRAPHQL_VALIDATION_FAILED');
    expect(unknownField).not.toMatch(/Did you mean/);
    // A variable of the wrong type is refused before anything runs, not passed upstream.
    const wrongType = await outcome('subscription ($first: Int) { userEvents(userId: "2") { user { orders(first: $first) { totalCount } } } }', { first: '5000' });
    expect(wrongType).toContain('BAD_USER_INPUT');
  });

  it('streams every user’s events to an admin', async () => {
    const before = stack.usersSubscriptions();
    const client = await connect('1000000', 'admin');
    const firehose = follow(client, {});
    // The firehose shares its Redis connection with the stack's other listeners, so no count shows when it is
    // live: write until an event arrives.
    await waitFor(async () => {
      await stack.request('mutation { updateUser(id: "4", input: { name: "Seen By Admin" }) { id } }');
      expect(firehose.results.map((result) => (result.data?.userEvents as { user: { name: string } }).user.name)).toContain('Seen By Admin');
    });
    firehose.stop();
    await waitFor(() => expect(stack.usersSubscriptions()).toBeLessThanOrEqual(before));
  });

  it('releases the upstream subscription and its channel when a client vanishes without completing', async () => {
    const before = stack.usersSubscriptions();
    const client = await connect('1000000', 'admin');
    follow(client, { userId: '3' });
    await waitFor(async () => expect(await listeners('user-events:3')).toBe(1));
    // An abrupt end, no complete message: the socket just goes.
    client.terminate();
    await waitFor(async () => expect(await listeners('user-events:3')).toBe(0));
    await waitFor(() => expect(stack.usersSubscriptions()).toBeLessThanOrEqual(before));
  });

  it('shares one upstream subscription among 100 identical ones on a replica, and gives every client each event', async () => {
    // Ten sockets of one user, ten on each: the same subscription again on one socket would replace the one
    // running, so each differs as sent, in whitespace only.
    const sockets = await Promise.all(Array.from({ length: 10 }, () => connect('1')));
    // Upstreams the earlier tests closed may still be winding down at the subgraph: count from a settled figure.
    let before = stack.usersSubscriptions();
    await waitFor(async () => {
      const previous = before;
      await new Promise((resolve) => setTimeout(resolve, 200));
      before = stack.usersSubscriptions();
      expect(before).toBe(previous);
    }, 5_000);
    const streams = Array.from({ length: 100 }, (_, i) => follow(sockets[i % 10]!, { userId: '1' }, EVENTS + ' '.repeat(Math.floor(i / 10))));
    await waitFor(async () => expect(await listeners('user-events:1')).toBe(1));
    // Counted at the users subgraph: one subscription for a hundred clients (it may still be opening).
    await waitFor(() => expect(stack.usersSubscriptions() - before).toBe(1));

    await stack.request('mutation { updateUser(id: "1", input: { name: "Told A Hundred Times" }) { id } }', undefined, await signedInAs('1'));
    await waitFor(() => expect(streams.every((stream) => stream.results.length === 1)).toBe(true));
    for (const stream of streams) expect(stream.results[0]?.data?.userEvents).toMatchObject({ kind: 'USER_UPDATED', user: { name: 'Told A Hundred Times' } });

    // The upstream stays while any client does, and goes with the last.
    for (const stream of streams.slice(1)) stream.stop();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(stack.usersSubscriptions() - before).toBe(1);
    streams[0]!.stop();
    await waitFor(() => expect(stack.usersSubscriptions()).toBe(before));
    await waitFor(async () => expect(await listeners('user-events:1')).toBe(0));
  });

  it('delivers every event to clients of either gateway replica, whichever replica the writes went through', async () => {
    const replica = await stack.addGateway();
    const viaReplica = createClient({
      url: replica.url.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      connectionParams: { authorization: `Bearer ${await tokenFor('4')}` },
    });
    clients.push(viaReplica);
    const [first, second] = [follow(await connect('4'), { userId: '4' }), follow(viaReplica, { userId: '4' })];
    await waitFor(() => expect(stack.usersSubscriptions()).toBeGreaterThanOrEqual(2));
    await waitFor(async () => expect(await listeners('user-events:4')).toBe(1));

    const viewer = await signedInAs('4');
    // A write through the replica, then one through the first gateway.
    await graphql(replica.url, 'mutation { updateUser(id: "4", input: { name: "Via Replica" }) { id } }', undefined, viewer);
    await stack.request('mutation { placeOrder(input: { userId: "4", items: [{ sku: "BOTH", quantity: 1, unitPriceCents: 100 }] }) { id } }', undefined, viewer);
    for (const stream of [first, second]) {
      await waitFor(() => expect(stream.results).toHaveLength(2));
      expect(stream.results.map((result) => (result.data?.userEvents as { kind: string }).kind)).toEqual(['USER_UPDATED', 'ORDER_PLACED']);
      expect(stream.results[1]?.data?.userEvents).toMatchObject({ user: { name: 'Via Replica' }, order: { items: [{ sku: 'BOTH' }] } });
    }

    // A replica going away closes its sockets with 1001, so clients reconnect elsewhere.
    const closed = new Promise<number>((resolve) => viaReplica.on('closed', (event) => resolve((event as { code: number }).code)));
    await replica.gateway.stop();
    expect(await closed).toBe(1001);
  });

  it('applies the HTTP operation limits, and answers a query as HTTP does (issue 22; it used to be refused with BAD_REQUEST)', async () => {
    const client = await connect('2');
    const aliases = Array.from({ length: 20 }, (_, i) => `k${i}: kind`).join(' ');
    const tooMany = follow(client, { userId: '2' }, `subscription ($userId: ID) { userEvents(userId: $userId) { ${aliases} } }`);
    await waitFor(() => expect(tooMany.error ?? tooMany.results[0]).toBeDefined());
    expect(JSON.stringify(tooMany.error ?? tooMany.results)).toContain('ALIAS_LIMIT_EXCEEDED');

    const query = follow(client, {}, '{ me { id } }');
    await waitFor(() => expect(query.completed || query.error !== undefined).toBe(true));
    expect(query.error).toBeUndefined();
    const http = await graphql(stack.urls.gateway, '{ me { id } }', undefined, await signedInAs('2'));
    expect(http.errors).toBeUndefined();
    expect(query.results).toEqual([{ data: http.data }]);
  });
});

describe('two gateway replicas in front of two users replicas, plus orders', () => {
  let stack: TestStack;
  const closers: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const close of closers.reverse()) await close();
    await stack?.teardown();
  });

  it('delivers every event to clients of both gateways in order, and keeps them subscribed when a users replica dies', async () => {
    stack = await startTestStack();
    await seed(stack.databases, { users: 3, ordersPerUser: 1 });
    // A second users replica: the same database, the same Redis, the same secrets.
    const usersReplica = await startUsersReplica(stack);
    closers.push(() => usersReplica.stop());
    const { app: replica, url: replicaUrl } = usersReplica;
    // Round robin over both replicas, as a load balancer without sticky sessions would.
    const balancer = await startTcpProxy([stack.urls.users, replicaUrl]);
    closers.push(() => balancer.close());

    const startGateway = async () => {
      const gateway = await startGatewayTo(stack, balancer.url);
      closers.push(() => gateway.stop());
      return gateway.url;
    };
    const gateways = [await startGateway(), await startGateway()] as const;
    const streams = await Promise.all(
      gateways.map(async (url) => {
        const client = createClient({
          url: url.replace(/^http/, 'ws'),
          webSocketImpl: WebSocket,
          retryAttempts: 0,
          connectionParams: { authorization: `Bearer ${await tokenFor('2')}` },
        });
        closers.push(async () => {
          await client.dispose();
        });
        const stream: Stream = recordStream();
        stream.stop = client.subscribe({ query: EVENTS, variables: { userId: '2' } }, stream.sink);
        return stream;
      }),
    );
    const active = () => ({ original: stack.usersSubscriptions(), replica: replica.subscriptions?.active ?? 0 });
    await waitFor(() => expect(active().original + active().replica).toBe(2));

    // updateUser through gateway 2, placeOrder through gateway 1.
    const viewer = await signedInAs('2');
    expect((await graphql(gateways[1], 'mutation { updateUser(id: "2", input: { name: "Seen Everywhere" }) { id } }', undefined, viewer)).errors).toBeUndefined();
    const placed = await graphql(
      gateways[0],
      'mutation { placeOrder(input: { userId: "2", items: [{ sku: "TWO-BY-TWO", quantity: 1, unitPriceCents: 700 }] }) { id } }',
      undefined,
      viewer,
    );
    expect(placed.errors).toBeUndefined();
    for (const stream of streams) {
      await waitFor(() => expect(stream.results).toHaveLength(2));
      expect(stream.results.map((result) => (result.data?.userEvents as { kind: string }).kind)).toEqual(['USER_UPDATED', 'ORDER_PLACED']);
      expect(stream.results[1]?.data?.userEvents).toMatchObject({
        user: { name: 'Seen Everywhere', orders: { totalCount: 2 } },
        order: { status: 'PENDING', totalCents: 700, items: [{ sku: 'TWO-BY-TWO' }] },
      });
    }

    // A users replica holding upstream subscriptions goes away.
    const holder = active().original > 0 ? 'original' : 'replica';
    if (holder === 'original') await stack.stopSubgraph('users');
    else await usersReplica.stop();
    const survivor = holder === 'original' ? { url: replicaUrl, count: () => active().replica } : { url: stack.urls.users, count: () => active().original };
    await waitFor(() => expect(survivor.count()).toBe(2), 10_000);

    // A write the survivor commits reaches both clients, whose streams never ended.
    const write = await signedGraphql(
      survivor.url,
      { secret: stack.secrets.users, audience: 'users', viewer: { userId: '2', role: 'user' } },
      'mutation { updateUser(id: "2", input: { name: "After The Failover" }) { id } }',
    );
    expect(write.errors).toBeUndefined();
    for (const stream of streams) {
      await waitFor(() => expect(stream.results.map((result) => (result.data?.userEvents as { user: { name: string } }).user.name)).toContain('After The Failover'));
      expect(stream.completed).toBe(false);
      expect(stream.error).toBeUndefined();
    }
  });
});

describe('a gateway whose token keys cannot be fetched', () => {
  it('closes a subscription socket with 1013 (try again later), not 4403: the token may well be fine', async () => {
    const stack = await startTestStack();
    const gateway = await createGateway({
      supergraphSdl,
      subgraphUrls: { users: stack.urls.users, orders: stack.urls.orders },
      subgraphSecrets: { users: stack.secrets.users, orders: stack.secrets.orders },
      logger: silentLogger(),
      cache: createMemoryCache(),
      rateLimiter: new MemoryRateLimiter(),
      // Nothing listens on port 9: the key set cannot be fetched.
      authenticate: createAuthenticator({ issuer: TEST_AUTH.issuer, audience: TEST_AUTH.audience, jwksUrl: 'http://127.0.0.1:9/jwks.json', jwks: { timeoutMs: 300 } }),
    });
    try {
      const port = await listen(gateway.httpServer, 0, '127.0.0.1');
      const socket = new WebSocket(`ws://127.0.0.1:${port}/graphql`, 'graphql-transport-ws');
      await new Promise((resolve) => socket.once('open', resolve));
      // An RS256 token: checking it needs the key set.
      const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
      const token = `${part({ alg: 'RS256', kid: 'k1' })}.${part({ sub: '2', exp: Math.floor(Date.now() / 1000) + 60 })}.c2lnbmF0dXJl`;
      socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
      const code = await new Promise<number>((resolve) => socket.once('close', (closeCode: number) => resolve(closeCode)));
      expect(code).toBe(1013);
    } finally {
      await gateway.stop();
      await stack.teardown();
    }
  });
});
