import type { AddressInfo } from 'node:net';
import { createGateway } from '@fed/gateway';
import { createHttpUserDirectory, createOrdersServer } from '@fed/orders';
import { createInfrastructure, listen, type Logger } from '@fed/platform';
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
  subgraphTimeoutMs?: number;
  /** How long orders waits for the users subgraph when checking that a user exists. */
  usersTimeoutMs?: number;
  corsOrigins?: string[] | '*';
  maxBodyBytes?: number;
  extraPublicErrorCodes?: Iterable<string>;
  /** Seed when the users database is empty; false to never seed. */
  seedIfEmpty?: Omit<SeedOptions, 'log'> | false;
  onQuery?: OpenOptions['onQuery'];
}

export interface RunningStack {
  urls: { gateway: string; users: string; orders: string };
  databases: Databases;
  /** Stops one subgraph (for fault tests) without touching the rest. */
  stopSubgraph(name: 'users' | 'orders'): Promise<void>;
  stop(): Promise<void>;
}

// In one process the subgraphs are internal: they listen on loopback only, whatever HOST the gateway uses.
const SUBGRAPH_HOST = '127.0.0.1';

const url = (server: { address(): AddressInfo | string | null }, host: string) =>
  `http://${host}:${(server.address() as AddressInfo).port}/graphql`;

/** The address to print for a server bound to `host` (all interfaces print as localhost). */
const displayHost = (host: string | undefined) => (!host || host === '0.0.0.0' || host === '::' ? 'localhost' : host);

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

  const users = await createUsersServer({
    db: databases.users.db,
    pubsub: infrastructure.pubsub,
    logger: logger.child({ service: 'users' }),
    introspection,
  });
  await listen(users.httpServer, ports.users ?? 0, SUBGRAPH_HOST);
  const usersUrl = url(users.httpServer, SUBGRAPH_HOST);

  const orders = await createOrdersServer({
    db: databases.orders.db,
    users: createHttpUserDirectory({ url: usersUrl, timeoutMs: options.usersTimeoutMs }),
    logger: logger.child({ service: 'orders' }),
    introspection,
  });
  await listen(orders.httpServer, ports.orders ?? 0, SUBGRAPH_HOST);
  const ordersUrl = url(orders.httpServer, SUBGRAPH_HOST);

  const gateway = await createGateway({
    supergraphSdl: options.supergraphSdl,
    subgraphUrls: { users: usersUrl, orders: ordersUrl },
    subgraphTimeoutMs: options.subgraphTimeoutMs,
    logger: logger.child({ service: 'gateway' }),
    cache: infrastructure.cache,
    mode,
    corsOrigins: options.corsOrigins,
    maxBodyBytes: options.maxBodyBytes,
    extraPublicErrorCodes: options.extraPublicErrorCodes,
  });
  await listen(gateway.httpServer, ports.gateway ?? 0, host);

  const running = { users, orders };
  const stopped = new Set<string>();
  const stopSubgraph = async (name: 'users' | 'orders') => {
    if (stopped.has(name)) return;
    stopped.add(name);
    await running[name].stop();
  };

  return {
    urls: { gateway: url(gateway.httpServer, displayHost(host)), users: usersUrl, orders: ordersUrl },
    databases,
    stopSubgraph,
    stop: async () => {
      await gateway.stop();
      await Promise.all([stopSubgraph('orders'), stopSubgraph('users')]);
      await infrastructure.close();
      await databases.close();
    },
  };
}
