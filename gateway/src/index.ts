// Composition root of a standalone gateway process: config, clients, app, listen, shutdown.
import { createInfrastructure, createLogger, listen, loadConfigOrExit, onShutdown, startOrExit } from '@fed/platform';
import { gatewayConfigSchema } from './config.ts';
import { createGateway } from './gateway.ts';
import { readSupergraph } from './supergraph/load.ts';

// @apollo/gateway reports anonymous usage hourly unless told not to.
process.env.APOLLO_TELEMETRY_DISABLED ??= '1';

const config = loadConfigOrExit(gatewayConfigSchema, process.env);
const logger = createLogger({ name: 'gateway', level: config.LOG_LEVEL });

await startOrExit(async () => {
  const infrastructure = await createInfrastructure({ redisUrl: config.REDIS_URL, logger });

  const app = await createGateway({
    supergraphSdl: readSupergraph(config.SUPERGRAPH_PATH),
    subgraphUrls: config.SUBGRAPH_URLS,
    subgraphTimeoutMs: config.SUBGRAPH_TIMEOUT_MS,
    logger,
    cache: infrastructure.cache,
    mode: config.NODE_ENV === 'production' ? 'production' : 'development',
    corsOrigins: config.CORS_ORIGINS,
    maxBodyBytes: config.MAX_BODY_BYTES,
    extraPublicErrorCodes: config.PUBLIC_ERROR_CODES,
  });
  const port = await listen(app.httpServer, config.GATEWAY_PORT, config.HOST);
  logger.info({ port, cache: infrastructure.kind }, `gateway ready at http://localhost:${port}/graphql`);

  onShutdown(logger, async () => {
    await app.stop();
    await infrastructure.close();
  });
});
