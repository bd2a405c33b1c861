import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { ApolloServer, type BaseContext } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import {
  ApolloServerPluginInlineTraceDisabled,
  ApolloServerPluginLandingPageDisabled,
} from '@apollo/server/plugin/disabled';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { parse, type DocumentNode } from 'graphql';
import { createErrorFormatter } from './errors.ts';
import { graphqlRequestListener, HttpError } from './http/server.ts';
import { createIdentityVerifier, IDENTITY_HEADER, InvalidIdentityError, type CallerIdentity } from './identity/internal-token.ts';
import type { Logger } from './logger.ts';

export const UNAUTHENTICATED = 'UNAUTHENTICATED';

/** What every app factory returns: an HTTP server that is not yet listening, and a way to stop it cleanly. */
export interface GraphQLApp {
  httpServer: Server;
  stop(): Promise<void>;
}

export interface SubgraphAppOptions<TContext extends BaseContext> {
  name: string;
  typeDefs: DocumentNode;
  /** The subgraph's resolver map, checked at compile time against the types generated from its SDL. */
  resolvers: Record<string, object>;
  /** Per-request state, built from the identity the caller signed (the viewer it acts for, if any). */
  context: (identity: CallerIdentity) => Promise<TContext>;
  /**
   * This subgraph's own secret. Every request must carry an identity signed with it (the gateway, or a
   * service calling this one); anything else, `_service` and `_entities` included, is refused with 401.
   */
  secret: string;
  logger: Logger;
  /** The subgraph's ErrorCode values; errors with other codes are masked. */
  knownCodes: Iterable<string>;
  introspection?: boolean;
}

/** Reads a subgraph's SDL contract (its schema.graphql) from disk. */
export function loadTypeDefs(fileUrl: URL): DocumentNode {
  return parse(readFileSync(fileUrl, 'utf8'));
}

/** The shared server bootstrap for subgraphs: schema, hardening defaults, error masking and the HTTP front. */
export async function createSubgraphApp<TContext extends BaseContext>(
  options: SubgraphAppOptions<TContext>,
): Promise<GraphQLApp> {
  const { name, typeDefs, resolvers, context, secret, logger, knownCodes, introspection = true } = options;
  // Resolver maps are checked against types generated from the SDL (`satisfies Resolvers`), which are stricter
  // than @apollo/subgraph's loose map; hence the cast.
  const schema = buildSubgraphSchema([{ typeDefs, resolvers }] as Parameters<typeof buildSubgraphSchema>[0]);
  // The HTTP server exists before Apollo so the drain plugin can close it gracefully on stop().
  const httpServer = createServer();
  const apollo = new ApolloServer<TContext>({
    schema,
    introspection,
    // The composition root owns shutdown; Apollo's own signal handler would re-raise SIGTERM and kill the
    // process before databases and Redis are closed.
    stopOnTerminationSignals: false,
    includeStacktraceInErrorResponses: false,
    hideSchemaDetailsFromClientErrors: true,
    allowBatchedHttpRequests: false,
    formatError: createErrorFormatter({ knownCodes, logger }),
    logger,
    plugins: [
      // Inline traces would hand query timings and error details to anyone who can reach the subgraph.
      ApolloServerPluginInlineTraceDisabled(),
      ApolloServerPluginLandingPageDisabled(),
      ApolloServerPluginDrainHttpServer({ httpServer }),
    ],
  });
  await apollo.start();
  const verify = createIdentityVerifier({ audience: name, secret });
  httpServer.on(
    'request',
    graphqlRequestListener<TContext, CallerIdentity>({
      apollo,
      admit: (req: IncomingMessage, body: string) => {
        try {
          // Only POST carries a body the signature covers; a signed GET could be replayed with any query.
          if (req.method !== 'POST') throw new InvalidIdentityError(`${req.method ?? 'no'} method`);
          const header = req.headers[IDENTITY_HEADER];
          return verify(Array.isArray(header) ? header[0] : header, body);
        } catch (error) {
          if (!(error instanceof InvalidIdentityError)) throw error;
          // Inside the network someone is calling a subgraph directly: operators want to know.
          logger.warn({ reason: error.message, remoteAddress: req.socket.remoteAddress }, 'refused a request without a valid identity signature');
          throw new HttpError(401, UNAUTHENTICATED, 'This service only answers requests signed by the gateway');
        }
      },
      context: (_req, identity) => context(identity),
      logger,
    }),
  );

  return {
    httpServer,
    stop: async () => {
      await apollo.stop();
    },
  };
}
