// Durable events end to end: every committed change reaches the stream exactly once through each subgraph's
// outbox, clients resume with `after` through the gateway, and orders keeps its own projection of users.
// Real Postgres, real Redis (behind a proxy where a test takes it away), real graphql-ws clients.
import { createRedisClient, RedisEventStream, waitForRedis, type RedisClient, type Retention } from '@fed/platform';
import { graphql, recordStream, startTcpProxy, testRedisUrl, waitFor, type RecordedStream, type RedisBehindProxies } from '@fed/platform/testing';
import { sql } from 'drizzle-orm';
import { createClient, type Client, type FormattedExecutionResult } from 'graphql-ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { seed } from '../src/seed.ts';
import { increasing, signedInAs, startGatewayTo, startStackBehindRedisProxy, startTestStack, tokenFor, type TestStack } from './harness.ts';

const EVENTS = `subscription Follow($userId: ID, $after: ID) {
  userEvents(userId: $userId, after: $after) { id kind user { name } order { status } }
}`;

interface UserEvent {
  id: string;
  kind: string;
  user: { name: string } | null;
  order: { status: string } | null;
}
type Stream = RecordedStream<FormattedExecutionResult<{ userEvents: UserEvent }, unknown>>;

const clients: Client[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.dispose()));
});

async function follow(gatewayUrl: string, sub: string, variables: Record<string, unknown>, role: 'user' | 'admin' = 'user'): Promise<Stream> {
  const client = createClient({
    url: gatewayUrl.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    connectionParams: { authorization: `Bearer ${await tokenFor(sub, role)}` },
  });
  clients.push(client);
  const stream: Stream = recordStream();
  stream.stop = client.subscribe({ query: EVENTS, variables }, stream.sink);
  return stream;
}

const events = (stream: Stream) => stream.results.map((result) => result.data?.userEvents).filter((event): event is UserEvent => !!event);
const codes = (stream: Stream) => stream.results.flatMap((result) => result.errors ?? []).map((error) => error.extensions?.code);


describe('resuming a subscription with `after`', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack({ retention: { perUser: 30, log: 1_000 } });
    await seed(stack.databases, { users: 3, ordersPerUser: 1 });
  });
  afterAll(() => stack?.teardown());

  const rename = async (name: string) => {
    const response = await stack.request('mutation ($name: String!) { updateUser(id: "2", input: { name: $name }) { id } }', { name }, await signedInAs('2'));
    expect(response.errors).toBeUndefined();
  };

  it('replays exactly the 20 events a disconnected client missed, in order, then goes on live', async () => {
    const first = await follow(stack.urls.gateway, '2', { userId: '2' });
    await waitFor(() => expect(stack.usersSubscriptions()).toBe(1));
    await rename('Before The Drop');
    await waitFor(() => expect(events(first)).toHaveLength(1));
    const lastSeen = events(first)[0]!.id;
    first.stop();
    await Promise.all(clients.splice(0).map((client) => client.dispose()));

    const missed = Array.from({ length: 20 }, (_, index) => `Missed ${index + 1}`);
    for (const name of missed) await rename(name);

    const resumed = await follow(stack.urls.gateway, '2', { userId: '2', after: lastSeen });
    await waitFor(() => expect(events(resumed)).toHaveLength(20));
    // The user is fetched when each event is delivered, so the kinds and ids tell the events apart.
    expect(events(resumed).every((event) => event.kind === 'USER_UPDATED')).toBe(true);
    const ids = events(resumed).map((event) => event.id);
    expect(new Set(ids).size).toBe(20);
    expect(increasing([lastSeen, ...ids])).toBe(true);

    await rename('Live Again');
    await waitFor(() => expect(events(resumed)).toHaveLength(21));
    expect(events(resumed)[20]).toMatchObject({ kind: 'USER_UPDATED', user: { name: 'Live Again' } });
    expect(increasing(events(resumed).map((event) => event.id))).toBe(true);
    expect(codes(resumed)).toEqual([]);
  });

  it('tells a client whose `after` is older than the retention window to refetch (CURSOR_EXPIRED)', async () => {
    const watcher = await follow(stack.urls.gateway, '2', { userId: '2' });
    await waitFor(() => expect(stack.usersSubscriptions()).toBeGreaterThan(0));
    await rename('Oldest Kept');
    await waitFor(() => expect(events(watcher)).toHaveLength(1));
    const old = events(watcher)[0]!.id;
    // 30 events per user are kept: 31 more push `old`'s successor out.
    for (let index = 0; index < 31; index++) await rename(`Pushing ${index}`);

    const late = await follow(stack.urls.gateway, '2', { userId: '2', after: old });
    await waitFor(() => expect(late.completed || late.error !== undefined).toBe(true));
    expect(codes(late)).toEqual(['CURSOR_EXPIRED']);
    expect(events(late)).toEqual([]);
  });

  it('resumes operations whose upstream part uses fragments (the gateway keeps them when it adds its cursor)', async () => {
    const client = createClient({
      url: stack.urls.gateway.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      connectionParams: { authorization: `Bearer ${await tokenFor('2')}` },
    });
    clients.push(client);
    const stream: Stream = recordStream();
    stream.stop = client.subscribe(
      { query: 'subscription { userEvents(userId: "2") { id kind user { ...Who } again: user { ...Who } } } fragment Who on User { id name }' },
      stream.sink,
    );
    await waitFor(() => expect(stack.usersSubscriptions()).toBeGreaterThan(0));
    await rename('With Fragments');
    await waitFor(() => expect(stream.results).toHaveLength(1));
    expect(stream.results[0]).toMatchObject({ data: { userEvents: { kind: 'USER_UPDATED', user: { name: 'With Fragments' }, again: { name: 'With Fragments' } } } });
    expect(stream.results[0]?.errors).toBeUndefined();
  });

  it('answers an `after` that is not an event id with BAD_USER_INPUT', async () => {
    for (const after of ['yesterday', '99999999999999-0']) {
      const stream = await follow(stack.urls.gateway, '2', { userId: '2', after });
      await waitFor(() => expect(stream.completed || stream.error !== undefined).toBe(true));
      expect(codes(stream)).toEqual(['BAD_USER_INPUT']);
    }
  });
});

describe('the gateway loses its connection to the users subgraph', () => {
  let stack: TestStack;
  const closers: (() => Promise<void>)[] = [];
  beforeAll(async () => {
    stack = await startTestStack();
    await seed(stack.databases, { users: 3, ordersPerUser: 1 });
  });
  afterAll(async () => {
    for (const close of closers.reverse()) await close();
    await stack?.teardown();
  });

  it('subscribes again after the last event it delivered: no gap, no repeat, even for writes made meanwhile', async () => {
    // A gateway whose way to users goes through a proxy that can cut every connection, like a replica dying.
    const proxy = await startTcpProxy(stack.urls.users);
    closers.push(() => proxy.close());
    const gateway = await startGatewayTo(stack, proxy.url);
    closers.push(() => gateway.stop());
    const viewer = await signedInAs('2');
    const rename = async (name: string) => {
      const response = await stack.request('mutation ($name: String!) { updateUser(id: "2", input: { name: $name }) { id } }', { name }, viewer);
      expect(response.errors).toBeUndefined();
    };

    const stream = await follow(gateway.url, '2', { userId: '2' });
    await waitFor(() => expect(stack.usersSubscriptions()).toBe(1));
    await rename('Before The Cut');
    await waitFor(() => expect(events(stream)).toHaveLength(1));

    proxy.dropConnections();
    // Committed while the gateway has no upstream: the resumed one replays them.
    for (let index = 0; index < 5; index++) await rename(`Meanwhile ${index}`);
    await waitFor(() => expect(events(stream)).toHaveLength(6), 10_000);
    await rename('After');
    await waitFor(() => expect(events(stream)).toHaveLength(7));
    const ids = events(stream).map((event) => event.id);
    expect(new Set(ids).size).toBe(7);
    expect(increasing(ids)).toBe(true);
    expect(codes(stream)).toEqual([]);
    expect(stream.completed).toBe(false);
  });
});

describe('a Redis outage while mutations go on', () => {
  let stack: TestStack;
  let redis: RedisBehindProxies;
  let teardown: () => Promise<void>;
  beforeAll(async () => {
    ({ stack, redis, teardown } = await startStackBehindRedisProxy({ users: 3, ordersPerUser: 1 }));
  });
  afterAll(() => teardown?.());

  it('loses and repeats nothing: live subscribers and clients resuming with `after` get every event in order', async () => {
    const viewer = await signedInAs('3');
    const rename = async (name: string) => {
      const response = await stack.request('mutation ($name: String!) { updateUser(id: "3", input: { name: $name }) { id } }', { name }, viewer);
      expect(response.errors).toBeUndefined();
    };
    const live = await follow(stack.urls.gateway, '3', { userId: '3' });
    await waitFor(() => expect(stack.usersSubscriptions()).toBe(1));
    await rename('Before 1');
    await waitFor(() => expect(events(live)).toHaveLength(1));
    const checkpoint = events(live)[0]!.id;

    await redis.setListening(false);
    // Writes go on: their events wait in the outboxes.
    const during = Array.from({ length: 10 }, (_, index) => `During ${index + 1}`);
    for (const name of during) await rename(name);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await redis.setListening(true);
    const after = ['After 1', 'After 2'];
    for (const name of after) await rename(name);

    await waitFor(() => expect(events(live)).toHaveLength(13), 15_000);
    const liveIds = events(live).map((event) => event.id);
    expect(new Set(liveIds).size).toBe(13);
    expect(increasing(liveIds)).toBe(true);
    expect(codes(live)).toEqual([]);

    // A client that was away for the whole outage resumes from the checkpoint and gets the same 12, in order.
    const resumed = await follow(stack.urls.gateway, '3', { userId: '3', after: checkpoint });
    await waitFor(() => expect(events(resumed)).toHaveLength(12));
    expect(events(resumed).map((event) => event.id)).toEqual(liveIds.slice(1));
    expect(codes(resumed)).toEqual([]);
  });
});

const placeOrder = (stack: TestStack, userId: string) =>
  stack.request<{ placeOrder: { id: string; status: string } }>(
    'mutation ($userId: ID!) { placeOrder(input: { userId: $userId, items: [{ sku: "P-1", quantity: 1, unitPriceCents: 100 }] }) { id status } }',
    { userId },
  );

describe('orders keeps its own projection of users', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack();
    await seed(stack.databases, { users: 4, ordersPerUser: 0 });
  });
  afterAll(() => stack?.teardown());

  const place = (userId: string) => placeOrder(stack, userId);

  it('takes orders while users is down, and refuses unknown users with USER_NOT_FOUND', async () => {
    await stack.stopSubgraph('users');
    const placed = await place('1');
    expect(placed.errors).toBeUndefined();
    expect(placed.data?.placeOrder.status).toBe('PENDING');

    const unknown = await place('4000');
    expect(unknown.data).toBeNull();
    expect(unknown.errors?.[0]?.extensions).toMatchObject({ code: 'USER_NOT_FOUND', field: 'input.userId' });
  });
});

describe('the projection across an orders restart', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack();
    await seed(stack.databases, { users: 4, ordersPerUser: 0 });
  });
  afterAll(() => stack?.teardown());

  const place = (userId: string) => placeOrder(stack, userId);
  const orderStatus = async (id: string) =>
    (await stack.request<{ order: { status: string } }>('query ($id: ID!) { order(id: $id) { status } }', { id })).data?.order.status;

  it('cancels a deleted user’s pending orders with ORDER_CANCELLED events, and refuses them new ones', async () => {
    const admin = await follow(stack.urls.gateway, '1000000', {}, 'admin');
    await waitFor(() => expect(stack.usersSubscriptions()).toBe(1));
    const pending = (await place('2')).data!.placeOrder.id;
    const shipped = (await place('2')).data!.placeOrder.id;
    // A shipped order is history; only pending ones are cancelled.
    await stack.databases.orders.db.execute(sql`update orders set status = 'SHIPPED' where id = ${Number(shipped)}`);

    expect((await stack.request('mutation { deleteUser(id: "2") }')).errors).toBeUndefined();

    const refused = await place('2');
    expect(refused.errors?.[0]?.extensions?.code).toBe('USER_NOT_FOUND');
    await waitFor(async () => expect(await orderStatus(pending)).toBe('CANCELLED'));
    expect(await orderStatus(shipped)).toBe('SHIPPED');
    await waitFor(() => expect(events(admin).map((event) => event.kind)).toEqual(['ORDER_PLACED', 'ORDER_PLACED', 'USER_DELETED', 'ORDER_CANCELLED']));
  });

  it('catches up after orders restarts: users deleted and created meanwhile are known', async () => {
    await stack.stopSubgraph('orders');
    expect((await stack.request('mutation { deleteUser(id: "3") }')).errors).toBeUndefined();
    const created = await stack.request<{ createUser: { id: string } }>('mutation { createUser(input: { email: "new.while.down@example.com", name: "New" }) { id } }');
    expect(created.errors).toBeUndefined();
    const newcomer = created.data!.createUser.id;

    await stack.restartOrders();
    const refused = await place('3');
    expect(refused.errors?.[0]?.extensions?.code).toBe('USER_NOT_FOUND');
    const accepted = await place(newcomer);
    expect(accepted.errors).toBeUndefined();
    expect(accepted.data?.placeOrder.status).toBe('PENDING');
    // And through the gateway, the order knows its user.
    const read = await graphql<{ order: { user: { name: string } } }>(
      stack.urls.gateway,
      'query ($id: ID!) { order(id: $id) { user { name } } }',
      { id: accepted.data!.placeOrder.id },
      stack.admin,
    );
    expect(read.data?.order.user.name).toBe('New');
  });
});

describe('in four stream partitions (EVENT_STREAM_PARTITIONS=4)', () => {
  const retention: Retention = { perUser: 1_000, log: 100_000, partitions: 4 };
  let stack: TestStack;
  let readerRedis: RedisClient;
  /** The stack's stream as another process configured like its subgraphs sees it. */
  let reader: RedisEventStream;
  beforeAll(async () => {
    stack = await startTestStack({ retention });
    await seed(stack.databases, { users: 6, ordersPerUser: 0 });
    readerRedis = createRedisClient(testRedisUrl(), { patient: true });
    await waitForRedis(readerRedis, 30_000);
    reader = new RedisEventStream(readerRedis, stack.keyPrefix, retention);
  });
  afterAll(async () => {
    readerRedis?.disconnect();
    await stack?.teardown();
  });

  const rename = async (id: string, name: string) => {
    const response = await stack.request('mutation ($id: ID!, $name: String!) { updateUser(id: $id, input: { name: $name }) { id } }', { id, name });
    expect(response.errors).toBeUndefined();
  };
  const users = ['1', '2', '3', '4', '5', '6'];

  it("resumes every user's events from the id of the last one seen: each missed event once, each user's in order", async () => {
    const admin = await follow(stack.urls.gateway, '1000000', {}, 'admin');
    await waitFor(() => expect(stack.usersSubscriptions()).toBe(1));
    for (const id of users) await rename(id, `First ${id}`);
    await waitFor(() => expect(events(admin)).toHaveLength(users.length));
    // The id of an event of every user's stream names where each partition is.
    const lastSeen = events(admin).at(-1)!.id;
    expect(lastSeen.split(',')).toHaveLength(4);
    admin.stop();
    await Promise.all(clients.splice(0).map((client) => client.dispose()));

    for (const round of ['Second', 'Third']) for (const id of users) await rename(id, `${round} ${id}`);
    const resumed = await follow(stack.urls.gateway, '1000000', { after: lastSeen }, 'admin');
    await waitFor(() => expect(events(resumed)).toHaveLength(users.length * 2));
    expect(new Set(events(resumed).map((event) => event.id)).size).toBe(users.length * 2);
    // Each user's two, fetched as they are now.
    const names = events(resumed).map((event) => event.user?.name);
    for (const id of users) expect(names.filter((name) => name === `Third ${id}`), id).toHaveLength(2);
    await rename('4', 'Live');
    await waitFor(() => expect(events(resumed)).toHaveLength(users.length * 2 + 1));
    expect(events(resumed).at(-1)).toMatchObject({ kind: 'USER_UPDATED', user: { name: 'Live' } });
    expect(codes(resumed)).toEqual([]);
  });

  it("resumes one user's events from their last id, in order", async () => {
    // The last test's upstream subscription may still be closing: only this one's may count as live.
    await waitFor(() => expect(stack.usersSubscriptions()).toBe(0));
    const first = await follow(stack.urls.gateway, '4', { userId: '4' });
    await waitFor(() => expect(stack.usersSubscriptions()).toBe(1));
    await rename('4', 'Before');
    await waitFor(() => expect(events(first)).toHaveLength(1));
    const lastSeen = events(first)[0]!.id;
    first.stop();
    for (let index = 0; index < 5; index++) await rename('4', `Missed ${index}`);
    const resumed = await follow(stack.urls.gateway, '4', { userId: '4', after: lastSeen });
    await waitFor(() => expect(events(resumed)).toHaveLength(5));
    // Outside partition 0 an id names its partition; the user's ids are all in one, in increasing order.
    const ids = [lastSeen, ...events(resumed).map((event) => event.id)];
    // The partition the stream recorded for user 4 (by a hash on one server; on a cluster, spread over the
    // primaries, so it depends on where the partitions' slots are): its channel names it, as its ids do.
    const partition = /^p(\d+):/.exec(await reader.channel({ userId: '4' }))?.[1] ?? '0';
    expect(new Set(ids.map((id) => (id.includes(':') ? id.split(':')[0] : '0')))).toEqual(new Set([partition]));
    expect(increasing(ids.map((id) => id.split(':').at(-1)!))).toBe(true);
    expect(codes(resumed)).toEqual([]);
  });

  it('orders knows users created or deleted a moment ago, whichever partition their events went to', async () => {
    const created: string[] = [];
    for (let index = 0; index < 6; index++) {
      const response = await stack.request<{ createUser: { id: string } }>('mutation ($email: String!) { createUser(input: { email: $email, name: "Fresh" }) { id } }', {
        email: `fresh.${index}@example.com`,
      });
      expect(response.errors).toBeUndefined();
      const id = response.data!.createUser.id;
      created.push(id);
      const placed = await placeOrder(stack, id);
      expect(placed.errors, id).toBeUndefined();
      expect(placed.data?.placeOrder.status).toBe('PENDING');
    }
    for (const id of created.slice(0, 3)) {
      expect((await stack.request('mutation ($id: ID!) { deleteUser(id: $id) }', { id })).errors).toBeUndefined();
      expect((await placeOrder(stack, id)).errors?.[0]?.extensions?.code, id).toBe('USER_NOT_FOUND');
    }
  });
});
