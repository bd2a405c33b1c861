import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAuthenticator, createGateway, type AuthenticatorOptions, type Gateway, type GatewayDeps } from '@fed/gateway';
import { DEVELOPMENT_AUTH } from '@fed/gateway/config';
import { createHttpUserSnapshot, createOrdersServer, type OrdersServer } from '@fed/orders';
import {
  createInfrastructure,
  createOutboxRelay,
  listen,
  startTelemetry,
  type Infrastructure,
  type Logger,
  type Retention,
  type ServiceTelemetry,
  type SubgraphExecution,
  type SpanExporter,
} from '@fed/platform';
import { createUsersServer } from '@fed/users';
import { openDatabases, type DatabaseLocations, type Databases, type OpenOptions } from './databases.ts';
import { DEFAULT_SEED, isEmpty, seed, type SeedOptions } from './seed.ts';

export interface StackOptions {
  databases: DatabaseLocations;
  /** Unset: in-memory cache and pub/sub, which work because all three services share this process. */
  redisUrl?: string;
  keyPrefix?: string;
  /** How many events the stream keeps, per user and overall. */
  retention?: Retention;
  supergraphSdl: string;
  ports?: { gateway?: number; users?: number; orders?: number };
  host?: string;
  logger: Logger;
  mode?: 'development' | 'production';
  /** Gateway settings (timeouts, CORS, limits, rate limit), as gatewaySettings() derives them from config. */
  gateway?: Partial<Omit<GatewayDeps, 'supergraphSdl' | 'subgraphUrls' | 'logger' | 'cache' | 'responseCache' | 'liveQueries' | 'rateLimiter' | 'authenticate' | 'subgraphSecrets' | 'mode'>>;
  /** The response cache's limits; null turns it off. Default: on, 300 s at most. */
  responseCache?: { maxTtlSeconds: number; typeTtlSeconds?: Record<string, number>; replicaLagMs?: number } | null;
  /** Live queries' throttle; null turns them off. Default: on, 100 ms. */
  liveQueries?: { throttleMs?: number } | null;
  /** How the gateway verifies bearer tokens. Default: HS256 with the development secret (`npm run token`). */
  auth?: AuthenticatorOptions;
  /**
   * What callers sign with: the gateway to users and to orders, and orders to users. Default: generated at
   * start-up, since nothing outside this process calls the subgraphs.
   */
  secrets?: { users?: string; orders?: string; ordersToUsers?: string };
  /** How long orders waits for the users subgraph when it takes its first snapshot of users. */
  usersTimeoutMs?: number;
  /** Seed when the users database is empty; false to never seed. */
  seedIfEmpty?: Omit<SeedOptions, 'log'> | false;
  onQuery?: OpenOptions['onQuery'];
  /**
   * Each service keeps its own metrics registry (the gateway's /metrics serves all three) and, with
   * `tracing`, its own tracer provider. Default: metrics only, no process metrics.
   */
  telemetry?: {
    tracing?: { endpoint?: string; exporter?: SpanExporter; sampleRatio?: number; batch?: boolean } | null;
    knownOperations?: readonly string[];
    processMetrics?: boolean;
  };
  /** On stop: how long /readyz says draining before listeners close, and the grace for requests in flight. */
  drain?: { delayMs?: number; graceMs?: number };
  /** How both subgraphs execute operations (SUBGRAPH_EXECUTION); default compiled. */
  subgraphExecution?: SubgraphExecution;
}

export interface RunningStack {
  urls: { gateway: string; users: string; orders: string };
  /** The listening servers, for tests that watch what reaches each service. */
  httpServers: { gateway: Server; users: Server; orders: Server };
  /** Subscriptions the users subgraph is running now (the gateways' upstream ones). */
  usersSubscriptions(): number;
  /** The secrets the subgraphs verify signatures with. */
  secrets: { users: string; orders: string; ordersToUsers: string };
  databases: Databases;
  gateway: Gateway;
  /** Another gateway replica on the same subgraphs, Redis and cache (as another process would be). */
  addGateway(): Promise<{ url: string; gateway: Gateway }>;
  /** Stops one subgraph (for fault tests) without touching the rest: its server, outbox relay and consumer. */
  stopSubgraph(name: 'users' | 'orders'): Promise<void>;
  /** Starts a stopped orders subgraph again, on the same port and database, as a restarted process would. */
  restartOrders(): Promise<void>;
  stop(): Promise<void>;
}

// In one process the subgraphs are internal: they listen on loopback only, whatever HOST the gateway uses.
const SUBGRAPH_HOST = '127.0.0.1';

const url = (server: { address(): AddressInfo | string | null }, host: string) =>
  `http://${host}:${(server.address() as AddressInfo).port}/graphql`;

/** The address to print for a server bound to `host` (all interfaces print as localhost). */
const displayHost = (host: string | undefined) => (!host || ['0.0.0.0', '::', '127.0.0.1', '::1'].includes(host) ? 'localhost' : host);

/**
 * Users, orders and the gateway in one process, each on its own port. This is the embedded default behind
 * `npm start`, and what the end-to-end tests run: the same factories the standalone processes use.
 */
export async function startStack(options: StackOptions): Promise<RunningStack> {
  const { logger, ports = {}, host, mode = 'production' } = options;
  const introspection = mode === 'development';
  const telemetrySettings = { tracing: options.telemetry?.tracing ?? null, knownOperations: options.telemetry?.knownOperations };
  // The gateway's provider is the process's: @apollo/gateway records its plan and fetch spans on it.
  const telemetry: Record<'gateway' | 'users' | 'orders', ServiceTelemetry> = {
    gateway: startTelemetry('gateway', telemetrySettings, { processMetrics: options.telemetry?.processMetrics, global: true }),
    users: startTelemetry('users', telemetrySettings),
    orders: startTelemetry('orders', telemetrySettings),
  };
  const databases = await openDatabases(options.databases, {
    onQuery: options.onQuery,
    telemetry: { users: telemetry.users.telemetry, orders: telemetry.orders.telemetry },
  });
  if (options.seedIfEmpty !== false && (await isEmpty(databases))) {
    const size = options.seedIfEmpty ?? DEFAULT_SEED;
    logger.info(size, 'empty database: seeding');
    await seed(databases, size);
  }
  const infrastructure = await createInfrastructure({ redisUrl: options.redisUrl, logger, keyPrefix: options.keyPrefix, retention: options.retention });
  const generated = () => randomBytes(32).toString('base64url');
  const secrets = {
    users: options.secrets?.users ?? generated(),
    orders: options.secrets?.orders ?? generated(),
    ordersToUsers: options.secrets?.ordersToUsers ?? generated(),
  };

  const usersLogger = logger.child({ service: 'users' });
  const usersRelay = createOutboxRelay({ db: databases.users.db, stream: infrastructure.events, logger: usersLogger, metrics: telemetry.users.telemetry.metrics });
  const users = await createUsersServer({
    db: databases.users.db,
    reader: databases.users.reader,
    events: { stream: infrastructure.events, pubsub: infrastructure.pubsub, relay: usersRelay },
    logger: usersLogger,
    secrets: { gateway: secrets.users, orders: secrets.ordersToUsers },
    replayStore: infrastructure.rateLimiter,
    introspection,
    telemetry: telemetry.users.telemetry,
    drain: options.drain,
    execution: options.subgraphExecution,
  });
  await listen(users.httpServer, ports.users ?? 0, SUBGRAPH_HOST);
  usersRelay.start();
  const usersUrl = url(users.httpServer, SUBGRAPH_HOST);

  // Orders as its own process would run it: server, outbox relay and the consumer of the users' events.
  const startOrders = async (port: number) => {
    const ordersLogger = logger.child({ service: 'orders' });
    const relay = createOutboxRelay({ db: databases.orders.db, stream: infrastructure.events, logger: ordersLogger, metrics: telemetry.orders.telemetry.metrics });
    const app: OrdersServer = await createOrdersServer({
      db: databases.orders.db,
      reader: databases.orders.reader,
      events: { stream: infrastructure.events, relay },
      userSnapshot: createHttpUserSnapshot({ url: usersUrl, secret: secrets.ordersToUsers, timeoutMs: options.usersTimeoutMs }),
      logger: ordersLogger,
      secrets: { gateway: secrets.orders },
      replayStore: infrastructure.rateLimiter,
      introspection,
      telemetry: telemetry.orders.telemetry,
      drain: options.drain,
      execution: options.subgraphExecution,
    });
    await listen(app.httpServer, port, SUBGRAPH_HOST);
    relay.start();
    await app.userProjection.start();
    return {
      httpServer: app.httpServer,
      stop: async () => {
        await app.stop();
        await app.userProjection.stop();
        await relay.stop();
      },
    };
  };
  let orders = await startOrders(ports.orders ?? 0);
  const ordersPort = (orders.httpServer.address() as AddressInfo).port;
  const ordersUrl = url(orders.httpServer, SUBGRAPH_HOST);

  const startGateway = async (infra: Infrastructure, service: ServiceTelemetry, port = 0): Promise<Gateway> => {
    const gatewayLogger = logger.child({ service: 'gateway' });
    const cacheLimits = options.responseCache === undefined ? { maxTtlSeconds: 300 } : options.responseCache;
    const app = await createGateway({
      ...options.gateway,
      supergraphSdl: options.supergraphSdl,
      subgraphUrls: { users: usersUrl, orders: ordersUrl },
      subgraphSecrets: { users: secrets.users, orders: secrets.orders },
      logger: gatewayLogger,
      cache: infra.cache,
      responseCache: cacheLimits && {
        ...cacheLimits,
        store: infra.createResponseStore({ maxTtlSeconds: cacheLimits.maxTtlSeconds }),
        events: infra.pubsub,
      },
      liveQueries: options.liveQueries === null ? null : { ...options.liveQueries, events: infra.pubsub },
      rateLimiter: infra.rateLimiter,
      authenticate: createAuthenticator(options.auth ?? DEVELOPMENT_AUTH),
      mode,
      telemetry: service.telemetry,
      // One process, three registries: the gateway's /metrics serves them all, told apart by `service`.
      metricsSources: () => [service.telemetry.metrics, telemetry.users.telemetry.metrics, telemetry.orders.telemetry.metrics],
      drain: options.drain,
    });
    await listen(app.httpServer, port, host);
    return app;
  };
  const gateway = await startGateway(infrastructure, telemetry.gateway, ports.gateway);

  const replicas: { app: Gateway; infra: Infrastructure; telemetry: ServiceTelemetry }[] = [];
  const addGateway = async () => {
    // A replica of its own: its own Redis connections, bus subscription and cache handle, as another process has.
    const infra = options.redisUrl ? await createInfrastructure({ redisUrl: options.redisUrl, logger, keyPrefix: options.keyPrefix }) : infrastructure;
    const replicaTelemetry = startTelemetry('gateway', telemetrySettings);
    const app = await startGateway(infra, replicaTelemetry);
    replicas.push({ app, infra, telemetry: replicaTelemetry });
    return { url: url(app.httpServer, displayHost(host)), gateway: app };
  };

  const stopped = new Set<string>();
  const stopSubgraph = async (name: 'users' | 'orders') => {
    if (stopped.has(name)) return;
    stopped.add(name);
    if (name === 'orders') {
      await orders.stop();
    } else {
      await users.stop();
      await usersRelay.stop();
    }
  };
  const restartOrders = async () => {
    if (!stopped.has('orders')) return;
    orders = await startOrders(ordersPort);
    stopped.delete('orders');
  };

  return {
    urls: { gateway: url(gateway.httpServer, displayHost(host)), users: usersUrl, orders: ordersUrl },
    httpServers: { gateway: gateway.httpServer, users: users.httpServer, get orders() { return orders.httpServer; } },
    usersSubscriptions: () => users.subscriptions?.active ?? 0,
    secrets,
    databases,
    gateway,
    addGateway,
    stopSubgraph,
    restartOrders,
    stop: async () => {
      for (const replica of replicas) {
        await replica.app.stop();
        if (replica.infra !== infrastructure) await replica.infra.close();
        await replica.telemetry.shutdown();
      }
      await gateway.stop();
      await Promise.all([stopSubgraph('orders'), stopSubgraph('users')]);
      await infrastructure.close();
      await databases.close();
      await Promise.all([telemetry.users.shutdown(), telemetry.orders.shutdown()]);
      await telemetry.gateway.shutdown();
    },
  };
}
