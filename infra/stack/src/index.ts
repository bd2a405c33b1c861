// `npm start`: the whole product in one process. With no database or Redis URLs it needs no services at all.
import { createLogger, listenHost, loadConfigOrExit, observabilityFrom, onShutdown, retentionFrom, startOrExit } from '@fed/platform';
import { gatewaySettings } from '@fed/gateway/config';
import { followSupergraph, loadSupergraph } from '@fed/gateway/supergraph';
import { stackConfigSchema } from './config.ts';
import { locationsFrom } from './databases.ts';
import { startStack } from './stack.ts';

process.env.APOLLO_TELEMETRY_DISABLED ??= '1';
const startedAt = performance.now();

const config = loadConfigOrExit(stackConfigSchema, process.env);
const logger = createLogger({ name: 'stack', level: config.LOG_LEVEL });
const databases = locationsFrom(config);

const { auth, gateway, responseCache, liveQueries, supergraph } = gatewaySettings({ ...config, SUBGRAPH_URLS: {} });
const { tracing, knownOperations, drain } = observabilityFrom(config);

await startOrExit(async () => {
  const stack = await startStack({
    databases,
    redisUrl: config.REDIS_URL,
    keyPrefix: config.REDIS_KEY_PREFIX,
    retention: retentionFrom(config),
    supergraphSdl: await loadSupergraph(supergraph),
    ports: { gateway: config.GATEWAY_PORT, users: config.USERS_PORT, orders: config.ORDERS_PORT },
    host: listenHost(config),
    logger,
    mode: gateway.mode,
    gateway,
    responseCache,
    liveQueries,
    auth,
    secrets: { users: config.USERS_SUBGRAPH_SECRET, orders: config.ORDERS_SUBGRAPH_SECRET, ordersToUsers: config.ORDERS_TO_USERS_SECRET },
    usersTimeoutMs: config.USERS_TIMEOUT_MS,
    subgraphExecution: config.SUBGRAPH_EXECUTION,
    seedIfEmpty: config.SEED_ON_FIRST_START ? undefined : false,
    telemetry: { tracing, knownOperations, processMetrics: true },
    drain,
  });

  const where = (location: (typeof databases)['users']) => ('url' in location ? 'Postgres' : `PGlite in ${location.dataDir}`);
  process.stdout.write(
    [
      '',
      `  Gateway   ${stack.urls.gateway}   (Apollo Sandbox in a browser)`,
      `  users     ${stack.urls.users}   ${where(databases.users)}`,
      `  orders    ${stack.urls.orders}   ${where(databases.orders)}`,
      `  cache and pub/sub: ${config.REDIS_URL ? 'Redis' : 'in memory'}; response cache ${responseCache ? 'on' : 'off'}; tracing ${tracing ? `to ${tracing.endpoint}` : 'off'}`,
      `  metrics   ${stack.urls.gateway.replace(/\/graphql$/, '/metrics')}   (all three services)`,
      auth.secret ? '  sign in:  TOKEN=$(npm run -s token -- --sub 1 --role admin), then send "Authorization: Bearer $TOKEN"' : `  tokens from ${auth.jwksUrl}`,
      `  ready in ${Math.round(performance.now() - startedAt)} ms; Ctrl+C to stop`,
      '',
    ].join('\n') + '\n',
  );

  const stopFollowing = followSupergraph(supergraph, stack.gateway.reloadSupergraph, logger);
  onShutdown(logger, async () => {
    stopFollowing();
    await stack.stop();
  });
});
