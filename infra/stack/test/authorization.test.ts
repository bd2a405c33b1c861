// This repository's graph under the gateway's authorization directives, end to end: `User.email` is
// @authenticated, `Query.userStats` needs the `users:stats` scope (@requiresScopes), and `Query.orders` the
// gateway's `admin` policy (@policy). The gateway refuses before any fetch; the subgraphs' own rules still hold
// behind it (defence in depth). Real subgraphs, Postgres, Redis and graphql-ws on loopback.
import { graphql, recordStream, waitFor, type GraphQLResponse } from '@fed/platform/testing';
import { createClient, type FormattedExecutionResult } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { mintToken } from '@fed/gateway';
import { seed } from '../src/seed.ts';
import { startTestStack, subgraphRequestsDuring, TEST_AUTH, type TestStack } from './harness.ts';

const GATEWAY_MESSAGE = 'Not authorized to read this field';

describe("the graph's authorization directives", () => {
  let stack: TestStack;
  const as = async (sub: string, role: 'user' | 'admin' = 'user', scopes?: string[]) => ({ authorization: `Bearer ${await mintToken({ ...TEST_AUTH, sub, role, scopes })}` });
  const forbidden = (response: GraphQLResponse) => (response.errors ?? []).filter((error) => error.extensions?.code === 'FORBIDDEN').map(({ path, message }) => ({ path, message }));

  beforeAll(async () => {
    stack = await startTestStack();
    await seed(stack.databases, { users: 3, ordersPerUser: 1 });
  });
  afterAll(async () => {
    await stack?.teardown();
  });

  it('User.email (@authenticated): anonymous viewers are refused at the gateway; other users still by the subgraph', async () => {
    const query = '{ user(id: "1") { name email } }';
    const anonymous = await graphql<{ user: { name: string; email: string | null } }>(stack.urls.gateway, query);
    expect(anonymous.data?.user).toEqual({ name: expect.any(String), email: null });
    expect(forbidden(anonymous)).toEqual([{ path: ['user', 'email'], message: GATEWAY_MESSAGE }]);

    const self = await graphql<{ user: { email: string } }>(stack.urls.gateway, query, {}, await as('1'));
    expect(self.errors).toBeUndefined();
    expect(self.data?.user.email).toMatch(/@/);

    const other = await graphql(stack.urls.gateway, query, {}, await as('2'));
    expect(forbidden(other)).toHaveLength(1);
    expect(forbidden(other)[0]).toMatchObject({ path: ['user', 'email'] });
    expect(forbidden(other)[0]?.message).not.toBe(GATEWAY_MESSAGE);
  });

  it('Query.userStats (@requiresScopes): the users:stats scope at the gateway, and an admin at the subgraph', async () => {
    const query = '{ userStats { total createdLastDay } }';
    for (const headers of [{}, await as('1'), await as('1', 'admin'), await as('1', 'admin', ['users:read'])]) {
      const { value: refused, requests } = await subgraphRequestsDuring(stack, () => graphql(stack.urls.gateway, query, {}, headers));
      expect(refused.data).toEqual({ userStats: null });
      expect(forbidden(refused)).toEqual([{ path: ['userStats'], message: GATEWAY_MESSAGE }]);
      expect(requests).toBe(0);
    }
    const allowed = await graphql(stack.urls.gateway, query, {}, await as('1', 'admin', ['users:stats']));
    expect(allowed.errors).toBeUndefined();
    expect(allowed.data).toEqual({ userStats: { total: 3, createdLastDay: expect.any(Number) } });
    // The scope without the role: the subgraph still says no.
    const scopedUser = await graphql(stack.urls.gateway, query, {}, await as('1', 'user', ['users:stats']));
    expect(scopedUser.data).toEqual({ userStats: null });
    expect(forbidden(scopedUser)[0]?.message).not.toBe(GATEWAY_MESSAGE);
  });

  it("Query.orders (@policy admin): a user is refused at the gateway without a fetch; an admin lists everyone's orders", async () => {
    const query = '{ orders(first: 5) { totalCount } }';
    const { value: refused, requests } = await subgraphRequestsDuring(stack, async () => graphql(stack.urls.gateway, query, {}, await as('1')));
    expect(refused.data).toEqual({ orders: null });
    expect(forbidden(refused)).toEqual([{ path: ['orders'], message: GATEWAY_MESSAGE }]);
    expect(requests).toBe(0);
    const admin = await graphql(stack.urls.gateway, query, {}, await as('1', 'admin'));
    expect(admin.errors).toBeUndefined();
    expect(admin.data).toEqual({ orders: { totalCount: 3 } });
  });

  it('a subscription that selects a field the viewer may not read is refused whole, with FORBIDDEN; one it may read runs', async () => {
    const connect = async (headers: Record<string, string>) =>
      createClient({ url: stack.urls.gateway.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0, connectionParams: headers });
    const query = 'subscription { userEvents(userId: "1") { kind user { email } } }';
    const anonymous = await connect({});
    const self = await connect(await as('1'));
    try {
      const refused = recordStream<FormattedExecutionResult>();
      refused.stop = anonymous.subscribe({ query }, refused.sink);
      await waitFor(() => expect(refused.completed).toBe(true));
      expect(refused.results).toEqual([{ errors: [{ message: GATEWAY_MESSAGE, path: ['userEvents', 'user', 'email'], extensions: { code: 'FORBIDDEN' } }] }]);

      const allowed = recordStream<FormattedExecutionResult<{ userEvents: { kind: string; user: { email: string } } }>>();
      allowed.stop = self.subscribe({ query }, allowed.sink);
      await waitFor(() => expect(stack.gateway.subscriptions?.active).toBe(1));
      await stack.request('mutation { updateUser(id: "1", input: { name: "Ada S." }) { id } }');
      await waitFor(() => expect(allowed.results[0]?.data?.userEvents).toEqual({ kind: 'USER_UPDATED', user: { email: expect.stringMatching(/@/) } }));
      allowed.stop();
    } finally {
      await anonymous.dispose();
      await self.dispose();
    }
  });
});
