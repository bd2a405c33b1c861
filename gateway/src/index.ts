// Composition root of a standalone gateway process: config, clients, app, listen, shutdown.
import {
  createInfrastructure,
  createLogger,
  developmentSecret,
  listen,
  listenHost,
  loadConfigOrExit,
  observabilityFrom,
  onShutdown,
  startOrExit,
  startTelemetry,
} from '@fed/platform';
import { createAuthenticator } from './auth/authenticate.ts';
import { gatewayConfigSchema, gatewaySettings } from './config.ts';
import { createGateway } from './gateway.ts';
import { followSupergraph, loadSupergraph } from './supergraph/sources.ts';

// @apollo/gateway reports anonymous usage hourly unless told not to.
process.env.APOLLO_TELEMETRY_DISABLED ??= '1';

const config = loadConfigOrExit(gatewayConfigSchema, process.env);
const logger = createLogger({ name: 'gateway', level: config.LOG_LEVEL });
const settings = gatewaySettings(config);
const observability = observabilityFrom(config);

await startOrExit(async () => {
  // The gateway owns its process: process metrics, and the global tracer @apollo/gateway records on.
  const { telemetry, shutdown: stopTelemetry } = startTelemetry('gateway', observability, { processMetrics: true, global: true });
  const infrastructure = await createInfrastructure({ redisUrl: config.REDIS_URL, keyPrefix: config.REDIS_KEY_PREFIX, logger });

  const app = await createGateway({
    ...settings.gateway,
    supergraphSdl: await loadSupergraph(settings.supergraph),
    logger,
    cache: infrastructure.cache,
    responseCache: settings.responseCache && {
      ...settings.responseCache,
      store: infrastructure.createResponseStore({ maxTtlSeconds: settings.responseCache.maxTtlSeconds }),
      events: infrastructure.pubsub,
    },
    liveQueries: settings.liveQueries && { ...settings.liveQueries, events: infrastructure.pubsub },
    rateLimiter: infrastructure.rateLimiter,
    telemetry,
    drain: observability.drain,
    authenticate: createAuthenticator(settings.auth),
    subgraphSecrets: config.SUBGRAPH_SECRETS,
    // Production has no fallback: a subgraph without a configured secret stops the start.
    defaultSubgraphSecret: config.NODE_ENV === 'production' ? undefined : (name) => developmentSecret(`${name}-subgraph`),
  });
  const port = await listen(app.httpServer, config.GATEWAY_PORT, listenHost(config));
  logger.info({ port, cache: infrastructure.kind, responseCache: settings.responseCache ? 'on' : 'off', tracing: observability.tracing ? 'on' : 'off' }, `gateway ready at http://localhost:${port}/graphql`);

  const stopFollowing = followSupergraph(settings.supergraph, app.reloadSupergraph, logger);

  onShutdown(logger, async () => {
    stopFollowing();
    await app.stop();
    await infrastructure.close();
    await stopTelemetry();
  });
});
