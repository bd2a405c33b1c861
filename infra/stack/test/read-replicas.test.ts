import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from 'graphql-ws';
import postgres from 'postgres';
import WebSocket from 'ws';
import { isRelayStatement, startStreamingReplica, waitFor, type StreamingReplica } from '@fed/platform/testing';
import { seed } from '../src/seed.ts';
import { startTestStack, tokenFor, type TestStack } from './harness.ts';

const NESTED = /* GraphQL */ `
  query Nested {
    users(first: 5) { edges { node { id name orderCount orders(first: 3) { edges { node { id status items { sku } } } } } } }
  }
`;

interface Nested {
  users: { edges: { node: { id: string; name: string; orderCount: number; orders: { edges: { node: { id: string } }[] } } }[] };
}

/**
 * Both subgraphs on real Postgres with a real streaming replica of it (pg_basebackup, hot standby on another
 * port). Pausing the replica's WAL replay makes it lag on demand: what a request then sees tells which server
 * answered it, and the statements each subgraph sent are counted per server as well.
 */
describe('read replicas', () => {
  let replica: StreamingReplica;
  let stack: TestStack;
  const served: Record<'users' | 'orders', Record<string, number>> = { users: {}, orders: {} };
  const count = (subgraph: 'users' | 'orders') => (sql: string, target: string) => {
    if (!isRelayStatement(sql)) served[subgraph][target] = (served[subgraph][target] ?? 0) + 1;
  };
  const resetCounts = () => {
    served.users = {};
    served.orders = {};
  };
  const primaryOf = (database: 'users' | 'orders') => {
    const { location } = stack.databases[database];
    if (!('url' in location)) throw new Error('the stack must run on Postgres');
    return postgres(location.url, { max: 1, onnotice: () => {} });
  };

  beforeAll(async () => {
    replica = await startStreamingReplica();
    // No response cache: every answer below comes from the subgraphs, not from an earlier one.
    stack = await startTestStack({ responseCache: null, onQuery: { users: count('users'), orders: count('orders') } }, { replica });
    await seed(stack.databases, { users: 10, ordersPerUser: 3 });
    await replica.caughtUp();
  });
  afterAll(async () => {
    await replica?.resumeReplay().catch(() => {});
    await stack?.teardown();
    await replica?.stop();
  });

  it('serves the nested query from the replica: no statement reaches either primary', async () => {
    resetCounts();
    const response = await stack.request<Nested>(NESTED);
    expect(response.errors).toBeUndefined();
    expect(response.data?.users.edges).toHaveLength(5);
    expect(response.data?.users.edges[0]?.node.orders.edges).toHaveLength(3);
    expect(served.users).toEqual({ replica1: 1 });
    expect(served.orders).toEqual({ replica1: 3 });
  });

  it('while the replica lags, queries see its older data, and a mutation sees its own write in the same request', async () => {
    await replica.pauseReplay();
    try {
      // Written on the primary only: the paused replica cannot have it.
      const users = primaryOf('users');
      await users`update users set name = 'Only On The Primary' where id = 2`.finally(() => users.end({ timeout: 1 }));
      const lagging = await stack.request<{ user: { name: string } }>('{ user(id: "2") { name } }');
      expect(lagging.errors).toBeUndefined();
      expect(lagging.data?.user.name).toMatch(/\w+ \w+/);
      expect(lagging.data?.user.name).not.toBe('Only On The Primary');

      // A mutation writes on the primary, and the rest of its request reads there too: orderCount is resolved
      // after placeOrder committed and counts the new order, which the replica does not have.
      const before = await stack.request<{ user: { orderCount: number } }>('{ user(id: "3") { orderCount } }');
      resetCounts();
      const placed = await stack.request<{ placeOrder: { id: string; user: { name: string; orderCount: number } } }>(
        'mutation { placeOrder(input: { userId: "3", items: [{ sku: "RR-1", quantity: 1, unitPriceCents: 100 }] }) { id user { name orderCount } } }',
      );
      expect(placed.errors).toBeUndefined();
      expect(placed.data?.placeOrder.user.orderCount).toBe((before.data?.user.orderCount ?? 0) + 1);
      expect(Object.keys(served.orders)).toEqual(['primary']);
      expect(Object.keys(served.users)).toEqual(['primary']);

      // The same read as a query a moment later is served by the lagging replica: the new order is not there yet.
      const stale = await stack.request<{ user: { orderCount: number } }>('{ user(id: "3") { orderCount } }');
      expect(stale.errors).toBeUndefined();
      expect(stale.data?.user.orderCount).toBe(before.data?.user.orderCount);
      expect(typeof stale.data?.user.orderCount).toBe('number');

      // updateUser answers with what it wrote, and the user's orders (another subgraph, fetched after the
      // write) come from orders' primary: the order placed above is among them.
      const renamed = await stack.request<{ updateUser: { name: string; orders: { edges: { node: { id: string } }[] } } }>(
        'mutation { updateUser(id: "3", input: { name: "Renamed While Lagging" }) { name orders(first: 50) { edges { node { id } } } } }',
      );
      expect(renamed.errors).toBeUndefined();
      expect(renamed.data?.updateUser.name).toBe('Renamed While Lagging');
      expect(renamed.data?.updateUser.orders.edges.map(({ node }) => node.id)).toContain(placed.data?.placeOrder.id);
    } finally {
      await replica.resumeReplay();
    }

    // Once the replica has caught up, queries see every write.
    await replica.caughtUp();
    const current = await stack.request<{ two: { name: string }; three: { name: string; orderCount: number } }>(
      '{ two: user(id: "2") { name } three: user(id: "3") { name orderCount } }',
    );
    expect(current.data?.two.name).toBe('Only On The Primary');
    expect(current.data?.three.name).toBe('Renamed While Lagging');
    expect(current.data?.three.orderCount).toBe(4);
  });

  it('completes a subscription event from the primary: the event shows the write, though the replica lags', async () => {
    const client = createClient({
      url: stack.urls.gateway.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      connectionParams: { authorization: `Bearer ${await tokenFor('6')}` },
    });
    const names: string[] = [];
    const stop = client.subscribe<{ userEvents: { kind: string; user: { name: string; orderCount: number } | null } }>(
      { query: 'subscription { userEvents(userId: "6") { kind user { name orderCount } } }' },
      { next: (result) => result.data && names.push(`${result.data.userEvents.user?.name}/${result.data.userEvents.user?.orderCount}`), error: () => {}, complete: () => {} },
    );
    try {
      await replica.pauseReplay();
      // The upstream subscription may still be opening: write until an event arrives, each with a new name.
      let attempt = 0;
      await waitFor(async () => {
        attempt += 1;
        const renamed = await stack.request('mutation ($name: String!) { updateUser(id: "6", input: { name: $name }) { id } }', { name: `Lagged Rename ${attempt}` });
        expect(renamed.errors).toBeUndefined();
        await waitFor(() => expect(names.length).toBeGreaterThan(0), 1_000);
      }, 15_000, 100);
      // The users subgraph resolved the event's user, and orders its orderCount, from the primaries: the name is
      // the one just written, which the paused replica does not have.
      expect(names.at(-1)).toMatch(/^Lagged Rename \d+\/3$/);
    } finally {
      stop();
      await client.dispose();
      await replica.resumeReplay();
    }
  });
});

describe('read replicas under the response cache', () => {
  let replica: StreamingReplica;
  let stack: TestStack;
  const LAG_MS = 800;

  beforeAll(async () => {
    replica = await startStreamingReplica();
    stack = await startTestStack({ responseCache: { maxTtlSeconds: 60, replicaLagMs: LAG_MS } }, { replica });
    await seed(stack.databases, { users: 6, ordersPerUser: 1 });
    await replica.caughtUp();
  });
  afterAll(async () => {
    await replica?.resumeReplay().catch(() => {});
    await stack?.teardown();
    await replica?.stop();
  });

  it('does not keep a response a lagging replica gave between a write and its replay: the purge is repeated', async () => {
    const name = async () => (await stack.request<{ user: { name: string } }>('{ user(id: "5") { name } }')).data?.user.name;
    const original = await name();
    await replica.pauseReplay();
    let written: number;
    try {
      const renamed = await stack.request('mutation { updateUser(id: "5", input: { name: "Renamed Behind A Lag" }) { name } }');
      expect(renamed.errors).toBeUndefined();
      written = Date.now();
      // The purge ran, and the next answer comes from the replica that has not replayed the write: it is stale,
      // and it is cached (the second read is a hit on it).
      expect(await name()).toBe(original);
      expect(await name()).toBe(original);
    } finally {
      await replica.resumeReplay();
    }
    await replica.caughtUp();
    // Once the repeated purge has run, the cache no longer holds the stale answer.
    await waitFor(async () => expect(await name()).toBe('Renamed Behind A Lag'), LAG_MS + 3_000, 50);
    expect(Date.now() - written).toBeGreaterThanOrEqual(LAG_MS - 50);
  });
});
