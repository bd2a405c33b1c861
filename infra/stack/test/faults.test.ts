import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAuthenticator, createGateway } from '@fed/gateway';
import { createMemoryCache, listen, MemoryRateLimiter } from '@fed/platform';
import { graphql, type RedisBehindProxies } from '@fed/platform/testing';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seed } from '../src/seed.ts';
import { silentLogger, startStackBehindRedisProxy, startTestStack, supergraphSdl, TEST_AUTH, type TestStack } from './harness.ts';

const NESTED = '{ users(first: 3) { edges { node { id name orders(first: 2) { edges { node { id } } } orderCount } } } }';

interface Nested {
  users: { edges: { node: { id: string; name: string; orders: unknown; orderCount: number | null } }[] };
}

/** Nothing internal may reach a client: no subgraph URL or port, no SQL, no stack trace. */
function expectNoLeaks(text: string, stack: TestStack) {
  for (const url of [stack.urls.users, stack.urls.orders]) {
    expect(text).not.toContain(new URL(url).port);
  }
  expect(text).not.toMatch(/127\.0\.0\.1|localhost|ECONNREFUSED|fetch failed/i);
  expect(text).not.toMatch(/\bselect\b|\bfrom "|relation "/i);
  expect(text).not.toMatch(/\n\s+at /);
  expect(text).not.toContain('stacktrace');
}

describe('a subgraph goes down', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack();
    await seed(stack.databases, { users: 5, ordersPerUser: 2 });
  });
  afterAll(() => stack?.teardown());

  it('answers users with null orders plus a SUBGRAPH_UNAVAILABLE error naming orders', async () => {
    // Names only: the nested query itself must not be in the response cache when orders goes down.
    const before = await stack.request<Nested>('{ users(first: 3) { edges { node { name } } } }');
    expect(before.errors).toBeUndefined();

    await stack.stopSubgraph('orders');
    const response = await fetch(stack.urls.gateway, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...stack.admin },
      body: JSON.stringify({ query: NESTED }),
    });
    const text = await response.text();
    const body = JSON.parse(text) as { data: Nested; errors: { message: string; extensions: Record<string, unknown> }[] };

    expect(response.status).toBe(200);
    expect(body.data.users.edges.map((edge) => edge.node.name)).toEqual(before.data?.users.edges.map((edge) => edge.node.name));
    for (const { node } of body.data.users.edges) {
      expect(node.orders).toBeNull();
      expect(node.orderCount).toBeNull();
    }
    expect(body.errors.map((error) => error.extensions)).toContainEqual({ code: 'SUBGRAPH_UNAVAILABLE', serviceName: 'orders' });
    expectNoLeaks(text, stack);
  });

  it('fails a mutation on the dead subgraph with the same clear code', async () => {
    const response = await stack.request('mutation { cancelOrder(id: "1") { id } }');
    expect(response.data).toBeNull();
    expect(response.errors?.[0]?.extensions).toEqual({ code: 'SUBGRAPH_UNAVAILABLE', serviceName: 'orders' });
  });
});

describe('a subgraph hangs', () => {
  let stack: TestStack;
  let hung: Server;
  let hungGateway: { url: string; stop: () => Promise<void> };
  beforeAll(async () => {
    // Accepts connections and never answers: only the gateway's own timeout can end the request.
    hung = createServer(() => {});
    await listen(hung, 0, '127.0.0.1');
    const port = (hung.address() as AddressInfo).port;
    stack = await startTestStack({ gateway: { subgraphTimeoutMs: 300 } });
    await seed(stack.databases, { users: 2, ordersPerUser: 1 });
    // A second gateway on the same supergraph, with orders re-routed to the hung server.
    const gateway = await createGateway({
      supergraphSdl,
      subgraphUrls: { users: stack.urls.users, orders: `http://127.0.0.1:${port}/graphql` },
      subgraphSecrets: { users: stack.secrets.users, orders: stack.secrets.orders },
      subgraphTimeoutMs: 300,
      logger: silentLogger(),
      cache: createMemoryCache(),
      rateLimiter: new MemoryRateLimiter(),
      authenticate: createAuthenticator(TEST_AUTH),
    });
    await listen(gateway.httpServer, 0, '127.0.0.1');
    hungGateway = { url: `http://127.0.0.1:${(gateway.httpServer.address() as AddressInfo).port}/graphql`, stop: gateway.stop };
  });
  afterAll(async () => {
    await hungGateway?.stop();
    hung?.closeAllConnections();
    hung?.close();
    await stack?.teardown();
  });

  it('gives up after SUBGRAPH_TIMEOUT_MS with SUBGRAPH_TIMEOUT, keeping the users data', async () => {
    const started = Date.now();
    const response = await graphql<Nested>(hungGateway.url, NESTED, {}, stack.admin);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(response.data?.users.edges).toHaveLength(2);
    expect(response.data?.users.edges[0]?.node.orders).toBeNull();
    expect(response.errors?.map((error) => error.extensions)).toContainEqual({ code: 'SUBGRAPH_TIMEOUT', serviceName: 'orders' });
  });
});

describe('a database fails underneath a subgraph', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack();
    await seed(stack.databases, { users: 3, ordersPerUser: 1 });
  });
  afterAll(() => stack?.teardown());

  it('masks the driver error (it contains SQL) and keeps the other subgraph’s data', async () => {
    await stack.databases.orders.db.execute(sql`alter table order_items rename to order_items_gone`);
    try {
      const response = await fetch(stack.urls.gateway, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...stack.admin },
        body: JSON.stringify({ query: '{ users(first: 3) { edges { node { name orders(first: 1) { edges { node { items { sku } } } } } } } }' }),
      });
      const text = await response.text();
      const body = JSON.parse(text) as { data: Nested; errors: { message: string; extensions: Record<string, unknown> }[] };
      expect(body.data.users.edges).toHaveLength(3);
      expect(body.errors.length).toBeGreaterThan(0);
      for (const error of body.errors) {
        expect(error.message).toBe('Internal server error');
        expect(error.extensions.code).toBe('INTERNAL_SERVER_ERROR');
      }
      expect(text).not.toContain('order_items');
      expectNoLeaks(text, stack);
    } finally {
      await stack.databases.orders.db.execute(sql`alter table order_items_gone rename to order_items`);
    }
  });
});

describe('a database goes away and comes back', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack();
    await seed(stack.databases, { users: 3, ordersPerUser: 2 });
  });
  afterAll(() => stack?.teardown());

  it('answers DATABASE_UNAVAILABLE for that subgraph’s fields, writes nothing, and recovers on its own', async () => {
    await stack.proxies.orders.setListening(false);

    const read = await fetch(stack.urls.gateway, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...stack.admin },
      body: JSON.stringify({ query: NESTED }),
    });
    const text = await read.text();
    const body = JSON.parse(text) as { data: Nested; errors: { extensions: Record<string, unknown> }[] };
    expect(body.data.users.edges).toHaveLength(3);
    for (const { node } of body.data.users.edges) expect(node.orders).toBeNull();
    expect(body.errors.map((error) => error.extensions)).toContainEqual({ code: 'DATABASE_UNAVAILABLE', serviceName: 'orders' });
    expectNoLeaks(text, stack);

    const write = await stack.request('mutation { placeOrder(input: { userId: "1", items: [{ sku: "A", quantity: 1, unitPriceCents: 1 }] }) { id } }');
    expect(write.errors?.[0]?.extensions).toEqual({ code: 'DATABASE_UNAVAILABLE', serviceName: 'orders' });

    await stack.proxies.orders.setListening(true);
    const again = await stack.request<Nested>(NESTED);
    expect(again.errors).toBeUndefined();
    // Two seeded orders each, and the failed placeOrder above left no third one behind.
    for (const { node } of again.data?.users.edges ?? []) expect(node.orderCount).toBe(2);
  });
});

describe('Redis goes away', () => {
  let stack: TestStack;
  let redis: RedisBehindProxies;
  let teardown: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    ({ stack, redis, teardown } = await startStackBehindRedisProxy({ users: 3, ordersPerUser: 1 }));
  });
  afterAll(() => teardown?.());

  it('keeps answering reads and writes quickly; only the cache and events are lost', async () => {
    await redis.setListening(false);
    const started = Date.now();
    const read = await stack.request<Nested>(NESTED);
    expect(read.errors).toBeUndefined();
    expect(read.data?.users.edges).toHaveLength(3);
    const write = await stack.request<{ updateUser: { name: string } }>('mutation { updateUser(id: "1", input: { name: "Still Here" }) { name } }');
    expect(write.errors).toBeUndefined();
    expect(write.data?.updateUser.name).toBe('Still Here');
    expect(Date.now() - started).toBeLessThan(3_000);
  });
});
