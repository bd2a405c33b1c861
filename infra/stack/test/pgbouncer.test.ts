// The stack behind PgBouncer in transaction mode, as teams run it past a few dozen subgraph processes: both
// subgraphs reach their primaries, and their read replicas, only through a pooler that hands each transaction
// whichever server connection is free, with prepared statements off (*_DATABASE_PREPARE=off; Debian's
// PgBouncer 1.18 cannot follow named statements across server connections). Migrations take the direct URL
// (*_DATABASE_MIGRATION_URL): their advisory lock is session-level. The key checks of the SQL-count,
// durable-event and read-replica suites, on real servers on loopback.
import {
  createTestDatabase,
  hasPgBouncer,
  isRelayStatement,
  recordStream,
  startPgBouncer,
  startStreamingReplica,
  waitFor,
  type PrivatePgBouncer,
  type RecordedStream,
  type StreamingReplica,
  type TestDatabase,
} from '@fed/platform/testing';
import type { Client, FormattedExecutionResult } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seed } from '../src/seed.ts';
import { increasing, NESTED_QUERY, signedInAs, socketClient, startTestStack, type NestedResult, type TestStack } from './harness.ts';

interface UserEvent {
  id: string;
  kind: string;
  user: { name: string } | null;
}
type Stream = RecordedStream<FormattedExecutionResult<{ userEvents: UserEvent }, unknown>>;

describe.skipIf(!hasPgBouncer())('the stack behind PgBouncer in transaction mode, prepared statements off', () => {
  let primaryBouncer: PrivatePgBouncer;
  let replicaBouncer: PrivatePgBouncer;
  let replica: StreamingReplica;
  let stack: TestStack;
  const databases: TestDatabase[] = [];
  const clients: Client[] = [];
  // Statements per subgraph and per server (`primary`, `replica1`), the relays' polls aside.
  const served: Record<'users' | 'orders', Record<string, number>> = { users: {}, orders: {} };
  const count = (subgraph: 'users' | 'orders') => (sql: string, target: string) => {
    if (!isRelayStatement(sql)) served[subgraph][target] = (served[subgraph][target] ?? 0) + 1;
  };
  const resetCounts = () => {
    served.users = {};
    served.orders = {};
  };
  const total = (subgraph: 'users' | 'orders') => Object.values(served[subgraph]).reduce((sum, n) => sum + n, 0);

  beforeAll(async () => {
    replica = await startStreamingReplica();
    const users = await createTestDatabase('bouncer_users');
    databases.push(users);
    const orders = await createTestDatabase('bouncer_orders');
    databases.push(orders);
    primaryBouncer = await startPgBouncer();
    replicaBouncer = await startPgBouncer({ upstreamUrl: replica.url('postgres') });
    const behindBouncers = (database: TestDatabase) => ({
      url: primaryBouncer.urlFor(database.url),
      replicaUrls: [replicaBouncer.urlFor(replica.url(database.name))],
      prepare: false,
      migrationUrl: database.url,
    });
    // No response cache: every answer below comes from the subgraphs, through the poolers.
    stack = await startTestStack({
      databases: { users: behindBouncers(users), orders: behindBouncers(orders) },
      responseCache: null,
      onQuery: { users: count('users'), orders: count('orders') },
    });
    // 60 users with 8 orders each, so that both page sizes below are really filled.
    await seed(stack.databases, { users: 60, ordersPerUser: 8 });
    await replica.caughtUp();
  });
  afterAll(async () => {
    await Promise.all(clients.splice(0).map((client) => client.dispose()));
    await replica?.resumeReplay().catch(() => {});
    await stack?.teardown();
    await Promise.all([primaryBouncer?.stop(), replicaBouncer?.stop()]);
    await Promise.all(databases.map((database) => database.drop()));
    await replica?.stop();
  });

  it('keeps the statements per request flat in N, all of them on the replicas', async () => {
    const run = async (users: number, orders: number) => {
      resetCounts();
      const response = await stack.request<NestedResult>(NESTED_QUERY, { users, orders });
      expect(response.errors).toBeUndefined();
      return { data: response.data as NestedResult, users: total('users'), orders: total('orders'), targets: { users: { ...served.users }, orders: { ...served.orders } } };
    };
    const small = await run(5, 5);
    const large = await run(50, 5);
    const wide = await run(50, 8);
    expect(small.data.users.edges).toHaveLength(5);
    expect(large.data.users.edges).toHaveLength(50);
    for (const { node } of large.data.users.edges) {
      expect(node.orders.edges).toHaveLength(5);
      expect(node.orderCount).toBe(8);
    }
    expect(wide.data.users.edges[0]?.node.orders.edges).toHaveLength(8);
    // As without a pooler (sql-count.test.ts): users 1 statement (the page), orders 3 (pages, counts, items),
    // and every one of them on the replicas (read-replicas.test.ts).
    for (const measured of [small, large, wide]) {
      expect({ users: measured.users, orders: measured.orders }).toEqual({ users: 1, orders: 3 });
      expect(measured.targets).toEqual({ users: { replica1: 1 }, orders: { replica1: 3 } });
    }
  });

  it('relays every committed change through the outbox: a client resuming with `after` gets exactly the ones it missed, in order', async () => {
    const follow = async (variables: Record<string, unknown>): Promise<Stream> => {
      const client = await socketClient(stack.urls.gateway, '2', 'user');
      clients.push(client);
      const stream: Stream = recordStream();
      stream.stop = client.subscribe({ query: 'subscription ($after: ID) { userEvents(userId: "2", after: $after) { id kind user { name } } }', variables }, stream.sink);
      return stream;
    };
    const events = (stream: Stream) => stream.results.map((result) => result.data?.userEvents).filter((event): event is UserEvent => !!event);
    const rename = async (name: string) => {
      const response = await stack.request('mutation ($name: String!) { updateUser(id: "2", input: { name: $name }) { id } }', { name }, await signedInAs('2'));
      expect(response.errors).toBeUndefined();
    };

    const first = await follow({});
    await waitFor(() => expect(stack.usersSubscriptions()).toBe(1));
    await rename('Before The Drop');
    await waitFor(() => expect(events(first)).toHaveLength(1));
    const lastSeen = events(first)[0]!.id;
    first.stop();
    await Promise.all(clients.splice(0).map((client) => client.dispose()));

    for (let index = 1; index <= 10; index++) await rename(`Missed ${index}`);
    const resumed = await follow({ after: lastSeen });
    await waitFor(() => expect(events(resumed)).toHaveLength(10));
    expect(events(resumed).every((event) => event.kind === 'USER_UPDATED')).toBe(true);
    const ids = events(resumed).map((event) => event.id);
    expect(new Set(ids).size).toBe(10);
    expect(increasing(ids)).toBe(true);

    // Orders' projection of users follows the stream too: a user created now can place an order once it arrives.
    const created = await stack.request<{ createUser: { id: string } }>('mutation { createUser(input: { email: "through.the.pooler@example.com", name: "Pooled" }) { id } }');
    expect(created.errors).toBeUndefined();
    await waitFor(async () => {
      const placed = await stack.request<{ placeOrder: { status: string } }>(
        'mutation ($userId: ID!) { placeOrder(input: { userId: $userId, items: [{ sku: "PB-1", quantity: 1, unitPriceCents: 100 }] }) { status } }',
        { userId: created.data!.createUser.id },
      );
      expect(placed.errors).toBeUndefined();
      expect(placed.data?.placeOrder.status).toBe('PENDING');
    }, 15_000, 100);
  });

  it('while the replica lags, a query sees its older data, and a mutation sees its own write through the primary pooler', async () => {
    const before = await stack.request<{ user: { orderCount: number } }>('{ user(id: "3") { orderCount } }');
    expect(before.errors).toBeUndefined();
    await replica.pauseReplay();
    try {
      resetCounts();
      // user.name comes from users, orderCount from orders: both after the write, both from the primaries.
      const placed = await stack.request<{ placeOrder: { user: { name: string; orderCount: number } } }>(
        'mutation { placeOrder(input: { userId: "3", items: [{ sku: "PB-2", quantity: 1, unitPriceCents: 100 }] }) { id user { name orderCount } } }',
      );
      expect(placed.errors).toBeUndefined();
      expect(placed.data?.placeOrder.user.orderCount).toBe((before.data?.user.orderCount ?? 0) + 1);
      expect(Object.keys(served.orders)).toEqual(['primary']);
      expect(Object.keys(served.users)).toEqual(['primary']);

      const stale = await stack.request<{ user: { orderCount: number } }>('{ user(id: "3") { orderCount } }');
      expect(stale.errors).toBeUndefined();
      expect(stale.data?.user.orderCount).toBe(before.data?.user.orderCount);
    } finally {
      await replica.resumeReplay();
    }
    await replica.caughtUp();
    const current = await stack.request<{ user: { orderCount: number } }>('{ user(id: "3") { orderCount } }');
    expect(current.data?.user.orderCount).toBe((before.data?.user.orderCount ?? 0) + 1);
  });
});

