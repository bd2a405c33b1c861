import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAuthenticator, createGateway, type AuthenticatorOptions, type Gateway, type GatewayDeps } from '@fed/gateway';
import { DEVELOPMENT_AUTH } from '@fed/gateway/config';
import { createHttpUserDirectory, createOrdersServer } from '@fed/orders';
import { createInfrastructure, listen, type Infrastructure, type Logger } from '@fed/platform';
import { createUsersServer } from '@fed/users';
import { openDatabases, type DatabaseLocations, type Databases, type OpenOptions } from './databases.ts';
import { DEFAULT_SEED, isEmpty, seed, type SeedOptions } from './seed.ts';

export interface StackOptions {
  databases: DatabaseLocations;
  /** Unset: in-memory cache and pub/sub, which work because all three services share this process. */
  redisUrl?: string;
  keyPrefix?: string;
  supergraphSdl: string;
  ports?: { gateway?: number; users?: number; orders?: number };
  host?: string;
  logger: Logger;
  mode?: 'development' | 'production';
  /** Gateway settings (timeouts, CORS, limits, rate limit), as gatewaySettings() derives them from config. */
  gateway?: Partial<Omit<GatewayDeps, 'supergraphSdl' | 'subgraphUrls' | 'logger' | 'cache' | 'responseCache' | 'rateLimiter' | 'authenticate' | 'subgraphSecrets' | 'mode'>>;
  /** The response cache's limits; null turns it off. Default: on, 300 s at most. */
  responseCache?: { maxTtlSeconds: number; typeTtlSeconds?: Record<string, number> } | null;
  /** How the gateway verifies bearer tokens. Default: HS256 with the development secret (`npm run token`). */
  auth?: AuthenticatorOptions;
  /**
   * What callers sign with: the gateway to users and to orders, and orders to users. Default: generated at
   * start-up, since nothing outside this process calls the subgraphs.
   */
  secrets?: { users?: string; orders?: string; ordersToUsers?: string };
  /** How long orders waits for the users subgraph when checking that a user exists. */
  usersTimeoutMs?: number;
  /** Seed when the users database is empty; false to never seed. */
  seedIfEmpty?: Omit<SeedOptions, 'log'> | false;
  onQuery?: OpenOptions['onQuery'];
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
  /** Stops one subgraph (for fault tests) without touching the rest. */
  stopSubgraph(name: 'users' | 'orders'): Promise<void>;
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
  const databases = await openDatabases(options.databases, { onQuery: options.onQuery });
  if (options.seedIfEmpty !== false && (await isEmpty(databases))) {
    const size = options.seedIfEmpty ?? DEFAULT_SEED;
    logger.info(size, 'empty database: seeding');
    await seed(databases, size);
  }
  const infrastructure = await createInfrastructure({ redisUrl: options.redisUrl, logger, keyPrefix: options.keyPrefix });
  const generated = () => randomBytes(32).toString('base64url');
  const secrets = {
    users: options.secrets?.users ?? generated(),
    orders: options.secrets?.orders ?? generated(),
    ordersToUsers: options.secrets?.ordersToUsers ?? generated(),
  };

  const users = await createUsersServer({
    db: databases.users.db,
    pubsub: infrastructure.pubsub,
    logger: logger.child({ service: 'users' }),
    secrets: { gateway: secrets.users, orders: secrets.ordersToUsers },
    replayStore: infrastructure.rateLimiter,
    introspection,
  });
  await listen(users.httpServer, ports.users ?? 0, SUBGRAPH_HOST);
  const usersUrl = url(users.httpServer, SUBGRAPH_HOST);

  const orders = await createOrdersServer({
    db: databases.orders.db,
    users: createHttpUserDirectory({ url: usersUrl, secret: secrets.ordersToUsers, timeoutMs: options.usersTimeoutMs }),
    pubsub: infrastructure.pubsub,
    logger: logger.child({ service: 'orders' }),
    secrets: { gateway: secrets.orders },
    replayStore: infrastructure.rateLimiter,
    introspection,
  });
  await listen(orders.httpServer, ports.orders ?? 0, SUBGRAPH_HOST);
  const ordersUrl = url(orders.httpServer, SUBGRAPH_HOST);

  const startGateway = async (infra: Infrastructure, port = 0): Promise<Gateway> => {
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
      rateLimiter: infra.rateLimiter,
      authenticate: createAuthenticator(options.auth ?? DEVELOPMENT_AUTH),
      mode,
    });
    await listen(app.httpServer, port, host);
    return app;
  };
  const gateway = await startGateway(infrastructure, ports.gateway);

  const replicas: { app: Gateway; infra: Infrastructure }[] = [];
  const addGateway = async () => {
    // A replica of its own: its own Redis connections, bus subscription and cache handle, as another process has.
    const infra = options.redisUrl ? await createInfrastructure({ redisUrl: options.redisUrl, logger, keyPrefix: options.keyPrefix }) : infrastructure;
    const app = await startGateway(infra);
    replicas.push({ app, infra });
    return { url: url(app.httpServer, displayHost(host)), gateway: app };
  };

  const running = { users, orders };
  const stopped = new Set<string>();
  const stopSubgraph = async (name: 'users' | 'orders') => {
    if (stopped.has(name)) return;
    stopped.add(name);
    await running[name].stop();
  };

  return {
    urls: { gateway: url(gateway.httpServer, displayHost(host)), users: usersUrl, orders: ordersUrl },
    httpServers: { gateway: gateway.httpServer, users: users.httpServer, orders: orders.httpServer },
    usersSubscriptions: () => users.subscriptions?.active ?? 0,
    secrets,
    databases,
    gateway,
    addGateway,
    stopSubgraph,
    stop: async () => {
      for (const replica of replicas) {
        await replica.app.stop();
        if (replica.infra !== infrastructure) await replica.infra.close();
      }
      await gateway.stop();
      await Promise.all([stopSubgraph('orders'), stopSubgraph('users')]);
      await infrastructure.close();
      await databases.close();
    },
  };
}
