// Live queries (issue 23): `query @live` over graphql-ws keeps its answer current. Two gateways on one Redis, both
// subgraphs on real Postgres: writes through the other gateway, and straight to a subgraph, reach a live query on
// this one; every new answer equals what a plain query answers right after. Real sockets and HTTP on loopback.
import { IDENTITY_HEADER, MemoryPubSub, signIdentity } from '@fed/platform';
import { waitFor } from '@fed/platform/testing';
import fastJsonPatch, { type Operation } from 'fast-json-patch';
import type { GraphQLFormattedError } from 'graphql';
import { createClient as createSseClient, type Client as SseClient } from 'graphql-sse';
import type { Client, FormattedExecutionResult } from 'graphql-ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { seed } from '../src/seed.ts';
import type { RedisBehindProxies } from '@fed/platform/testing';
import { signedInAs, socketClient, startGatewayTo, startStackBehindRedisProxy, startTestStack, tokenFor, type TestStack } from './harness.ts';

type Data = Record<string, unknown>;

/** A live query over the socket: every answer it got, and how it ended. */
interface Watch {
  answers: FormattedExecutionResult<Data, unknown>[];
  error?: GraphQLFormattedError[];
  completed: boolean;
  stop(): void;
}

/** Waits until `condition` holds (waitFor retries only while its check throws). */
const until = (condition: () => boolean | Promise<boolean>, timeoutMs?: number) =>
  waitFor(async () => {
    if (!(await condition())) throw new Error('not yet');
  }, timeoutMs);

const USERS_SECRET = 'live-queries-users-secret-'.repeat(2);

const LIVE_USER = `query LiveUser($id: ID!) @live {
  user(id: $id) { id name orders(first: 5) { totalCount edges { node { id status totalCents } } } }
}`;
const PLAIN_USER = LIVE_USER.replace(' @live', '');

describe('live queries over graphql-ws', () => {
  let stack: TestStack;
  let other: string;
  const clients: (Client | SseClient)[] = [];
  const watches: Watch[] = [];

  const connect = async (url = stack.urls.gateway, sub = '1000000', role: 'user' | 'admin' = 'admin') => {
    const client = await socketClient(url, sub, role);
    clients.push(client);
    return client;
  };

  const watch = (client: Client | SseClient, query: string, variables?: Record<string, unknown>, extensions?: Record<string, unknown>): Watch => {
    const state: Watch = { answers: [], completed: false, stop: () => {} };
    state.stop = (client as Client).subscribe<Data>(
      { query, variables, ...(extensions && { extensions }) },
      {
        next: (result) => state.answers.push(result),
        error: (error) => (state.error = error as GraphQLFormattedError[]),
        complete: () => (state.completed = true),
      },
    );
    watches.push(state);
    return state;
  };

  const plain = async (query: string, variables?: Record<string, unknown>) => {
    const response = await stack.request<Data>(query, variables);
    expect(response.errors).toBeUndefined();
    return { data: response.data };
  };

  /** One of the gateway's series, read from its own /metrics as a scraper would (labels: those it must have). */
  const metric = async (url: string, name: string, labels: Record<string, string> = {}) => {
    const text = await (await fetch(new URL('/metrics', url))).text();
    const line = text
      .split('\n')
      .find((candidate) => (candidate.startsWith(`${name}{`) || candidate.startsWith(`${name} `)) && Object.entries(labels).every(([key, value]) => candidate.includes(`${key}="${value}"`)));
    if (!line) throw new Error(`${name} is not on /metrics`);
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  };

  /** Whether nothing more arrives: no new answer for a while after the last one (a busy machine gets time). */
  const settled = async (state: Watch, count: number) => {
    await until(() => state.answers.length >= count, 30_000);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    return state.answers.length;
  };

  beforeAll(async () => {
    stack = await startTestStack({ secrets: { users: USERS_SECRET } });
    await seed(stack.databases, { users: 6, ordersPerUser: 2 });
    other = (await stack.addGateway()).url;
  });
  afterEach(() => {
    for (const state of watches.splice(0)) state.stop();
  });
  afterAll(async () => {
    for (const client of clients) await client.dispose();
    await stack?.teardown();
  });

  it('sends the current answer first, then one new answer per write through another gateway, each equal to a plain query right after', async () => {
    const live = watch(await connect(), LIVE_USER, { id: '1' });
    await until(() => live.answers.length === 1);
    expect(live.answers[0]).toEqual(await plain(PLAIN_USER, { id: '1' }));

    const renamed = await fetch(other, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...stack.admin },
      body: JSON.stringify({ query: 'mutation { updateUser(id: "1", input: { name: "Live Rename" }) { id } }' }),
    });
    expect(renamed.status).toBe(200);
    expect(await settled(live, 2)).toBe(2);
    expect(live.answers[1]).toEqual(await plain(PLAIN_USER, { id: '1' }));
    expect((live.answers[1]?.data?.user as { name: string }).name).toBe('Live Rename');

    const placed = await stack.request<{ placeOrder: { id: string } }>('mutation { placeOrder(input: { userId: "1", items: [{ sku: "LIVE-1", quantity: 2, unitPriceCents: 150 }] }) { id } }');
    expect(placed.errors).toBeUndefined();
    expect(await settled(live, 3)).toBe(3);
    expect(live.answers[2]).toEqual(await plain(PLAIN_USER, { id: '1' }));

    const cancelled = await stack.request(`mutation { cancelOrder(id: "${placed.data?.placeOrder.id}") { id status } }`);
    expect(cancelled.errors).toBeUndefined();
    expect(await settled(live, 4)).toBe(4);
    expect(live.answers[3]).toEqual(await plain(PLAIN_USER, { id: '1' }));
    expect(live.completed).toBe(false);
  });

  it('follows a write sent straight to the users subgraph, past every gateway', async () => {
    const live = watch(await connect(other), LIVE_USER, { id: '2' });
    await until(() => live.answers.length === 1);
    const body = JSON.stringify({ query: 'mutation { updateUser(id: "2", input: { name: "Written Directly" }) { id } }' });
    const identity = signIdentity({ secret: USERS_SECRET, caller: 'gateway', audience: 'users', viewer: { userId: '1000000', role: 'admin' }, body });
    const direct = await fetch(stack.urls.users, { method: 'POST', headers: { 'content-type': 'application/json', [IDENTITY_HEADER]: identity }, body });
    expect(((await direct.json()) as { errors?: unknown }).errors).toBeUndefined();
    expect(await settled(live, 2)).toBe(2);
    expect(live.answers[1]).toEqual(await plain(PLAIN_USER, { id: '2' }));
  });

  it('does not run again for a write to another user (counted by live_query_runs_total)', async () => {
    const live = watch(await connect(), LIVE_USER, { id: '3' });
    // A probe on the other user, on the same gateway: its update shows that this gateway heard the write.
    const probe = watch(await connect(), LIVE_USER, { id: '4' });
    await until(() => live.answers.length === 1 && probe.answers.length === 1);
    const runs = await metric(stack.urls.gateway, 'live_query_runs_total', { reason: 'event' });
    await stack.request('mutation { updateUser(id: "4", input: { name: "Someone Else" }) { id } }');
    await until(() => probe.answers.length === 2, 30_000);
    await new Promise((resolve) => setTimeout(resolve, 500));
    // One run: the probe's. User 3's live query did not run, and got nothing.
    expect(await metric(stack.urls.gateway, 'live_query_runs_total', { reason: 'event' })).toBe(runs + 1);
    expect(live.answers).toHaveLength(1);

    // The same write to its own user does run it, and is counted.
    await stack.request('mutation { updateUser(id: "3", input: { name: "Its Own Write" }) { id } }');
    await settled(live, 2);
    expect(await metric(stack.urls.gateway, 'live_query_runs_total', { reason: 'event' })).toBe(runs + 2);
  });

  it('coalesces a burst: 50 writes produce a handful of answers, the last one current', async () => {
    const live = watch(await connect(), LIVE_USER, { id: '5' });
    await until(() => live.answers.length === 1);
    const started = Date.now();
    await Promise.all(Array.from({ length: 50 }, (_, n) => stack.request(`mutation { updateUser(id: "5", input: { name: "Burst ${n}" }) { id } }`)));
    const elapsed = Date.now() - started;
    const current = await plain(PLAIN_USER, { id: '5' });
    await until(() => JSON.stringify(live.answers.at(-1)) === JSON.stringify(current), 30_000);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(live.answers.at(-1)).toEqual(current);
    // The first answer, then at most one per throttle window (100 ms) while the writes lasted, and the last state.
    expect(live.answers.length).toBeGreaterThanOrEqual(2);
    expect(live.answers.length).toBeLessThanOrEqual(Math.min(25, Math.ceil(elapsed / 100) + 3));
  });

  it('ends nothing else when a client completes it, and stops counting it', async () => {
    const live = watch(await connect(), LIVE_USER, { id: '6' });
    await until(() => live.answers.length === 1);
    expect(await metric(stack.urls.gateway, 'live_queries_open')).toBeGreaterThanOrEqual(1);
    for (const state of watches.splice(0)) state.stop();
    await until(async () => (await metric(stack.urls.gateway, 'live_queries_open')) === 0);
  });

  it('answers `@live(if: false)` once, as a plain query', async () => {
    const client = await connect();
    const once = watch(client, LIVE_USER.replace('@live', '@live(if: false)'), { id: '1' });
    await until(() => once.completed);
    expect(once.answers).toEqual([await plain(PLAIN_USER, { id: '1' })]);
  });

  it('refuses a live query over plain HTTP with BAD_REQUEST, and one that fails validation over the socket as HTTP would', async () => {
    const response = await fetch(stack.urls.gateway, { method: 'POST', headers: { 'content-type': 'application/json', ...stack.admin }, body: JSON.stringify({ query: LIVE_USER, variables: { id: '1' } }) });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { errors: GraphQLFormattedError[] };
    expect(body.errors[0]?.extensions?.code).toBe('BAD_REQUEST');

    const invalid = watch(await connect(), 'query @live { user(id: "1") { nope } }');
    await until(() => invalid.error !== undefined);
    expect(invalid.error?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
  });

  it("answers as the socket's viewer: a user's live query of another user's private field is refused, not kept", async () => {
    const live = watch(await connect(stack.urls.gateway, '2', 'user'), 'query @live { user(id: "3") { id email } }');
    const http = await (await fetch(stack.urls.gateway, { method: 'POST', headers: { 'content-type': 'application/json', ...(await signedInAs('2')) }, body: JSON.stringify({ query: '{ user(id: "3") { id email } }' }) })).json();
    await until(() => live.completed || live.error !== undefined);
    expect(live.answers).toEqual([http]);
    expect(live.completed).toBe(true);
  });

  it('keeps a live query current over server-sent events, with the graphql-sse client', async () => {
    const client = createSseClient({ url: other, headers: { authorization: `Bearer ${await tokenFor('1000000', 'admin')}` }, retryAttempts: 0 });
    clients.push(client);
    const live = watch(client, LIVE_USER, { id: '4' });
    await until(() => live.answers.length === 1);
    expect(live.answers[0]).toEqual(await plain(PLAIN_USER, { id: '4' }));
    await stack.request('mutation { updateUser(id: "4", input: { name: "Over SSE" }) { id } }');
    expect(await settled(live, 2)).toBe(2);
    expect(live.answers[1]).toEqual(await plain(PLAIN_USER, { id: '4' }));
    expect(live.completed || live.error !== undefined).toBe(false);
  });

  it('shares one execution between identical live queries of one viewer, and runs another for another viewer', async () => {
    const runs = () => metric(stack.urls.gateway, 'live_query_runs_total', { reason: 'first' });
    const before = await runs();
    const one = watch(await connect(), LIVE_USER, { id: '6' });
    const two = watch(await connect(), LIVE_USER, { id: '6' });
    await until(() => one.answers.length === 1 && two.answers.length === 1);
    expect(await runs()).toBe(before + 1);
    expect(two.answers[0]).toEqual(one.answers[0]);
    // Another viewer (user 6 reading their own profile) gets an execution of their own.
    const own = watch(await connect(stack.urls.gateway, '6', 'user'), LIVE_USER, { id: '6' });
    await until(() => own.answers.length === 1);
    expect(await runs()).toBe(before + 2);

    await stack.request('mutation { updateUser(id: "6", input: { name: "Shared Rename" }) { id } }');
    await until(() => one.answers.length === 2 && two.answers.length === 2 && own.answers.length === 2, 30_000);
    expect(two.answers[1]).toEqual(one.answers[1]);
    expect(one.answers[1]).toEqual(await plain(PLAIN_USER, { id: '6' }));
    // One leaving does not end the other's.
    one.stop();
    await stack.request('mutation { updateUser(id: "6", input: { name: "After One Left" }) { id } }');
    await until(() => two.answers.length === 3, 30_000);
    expect(two.answers[2]).toEqual(await plain(PLAIN_USER, { id: '6' }));
  });

  it('sends RFC 6902 patches of data when the client asks (extensions.live.format), which apply to give the current answer', async () => {
    const live = watch(await connect(), LIVE_USER, { id: '1' }, { live: { format: 'json-patch' } });
    await until(() => live.answers.length === 1);
    const first = live.answers[0] as { data: Data; revision: number };
    expect(first.revision).toBe(1);
    expect({ data: first.data }).toEqual(await plain(PLAIN_USER, { id: '1' }));

    /** The first answer with every patch since applied, in order. */
    const applied = () => {
      let data = structuredClone(first.data);
      for (const answer of live.answers.slice(1) as { patch: Operation[] }[]) data = fastJsonPatch.applyPatch(data, answer.patch, true, false).newDocument;
      return { data };
    };
    await stack.request('mutation { placeOrder(input: { userId: "1", items: [{ sku: "PATCH-1", quantity: 1, unitPriceCents: 99 }] }) { id } }');
    const withOrder = await plain(PLAIN_USER, { id: '1' });
    await until(() => JSON.stringify(applied()) === JSON.stringify(withOrder), 30_000);

    await stack.request('mutation { updateUser(id: "1", input: { name: "Patched Name" }) { id } }');
    const current = await plain(PLAIN_USER, { id: '1' });
    await until(() => JSON.stringify(applied()) === JSON.stringify(current), 30_000);
    expect(applied()).toEqual(current);
    const revisions = live.answers.map((answer) => (answer as { revision: number }).revision);
    expect(revisions).toEqual(revisions.map((_, index) => index + 1));
    // A rename is one small operation, not the whole answer again.
    expect((live.answers.at(-1) as { patch: Operation[] }).patch).toEqual([{ op: 'replace', path: '/user/name', value: 'Patched Name' }]);
  });

  it('ends the execution of an SSE client that leaves while its first answer is being made', async () => {
    // Cut at every moment of the first run: before it, during it, as its answer goes out.
    const body = JSON.stringify({ query: LIVE_USER, variables: { id: '4' } });
    await Promise.all(
      Array.from({ length: 20 }, async (_, n) => {
        const controller = new AbortController();
        setTimeout(() => controller.abort(), n * 2);
        await fetch(stack.urls.gateway, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...stack.admin }, body, signal: controller.signal })
          .then((response) => response.body?.cancel())
          .catch(() => undefined);
      }),
    );
    await until(async () => (await metric(stack.urls.gateway, 'live_queries_open')) === 0, 15_000);
    // And nothing is left to run: a commit to that user runs nothing.
    const runs = await metric(stack.urls.gateway, 'live_query_runs_total', { reason: 'event' });
    await stack.request('mutation { updateUser(id: "4", input: { name: "Nobody Watching" }) { id } }');
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(await metric(stack.urls.gateway, 'live_query_runs_total', { reason: 'event' })).toBe(runs);
  });

  it('counts live queries against the subscription caps: past the per-socket cap, TOO_MANY_SUBSCRIPTIONS', async () => {
    const capped = await startGatewayTo(stack, stack.urls.users, { liveQueries: { events: new MemoryPubSub() }, subscriptions: { limits: { subscriptionsPerSocket: 2 } } });
    try {
      const client = await connect(capped.url);
      const first = watch(client, LIVE_USER, { id: '1' });
      const second = watch(client, LIVE_USER, { id: '2' });
      await until(() => first.answers.length === 1 && second.answers.length === 1);
      const third = watch(client, LIVE_USER, { id: '3' });
      await until(() => third.error !== undefined);
      expect(third.error?.[0]?.extensions?.code).toBe('TOO_MANY_SUBSCRIPTIONS');
      // One ends: the next one is let in.
      first.stop();
      const fourth = watch(client, LIVE_USER, { id: '3' });
      await until(() => fourth.answers.length === 1);
    } finally {
      for (const state of watches.splice(0)) state.stop();
      await capped.stop();
    }
  });

  it('answers a client that lost its connection with the current answer when it comes back', async () => {
    const before = await connect();
    const live = watch(before, LIVE_USER, { id: '2' });
    await until(() => live.answers.length === 1);
    before.terminate();
    await stack.request('mutation { updateUser(id: "2", input: { name: "Renamed While Away" }) { id } }');
    const current = await plain(PLAIN_USER, { id: '2' });
    const again = watch(await connect(), LIVE_USER, { id: '2' });
    await until(() => JSON.stringify(again.answers.at(-1)) === JSON.stringify(current));
    expect((again.answers.at(-1)?.data?.user as { name: string }).name).toBe('Renamed While Away');
  });
});

describe('live queries across a Redis outage', () => {
  let stack: TestStack;
  let redis: RedisBehindProxies;
  let teardown: () => Promise<void>;
  let client: Client | undefined;
  beforeAll(async () => {
    ({ stack, redis, teardown } = await startStackBehindRedisProxy({ users: 3, ordersPerUser: 1 }));
  });
  afterAll(async () => {
    await client?.dispose();
    await teardown?.();
  });

  it('runs every live query again once the bus is back, so a write made while it was away is not missed', async () => {
    client = await socketClient(stack.urls.gateway, '1000000', 'admin');
    const answers: FormattedExecutionResult<Data, unknown>[] = [];
    const stop = client.subscribe<Data>({ query: LIVE_USER, variables: { id: '3' } }, { next: (result) => answers.push(result), error: () => {}, complete: () => {} });
    try {
      await until(() => answers.length === 1);
      await redis.setListening(false);
      // The write commits; its event waits in the outbox, and the bus cannot tell the gateway anything.
      const renamed = await stack.request('mutation { updateUser(id: "3", input: { name: "Renamed In The Dark" }) { id } }');
      expect(renamed.errors).toBeUndefined();
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      await redis.setListening(true);
      const current = await stack.request<Data>(PLAIN_USER, { id: '3' });
      await until(() => JSON.stringify(answers.at(-1)) === JSON.stringify({ data: current.data }), 30_000);
      expect((answers.at(-1)?.data?.user as { name: string }).name).toBe('Renamed In The Dark');
      // It ran because the bus came back, whatever the outbox relay sends later.
      const metrics = await (await fetch(new URL('/metrics', stack.urls.gateway))).text();
      expect(metrics).toMatch(/^live_query_runs_total\{[^}]*reason="gap"[^}]*\} [1-9]/m);
    } finally {
      stop();
    }
  });
});

describe('live queries while a subgraph is down', () => {
  let stack: TestStack;
  let client: Client | undefined;
  beforeAll(async () => {
    stack = await startTestStack();
    await seed(stack.databases, { users: 2, ordersPerUser: 1 });
  });
  afterAll(async () => {
    await client?.dispose();
    await stack?.teardown();
  });

  it('sends the failed answer, then the whole one once the subgraph is back, and keeps following what it read', async () => {
    client = await socketClient(stack.urls.gateway, '1000000', 'admin');
    const answers: FormattedExecutionResult<Data, unknown>[] = [];
    const stop = client.subscribe<Data>({ query: LIVE_USER, variables: { id: '1' } }, { next: (result) => answers.push(result), error: () => {}, complete: () => {} });
    const plainNow = async () => ({ data: (await stack.request<Data>(PLAIN_USER, { id: '1' })).data });
    try {
      await until(() => answers.length === 1);
      await stack.stopSubgraph('orders');
      // A rename runs it while orders is away: that part of the answer fails.
      await stack.request('mutation { updateUser(id: "1", input: { name: "While Orders Was Down" }) { id } }');
      await until(() => answers.some((answer) => answer.errors?.some((error) => error.extensions?.code === 'SUBGRAPH_UNAVAILABLE')), 30_000);
      await stack.restartOrders();
      // No write needed: the retry completes it.
      await until(async () => JSON.stringify(answers.at(-1)) === JSON.stringify(await plainNow()), 30_000);
      expect(answers.at(-1)?.errors).toBeUndefined();
      // An order placed now still reaches it: what the failed run could not read is still followed.
      const placed = await stack.request('mutation { placeOrder(input: { userId: "1", items: [{ sku: "BACK-1", quantity: 1, unitPriceCents: 10 }] }) { id } }');
      expect(placed.errors).toBeUndefined();
      await until(async () => JSON.stringify(answers.at(-1)) === JSON.stringify(await plainNow()), 30_000);
      expect((answers.at(-1)?.data?.user as { orders: { totalCount: number } }).orders.totalCount).toBe(2);
    } finally {
      stop();
    }
  });
});
