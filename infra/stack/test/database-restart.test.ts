// Postgres restarts under the real stack while writes and reads flow through two gateways: users and orders
// on a private Postgres server (never the machine's shared one, which other test files use meanwhile).
// Nothing dies, requests fail only while the database is down and only with DATABASE_UNAVAILABLE, and they are
// served again within about as long as the database was down (no breaker cool-down, no dead pooled
// connection failing requests afterwards).
import { graphql, startPrivatePostgres, testRedisUrl, uniqueName, deleteRedisKeys, waitFor, type PrivatePostgres } from '@fed/platform/testing';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seed } from '../src/seed.ts';
import { startStack, type RunningStack } from '../src/stack.ts';
import { signedInAs, silentLogger, supergraphSdl } from './harness.ts';

const USERS = 4;
const READ = '{ users(first: 4) { edges { node { id name orders(first: 2) { edges { node { id status } } } orderCount } } } }';
const PLACE = 'mutation ($userId: ID!) { placeOrder(input: { userId: $userId, items: [{ sku: "R", quantity: 1, unitPriceCents: 100 }] }) { id } }';
const RENAME = 'mutation ($id: ID!, $name: String!) { updateUser(id: $id, input: { name: $name }) { id name } }';
const KINDS = ['read', 'placeOrder', 'updateUser'] as const;
type Kind = (typeof KINDS)[number];

interface Outcome {
  kind: Kind;
  gateway: number;
  /** performance.now() when the request was sent and when its answer arrived. */
  sent: number;
  answered: number;
  /** Every error code in the answer (an HTTP error as `HTTP nnn`); empty when it was served. */
  codes: string[];
}

interface Window {
  /** When the database began to go down, and when it accepted connections again (performance.now()). */
  startedAt: number;
  endedAt: number;
}

/** A load of reads and both subgraphs' writes, spread over the gateways, until `stop()`. */
function startLoad(gateways: readonly string[], headers: Record<string, string>, workers = 4) {
  const outcomes: Outcome[] = [];
  let stopped = false;
  let sequence = 0;
  const send = async (kind: Kind, gateway: number): Promise<Outcome> => {
    const url = gateways[gateway]!;
    const userId = String((sequence++ % USERS) + 1);
    const sent = performance.now();
    const response =
      kind === 'read'
        ? await graphql(url, READ, {}, headers)
        : kind === 'placeOrder'
          ? await graphql(url, PLACE, { userId }, headers)
          : await graphql(url, RENAME, { id: userId, name: `Renamed ${sequence}` }, headers);
    const codes = (response.errors ?? []).map((error) => String(error.extensions?.code));
    if (response.status !== 200) codes.push(`HTTP ${response.status}`);
    return { kind, gateway, sent, answered: performance.now(), codes };
  };
  const run = async (worker: number) => {
    for (let turn = worker; !stopped; turn++) outcomes.push(await send(KINDS[turn % KINDS.length]!, turn % gateways.length));
  };
  const running = Array.from({ length: workers }, (_, worker) => run(worker));
  return {
    outcomes,
    stop: async () => {
      stopped = true;
      await Promise.all(running);
    },
  };
}

const served = (outcome: Outcome) => outcome.codes.length === 0;

describe('Postgres restarts under write load', () => {
  let server: PrivatePostgres;
  let stack: RunningStack;
  let gateways: string[];
  let admin: Record<string, string>;
  const keyPrefix = `${uniqueName('dbrestart')}:`;
  // Whatever escapes a service in this process: with postgres.js 3.4.9 unpatched, the TypeError from nextWrite.
  const escaped: unknown[] = [];
  const onEscape = (error: unknown) => escaped.push(error);

  beforeAll(async () => {
    process.on('uncaughtException', onEscape);
    process.on('unhandledRejection', onEscape);
    server = await startPrivatePostgres();
    const [users, orders] = [await server.createDatabase('users'), await server.createDatabase('orders')];
    stack = await startStack({
      databases: { users: { url: server.url(users) }, orders: { url: server.url(orders) } },
      redisUrl: testRedisUrl(),
      keyPrefix,
      supergraphSdl,
      logger: silentLogger(),
      seedIfEmpty: false,
      // Every read must reach the databases, and the load must not be throttled.
      responseCache: null,
      gateway: { rateLimit: null },
    });
    await seed(stack.databases, { users: USERS, ordersPerUser: 1 });
    gateways = [stack.urls.gateway, (await stack.addGateway()).url];
    admin = await signedInAs('1000000', 'admin');
  });
  afterAll(async () => {
    await stack?.stop();
    await server?.stop();
    await deleteRedisKeys(keyPrefix);
    process.off('uncaughtException', onEscape);
    process.off('unhandledRejection', onEscape);
  });

  const orderCount = async () => {
    const [row] = (await stack.databases.orders.db.execute(sql`select count(*)::int as count from orders`)) as unknown as { count: number }[];
    return row?.count ?? 0;
  };

  /**
   * Runs the load, healthy first, then through `disrupt`, and on until every kind of request has been served
   * through every gateway since the database came back, and for as long again as it was down (so that a
   * failure after recovery would be seen). Then checks what a user would notice.
   */
  async function survive(disrupt: (load: ReturnType<typeof startLoad>) => Promise<Window>) {
    const ordersBefore = await orderCount();
    const load = startLoad(gateways, admin);
    let window: Window;
    try {
      await waitFor(() => expect(load.outcomes.filter(served).length).toBeGreaterThanOrEqual(2 * KINDS.length * gateways.length));
      window = await disrupt(load);
      const { endedAt, startedAt } = window;
      await waitFor(() => {
        const after = load.outcomes.filter((outcome) => outcome.sent > endedAt && served(outcome));
        for (const kind of KINDS) {
          for (const gateway of gateways.keys()) expect(after.some((outcome) => outcome.kind === kind && outcome.gateway === gateway)).toBe(true);
        }
        expect(performance.now() - endedAt).toBeGreaterThan(endedAt - startedAt);
      });
    } finally {
      await load.stop();
    }
    const { outcomes } = load;
    const downMs = window.endedAt - window.startedAt;
    const failed = outcomes.filter((outcome) => !served(outcome));
    const lastFailure = Math.max(...failed.map((outcome) => outcome.sent));
    console.log('database restart', JSON.stringify({ downMs: Math.round(downMs), requests: outcomes.length, failed: failed.length, lastFailureAfterUpMs: Math.round(lastFailure - window.endedAt) }));

    // No service died: nothing escaped, and each subgraph still serves through each gateway.
    expect(escaped).toEqual([]);
    for (const url of gateways) {
      const read = await graphql<{ users: { edges: { node: { orders: unknown } }[] } }>(url, READ, {}, admin);
      expect(read.errors).toBeUndefined();
      expect(read.data?.users.edges).toHaveLength(USERS);
    }
    // Before the database went down, everything was served.
    expect(outcomes.filter((outcome) => outcome.answered < window.startedAt).every(served)).toBe(true);
    // The restart was felt, and only as DATABASE_UNAVAILABLE: no open circuit (SUBGRAPH_UNAVAILABLE), no timeout,
    // no masked internal error.
    expect(failed.length).toBeGreaterThan(0);
    expect(new Set(failed.flatMap((outcome) => outcome.codes))).toEqual(new Set(['DATABASE_UNAVAILABLE']));
    // Only while the database was down: nothing sent before it went down failed after its answer came, and
    // nothing sent once it had been back for as long as it had been down failed (the slack is the downtime
    // itself, at least a second: no dead pooled connection, no breaker cool-down outlasts the outage).
    for (const outcome of failed) expect(outcome.answered).toBeGreaterThan(window.startedAt);
    expect(lastFailure - window.endedAt).toBeLessThan(Math.max(downMs, 1_000));
    // Every acknowledged order was kept, and no failed one was written twice (a write is never retried blind).
    const placed = outcomes.filter((outcome) => outcome.kind === 'placeOrder');
    const added = (await orderCount()) - ordersBefore;
    expect(added).toBeGreaterThanOrEqual(placed.filter(served).length);
    expect(added).toBeLessThanOrEqual(placed.length);
  }

  it('pg_ctl restart -m fast: no process dies, and requests fail only while it restarts', async () => {
    await survive(() => server.restart());
  });

  it('a 1.2 s outage (stop -m fast, start): service is back within about as long as the outage', async () => {
    await survive(async (load) => {
      const startedAt = performance.now();
      const downSince = load.outcomes.length;
      await server.down();
      // Down for 1.2 s at least, and until both gateways have seen it, so the outage is certainly felt.
      await waitFor(() => {
        const seen = load.outcomes.slice(downSince).filter((outcome) => outcome.codes.includes('DATABASE_UNAVAILABLE'));
        for (const gateway of gateways.keys()) expect(seen.some((outcome) => outcome.gateway === gateway)).toBe(true);
        expect(performance.now() - startedAt).toBeGreaterThan(1_200);
      });
      await server.up();
      return { startedAt, endedAt: performance.now() };
    });
  });
});
