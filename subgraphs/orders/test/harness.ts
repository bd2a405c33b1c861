// Real subgraphs for tests: each on its own freshly created Postgres database, migrated with the committed
// migrations and served over real HTTP on a free port. Both relay their outboxes to one event stream (the
// embedded default's, in memory), and orders learns which users exist from it, exactly as in production.
import { randomBytes } from 'node:crypto';
import {
  createDatabase,
  createLogger,
  createOutboxRelay,
  MemoryEventStream,
  listen,
  MemoryPubSub,
  MemoryRateLimiter,
  migrateDatabase,
  type DatabaseHandle,
  type EventStream,
  type GraphQLApp,
  type Viewer,
} from '@fed/platform';
import { createTestDatabase, isRelayStatement, signedGraphql, type GraphQLResponse, type Signing } from '@fed/platform/testing';
import { createUsersServer } from '@fed/users';
import * as usersDb from '@fed/users/db';
import { count } from 'drizzle-orm';
import { migrationsFolder, schema } from '../src/db/index.ts';
import { createHttpUserSnapshot, createOrdersServer, type OrdersServer } from '../src/server.ts';

const silentLogger = () => createLogger({ name: 'test', level: 'silent' });

/** Who the suites act as unless a test says otherwise: business rules are tested apart from authorization. */
export const ADMIN: Viewer = { userId: '1000000', role: 'admin' };

/** Signed as the gateway acting for `as` (an admin by default). */
type Request = <TData = Record<string, unknown>>(
  query: string,
  variables?: Record<string, unknown>,
  as?: Viewer | null,
) => Promise<GraphQLResponse<TData>>;

const newSecret = () => randomBytes(32).toString('base64url');

async function serve(app: GraphQLApp): Promise<string> {
  const port = await listen(app.httpServer, 0, '127.0.0.1');
  return `http://127.0.0.1:${port}/graphql`;
}

async function stopApp(app: GraphQLApp): Promise<void> {
  await app.stop();
  app.httpServer.closeAllConnections();
}

/** A fresh, migrated database on the test Postgres server, dropped again by close(). */
async function openTestDatabase<TSchema extends Record<string, unknown>>(
  prefix: string,
  schemaModule: TSchema,
  folder: string,
  onQuery?: (sql: string) => void,
): Promise<{ handle: DatabaseHandle<TSchema>; close(): Promise<void> }> {
  const database = await createTestDatabase(prefix);
  let handle: DatabaseHandle<TSchema> | undefined;
  try {
    handle = await createDatabase({ location: { url: database.url }, schema: schemaModule, onQuery });
    await migrateDatabase(handle, folder);
  } catch (error) {
    await handle?.close();
    await database.drop();
    throw error;
  }
  const opened = handle;
  return {
    handle: opened,
    close: async () => {
      try {
        await opened.close();
      } finally {
        await database.drop();
      }
    },
  };
}

export interface UsersSubgraph {
  url: string;
  /** The secret users verifies the gateway's signatures with. */
  secret: string;
  /** The secret users verifies orders' own calls with; orders signs with it. */
  ordersSecret: string;
  handle: DatabaseHandle<typeof usersDb.schema>;
  /** The event stream both subgraphs' relays feed. */
  stream: EventStream;
  request: Request;
  /** Creates a user through the users subgraph's own createUser mutation; returns its id. */
  createUser(input: { email: string; name: string }): Promise<string>;
  /** Stops serving HTTP (the port then refuses connections); the database stays until close(). */
  stop(): Promise<void>;
  close(): Promise<void>;
}

export async function startUsersSubgraph(prefix = 'orders_it_users'): Promise<UsersSubgraph> {
  const database = await openTestDatabase(prefix, usersDb.schema, usersDb.migrationsFolder);
  const secret = newSecret();
  const ordersSecret = newSecret();
  const pubsub = new MemoryPubSub();
  const stream = new MemoryEventStream(pubsub);
  const relay = createOutboxRelay({ db: database.handle.db, stream, logger: silentLogger() });
  relay.start();
  let app: GraphQLApp;
  let url: string;
  try {
    app = await createUsersServer({
      db: database.handle.db,
      events: { stream, pubsub, relay },
      logger: silentLogger(),
      secrets: { gateway: secret, orders: ordersSecret },
      replayStore: new MemoryRateLimiter(),
    });
    url = await serve(app);
  } catch (error) {
    await relay.stop();
    await database.close();
    throw error;
  }
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await stopApp(app);
    await relay.stop();
  };
  const request: Request = (query, variables, as = ADMIN) => signedGraphql(url, { secret, audience: 'users', viewer: as }, query, variables);
  return {
    url,
    secret,
    ordersSecret,
    handle: database.handle,
    stream,
    request,
    createUser: async (input) => {
      const response = await request<{ createUser: { id: string } }>(
        'mutation ($input: CreateUserInput!) { createUser(input: $input) { id } }',
        { input },
      );
      if (!response.data?.createUser) throw new Error(`createUser failed: ${JSON.stringify(response.errors)}`);
      return response.data.createUser.id;
    },
    stop,
    close: async () => {
      try {
        await stop();
      } finally {
        await database.close();
      }
    },
  };
}

export interface OrdersSubgraph {
  url: string;
  /** The secret the orders subgraph verifies signatures with. */
  secret: string;
  /** How the gateway would sign a request acting for `viewer`. */
  signing(viewer: Viewer | null): Signing;
  handle: DatabaseHandle<typeof schema>;
  /** Every SQL statement drizzle sent, in order (the createDatabase onQuery hook). */
  statements: string[];
  request: Request;
  /** Runs `action` and returns the SQL statements sent while it ran. */
  statementsDuring(action: () => Promise<unknown>): Promise<string[]>;
  /** Rows in `orders` and `order_items`, counted straight from the database. */
  countRows(): Promise<{ orders: number; items: number }>;
  close(): Promise<void>;
}

export async function startOrdersSubgraph({ users, prefix = 'orders_it' }: { users: Pick<UsersSubgraph, 'url' | 'ordersSecret' | 'stream'>; prefix?: string }): Promise<OrdersSubgraph> {
  const statements: string[] = [];
  const secret = newSecret();
  const database = await openTestDatabase(prefix, schema, migrationsFolder, (sql) => isRelayStatement(sql) || statements.push(sql));
  const relay = createOutboxRelay({ db: database.handle.db, stream: users.stream, logger: silentLogger() });
  relay.start();
  let app: OrdersServer;
  let url: string;
  try {
    app = await createOrdersServer({
      db: database.handle.db,
      events: { stream: users.stream, relay },
      userSnapshot: createHttpUserSnapshot({ url: users.url, secret: users.ordersSecret }),
      logger: silentLogger(),
      secrets: { gateway: secret },
      replayStore: new MemoryRateLimiter(),
    });
    await app.userProjection.start();
    url = await serve(app);
  } catch (error) {
    await relay.stop();
    await database.close();
    throw error;
  }
  const { db } = database.handle;
  const signing = (viewer: Viewer | null): Signing => ({ secret, audience: 'orders', viewer });
  return {
    url,
    secret,
    signing,
    handle: database.handle,
    statements,
    request: (query, variables, as = ADMIN) => signedGraphql(url, signing(as), query, variables),
    statementsDuring: async (action) => {
      const start = statements.length;
      await action();
      return statements.slice(start);
    },
    countRows: async () => {
      const [orders] = await db.select({ total: count() }).from(schema.orders);
      const [items] = await db.select({ total: count() }).from(schema.orderItems);
      return { orders: orders?.total ?? 0, items: items?.total ?? 0 };
    },
    close: async () => {
      try {
        await stopApp(app);
        await app.userProjection.stop();
        await relay.stop();
      } finally {
        await database.close();
      }
    },
  };
}

export interface OrderItem {
  sku: string;
  quantity: number;
  unitPriceCents: number;
}

export interface OrderFields {
  id: string;
  status: string;
  totalCents: number;
  currency: string;
  createdAt: string;
  items: OrderItem[];
  user: { id: string } | null;
}

export const ORDER_FIELDS = 'id status totalCents currency createdAt items { sku quantity unitPriceCents } user { id }';

export const PLACE_ORDER = `mutation ($input: PlaceOrderInput!) { placeOrder(input: $input) { ${ORDER_FIELDS} } }`;

/** Places an order through the public mutation and fails loudly if that did not work. */
export async function placeOrder(
  orders: OrdersSubgraph,
  input: { userId: string; items: OrderItem[]; currency?: string },
): Promise<OrderFields> {
  const response = await orders.request<{ placeOrder: OrderFields }>(PLACE_ORDER, { input });
  if (!response.data?.placeOrder) throw new Error(`placeOrder failed: ${JSON.stringify(response.errors)}`);
  return response.data.placeOrder;
}

/** Σ quantity × unitPriceCents: what an order's total must be. */
export const totalOf = (items: readonly OrderItem[]) => items.reduce((sum, item) => sum + item.quantity * item.unitPriceCents, 0);

let sequence = 0;
/** A unique address per call, so users created by different tests never collide. */
export const uniqueEmail = (local = 'buyer') => `${local}.${Date.now().toString(36)}.${++sequence}@example.com`;
