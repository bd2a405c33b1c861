// The circuit breaker on subgraph calls: with orders hung, the first requests that touch it wait for the
// timeout; then the breaker opens and they fail at once with SUBGRAPH_UNAVAILABLE (users' data intact), while
// requests that touch only users never slow down; once orders recovers and the cool-down passes, a probe
// request closes it. Without a breaker, every request waits for the timeout.
import { createAuthenticator, createGateway, type BreakerPolicy, type Gateway } from '@fed/gateway';
import { createMemoryCache, listen, MemoryRateLimiter } from '@fed/platform';
import { graphql, waitFor, type GraphQLResponse } from '@fed/platform/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seed } from '../src/seed.ts';
import { silentLogger, startTestStack, supergraphSdl, TEST_AUTH, type TestStack } from './harness.ts';
import { startHttpFaultProxy, type HttpFaultProxy } from './http-proxy.ts';

const TIMEOUT_MS = 1_000;
const BREAKER: BreakerPolicy = { failures: 3, resetTimeoutMs: 1_500 };
/** Far below the timeout: the gateway did not wait for orders at all. */
const FAST_MS = 250;

const USERS_ONLY = '{ users(first: 3) { edges { node { id name } } } }';
const nestedWith = (orders: number) => `{ users(first: 3) { edges { node { id name orders(first: ${orders}) { edges { node { id status } } } } } } }`;
const NESTED = nestedWith(2);

interface Nested {
  users: { edges: { node: { id: string; name: string; orders?: { edges: { node: { id: string; status: string } }[] } | null } }[] };
}

interface Timed {
  ms: number;
  response: GraphQLResponse<Nested>;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};

/** A gateway whose orders subgraph is reached through `orders`, with the given breaker. */
async function startGateway(stack: TestStack, ordersUrl: string, breaker: BreakerPolicy | null) {
  const gateway: Gateway = await createGateway({
    supergraphSdl,
    subgraphUrls: { users: stack.urls.users, orders: ordersUrl },
    subgraphSecrets: { users: stack.secrets.users, orders: stack.secrets.orders },
    subgraphTimeoutMs: TIMEOUT_MS,
    breaker,
    // Readiness probes go through the same breaker: kept out of the way, so each call counted is the test's.
    readiness: { intervalMs: 600_000, staleAfterMs: 600_000 },
    rateLimit: null,
    logger: silentLogger(),
    cache: createMemoryCache(),
    rateLimiter: new MemoryRateLimiter(),
    authenticate: createAuthenticator(TEST_AUTH),
  });
  const port = await listen(gateway.httpServer, 0, '127.0.0.1');
  const url = `http://127.0.0.1:${port}/graphql`;
  return {
    gateway,
    url,
    query: async (query: string): Promise<Timed> => {
      const started = performance.now();
      const response = await graphql<Nested>(url, query, {}, stack.admin);
      return { ms: performance.now() - started, response };
    },
    /** subgraph_circuit_state for a subgraph as /metrics shows it: 0 closed, 1 half-open, 2 open. */
    circuit: async (subgraph: string): Promise<number | undefined> => {
      const text = await (await fetch(new URL('/metrics', url))).text();
      const match = new RegExp(`^subgraph_circuit_state\\{subgraph="${subgraph}"[^}]*\\} (\\d+)$`, 'm').exec(text);
      return match ? Number(match[1]) : undefined;
    },
  };
}

type TestGateway = Awaited<ReturnType<typeof startGateway>>;

const names = (response: GraphQLResponse<Nested>) => response.data?.users.edges.map((edge) => edge.node.name);
const extensionsOf = (response: GraphQLResponse<Nested>) => (response.errors ?? []).map((error) => error.extensions);

/** Users' data intact, every user's orders null, and every error the given code, naming orders. */
function expectOrdersFailed(response: GraphQLResponse<Nested>, code: string, expectedNames: string[] | undefined) {
  expect(response.status).toBe(200);
  expect(names(response)).toEqual(expectedNames);
  for (const { node } of response.data?.users.edges ?? []) expect(node.orders).toBeNull();
  expect(response.errors?.length).toBeGreaterThan(0);
  for (const error of response.errors ?? []) {
    expect(error.extensions).toEqual({ code, serviceName: 'orders' });
  }
}

function expectComplete(response: GraphQLResponse<Nested>, expectedNames: string[] | undefined) {
  expect(response.errors).toBeUndefined();
  expect(names(response)).toEqual(expectedNames);
  for (const { node } of response.data?.users.edges ?? []) expect(node.orders?.edges).toHaveLength(2);
}

describe('the circuit breaker on a hung subgraph', () => {
  let stack: TestStack;
  let orders: HttpFaultProxy;
  let gateway: TestGateway;
  let userNames: string[] | undefined;
  let baselineMs: number;
  const figures: Record<string, unknown> = {};

  beforeAll(async () => {
    stack = await startTestStack();
    await seed(stack.databases, { users: 3, ordersPerUser: 2 });
    orders = await startHttpFaultProxy(stack.urls.orders);
    gateway = await startGateway(stack, orders.url, BREAKER);
  });
  afterAll(async () => {
    console.log('circuit breaker figures', JSON.stringify(figures));
    await gateway?.gateway.stop();
    await orders?.close();
    await stack?.teardown();
  });

  it('opens after a run of timeouts, then answers orders at once while users keep their latency, and closes once orders recovers', async () => {
    // Healthy: the nested query is complete, the breaker closed; users alone sets the latency baseline.
    const healthy = await gateway.query(NESTED);
    userNames = names(healthy.response);
    expect(userNames).toHaveLength(3);
    expectComplete(healthy.response, userNames);
    expect(await gateway.circuit('orders')).toBe(0);
    const baseline: number[] = [];
    for (let i = 0; i < 15; i += 1) {
      const { ms, response } = await gateway.query(USERS_ONLY);
      expect(response.errors).toBeUndefined();
      baseline.push(ms);
    }
    baselineMs = median(baseline);

    // Orders hangs: accepts every request and never answers.
    orders.setHanging(true);
    const usersWhileWaiting: Timed[] = [];
    // Four different orders fetches: identical ones in flight together would share one call (in-flight dedupe),
    // and the breaker counts calls to the subgraph, not client requests.
    const hung = Promise.all(Array.from({ length: 4 }, (_, i) => gateway.query(nestedWith(i + 1))));
    // Requests that touch only users, while those wait on orders.
    const started = performance.now();
    while (performance.now() - started < TIMEOUT_MS * 0.7) usersWhileWaiting.push(await gateway.query(USERS_ONLY));
    const timedOut = await hung;
    for (const { ms, response } of timedOut) {
      expect(ms).toBeGreaterThanOrEqual(TIMEOUT_MS * 0.95);
      expect(ms).toBeLessThan(TIMEOUT_MS * 3);
      expectOrdersFailed(response, 'SUBGRAPH_TIMEOUT', userNames);
    }

    // A run of 4 failures (against at most 3 successes in the window) opened it.
    expect(await gateway.circuit('orders')).toBe(2);
    expect(await gateway.circuit('users')).toBe(0);
    const reachedOrders = orders.received();
    const open: Timed[] = [];
    for (let i = 0; i < 5; i += 1) open.push(await gateway.query(NESTED));
    for (const { ms, response } of open) {
      expect(ms).toBeLessThan(FAST_MS);
      expectOrdersFailed(response, 'SUBGRAPH_UNAVAILABLE', userNames);
    }
    // It did not even call orders.
    expect(orders.received()).toBe(reachedOrders);
    expect(await gateway.circuit('orders')).toBe(2);

    const usersWhileOpen: Timed[] = [];
    for (let i = 0; i < 10; i += 1) usersWhileOpen.push(await gateway.query(USERS_ONLY));
    for (const { response } of [...usersWhileWaiting, ...usersWhileOpen]) {
      expect(response.errors).toBeUndefined();
      expect(names(response)).toEqual(userNames);
    }
    const waitingMs = median(usersWhileWaiting.map((timed) => timed.ms));
    const openMs = median(usersWhileOpen.map((timed) => timed.ms));
    expect(usersWhileWaiting.length).toBeGreaterThanOrEqual(3);
    expect(waitingMs).toBeLessThan(baselineMs * 3 + 50);
    expect(openMs).toBeLessThan(baselineMs * 3 + 50);

    // Orders recovers. After the cool-down the breaker is half-open: the next request goes through as the
    // probe, succeeds, and closes it.
    orders.setHanging(false);
    await waitFor(async () => expect(await gateway.circuit('orders')).toBe(1), BREAKER.resetTimeoutMs + 2_000, 50);
    const probe = await gateway.query(NESTED);
    expectComplete(probe.response, userNames);
    expect(orders.received()).toBe(reachedOrders + 1);
    expect(await gateway.circuit('orders')).toBe(0);
    const after = await gateway.query(NESTED);
    expectComplete(after.response, userNames);

    Object.assign(figures, {
      timeoutMs: TIMEOUT_MS,
      breaker: BREAKER,
      usersOnlyBaselineMedianMs: Math.round(baselineMs),
      usersOnlyWhileOrdersHungMedianMs: Math.round(waitingMs),
      usersOnlyWhileOpenMedianMs: Math.round(openMs),
      touchingOrdersBeforeOpenMs: timedOut.map((timed) => Math.round(timed.ms)),
      touchingOrdersWhileOpenMs: open.map((timed) => Math.round(timed.ms)),
      probeAfterRecoveryMs: Math.round(probe.ms),
      afterRecoveryMs: Math.round(after.ms),
    });
  });
});

describe('without a breaker', () => {
  let stack: TestStack;
  let orders: HttpFaultProxy;
  let gateway: TestGateway;

  beforeAll(async () => {
    stack = await startTestStack();
    await seed(stack.databases, { users: 3, ordersPerUser: 2 });
    orders = await startHttpFaultProxy(stack.urls.orders);
    gateway = await startGateway(stack, orders.url, null);
  });
  afterAll(async () => {
    await gateway?.gateway.stop();
    await orders?.close();
    await stack?.teardown();
  });

  it('makes every request that touches a hung orders wait for the timeout', async () => {
    const healthy = await gateway.query(NESTED);
    const userNames = names(healthy.response);
    expectComplete(healthy.response, userNames);
    expect(await gateway.circuit('orders')).toBeUndefined();

    orders.setHanging(true);
    // Twice the run that opens the breaker above, and then some.
    for (let round = 0; round < 2; round += 1) {
      const answers = await Promise.all(Array.from({ length: 4 }, () => gateway.query(NESTED)));
      for (const { ms, response } of answers) {
        expect(ms).toBeGreaterThanOrEqual(TIMEOUT_MS * 0.95);
        expectOrdersFailed(response, 'SUBGRAPH_TIMEOUT', userNames);
      }
    }
    const last = await gateway.query(NESTED);
    expect(last.ms).toBeGreaterThanOrEqual(TIMEOUT_MS * 0.95);
    expectOrdersFailed(last.response, 'SUBGRAPH_TIMEOUT', userNames);
    expect(extensionsOf(last.response)).not.toContainEqual({ code: 'SUBGRAPH_UNAVAILABLE', serviceName: 'orders' });
  });
});
