import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { ApolloServer, type BaseContext } from '@apollo/server';
import {
  ApolloServerPluginInlineTraceDisabled,
  ApolloServerPluginLandingPageDisabled,
} from '@apollo/server/plugin/disabled';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { GraphQLError, parse, type DocumentNode } from 'graphql';
import { setTimeout as sleep } from 'node:timers/promises';
import { createErrorFormatter } from './errors.ts';
import { observabilityPlugin } from './observability/graphql-plugin.ts';
import { requestFields } from './observability/request-scope.ts';
import { createTelemetry, type Telemetry } from './observability/telemetry.ts';
import { FORBIDDEN } from './identity/viewer.ts';
import { trackHttpDrain } from './http/drain.ts';
import { graphqlRequestListener, HttpError } from './http/server.ts';
import {
  createIdentityVerifier,
  createReplayGuard,
  IDENTITY_HEADER,
  InvalidIdentityError,
  type CallerIdentity,
  type TrustedCaller,
} from './identity/internal-token.ts';
import { EVENTS_EXTENSION, REQUEST_WRITES, scopeMutationFields, type DomainEvent, type RequestWrites } from './events/index.ts';
import type { Logger } from './logger.ts';
import type { RateLimiter } from './rate-limit/index.ts';
import { serveSubgraphSubscriptions } from './subscriptions/subgraph-ws.ts';
import { compiledExecution, instrumentCacheHints, type CompiledExecutionStats, type SubgraphExecution } from './compiled-execution/index.ts';

export const UNAUTHENTICATED = 'UNAUTHENTICATED';

// Apollo hands plugins a shallow copy of each request's context, so the verified identity travels inside it,
// under a key no resolver can name.
const IDENTITY = Symbol('callerIdentity');
const EVENTS = Symbol('committedEvents');

/** What every app factory returns: an HTTP server that is not yet listening, and a way to stop it cleanly. */
export interface GraphQLApp {
  httpServer: Server;
  /** Subscriptions running now, on an app that serves them. */
  subscriptions?: { active: number };
  /** On a subgraph running compiled execution: how many requests ran compiled, and how many on graphql-js. */
  execution?: CompiledExecutionStats;
  stop(): Promise<void>;
}

export interface SubgraphAppOptions<TContext extends BaseContext> {
  name: string;
  typeDefs: DocumentNode;
  /** The subgraph's resolver map, checked at compile time against the types generated from its SDL. */
  resolvers: Record<string, object>;
  /**
   * Per-request state, built from the identity the caller signed (the viewer it acts for, if any). The request's
   * unit of work takes `writes`: it hands them the events it committed, which the response lists for the
   * gateway, and learns from them which mutation field it writes for.
   */
  context: (identity: CallerIdentity, writes: RequestWrites) => Promise<TContext>;
  /**
   * Who may call this subgraph, each with a secret of its own: every request must carry an identity signed
   * by one of them; anything else, `_service` and `_entities` included, is refused with 401.
   */
  callers: Record<string, TrustedCaller>;
  /** Where signatures that ran a mutation are remembered (the rate-limit edge), so each runs it only once. */
  replayStore: RateLimiter;
  logger: Logger;
  /** The subgraph's ErrorCode values; errors with other codes are masked. */
  knownCodes: Iterable<string>;
  introspection?: boolean;
  /** Its metrics registry and, when tracing is on, its tracer. Default: a registry of its own, no tracing. */
  telemetry?: Telemetry;
  /** Resolves when the service's database answers: /readyz. */
  healthCheck?: () => Promise<unknown>;
  /** How long one signed subscription runs before its caller must renew it (default 5 minutes). */
  subscriptionLifetimeMs?: number;
  /** On stop: how long /readyz says draining before the listener closes, and the grace for requests in flight. */
  drain?: { delayMs?: number; graceMs?: number };
  /**
   * `compiled` (the default): each document is compiled once (graphql-jit) and runs compiled from then on;
   * `graphql-js`: graphql-js executes every request, as before compiled execution existed.
   */
  execution?: SubgraphExecution;
  /** How many compiled documents the server keeps (default 500). */
  compiledDocuments?: number;
}

/** How long /readyz waits for the database before calling it down. */
const HEALTH_CHECK_TIMEOUT_MS = 2_000;

/** Reads a subgraph's SDL contract (its schema.graphql) from disk. */
export function loadTypeDefs(fileUrl: URL): DocumentNode {
  return parse(readFileSync(fileUrl, 'utf8'));
}

/** The shared server bootstrap for subgraphs: schema, hardening defaults, error masking and the HTTP front. */
export async function createSubgraphApp<TContext extends BaseContext>(
  options: SubgraphAppOptions<TContext>,
): Promise<GraphQLApp> {
  const { name, typeDefs, resolvers, context, callers, replayStore, logger, knownCodes, introspection = true, healthCheck } = options;
  const telemetry = options.telemetry ?? createTelemetry({ service: name });
  let draining = false;
  const firstUse = createReplayGuard(replayStore, name);
  // Resolver maps are checked against types generated from the SDL (`satisfies Resolvers`), which are stricter
  // than @apollo/subgraph's loose map; hence the cast.
  // Every mutation field tells the request's unit of work which field it writes for (idempotency keys).
  const buildSchema = () => buildSubgraphSchema([{ typeDefs, resolvers: scopeMutationFields(resolvers) }] as Parameters<typeof buildSubgraphSchema>[0]);
  const schema = buildSchema();
  // Compiled queries run on a second instance of the schema: Apollo wraps every resolver of the one it executes
  // (for its cache control plugin), and that instance keeps serving graphql-js, for documents the compiler refuses.
  const compiled =
    (options.execution ?? 'compiled') === 'compiled'
      ? compiledExecution({ schema, compiledSchema: instrumentCacheHints(buildSchema()), logger, maxDocuments: options.compiledDocuments })
      : undefined;
  // Platform rules raise these whatever the subgraph's own enum says; they must never be masked.
  const formatError = createErrorFormatter({ knownCodes: [...knownCodes, FORBIDDEN, UNAUTHENTICATED], logger });
  const httpServer = createServer();
  const httpDrain = trackHttpDrain(httpServer, logger);
  const apollo = new ApolloServer<TContext>({
    // Apollo Server lets only a gateway supply the executor, so compiled execution comes in as one.
    ...(compiled ? { gateway: compiled.gateway } : { schema }),
    introspection,
    // The composition root owns shutdown; Apollo's own signal handler would re-raise SIGTERM and kill the
    // process before databases and Redis are closed.
    stopOnTerminationSignals: false,
    includeStacktraceInErrorResponses: false,
    hideSchemaDetailsFromClientErrors: true,
    allowBatchedHttpRequests: false,
    formatError,
    logger,
    plugins: [
      // Inline traces would hand query timings and error details to anyone who can reach the subgraph.
      ApolloServerPluginInlineTraceDisabled(),
      ApolloServerPluginLandingPageDisabled(),
      observabilityPlugin(telemetry),
      {
        // A captured signature could otherwise repeat a write (a second placeOrder) while it is still valid.
        async requestDidStart() {
          return {
            async didResolveOperation({ operation, contextValue }) {
              if (operation?.operation !== 'mutation') return;
              const identity = (contextValue as { [IDENTITY]?: CallerIdentity })[IDENTITY];
              if (identity && (await firstUse(identity.tokenId))) return;
              logger.warn({ ...requestFields(contextValue), caller: identity?.caller }, 'refused a replayed signature for a mutation');
              throw new GraphQLError('This signature was already used for a write', {
                extensions: { code: UNAUTHENTICATED, http: { status: 401 } },
              });
            },
            // The caller learns what this request committed without waiting for pub/sub: the gateway purges
            // its cache before it answers the mutation.
            async willSendResponse({ response, contextValue }) {
              const events = (contextValue as { [EVENTS]?: DomainEvent[] })[EVENTS];
              if (!events?.length || response.body.kind !== 'single') return;
              const result = response.body.singleResult;
              result.extensions = { ...result.extensions, [EVENTS_EXTENSION]: events };
            },
          };
        },
      },
    ],
  });
  await apollo.start();
  const verify = createIdentityVerifier({ audience: name, callers });
  httpServer.on(
    'request',
    graphqlRequestListener<TContext, CallerIdentity>({
      apollo,
      admit: (req: IncomingMessage, body: string, scope) => {
        try {
          // Only POST carries a body the signature covers; a signed GET could be replayed with any query.
          if (req.method !== 'POST') throw new InvalidIdentityError(`${req.method ?? 'no'} method`);
          const header = req.headers[IDENTITY_HEADER];
          return verify(Array.isArray(header) ? header[0] : header, body);
        } catch (error) {
          if (!(error instanceof InvalidIdentityError)) throw error;
          // Inside the network someone is calling a subgraph directly: operators want to know.
          logger.warn({ requestId: scope.requestId, reason: error.message, remoteAddress: req.socket.remoteAddress }, 'refused a request without a valid identity signature');
          throw new HttpError(401, UNAUTHENTICATED, 'This service only answers requests signed by the gateway');
        }
      },
      context: async (_req, identity) => {
        const events: DomainEvent[] = [];
        const writes: RequestWrites = { committed: (committed) => events.push(...committed) };
        return Object.assign(await context(identity, writes), { [IDENTITY]: identity, [EVENTS]: events, [REQUEST_WRITES]: writes });
      },
      ready: async () => {
        if (draining) return { ready: false, status: 'draining' };
        const database = !healthCheck || (await answersWithin(healthCheck, HEALTH_CHECK_TIMEOUT_MS));
        return { ready: database, status: database ? 'ready' : 'unavailable', checks: { database } };
      },
      telemetry,
      metrics: () => [telemetry.metrics],
      draining: () => draining,
      // Its callers are the gateway and other subgraphs (unsigned requests are refused): their probes stay at debug.
      trustProbeIds: true,
      logger,
    }),
  );

  // Subscriptions (a schema with a Subscription type) over graphql-ws, on the same server and path.
  const subscriptions = schema.getSubscriptionType()
    ? serveSubgraphSubscriptions({
        httpServer,
        schema,
        verify,
        // A subscription commits nothing, so nobody reads what it would record.
        context: async (identity) => Object.assign(await context(identity, { committed: () => {} }), { [IDENTITY]: identity }),
        formatError,
        // Signatures are single-use here as for writes: a captured one cannot open a second feed.
        firstUse,
        lifetimeMs: options.subscriptionLifetimeMs,
        logger,
      })
    : undefined;

  if (subscriptions) {
    const { stats } = subscriptions;
    telemetry.metrics.gauge({ name: 'ws_subscriptions_active', help: 'Subscriptions running over graphql-ws', collect: (gauge) => gauge.set(stats.active) });
  }

  return {
    httpServer,
    subscriptions: subscriptions?.stats,
    execution: compiled?.stats,
    // The drain: readiness says so first; then the listener closes while requests in flight finish and
    // sockets close with 1001.
    stop: async () => {
      draining = true;
      httpDrain.answerWithClose();
      if (options.drain?.delayMs) await sleep(options.drain.delayMs);
      await Promise.all([subscriptions?.dispose(), httpDrain.close(options.drain?.graceMs ?? 10_000).then(() => apollo.stop())]);
    },
  };
}

async function answersWithin(check: () => Promise<unknown>, timeoutMs: number): Promise<boolean> {
  const timeout = new AbortController();
  try {
    return await Promise.race([
      check().then(
        () => true,
        () => false,
      ),
      sleep(timeoutMs, false, { signal: timeout.signal }).catch(() => false),
    ]);
  } finally {
    timeout.abort();
  }
}
