// Idempotency keys end to end: a client's Idempotency-Key makes a retried mutation return the first result instead
// of writing twice. Real gateways, real subgraphs, real Postgres; the timeout comes from an HTTP proxy that holds
// the subgraph's answer after it committed.
import { randomUUID } from 'node:crypto';
import { createAuthenticator, createGateway } from '@fed/gateway';
import { schema as ordersSchema } from '@fed/orders/db';
import { createMemoryCache, listen, MemoryRateLimiter } from '@fed/platform';
import { errorCodes, graphql, signedFetch, waitFor } from '@fed/platform/testing';
import { schema as usersSchema } from '@fed/users/db';
import { and, count, eq, sql } from 'drizzle-orm';
import { buildSchema, isObjectType } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpFaultProxy } from './http-proxy.ts';
import { signedInAs, silentLogger, startTestStack, supergraphSdl, TEST_AUTH, type TestStack } from './harness.ts';

const PLACE = `mutation Place($userId: ID!, $sku: String!) {
  placeOrder(input: { userId: $userId, items: [{ sku: $sku, quantity: 2, unitPriceCents: 250 }] }) { id status totalCents createdAt items { sku } }
}`;

interface Placed {
  placeOrder: { id: string; status: string; totalCents: number; createdAt: string; items: { sku: string }[] };
}

const newKey = () => `retry-${randomUUID()}`;

describe('Idempotency-Key on mutations', () => {
  let stack: TestStack;
  let userId: string;
  let viewer: Record<string, string>;
  const closers: (() => Promise<void>)[] = [];

  const createUser = async (name: string) => {
    const created = await stack.request<{ createUser: { id: string } }>('mutation ($input: CreateUserInput!) { createUser(input: $input) { id } }', {
      input: { email: `${name.toLowerCase()}.${randomUUID()}@example.com`, name },
    });
    expect(created.errors).toBeUndefined();
    return created.data!.createUser.id;
  };
  const ordersOf = async (user: string) =>
    (await stack.databases.orders.db.select({ n: count() }).from(ordersSchema.orders).where(eq(ordersSchema.orders.userId, Number(user))))[0]?.n ?? 0;
  const eventsIn = async (database: 'users' | 'orders', kind: string, field: 'userId' | 'orderId', id: string) => {
    const { db } = stack.databases[database];
    const outbox = database === 'users' ? usersSchema.outbox : ordersSchema.outbox;
    const [row] = await db.select({ n: count() }).from(outbox).where(and(sql`${outbox.event}->>'kind' = ${kind}`, sql`${outbox.event}->>${field} = ${id}`));
    return row?.n ?? 0;
  };

  beforeAll(async () => {
    // A generous subgraph deadline: the twin test holds a write in flight for several seconds on purpose.
    stack = await startTestStack({ gateway: { subgraphTimeoutMs: 30_000 } });
    userId = await createUser('Ada');
    viewer = await signedInAs(userId);
  });
  afterAll(async () => {
    for (const close of closers.reverse()) await close();
    await stack?.teardown();
  });

  it('a retry after a timeout that came after the commit returns the first order, and no second one is written', async () => {
    // A gateway whose way to orders holds each answer: orders commits, the gateway gives up first.
    const proxy = await startHttpFaultProxy(stack.urls.orders);
    closers.push(() => proxy.close());
    const gateway = await createGateway({
      supergraphSdl,
      subgraphUrls: { users: stack.urls.users, orders: proxy.url },
      subgraphSecrets: { users: stack.secrets.users, orders: stack.secrets.orders },
      subgraphTimeoutMs: 500,
      breaker: null,
      logger: silentLogger(),
      cache: createMemoryCache(),
      rateLimiter: new MemoryRateLimiter(),
      authenticate: createAuthenticator(TEST_AUTH),
    });
    const port = await listen(gateway.httpServer, 0, '127.0.0.1');
    closers.push(() => gateway.stop());
    const url = `http://127.0.0.1:${port}/graphql`;
    const headers = { ...viewer, 'idempotency-key': newKey() };
    const variables = { userId, sku: 'TIMED-OUT' };
    const before = await ordersOf(userId);

    proxy.setAnswerDelay(5_000);
    const first = await graphql<Placed>(url, PLACE, variables, headers);
    expect(errorCodes(first)).toEqual(['SUBGRAPH_TIMEOUT']);
    // The client was told it failed, yet the order is there: exactly the case a blind retry doubles.
    await waitFor(async () => expect(await ordersOf(userId)).toBe(before + 1));
    const [written] = await stack.databases.orders.db
      .select({ id: ordersSchema.orders.id })
      .from(ordersSchema.orders)
      .where(eq(ordersSchema.orders.userId, Number(userId)))
      .orderBy(sql`${ordersSchema.orders.id} desc`)
      .limit(1);

    proxy.setAnswerDelay(0);
    const retry = await graphql<Placed>(url, PLACE, variables, headers);
    expect(retry.errors).toBeUndefined();
    expect(retry.data?.placeOrder).toMatchObject({ id: String(written?.id), status: 'PENDING', totalCents: 500, items: [{ sku: 'TIMED-OUT' }] });
    // Through another gateway replica too (the stack's own, with its response cache): the same answer.
    const again = await stack.request<Placed>(PLACE, variables, headers);
    expect(again.data).toEqual(retry.data);
    expect(await ordersOf(userId)).toBe(before + 1);
    expect(await eventsIn('orders', 'ORDER_PLACED', 'orderId', String(written?.id))).toBe(1);
  });

  it('a twin sent while the first is still in flight waits for it and gets its result; one still in flight after the wait is told IN_PROGRESS', async () => {
    const before = await ordersOf(userId);
    const headers = { ...viewer, 'idempotency-key': newKey() };
    const variables = { userId, sku: 'TWINS' };
    // Holding the user's projection row makes the first placeOrder wait inside its transaction, key taken.
    let release = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    let locked = () => {};
    const isLocked = new Promise<void>((resolve) => (locked = resolve));
    const holder = stack.databases.orders.db.transaction(async (tx) => {
      await tx.execute(sql`select 1 from known_users where user_id = ${Number(userId)} for update`);
      locked();
      await released;
    });
    await isLocked;
    const waiting = async () => {
      const rows = (await stack.databases.orders.db.execute(
        sql`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`,
      )) as unknown as { n: number }[];
      return rows[0]?.n ?? 0;
    };
    try {
      const first = graphql<Placed>(stack.urls.gateway, PLACE, variables, headers);
      await waitFor(async () => expect(await waiting()).toBe(1));
      const second = graphql<Placed>(stack.urls.gateway, PLACE, variables, headers);
      const third = graphql<Placed>(stack.urls.gateway, PLACE, variables, headers);
      await waitFor(async () => expect(await waiting()).toBe(3));
      // The second and third wait on the key, not on the user: past the bound they answer without writing.
      const [late] = await Promise.all([second, third.then((answer) => expect(errorCodes(answer)).toEqual(['IDEMPOTENCY_KEY_IN_PROGRESS']))]);
      expect(errorCodes(late)).toEqual(['IDEMPOTENCY_KEY_IN_PROGRESS']);
      expect(late.data).toBeNull();

      const twin = graphql<Placed>(stack.urls.gateway, PLACE, variables, headers);
      await waitFor(async () => expect(await waiting()).toBe(2));
      release();
      const [answered, twinAnswer] = await Promise.all([first, twin]);
      expect(answered.errors).toBeUndefined();
      expect(twinAnswer.errors).toBeUndefined();
      expect(twinAnswer.data).toEqual(answered.data);
      expect(await ordersOf(userId)).toBe(before + 1);
    } finally {
      release();
      await holder;
    }
  });

  it('refuses the same key for a different request with IDEMPOTENCY_KEY_REUSED, writing nothing', async () => {
    const headers = { ...viewer, 'idempotency-key': newKey() };
    const placed = await stack.request<Placed>(PLACE, { userId, sku: 'FIRST' }, headers);
    expect(placed.errors).toBeUndefined();
    const before = await ordersOf(userId);

    const otherArguments = await stack.request<Placed>(PLACE, { userId, sku: 'SECOND' }, headers);
    expect(otherArguments.data).toBeNull();
    expect(otherArguments.errors?.[0]?.extensions).toEqual({ code: 'IDEMPOTENCY_KEY_REUSED', serviceName: 'orders' });

    const otherMutation = await stack.request('mutation ($id: ID!) { cancelOrder(id: $id) { status } }', { id: placed.data!.placeOrder.id }, headers);
    expect(errorCodes(otherMutation)).toEqual(['IDEMPOTENCY_KEY_REUSED']);
    expect(await ordersOf(userId)).toBe(before);
    const order = await stack.request<{ order: { status: string } }>('query ($id: ID!) { order(id: $id) { status } }', { id: placed.data!.placeOrder.id }, viewer);
    expect(order.data?.order.status).toBe('PENDING');
  });

  it('covers every mutation of both subgraphs: a retry answers as the first time, where running twice would not', async () => {
    const mutationFields = buildSchema(supergraphSdl, { assumeValidSDL: true }).getMutationType();
    expect(isObjectType(mutationFields) && Object.keys(mutationFields.getFields()).sort()).toEqual(['cancelOrder', 'createUser', 'deleteUser', 'placeOrder', 'updateUser']);
    const twice = async <T>(query: string, variables: Record<string, unknown>, headers: Record<string, string>) => {
      const first = await stack.request<T>(query, variables, headers);
      const second = await stack.request<T>(query, variables, headers);
      expect(first.errors).toBeUndefined();
      expect(second).toMatchObject({ data: first.data });
      expect(second.errors).toBeUndefined();
      return first.data as T;
    };
    const admin = { ...stack.admin, 'idempotency-key': newKey() };

    // Without the key the second createUser would be EMAIL_TAKEN.
    const email = `grace.${randomUUID()}@example.com`;
    const created = await twice<{ createUser: { id: string } }>('mutation ($email: String!) { createUser(input: { email: $email, name: "Grace" }) { id name } }', { email }, admin);
    const graceId = created.createUser.id;
    const [users] = await stack.databases.users.db.select({ n: count() }).from(usersSchema.users).where(eq(usersSchema.users.email, email));
    expect(users?.n).toBe(1);

    // Without the key the second updateUser would move updatedAt and announce a second USER_UPDATED.
    const grace = { ...(await signedInAs(graceId)), 'idempotency-key': newKey() };
    await twice('mutation ($id: ID!) { updateUser(id: $id, input: { name: "Grace H." }) { name updatedAt } }', { id: graceId }, grace);
    expect(await eventsIn('users', 'USER_UPDATED', 'userId', graceId)).toBe(1);

    // Without the key the second cancelOrder would announce a second ORDER_CANCELLED.
    const placed = await stack.request<Placed>(PLACE, { userId, sku: 'TO-CANCEL' }, viewer);
    const orderId = placed.data!.placeOrder.id;
    await twice('mutation ($id: ID!) { cancelOrder(id: $id) { id status } }', { id: orderId }, { ...viewer, 'idempotency-key': newKey() });
    expect(await eventsIn('orders', 'ORDER_CANCELLED', 'orderId', orderId)).toBe(1);

    // Without the key the second deleteUser would be NOT_FOUND.
    await twice('mutation ($id: ID!) { deleteUser(id: $id) }', { id: graceId }, { ...stack.admin, 'idempotency-key': newKey() });
    expect(await eventsIn('users', 'USER_DELETED', 'userId', graceId)).toBe(1);
  });

  it('gives each field of an operation its own write, and a retry of the operation replays them all', async () => {
    const before = await ordersOf(userId);
    const both = `mutation ($userId: ID!) {
      a: placeOrder(input: { userId: $userId, items: [{ sku: "SAME", quantity: 1, unitPriceCents: 1 }] }) { id }
      b: placeOrder(input: { userId: $userId, items: [{ sku: "SAME", quantity: 1, unitPriceCents: 1 }] }) { id }
    }`;
    const headers = { ...viewer, 'idempotency-key': newKey() };
    const first = await stack.request<{ a: { id: string }; b: { id: string } }>(both, { userId }, headers);
    expect(first.errors).toBeUndefined();
    expect(first.data?.a.id).not.toBe(first.data?.b.id);
    const retry = await stack.request(both, { userId }, headers);
    expect(retry).toMatchObject({ data: first.data });
    expect(await ordersOf(userId)).toBe(before + 2);
  });

  it('scopes keys to the viewer: another user sending the same key has a key of their own', async () => {
    const other = await createUser('Linus');
    const key = newKey();
    const mine = await stack.request<Placed>(PLACE, { userId, sku: 'SHARED-KEY' }, { ...viewer, 'idempotency-key': key });
    const theirs = await stack.request<Placed>(PLACE, { userId: other, sku: 'SHARED-KEY' }, { ...(await signedInAs(other)), 'idempotency-key': key });
    expect(mine.errors).toBeUndefined();
    expect(theirs.errors).toBeUndefined();
    expect(theirs.data?.placeOrder.id).not.toBe(mine.data?.placeOrder.id);
  });

  it('refuses a malformed key with 400 BAD_REQUEST before anything runs', async () => {
    const before = await ordersOf(userId);
    // Too short, spaces, too long, two keys (a repeated header arrives joined by a comma), other punctuation.
    for (const key of ['short', 'has spaces in it', 'a'.repeat(129), 'first-key-1, second-key-2', 'semi;colon;key']) {
      const response = await fetch(stack.urls.gateway, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...viewer, 'idempotency-key': key },
        body: JSON.stringify({ query: PLACE, variables: { userId, sku: 'NEVER' } }),
      });
      expect(response.status).toBe(400);
      const body = (await response.json()) as { errors: { extensions: { code: string } }[] };
      expect(body.errors[0]?.extensions.code).toBe('BAD_REQUEST');
    }
    expect(await ordersOf(userId)).toBe(before);
  });

  it('without a key every mutation writes: none is answered from the response cache or merged with one in flight', async () => {
    const before = await ordersOf(userId);
    const variables = { userId, sku: 'NO-KEY' };
    const sequential = [await stack.request<Placed>(PLACE, variables, viewer), await stack.request<Placed>(PLACE, variables, viewer)];
    const concurrent = await Promise.all([1, 2, 3].map(() => stack.request<Placed>(PLACE, variables, viewer)));
    const ids = [...sequential, ...concurrent].map((response) => response.data?.placeOrder.id);
    expect(new Set(ids).size).toBe(5);
    expect(await ordersOf(userId)).toBe(before + 5);
  });

  it('takes the key only from the identity the gateway signed: a client header at a subgraph is ignored', async () => {
    const before = await ordersOf(userId);
    const body = JSON.stringify({ query: PLACE, variables: { userId, sku: 'DIRECT' } });
    const signing = { secret: stack.secrets.orders, audience: 'orders', viewer: { userId, role: 'user' as const } };
    const key = newKey();
    for (let attempt = 0; attempt < 2; attempt++) {
      const response = await signedFetch(stack.urls.orders, signing, body, { 'idempotency-key': key });
      expect(response.status).toBe(200);
    }
    expect(await ordersOf(userId)).toBe(before + 2);
  });

  it('forgets keys after 24 hours: an expired key writes again, and expired keys are deleted', async () => {
    const headers = { ...viewer, 'idempotency-key': newKey() };
    const variables = { userId, sku: 'EXPIRES' };
    const first = await stack.request<Placed>(PLACE, variables, headers);
    const keys = ordersSchema.idempotencyKeys;
    await stack.databases.orders.db.update(keys).set({ createdAt: sql`now() - interval '25 hours'` }).where(eq(keys.key, headers['idempotency-key']));
    const later = await stack.request<Placed>(PLACE, variables, headers);
    expect(later.errors).toBeUndefined();
    expect(later.data?.placeOrder.id).not.toBe(first.data?.placeOrder.id);

    // An expired key nobody retries is deleted by a later keyed write (the first of a process, then one a minute).
    await stack.databases.orders.db.insert(keys).values({ subject: userId, key: 'expired-and-forgotten', field: 'placeOrder', request: 'r', fingerprint: 'f', result: null, createdAt: sql`now() - interval '25 hours'` });
    await stack.stopSubgraph('orders');
    await stack.restartOrders();
    expect((await stack.request<Placed>(PLACE, variables, { ...viewer, 'idempotency-key': newKey() })).errors).toBeUndefined();
    await waitFor(async () => {
      const [left] = await stack.databases.orders.db.select({ n: count() }).from(keys).where(eq(keys.key, 'expired-and-forgotten'));
      expect(left?.n).toBe(0);
    });
  });
});
