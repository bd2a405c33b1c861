import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { RemoteGraphQLDataSource, type GraphQLDataSource, type GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import type { Fetcher } from '@apollo/utils.fetcher';
import { createHttpUserSnapshot, createOrdersServer } from '@fed/orders';
import { createInfrastructure, createLogger, createOutboxRelay, IDENTITY_HEADER, listen, signIdentity, type Viewer } from '@fed/platform';
import { createTestDatabase } from '@fed/platform/testing';
import { openDatabases } from '@fed/stack/databases';
import { seed } from '@fed/stack/seed';
import { createUsersServer } from '@fed/users';

/** Who the recorded requests act for: an admin who exists (user 1), so private fields and `me` answer. */
export const RECORDING_VIEWER: Viewer = { userId: '1', role: 'admin' };

/** Small on purpose: every recorded answer is replayed (and mutated) many times. */
export const SEED = { users: 24, ordersPerUser: 3 } as const;

export interface RealSubgraphs {
  urls: { users: string; orders: string };
  /** Data sources that sign each request as the gateway would, for `viewer`. */
  dataSources(viewer: Viewer | null): Record<'users' | 'orders', GraphQLDataSource>;
  stop(): Promise<void>;
}

const url = (server: { address(): AddressInfo | string | null }) => `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;

/**
 * The real users and orders subgraph apps on loopback, each on its own fresh Postgres database seeded with the
 * stack's deterministic dataset, wired as the embedded stack wires them (in-memory events, orders' projection of
 * users). Every piece is the same factory `npm start` uses.
 */
export async function startRealSubgraphs(): Promise<RealSubgraphs> {
  const logger = createLogger({ name: 'differential', level: 'silent' });
  // Real Postgres, on fresh databases of their own: two embedded PGlite instances cost about 10 s of CPU to
  // start (WebAssembly) and their queries several times Postgres's, on a machine the whole suite shares.
  const created = [await createTestDatabase('differential_users'), await createTestDatabase('differential_orders')] as const;
  const databases = await openDatabases({ users: { url: created[0].url }, orders: { url: created[1].url } });
  await seed(databases, SEED);
  const infrastructure = await createInfrastructure({ logger });
  const secrets = { users: randomBytes(32).toString('base64url'), orders: randomBytes(32).toString('base64url'), ordersToUsers: randomBytes(32).toString('base64url') };

  const usersRelay = createOutboxRelay({ db: databases.users.db, stream: infrastructure.events, logger });
  const users = await createUsersServer({
    db: databases.users.db,
    events: { stream: infrastructure.events, pubsub: infrastructure.pubsub, relay: usersRelay },
    logger,
    secrets: { gateway: secrets.users, orders: secrets.ordersToUsers },
    replayStore: infrastructure.rateLimiter,
  });
  await listen(users.httpServer, 0, '127.0.0.1');
  usersRelay.start();
  const usersUrl = url(users.httpServer);

  const ordersRelay = createOutboxRelay({ db: databases.orders.db, stream: infrastructure.events, logger });
  const orders = await createOrdersServer({
    db: databases.orders.db,
    events: { stream: infrastructure.events, relay: ordersRelay },
    userSnapshot: createHttpUserSnapshot({ url: usersUrl, secret: secrets.ordersToUsers }),
    logger,
    secrets: { gateway: secrets.orders },
    replayStore: infrastructure.rateLimiter,
  });
  await listen(orders.httpServer, 0, '127.0.0.1');
  ordersRelay.start();
  await orders.userProjection.start();
  const ordersUrl = url(orders.httpServer);

  const signing = (name: 'users' | 'orders', target: string, secret: string, viewer: Viewer | null): GraphQLDataSource => {
    let readPrimary = false;
    const fetcher: Fetcher = async (input, init) => {
      const headers = { ...(init?.headers as Record<string, string> | undefined) };
      const body = String(init?.body ?? '');
      headers[IDENTITY_HEADER] = signIdentity({ secret, caller: 'gateway', audience: name, viewer, readPrimary, body });
      return fetch(input, { ...init, headers } as RequestInit) as never;
    };
    return new (class extends RemoteGraphQLDataSource {
      override willSendRequest(options: GraphQLDataSourceProcessOptions): void {
        readPrimary = 'incomingRequestContext' in options && options.incomingRequestContext.operation?.operation === 'mutation';
      }
    })({ url: target, fetcher });
  };

  return {
    urls: { users: usersUrl, orders: ordersUrl },
    dataSources: (viewer) => ({ users: signing('users', usersUrl, secrets.users, viewer), orders: signing('orders', ordersUrl, secrets.orders, viewer) }),
    stop: async () => {
      await orders.stop();
      await orders.userProjection.stop();
      await ordersRelay.stop();
      await users.stop();
      await usersRelay.stop();
      await infrastructure.close();
      await databases.close();
      await Promise.all(created.map((database) => database.drop()));
    },
  };
}
