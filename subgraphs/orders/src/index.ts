// Composition root of a standalone orders process: config, clients, app, listen, shutdown.
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
import { ordersConfigSchema } from './config.ts';
import { migrationsFolder, schema } from './db/index.ts';
import { createHttpUserSnapshot, createOrdersServer } from './server.ts';

const config = loadConfigOrExit(ordersConfigSchema, process.env);
const logger = createLogger({ name: 'orders', level: config.LOG_LEVEL });
const observability = observabilityFrom(config);

await startOrExit(async () => {
  const { telemetry, shutdown: stopTelemetry } = startTelemetry('orders', observability, { processMetrics: true, global: true });
  const database = await createDatabase({
    telemetry,
    name: 'orders',
    location: databaseLocation(config.ORDERS_DATABASE_URL, config.DATA_DIR, 'orders', config.ORDERS_DATABASE_REPLICA_URLS, { prepare: config.ORDERS_DATABASE_PREPARE }),
    schema,
  });
  // Embedded PGlite has no separate migrate step to run; Postgres is migrated once with `npm run db:migrate`
  // (which takes *_DATABASE_MIGRATION_URL, a direct connection, when this URL goes through PgBouncer).
  if (database.kind === 'pglite') await migrateDatabase(database, migrationsFolder);
  const infrastructure = await createInfrastructure({ redisUrl: config.REDIS_URL, keyPrefix: config.REDIS_KEY_PREFIX, logger, retention: retentionFrom(config) });
  // EVENT_RELAY_PASSES 0: as many as the stream's partitions, within half the pool (PGlite's one connection: one pass).
  const passes = config.EVENT_RELAY_PASSES || undefined;
  const relay = createOutboxRelay({ db: database.db, stream: infrastructure.events, logger, metrics: telemetry.metrics, passes, poolSize: database.maxConnections });

  const app = await createOrdersServer({
    db: database.db,
    reader: database.reader,
    events: { stream: infrastructure.events, relay },
    userSnapshot: createHttpUserSnapshot({
      url: config.USERS_URL,
      // Production refuses to start without these (see the config); development uses fixed development values.
      secret: config.ORDERS_TO_USERS_SECRET ?? developmentSecret('orders-to-users'),
      timeoutMs: config.USERS_TIMEOUT_MS,
    }),
    logger,
    secrets: { gateway: config.ORDERS_SUBGRAPH_SECRET ?? developmentSecret('orders-subgraph') },
    replayStore: infrastructure.rateLimiter,
    introspection: config.NODE_ENV !== 'production',
    telemetry,
    drain: observability.drain,
    execution: config.SUBGRAPH_EXECUTION,
  });
  const port = await listen(app.httpServer, config.ORDERS_PORT, listenHost(config));
  relay.start();
  await app.userProjection.start();
  logger.info({ port, database: database.kind }, 'orders subgraph ready');

  onShutdown(logger, async () => {
    await app.stop();
    await app.userProjection.stop();
    await relay.stop();
    await infrastructure.close();
    await database.close();
    await stopTelemetry();
  });
});
