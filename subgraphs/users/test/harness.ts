// A real users subgraph for tests: its own freshly created Postgres database, migrated with the committed
// migrations, served over real HTTP on a free port. Nothing is mocked.
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
  type Viewer,
} from '@fed/platform';
import { createTestDatabase, isRelayStatement, signedGraphql, type GraphQLResponse, type Signing } from '@fed/platform/testing';
import { count } from 'drizzle-orm';
import { migrationsFolder, schema } from '../src/db/index.ts';
import { createUsersServer } from '../src/server.ts';

/** Who the suites act as unless a test says otherwise: business rules are tested apart from authorization. */
export const ADMIN: Viewer = { userId: '1000000', role: 'admin' };

export interface UsersHarness {
  /** The GraphQL endpoint, e.g. http://127.0.0.1:PORT/graphql */
  url: string;
  /** The secrets this subgraph verifies the gateway's and orders' signatures with. */
  secret: string;
  /** The bus the event stream rings and the subscriptions listen to. */
  pubsub: MemoryPubSub;
  /** Where the outbox relay puts the subgraph's events. */
  stream: MemoryEventStream;
  ordersSecret: string;
  /** How the gateway would sign a request acting for `viewer`. */
  signing(viewer: Viewer | null): Signing;
  /** Direct drizzle access to the subgraph's own database (the same pool the app uses). */
  handle: DatabaseHandle<typeof schema>;
  /** Every SQL statement drizzle sent, in order (the createDatabase onQuery hook). */
  statements: string[];
  /** Sends a GraphQL request to the subgraph over HTTP, signed as the gateway acting for `as` (an admin by default). */
  request<TData = Record<string, unknown>>(
    query: string,
    variables?: Record<string, unknown>,
    as?: Viewer | null,
  ): Promise<GraphQLResponse<TData>>;
  /** Runs `action` and returns the SQL statements sent while it ran. */
  statementsDuring(action: () => Promise<unknown>): Promise<string[]>;
  /** Rows in the `users` table, counted straight from the database. */
  countUsers(): Promise<number>;
  close(): Promise<void>;
}

export async function startUsersSubgraph(prefix = 'users_test'): Promise<UsersHarness> {
  const database = await createTestDatabase(prefix);
  const statements: string[] = [];
  const secret = randomBytes(32).toString('base64url');
  const ordersSecret = randomBytes(32).toString('base64url');
  let handle: DatabaseHandle<typeof schema> | undefined;
  try {
    handle = await createDatabase({ location: { url: database.url }, schema, onQuery: (sql) => isRelayStatement(sql) || statements.push(sql) });
    await migrateDatabase(handle, migrationsFolder);
    const pubsub = new MemoryPubSub();
    const stream = new MemoryEventStream(pubsub);
    const logger = createLogger({ name: 'test', level: 'silent' });
    const relay = createOutboxRelay({ db: handle.db, stream, logger });
    relay.start();
    const app = await createUsersServer({
      db: handle.db,
      events: { stream, pubsub, relay },
      logger,
      secrets: { gateway: secret, orders: ordersSecret },
      replayStore: new MemoryRateLimiter(),
    });
    const port = await listen(app.httpServer, 0, '127.0.0.1');
    const url = `http://127.0.0.1:${port}/graphql`;
    const db = handle;
    const signing = (viewer: Viewer | null): Signing => ({ secret, audience: 'users', viewer });

    return {
      url,
      secret,
      pubsub,
      stream,
      ordersSecret,
      signing,
      handle: db,
      statements,
      request: (query, variables, as = ADMIN) => signedGraphql(url, signing(as), query, variables),
      statementsDuring: async (action) => {
        const start = statements.length;
        await action();
        return statements.slice(start);
      },
      countUsers: async () => {
        const [row] = await db.db.select({ total: count() }).from(schema.users);
        return row?.total ?? 0;
      },
      close: async () => {
        try {
          await app.stop();
          await relay.stop();
          app.httpServer.closeAllConnections();
        } finally {
          await db.close();
          await database.drop();
        }
      },
    };
  } catch (error) {
    await handle?.close();
    await database.drop();
    throw error;
  }
}

export interface UserFields {
  id: string;
  email: string | null;
  name: string;
  createdAt: string;
  updatedAt: string;
}

export const USER_FIELDS = 'id email name createdAt updatedAt';

/** Creates a user through the public mutation and fails loudly if that did not work. */
export async function createUser(harness: UsersHarness, input: { email: string; name: string }): Promise<UserFields> {
  const response = await harness.request<{ createUser: UserFields }>(
    `mutation ($input: CreateUserInput!) { createUser(input: $input) { ${USER_FIELDS} } }`,
    { input },
  );
  if (!response.data?.createUser) throw new Error(`createUser failed: ${JSON.stringify(response.errors)}`);
  return response.data.createUser;
}
