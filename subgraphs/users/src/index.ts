// Composition root of a standalone users process: config, clients, app, listen, shutdown.
import {
  createDatabase,
  createInfrastructure,
  createOutboxRelay,
  createLogger,
  databaseLocation,
  developmentSecret,
  listen,
  loadConfigOrExit,
  migrateDatabase,
  onShutdown,
  startOrExit,
  listenHost,
  retentionFrom,
  observabilityFrom,
  startTelemetry,
} from '@fed/platform';
import { usersConfigSchema } from './config.ts';
import { migrationsFolder, schema } from './db/index.ts';
import { createUsersServer } from './server.ts';

const config = loadConfigOrExit(usersConfigSchema, process.env);
const logger = createLogger({ name: 'users', level: config.LOG_LEVEL });
const observability = observabilityFrom(config);

await startOrExit(async () => {
  const { telemetry, shutdown: stopTelemetry } = startTelemetry('users', observability, { processMetrics: true, global: true });
  const database = await createDatabase({
    telemetry,
    name: 'users',
    location: databaseLocation(config.USERS_DATABASE_URL, config.DATA_DIR, 'users', config.USERS_DATABASE_REPLICA_URLS, { prepare: config.USERS_DATABASE_PREPARE }),
    schema,
  });
  // Embedded PGlite has no separate migrate step to run; Postgres is migrated once with `npm run db:migrate`
  // (which takes *_DATABASE_MIGRATION_URL, a direct connection, when this URL goes through PgBouncer).
  if (database.kind === 'pglite') await migrateDatabase(database, migrationsFolder);
  const infrastructure = await createInfrastructure({ redisUrl: config.REDIS_URL, keyPrefix: config.REDIS_KEY_PREFIX, logger, retention: retentionFrom(config) });
  // EVENT_RELAY_PASSES 0: as many as the stream's partitions, within half the pool (PGlite's one connection: one pass).
  const passes = config.EVENT_RELAY_PASSES || undefined;
  const relay = createOutboxRelay({ db: database.db, stream: infrastructure.events, logger, metrics: telemetry.metrics, passes, poolSize: database.maxConnections });

  const app = await createUsersServer({
    db: database.db,
    reader: database.reader,
    events: { stream: infrastructure.events, pubsub: infrastructure.pubsub, relay },
    logger,
    // Production refuses to start without them (see the config); development uses fixed development values.
    secrets: {
      gateway: config.USERS_SUBGRAPH_SECRET ?? developmentSecret('users-subgraph'),
      orders: config.ORDERS_TO_USERS_SECRET ?? developmentSecret('orders-to-users'),
    },
    replayStore: infrastructure.rateLimiter,
    introspection: config.NODE_ENV !== 'production',
    telemetry,
    drain: observability.drain,
    execution: config.SUBGRAPH_EXECUTION,
  });
  const port = await listen(app.httpServer, config.USERS_PORT, listenHost(config));
  relay.start();
  logger.info({ port, database: database.kind, bus: infrastructure.kind }, 'users subgraph ready');

  onShutdown(logger, async () => {
    await app.stop();
    await relay.stop();
    await infrastructure.close();
    await database.close();
    await stopTelemetry();
  });
});
