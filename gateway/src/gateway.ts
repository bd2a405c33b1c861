import { createServer, type IncomingMessage } from 'node:http';
import { ApolloGateway } from '@apollo/gateway';
import { ApolloServer, type BaseContext } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import {
  ApolloServerPluginLandingPageLocalDefault,
  ApolloServerPluginLandingPageProductionDefault,
} from '@apollo/server/plugin/landingPage/default';
import { graphqlRequestListener, type GraphQLApp, type KeyValueCache, type Logger, type Viewer } from '@fed/platform';
import { DOWNSTREAM_PUBLIC_CODES } from './errors/codes.ts';
import { createGatewayErrorFormatter } from './errors/format.ts';
import { rejectSubscriptionsOverHttp } from './plugins/subscriptions-over-http.ts';
import { SubgraphDataSource } from './subgraphs/data-source.ts';

export { DOWNSTREAM_PUBLIC_CODES, ErrorCode } from './errors/codes.ts';

/** Per-request state every plugin and data source can rely on. */
export interface GatewayContext extends BaseContext {
  /** Null until authentication lands; the seam exists so nothing reads identity from raw headers. */
  viewer: Viewer | null;
}

export interface GatewayDeps {
  /** A composed supergraph (SDL text). Any valid supergraph works, not only this repo's. */
  supergraphSdl: string;
  /** Overrides the routing URL of subgraphs by name; subgraphs not listed keep the supergraph's URL. */
  subgraphUrls?: Record<string, string>;
  subgraphTimeoutMs?: number;
  logger: Logger;
  /** Shared cache (APQ now, responses later): in-memory, or Redis when scaled out. */
  cache: KeyValueCache<string>;
  /** Development turns on introspection and the Apollo Sandbox landing page. */
  mode?: 'development' | 'production';
  /** Browser origins allowed to call; unset means `*` in development and none in production. */
  corsOrigins?: string[] | '*';
  maxBodyBytes?: number;
  /** Subgraph error codes whose messages may reach clients, on top of this graph's own (other supergraphs). */
  extraPublicErrorCodes?: Iterable<string>;
}

export interface Gateway extends GraphQLApp {
  apollo: ApolloServer<GatewayContext>;
  gateway: ApolloGateway;
}

/** The gateway as an app: it neither reads the environment nor listens. */
export async function createGateway(deps: GatewayDeps): Promise<Gateway> {
  const { supergraphSdl, subgraphUrls = {}, subgraphTimeoutMs = 10_000, logger, cache, mode = 'production' } = deps;
  const development = mode === 'development';

  const routed = new Set<string>();
  const gateway = new ApolloGateway({
    supergraphSdl,
    logger,
    buildService: ({ name, url }) => {
      routed.add(name);
      const target = subgraphUrls[name] ?? url;
      if (!target) throw new Error(`Subgraph "${name}" has no URL in the supergraph and none was configured`);
      return new SubgraphDataSource({ name, url: target, timeoutMs: subgraphTimeoutMs, logger });
    },
  });

  const httpServer = createServer();
  const apollo = new ApolloServer<GatewayContext>({
    gateway,
    cache,
    logger,
    introspection: development,
    // The composition root owns shutdown; Apollo's own signal handler would re-raise SIGTERM and kill the
    // process before databases and Redis are closed.
    stopOnTerminationSignals: false,
    includeStacktraceInErrorResponses: false,
    hideSchemaDetailsFromClientErrors: true,
    allowBatchedHttpRequests: false,
    maxRecursiveSelections: true,
    parseOptions: { maxTokens: 10_000 },
    formatError: createGatewayErrorFormatter(logger, [...DOWNSTREAM_PUBLIC_CODES, ...(deps.extraPublicErrorCodes ?? [])]),
    plugins: [
      ApolloServerPluginDrainHttpServer({ httpServer }),
      development
        ? ApolloServerPluginLandingPageLocalDefault({ embed: true, includeCookies: false })
        : ApolloServerPluginLandingPageProductionDefault({ footer: false }),
      rejectSubscriptionsOverHttp(),
    ],
  });
  await apollo.start();
  // A typo in an override (`order=` for `orders=`) would otherwise silently route to the supergraph's URL.
  const unknown = Object.keys(subgraphUrls).filter((name) => !routed.has(name));
  if (unknown.length > 0) {
    await apollo.stop();
    throw new Error(`Subgraph URL overrides name subgraphs the supergraph does not have: ${unknown.join(', ')} (it has: ${[...routed].join(', ')})`);
  }

  httpServer.on(
    'request',
    graphqlRequestListener<GatewayContext>({
      apollo,
      context: async (_req: IncomingMessage) => ({ viewer: null }),
      corsOrigins: deps.corsOrigins ?? (development ? '*' : undefined),
      maxBodyBytes: deps.maxBodyBytes,
      logger,
    }),
  );

  return {
    httpServer,
    apollo,
    gateway,
    stop: async () => {
      await apollo.stop();
    },
  };
}
