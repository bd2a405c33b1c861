import type { IncomingMessage } from 'node:http';
import { createAuthenticator, createGateway, mintToken, type Gateway, type GatewayDeps } from '@fed/gateway';
import { DEFAULT_SUPERGRAPH_PATH, DEVELOPMENT_AUTH } from '@fed/gateway/config';
import { readSupergraph } from '@fed/gateway/supergraph';
import {
  createInfrastructure,
  createLogger,
  createMemoryCache,
  createOutboxRelay,
  isProbeRequest,
  listen,
  MemoryRateLimiter,
  type GraphQLApp,
  type Logger,
  type Role,
} from '@fed/platform';
import { createUsersServer } from '@fed/users';
import {
  createTestDatabase,
  graphql,
  isRelayStatement,
  startRedisBehindProxies,
  startTcpProxy,
  testRedisUrl,
  uniqueName,
  type GraphQLResponse,
  type RedisBehindProxies,
  type StreamingReplica,
  type TcpProxy,
  type TestDatabase,
} from '@fed/platform/testing';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { seed } from '../src/seed.ts';
import { startStack, type RunningStack, type StackOptions } from '../src/stack.ts';

export const supergraphSdl = readSupergraph(DEFAULT_SUPERGRAPH_PATH);

/** What the stack's gateway verifies tokens with when a test does not say otherwise (as `npm start` does). */
export const TEST_AUTH = DEVELOPMENT_AUTH;

/** A bearer token for `sub`, as `npm run token` would mint it. */
export const tokenFor = (sub: string, role: Role = 'user', ttlSeconds?: number) => mintToken({ ...TEST_AUTH, sub, role, ttlSeconds });

/**
 * graphql-ws's own client on one socket, signed in as `sub`, open until disposed (a lazy client would sign in
 * again for each operation), never retrying: what a test closes stays closed.
 */
export const socketClient = async (url: string, sub: string, role: Role): Promise<Client> =>
  createClient({
    url: url.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    lazy: false,
    connectionParams: { authorization: `Bearer ${await tokenFor(sub, role)}` },
    // A socket a test closes (terminate, a gateway stopped) is expected: graphql-ws would log it.
    onNonLazyError: () => {},
  });

/** The nested list (users → their orders → items, with counts): the query whose statements per request stay flat in N. */
export const NESTED_QUERY = /* GraphQL */ `
  query Nested($users: Int!, $orders: Int!) {
    users(first: $users) {
      edges { node { id orders(first: $orders) { edges { node { id items { sku } } } } orderCount } }
    }
  }
`;
export interface NestedResult {
  users: { edges: { node: { id: string; orderCount: number; orders: { edges: { node: { id: string; items: { sku: string }[] } }[] } } }[] };
}

/** Positions as the event stream hands them out (`<ms>-<seq>`), strictly increasing. */
export const increasing = (ids: readonly string[]) =>
  ids.every((id, index) => {
    if (index === 0) return true;
    const [am, as] = (ids[index - 1] as string).split('-').map(Number) as [number, number];
    const [bm, bs] = id.split('-').map(Number) as [number, number];
    return bm > am || (bm === am && bs > as);
  });

/** Request headers that sign in as `sub`. */
export const signedInAs = async (sub: string, role: Role = 'user') => ({ authorization: `Bearer ${await tokenFor(sub, role)}` });

export interface TestStack extends RunningStack {
  /** Headers of an admin (user 1 000 000, who does not exist): business rules are tested apart from authorization. */
  admin: Record<string, string>;
  /** A GraphQL request through the gateway, signed in as an admin unless `headers` say otherwise. */
  request<TData = Record<string, unknown>>(query: string, variables?: Record<string, unknown>, headers?: Record<string, string>): Promise<GraphQLResponse<TData>>;
  /** TCP proxies in front of each subgraph's Postgres, to take a database away and bring it back. */
  proxies: { users: TcpProxy; orders: TcpProxy };
  /** The stack's Redis key and channel prefix. */
  keyPrefix: string;
  /** Statements each subgraph sent since the last reset. */
  statements: { users: string[]; orders: string[] };
  resetStatements(): void;
  teardown(): Promise<void>;
}

/** `call`'s result, and how many requests reached the stack's subgraphs while it ran (readiness probes aside). */
export async function subgraphRequestsDuring<T>(stack: RunningStack, call: () => Promise<T>): Promise<{ value: T; requests: number }> {
  let count = 0;
  const counter = (req: IncomingMessage) => void (isProbeRequest(req.headers['x-request-id']) || (count += 1));
  stack.httpServers.users.on('request', counter);
  stack.httpServers.orders.on('request', counter);
  try {
    return { value: await call(), requests: count };
  } finally {
    stack.httpServers.users.off('request', counter);
    stack.httpServers.orders.off('request', counter);
  }
}

export const silentLogger = (): Logger => createLogger({ name: 'test', level: 'silent' });

/**
 * The real thing on loopback: both subgraphs on their own fresh Postgres databases, Redis with a per-run
 * key prefix, and the gateway in front, each HTTP server on a free port.
 */
export async function startTestStack(overrides: Partial<StackOptions> = {}, { replica }: { replica?: StreamingReplica } = {}): Promise<TestStack> {
  const created: TestDatabase[] = [await createTestDatabase('users'), await createTestDatabase('orders')];
  const [usersDb, ordersDb] = created as [TestDatabase, TestDatabase];
  const statements = { users: [] as string[], orders: [] as string[] };
  const proxies = { users: await startTcpProxy(usersDb.url), orders: await startTcpProxy(ordersDb.url) };
  const closeAll = async () => {
    await Promise.all([proxies.users.close(), proxies.orders.close()]);
    await Promise.all(created.map((db) => db.drop()));
  };
  const keyPrefix = overrides.keyPrefix ?? `${uniqueName('test')}:`;
  try {
    const stack = await startStack({
      databases: {
        users: { url: proxies.users.url, replicaUrls: replica ? [replica.url(usersDb.name)] : [] },
        orders: { url: proxies.orders.url, replicaUrls: replica ? [replica.url(ordersDb.name)] : [] },
      },
      redisUrl: testRedisUrl(),
      keyPrefix,
      supergraphSdl,
      logger: silentLogger(),
      seedIfEmpty: false,
      // The outbox relays poll in the background; what a request costs is counted without them.
      onQuery: {
        users: (sql) => isRelayStatement(sql) || statements.users.push(sql),
        orders: (sql) => isRelayStatement(sql) || statements.orders.push(sql),
      },
      ...overrides,
    });
    const admin = await signedInAs('1000000', 'admin');
    return {
      ...stack,
      admin,
      request: (query, variables, headers = admin) => graphql(stack.urls.gateway, query, variables, headers),
      proxies,
      keyPrefix,
      statements,
      resetStatements: () => {
        statements.users.length = 0;
        statements.orders.length = 0;
      },
      teardown: async () => {
        await stack.stop();
        await closeAll();
      },
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

/**
 * A seeded stack whose Redis sits behind proxies, so a test can take Redis away and bring it back: the test
 * Redis behind one, or, when TEST_REDIS_URL names a cluster or Sentinels, a private set-up of that shape behind
 * one per node (see startRedisBehindProxies).
 */
export async function startStackBehindRedisProxy(size: { users: number; ordersPerUser: number }): Promise<{ stack: TestStack; redis: RedisBehindProxies; teardown(): Promise<void> }> {
  const redis = await startRedisBehindProxies();
  try {
    const stack = await startTestStack({ redisUrl: redis.url });
    try {
      await seed(stack.databases, size);
    } catch (error) {
      await stack.teardown();
      throw error;
    }
    return {
      stack,
      redis,
      teardown: async () => {
        try {
          await stack.teardown();
        } finally {
          await redis.stop();
        }
      },
    };
  } catch (error) {
    await redis.stop();
    throw error;
  }
}

/**
 * One more gateway on the stack's subgraphs, reaching users at `usersUrl` (a proxy or a balancer a test
 * controls), with `deps` on top. It has its own in-memory cache and rate limit; stop() closes it.
 */
export async function startGatewayTo(
  stack: RunningStack,
  usersUrl: string,
  deps: Partial<GatewayDeps> = {},
): Promise<{ url: string; gateway: Gateway; stop(): Promise<void> }> {
  const gateway = await createGateway({
    supergraphSdl,
    subgraphUrls: { users: usersUrl, orders: stack.urls.orders },
    subgraphSecrets: { users: stack.secrets.users, orders: stack.secrets.orders },
    logger: silentLogger(),
    cache: createMemoryCache(),
    rateLimiter: new MemoryRateLimiter(),
    authenticate: createAuthenticator(TEST_AUTH),
    ...deps,
  });
  const port = await listen(gateway.httpServer, 0, '127.0.0.1');
  return { url: `http://127.0.0.1:${port}/graphql`, gateway, stop: () => gateway.stop() };
}

/**
 * A second users replica on the stack's database and Redis (the same secrets), with its own outbox relay, as
 * another process would be: stop() closes all of it.
 */
export async function startUsersReplica(
  stack: TestStack,
  options: { subscriptionLifetimeMs?: number } = {},
): Promise<{ url: string; app: GraphQLApp; stop(): Promise<void> }> {
  const infrastructure = await createInfrastructure({ redisUrl: testRedisUrl(), logger: silentLogger(), keyPrefix: stack.keyPrefix });
  const relay = createOutboxRelay({ db: stack.databases.users.db, stream: infrastructure.events, logger: silentLogger() });
  relay.start();
  const app = await createUsersServer({
    db: stack.databases.users.db,
    events: { stream: infrastructure.events, pubsub: infrastructure.pubsub, relay },
    logger: silentLogger(),
    secrets: { gateway: stack.secrets.users, orders: stack.secrets.ordersToUsers },
    replayStore: infrastructure.rateLimiter,
    subscriptionLifetimeMs: options.subscriptionLifetimeMs,
  });
  const port = await listen(app.httpServer, 0, '127.0.0.1');
  let stopped: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}/graphql`,
    app,
    stop: () =>
      (stopped ??= (async () => {
        await app.stop();
        await relay.stop();
        await infrastructure.close();
      })()),
  };
}
