import { createDatabase, databaseLocation, migrateDatabase, type DatabaseHandle, type DatabaseLocation, type Telemetry } from '@fed/platform';
import * as orders from '@fed/orders/db';
import * as users from '@fed/users/db';

export interface Databases {
  users: DatabaseHandle<typeof users.schema>;
  orders: DatabaseHandle<typeof orders.schema>;
  close(): Promise<void>;
}

export interface DatabaseLocations {
  users: DatabaseLocation;
  orders: DatabaseLocation;
}

/** A URL means real Postgres; without one each subgraph gets its own embedded PGlite under DATA_DIR. */
export function locationsFrom(config: {
  USERS_DATABASE_URL?: string;
  ORDERS_DATABASE_URL?: string;
  USERS_DATABASE_REPLICA_URLS?: string[];
  ORDERS_DATABASE_REPLICA_URLS?: string[];
  USERS_DATABASE_PREPARE?: boolean;
  ORDERS_DATABASE_PREPARE?: boolean;
  USERS_DATABASE_MIGRATION_URL?: string;
  ORDERS_DATABASE_MIGRATION_URL?: string;
  DATA_DIR: string;
}): DatabaseLocations {
  return {
    users: databaseLocation(config.USERS_DATABASE_URL, config.DATA_DIR, 'users', config.USERS_DATABASE_REPLICA_URLS, {
      prepare: config.USERS_DATABASE_PREPARE,
      migrationUrl: config.USERS_DATABASE_MIGRATION_URL,
    }),
    orders: databaseLocation(config.ORDERS_DATABASE_URL, config.DATA_DIR, 'orders', config.ORDERS_DATABASE_REPLICA_URLS, {
      prepare: config.ORDERS_DATABASE_PREPARE,
      migrationUrl: config.ORDERS_DATABASE_MIGRATION_URL,
    }),
  };
}

export interface OpenOptions {
  /** Sees every statement each subgraph sends (query counting in tests, debug logging). */
  onQuery?: { users?: (sql: string, target: string) => void; orders?: (sql: string, target: string) => void };
  migrate?: boolean;
  /** Each service's telemetry, for `db_` metrics and statement spans. */
  telemetry?: { users?: Telemetry; orders?: Telemetry };
}

/** Opens (and by default migrates) both subgraphs' databases. They are separate: neither reads the other. */
export async function openDatabases(locations: DatabaseLocations, options: OpenOptions = {}): Promise<Databases> {
  const [usersDb, ordersDb] = await Promise.all([
    createDatabase({ location: locations.users, schema: users.schema, onQuery: options.onQuery?.users, telemetry: options.telemetry?.users, name: 'users' }),
    createDatabase({ location: locations.orders, schema: orders.schema, onQuery: options.onQuery?.orders, telemetry: options.telemetry?.orders, name: 'orders' }),
  ]);
  if (options.migrate ?? true) {
    await Promise.all([
      migrateDatabase(usersDb, users.migrationsFolder),
      migrateDatabase(ordersDb, orders.migrationsFolder),
    ]);
  }
  return {
    users: usersDb,
    orders: ordersDb,
    close: async () => {
      await Promise.all([usersDb.close(), ordersDb.close()]);
    },
  };
}
