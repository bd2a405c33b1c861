import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seed } from '../src/seed.ts';
import { NESTED_QUERY, startTestStack, type NestedResult, type TestStack } from './harness.ts';

describe('N+1: SQL statements per gateway request', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startTestStack();
    // 60 users with 8 orders each, so both page sizes below are really filled.
    await seed(stack.databases, { users: 60, ordersPerUser: 8 });
  });
  afterAll(() => stack?.teardown());

  const run = async (users: number, orders: number) => {
    stack.resetStatements();
    const response = await stack.request<NestedResult>(NESTED_QUERY, { users, orders });
    expect(response.errors).toBeUndefined();
    return { data: response.data as NestedResult, users: stack.statements.users.length, orders: stack.statements.orders.length };
  };

  it('does not grow with the number of users or orders in the response', async () => {
    const small = await run(5, 5);
    const large = await run(50, 5);
    const wide = await run(50, 8);

    expect(small.data.users.edges).toHaveLength(5);
    expect(large.data.users.edges).toHaveLength(50);
    for (const { node } of large.data.users.edges) {
      expect(node.orders.edges).toHaveLength(5);
      expect(node.orderCount).toBe(8);
      for (const order of node.orders.edges) expect(order.node.items.length).toBeGreaterThan(0);
    }
    expect(wide.data.users.edges[0]?.node.orders.edges).toHaveLength(8);

    // users: 1 statement (the page of users; totalCount is not asked for, so no count runs).
    // orders: 3 statements, for any number of users: the per-user pages (one window-function query), the
    // order counts (one GROUP BY), and the items of every order on those pages (one IN query).
    for (const measured of [small, large, wide]) {
      expect({ users: measured.users, orders: measured.orders }).toEqual({ users: 1, orders: 3 });
    }
  });

  it('resolves 50 orders back to their users with one statement in each subgraph', async () => {
    stack.resetStatements();
    const response = await stack.request<{ orders: { edges: { node: { user: { name: string } | null } }[] } }>('{ orders(first: 50) { edges { node { id user { name } } } } }',
    );
    expect(response.errors).toBeUndefined();
    expect(response.data?.orders.edges).toHaveLength(50);
    for (const edge of response.data?.orders.edges ?? []) expect(edge.node.user?.name).toMatch(/\w+ \w+/);
    // orders: the page of orders; users: one batched lookup for every distinct user on it.
    expect({ users: stack.statements.users.length, orders: stack.statements.orders.length }).toEqual({ users: 1, orders: 1 });
  });

  it('serves the README example with the 5 statements the README promises, for 3 users or 50', async () => {
    const readme = `query ($n: Int!) { users(first: $n) { totalCount pageInfo { hasNextPage endCursor } edges { node {
      id name email orderCount totalSpentCents
      orders(first: 2, status: PAID) { edges { node { id status totalCents currency createdAt items { sku quantity unitPriceCents } } } }
    } } } }`;
    for (const n of [3, 50]) {
      stack.resetStatements();
      const response = await stack.request<{ users: { edges: unknown[] } }>(readme, { n });
      expect(response.errors).toBeUndefined();
      expect(response.data?.users.edges).toHaveLength(n);
      expect({ users: stack.statements.users.length, orders: stack.statements.orders.length }).toEqual({ users: 2, orders: 3 });
    }
  });

  it('gives each alias its own page size, one statement per distinct argument set', async () => {
    stack.resetStatements();
    type Page = { edges: { node: { id: string } }[] };
    const response = await stack.request<{ users: { edges: { node: { recent: Page; more: Page } }[] } }>('{ users(first: 20) { edges { node { recent: orders(first: 1) { edges { node { id } } } more: orders(first: 3) { edges { node { id } } } } } } }',
    );
    expect(response.errors).toBeUndefined();
    for (const { node } of response.data?.users.edges ?? []) {
      expect(node.recent.edges).toHaveLength(1);
      expect(node.more.edges).toHaveLength(3);
      expect(node.recent.edges[0]?.node.id).toBe(node.more.edges[0]?.node.id);
    }
    expect(stack.statements.orders).toHaveLength(2);
  });
});
