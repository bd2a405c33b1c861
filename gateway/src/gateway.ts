import { createServer, type IncomingMessage } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApolloGateway, HEALTH_CHECK_QUERY, type GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import { Kind, parse } from 'graphql';
import { ApolloServer, HeaderMap, type BaseContext, type HTTPGraphQLResponse } from '@apollo/server';
import {
  createSubgraphSubscriptionClient,
  createTelemetry,
  graphqlRequestListener,
  httpServerOptions,
  observabilityPlugin,
  probeRequestId,
  withRequestScope,
  trackHttpDrain,
  type Metrics,
  type Telemetry,
  type GraphQLApp,
  type HttpTimeouts,
  type SubgraphSubscriptionClient,
  type KeyValueCache,
  type Logger,
  type PubSub,
  type RawHttpResponse,
  type RateLimiter,
  type RateLimitPolicy,
  type RequestScope,
  type Viewer,
} from '@fed/platform';
import type { Authenticator } from './auth/authenticate.ts';
import { DOWNSTREAM_PUBLIC_CODES } from './errors/codes.ts';
import { createExplorer } from './explorer/explorer.ts';
import { createExecutionEngine, withExecutionEngine } from './execution/engine.ts';
import { createSupergraphReloader, type ReloadOutcome } from './supergraph/reload.ts';
import { DEFAULT_POLICIES } from './authorization/policies.ts';
import type { Policy } from './authorization/rules.ts';
import { forApolloGateway, needsOwnExecutor } from './authorization/supergraph.ts';
import { OVERRIDE_LABELS_HEADER } from './override/labels.ts';
import { idempotencyKeyOf } from './idempotency/key.ts';
import { createGatewayReadiness } from './health/readiness.ts';
import { registerGatewayMetrics } from './observability/metrics.ts';
import { createGatewayErrorFormatter } from './errors/format.ts';
import { createIncrementalDelivery } from './incremental/multipart.ts';
import type { IncrementalSlot } from './incremental/run.ts';
import { readListSizes } from './limits/measure.ts';
import { liveOperationOf, withoutLive } from './live/directive.ts';
import { rejectLiveQueriesOverHttp } from './live/http-refusal.ts';
import { createLiveQueries, type LiveAnswers, type LiveQueries } from './live/live-queries.ts';
import { DEFAULT_OPERATION_LIMITS, operationLimitsPlugin, type OperationLimits } from './limits/operation-limits.ts';
import { createRateLimitGate, DEFAULT_RATE_LIMIT } from './limits/rate-limit.ts';
import { createRequestAdmission } from './limits/request-admission.ts';
import { DEFAULT_VARIABLE_LIMITS, type VariableLimits } from './limits/variables.ts';
import { createPersistedDocuments, type PersistedDocumentsOptions } from './persisted-documents/persisted-documents.ts';
import { refuseUnresolvedOperations } from './plugins/operation-resolution.ts';
import { rejectSubscriptionsOverHttp } from './plugins/subscriptions-over-http.ts';
import { createTaggingObserver } from './response-cache/fetch-observer.ts';
import { createResponseCache, type ResponseCache, type ResponseCacheOptions, type ResponseCacheRequest } from './response-cache/response-cache.ts';
import { createSubgraphBreaker, DEFAULT_BREAKER, type BreakerPolicy, type SubgraphBreaker } from './subgraphs/circuit-breaker.ts';
import { SubgraphDataSource } from './subgraphs/data-source.ts';
import { createWriteClock } from './subgraphs/dedupe.ts';
import { serveMultipartSubscriptions } from './streaming/multipart.ts';
import type { PlainRequest } from './streaming/http-stream.ts';
import { serveEventStreams } from './streaming/sse.ts';
import { createSocketRegistry, DEFAULT_SUBSCRIPTION_LIMITS, type SubscriptionLimits } from './subscriptions/admission.ts';
import { DEFAULT_DOCUMENT_CACHE, type DocumentCacheLimits, type DocumentCacheStats } from './subscriptions/document-cache.ts';
import { createSubscriptionEngine } from './subscriptions/engine.ts';
import { createOperationAdmission } from './subscriptions/operation.ts';
import { serveSubscriptions, type SocketOperation } from './subscriptions/server.ts';

export { DOWNSTREAM_PUBLIC_CODES, ErrorCode } from './errors/codes.ts';
export { createAuthenticator, type Authenticator, type AuthenticatorOptions } from './auth/authenticate.ts';
export { mintToken } from './auth/tokens.ts';
export { DEFAULT_POLICIES } from './authorization/policies.ts';
export { forApolloGateway, SUPPORTED_SUPERGRAPH_FEATURES } from './authorization/supergraph.ts';
export type { Policy } from './authorization/rules.ts';
export { DEFAULT_OPERATION_LIMITS, type OperationLimits } from './limits/operation-limits.ts';
export { DEFAULT_RATE_LIMIT } from './limits/rate-limit.ts';
export { DEFAULT_BREAKER, type BreakerPolicy } from './subgraphs/circuit-breaker.ts';
export { DEFAULT_SUBSCRIPTION_LIMITS, TOO_MANY_CLOSE_CODE, type SubscriptionLimits } from './subscriptions/admission.ts';
export { DEFAULT_DOCUMENT_CACHE, type DocumentCacheLimits, type DocumentCacheStats } from './subscriptions/document-cache.ts';
export type { ResponseCacheOptions, ResponseCacheStats } from './response-cache/response-cache.ts';
export type { ReloadOutcome } from './supergraph/reload.ts';

/** Per-request state every plugin and data source can rely on. */
export interface GatewayContext extends BaseContext {
  /** Who the verified bearer token says is asking; null for an anonymous viewer. */
  viewer: Viewer | null;
  /** The client's Idempotency-Key: signed into every subgraph fetch of a mutation, so each field writes once. */
  idempotencyKey?: string;
  /** What the response cache learns while the request runs (tags, committed events); unset when it is off. */
  responseCache?: ResponseCacheRequest;
  /** Set when the client reads multipart answers: a deferred operation's later parts go through it. */
  incremental?: IncrementalSlot;
}

/** What the HTTP front knows before GraphQL runs, and hands to the context. */
interface GatewayAdmission {
  viewer: Viewer | null;
  idempotencyKey?: string;
  responseCache?: ResponseCacheRequest;
  incremental?: IncrementalSlot;
  /** The request's id and what its access line reports; unset for a live query's runs. */
  scope?: RequestScope;
}

export interface GatewayDeps {
  /** A composed supergraph (SDL text). Any valid supergraph works, not only this repo's; `reloadSupergraph` replaces it. */
  supergraphSdl: string;
  /** Overrides the routing URL of subgraphs by name; subgraphs not listed keep the supergraph's URL. */
  subgraphUrls?: Record<string, string>;
  subgraphTimeoutMs?: number;
  logger: Logger;
  /** Shared cache for automatic persisted queries: in-memory, or Redis when scaled out. */
  cache: KeyValueCache<string>;
  /** The full-response cache (its store and the event bus that purges it); unset turns it off. */
  responseCache?: ResponseCacheOptions | null;
  /**
   * Live queries (`query @live`, over graphql-ws): re-run when a commit on `events` (the bus the response cache
   * listens to) touches what their answer read, at most once per `throttleMs` (default 100); unset turns them off.
   */
  liveQueries?: { events: PubSub; throttleMs?: number } | null;
  /** Development turns on introspection and the Apollo Sandbox landing page. */
  mode?: 'development' | 'production';
  /** Browser origins allowed to call; unset means `*` in development and none in production. */
  corsOrigins?: string[] | '*';
  maxBodyBytes?: number;
  /** Subgraph error codes whose messages may reach clients, on top of this graph's own (other supergraphs). */
  extraPublicErrorCodes?: Iterable<string>;
  /** Verifies the bearer token of each request (createAuthenticator). */
  authenticate: Authenticator;
  /**
   * The named policies `@policy(policies:)` in the supergraph refers to: true lets the viewer read what the
   * name guards. A name the supergraph uses without an entry here is never granted. Default: DEFAULT_POLICIES.
   */
  policies?: Readonly<Record<string, Policy>>;
  /** Each subgraph's own secret, by name: the gateway signs the verified viewer with it. */
  subgraphSecrets: Record<string, string>;
  /** For subgraphs without an entry in subgraphSecrets (development); without it they fail the start. */
  defaultSubgraphSecret?: (name: string) => string;
  /** Where request counts live: in memory, or Redis so that the limit holds across replicas. */
  rateLimiter: RateLimiter;
  /** Per client (verified `sub`, else address); null turns it off. */
  rateLimit?: RateLimitPolicy | null;
  /** Proxies in front whose X-Forwarded-For entry names the client (0: the socket's address). */
  trustedProxyHops?: number;
  limits?: Partial<OperationLimits>;
  /** Longer documents are refused while parsing (GRAPHQL_PARSE_FAILED). */
  maxTokens?: number;
  /** Validation stops after this many errors. */
  maxValidationErrors?: number;
  /** Persisted queries: APQ within bounds (the default), trusted documents only, or off. */
  persistedDocuments?: PersistedDocumentsOptions;
  /** Bounds on each request's variables, checked before the document is parsed (undeclared ones are dropped). */
  variableLimits?: Partial<VariableLimits>;
  /** How long a client may take to send its headers, and its whole request: then 408 and the socket closes. */
  httpTimeouts?: Partial<HttpTimeouts>;
  /** Its metrics registry and, when tracing is on, its tracer. Default: a registry of its own, no tracing. */
  telemetry?: Telemetry;
  /** The registries GET /metrics serves. Default: the gateway's own (the embedded default adds the subgraphs'). */
  metricsSources?: () => readonly Metrics[];
  /** Each subgraph's circuit breaker; null calls subgraphs whatever happens. */
  breaker?: BreakerPolicy | null;
  /** Identical subgraph reads in flight at once share one fetch. Default: on. */
  dedupe?: boolean;
  /**
   * Who runs query plans: this gateway's own executor (the default), or @apollo/gateway's (for comparison;
   * the own one sends what it does not run, introspection for one, to Apollo's anyway).
   */
  execution?: 'own' | 'apollo';
  /** The own executor sends identical representations within one `_entities` fetch once. Default: on. */
  dedupeRepresentations?: boolean;
  /** Sibling `_entities` fetches of one request to one subgraph go out as one request. Default: on. */
  mergeEntityFetches?: boolean;
  /**
   * On stop: how long /readyz says draining before the listener closes (for load balancers to notice), and
   * how long requests in flight then have to finish before their connections are cut.
   */
  drain?: { delayMs?: number; graceMs?: number };
  /** How often a silent subgraph is probed, and how long without an answer makes the gateway unready. */
  readiness?: { intervalMs?: number; staleAfterMs?: number };
  /**
   * graphql-ws: sockets and subscriptions per socket, viewer and address (per replica), the parsed-document
   * cache's bounds, and how often a lost upstream is subscribed again before its clients get STREAM_UNAVAILABLE.
   */
  subscriptions?: {
    limits?: Partial<SubscriptionLimits>;
    documentCache?: Partial<DocumentCacheLimits>;
    resubscribeAttempts?: number;
    /** Keep-alive comments on event streams (ms; default 12 000), so proxies do not close an idle stream. */
    eventStreamKeepAliveMs?: number;
    /** Heartbeat parts on multipart subscriptions (ms; default 5 000, as Apollo Router). */
    multipartHeartbeatMs?: number;
  };
}

export interface Gateway extends GraphQLApp {
  apollo: ApolloServer<GatewayContext>;
  gateway: ApolloGateway;
  /** Unset when caching is off. */
  responseCache?: ResponseCache;
  /** Unset when live queries are off. */
  liveQueries?: LiveQueries;
  telemetry: Telemetry;
  /**
   * Rolls out another supergraph without a restart: built, validated and planned against the operations run
   * most recently before it takes over; refused (logged, counted) otherwise, and the current one keeps serving.
   * `origin` (file, signal, url) goes to the log line.
   */
  reloadSupergraph(sdl: string, origin?: string): Promise<ReloadOutcome>;
  /** The hash of the supergraph served now (as /readyz and `gateway_supergraph_info` report it). */
  supergraphHash(): string;
  /** Subscriptions running now, open sockets and the parsed-document cache; unset without a Subscription type. */
  /** `active` counts graphql-ws subscriptions and HTTP streams; `eventStreams` (SSE) and `multipartStreams` the latter by protocol. */
  subscriptions?: { active: number; sockets: number; documentCache: DocumentCacheStats; eventStreams: number; multipartStreams: number };
}

const hasSubscriptionRoot = (supergraphSdl: string) =>
  parse(supergraphSdl).definitions.some(
    (definition) => definition.kind === Kind.SCHEMA_DEFINITION && definition.operationTypes.some((type) => type.operation === 'subscription'),
  );

/** The gateway as an app: it neither reads the environment nor listens. */
export async function createGateway(deps: GatewayDeps): Promise<Gateway> {
  const { supergraphSdl, subgraphUrls = {}, subgraphTimeoutMs = 10_000, logger, cache, mode = 'production' } = deps;
  const development = mode === 'development';
  const limits = { ...DEFAULT_OPERATION_LIMITS, ...deps.limits };
  const telemetry = deps.telemetry ?? createTelemetry({ service: 'gateway' });
  const breakerPolicy = deps.breaker === undefined ? DEFAULT_BREAKER : deps.breaker;
  const breakers: SubgraphBreaker[] = [];
  const dataSources: Record<string, SubgraphDataSource<GatewayContext>> = {};
  const writes = createWriteClock();
  const readiness = createGatewayReadiness({
    ...deps.readiness,
    supergraph: () => reloader.served().hash,
    probe: async (name) => {
      // The request kind's enum is not exported; its value is the string Apollo's own health checks use.
      const context = withRequestScope({}, { requestId: probeRequestId(), errorCodes: new Set<string>() });
      const healthCheck = { kind: 'health check', request: { query: HEALTH_CHECK_QUERY }, context };
      await dataSources[name]?.process(healthCheck as unknown as GraphQLDataSourceProcessOptions<GatewayContext>);
    },
  });
  const responseCache = deps.responseCache
    ? createResponseCache({
        ...deps.responseCache,
        supergraphSdl,
        writes,
        variantOf: (viewer, headers) => reloader.served().engine.cacheVariant(viewer, headers.get(OVERRIDE_LABELS_HEADER)),
        // A hit skips validation: entries answer only under the rules that admitted them.
        variant: JSON.stringify({ limits, mode, maxTokens: deps.maxTokens, maxValidationErrors: deps.maxValidationErrors }),
        logger,
      })
    : undefined;

  // What a request's answer read, for the response cache and live queries alike.
  const liveTagger = !responseCache && deps.liveQueries ? createTaggingObserver<GatewayContext>(supergraphSdl) : undefined;
  const fetchObserver = responseCache?.observer ?? liveTagger;
  const routed = new Set<string>();
  const subscriptionClients = new Map<string, SubgraphSubscriptionClient>();
  // What was built for each subgraph at each supergraph URL: @apollo/gateway builds once per URL, and keeps what it
  // built for a supergraph it then refused, for the next one that names the same URL.
  const built = new Map<string, { dataSource: SubgraphDataSource<GatewayContext>; client: SubgraphSubscriptionClient }>();
  const builtKey = (name: string, url: string | undefined) => `${name}\0${url ?? ''}`;
  // Where a subgraph is called and what signs the calls: checked at start, and before a reload takes over.
  const targetOf = (name: string, url: string | undefined) => {
    const target = subgraphUrls[name] ?? url;
    if (!target) throw new Error(`Subgraph "${name}" has no URL in the supergraph and none was configured`);
    return target;
  };
  const secretOf = (name: string) => {
    const secret = deps.subgraphSecrets[name] ?? deps.defaultSubgraphSecret?.(name);
    if (!secret) throw new Error(`Subgraph "${name}" has no secret to sign requests with (SUBGRAPH_SECRETS)`);
    return secret;
  };
  let publishing = true;
  const publish = (name: string, url: string | undefined) => {
    const entry = built.get(builtKey(name, url));
    if (!entry) return;
    routed.add(name);
    dataSources[name] = entry.dataSource;
    subscriptionClients.set(name, entry.client);
    readiness.track(name);
  };
  // Subscriptions always run on the own engine; `execution: 'apollo'` leaves queries and mutations to Apollo's.
  const buildEngine = (sdl: string) => {
    // Apollo's executor would answer every field whatever the directives say, and ignore context rewrites.
    if (deps.execution === 'apollo' && needsOwnExecutor(sdl)) throw new Error("the supergraph uses @authenticated, @requiresScopes, @policy or @context, which Apollo's executor (EXECUTOR=apollo) does not run");
    return createExecutionEngine({ supergraphSdl: sdl, logger, tracer: telemetry.tracer, dedupeRepresentations: deps.dedupeRepresentations, policies: deps.policies ?? DEFAULT_POLICIES });
  };
  let listSizes = readListSizes(supergraphSdl);
  let applyToApollo: ((sdl: string) => void) | undefined;
  const reloader = createSupergraphReloader({
    initial: supergraphSdl,
    build: buildEngine,
    // @apollo/gateway validates it again, builds data sources for new subgraphs (a subgraph without a secret
    // throws here) and announces the schema Apollo Server swaps to.
    apply: (next) => {
      if (!applyToApollo) throw new Error('the gateway has not started');
      // Checked before @apollo/gateway builds anything: it builds data sources one subgraph at a time.
      for (const { name, url } of next.engine.supergraph.subgraphsMetadata()) {
        targetOf(name, url);
        secretOf(name);
      }
      const before = { ...dataSources };
      // What @apollo/gateway builds while it takes the supergraph in waits until it has: a refused one changes
      // nothing that serves requests.
      publishing = false;
      try {
        applyToApollo(forApolloGateway(next.sdl));
      } finally {
        publishing = true;
      }
      // It builds only for subgraphs whose URL is new to it; one a refused supergraph named was built then.
      for (const { name, url } of next.engine.supergraph.subgraphsMetadata()) publish(name, url);
      // Data sources a new URL replaced: requests in flight may still use them for a while.
      const replaced = Object.entries(before).filter(([name, source]) => dataSources[name] !== source).map(([, source]) => source);
      if (replaced.length > 0) setTimeout(() => replaced.forEach((source) => source.close()), 60_000).unref();
    },
    follow: (next) => {
      listSizes = readListSizes(next.sdl);
      responseCache?.useSupergraph(next.sdl);
      liveTagger?.useSupergraph(next.sdl);
      readiness.routeOnly(next.engine.supergraph.subgraphsMetadata().map(({ name }) => name));
      void subscriptionEngine?.retire(next.engine).then((ended) => {
        if (ended > 0) logger.info({ ended }, 'subscriptions ended: their operations do not validate against the new supergraph, or select what it no longer lets their viewer read');
      });
    },
    logger,
    metrics: telemetry.metrics,
  });
  const gateway = new ApolloGateway({
    supergraphSdl: async ({ update }) => {
      applyToApollo = update;
      return { supergraphSdl: forApolloGateway(supergraphSdl) };
    },
    logger,
    buildService: ({ name, url }) => {
      const target = targetOf(name, url);
      const secret = secretOf(name);
      // The same target and secret serve this subgraph's subscriptions, over graphql-ws (opened on first use).
      const client = createSubgraphSubscriptionClient({ url: target, secret, caller: 'gateway', audience: name });
      const breaker = breakerPolicy ? createSubgraphBreaker(name, breakerPolicy, { metrics: telemetry.metrics, logger }) : undefined;
      if (breaker) breakers.push(breaker);
      const dataSource = new SubgraphDataSource<GatewayContext>({
        name,
        url: target,
        timeoutMs: subgraphTimeoutMs,
        secret,
        logger,
        observer: fetchObserver,
        metrics: telemetry.metrics,
        breaker,
        dedupe: deps.dedupe ?? true,
        mergeEntityFetches: deps.mergeEntityFetches ?? true,
        writes,
        onAnswer: () => readiness.answered(name),
      });
      built.set(builtKey(name, url), { dataSource, client });
      if (publishing) publish(name, url);
      return dataSource;
    },
  });

  const httpServer = createServer(httpServerOptions(deps.httpTimeouts));
  // Not Apollo's drain plugin: it can end a socket whose request is being read, and that request is lost.
  const httpDrain = trackHttpDrain(httpServer, logger);
  const explorer = createExplorer({ development, endpoint: '/graphql', logger });
  const formatError = createGatewayErrorFormatter(logger, [...DOWNSTREAM_PUBLIC_CODES, ...(deps.extraPublicErrorCodes ?? [])]);
  const persistedDocuments = createPersistedDocuments(deps.persistedDocuments ?? { mode: 'apq' }, { cache, limiter: deps.rateLimiter, logger });
  const admission = createRequestAdmission(persistedDocuments, { ...DEFAULT_VARIABLE_LIMITS, ...deps.variableLimits });
  const apollo = new ApolloServer<GatewayContext>({
    gateway: deps.execution === 'apollo' ? gateway : withExecutionEngine(gateway, reloader.engines, () => dataSources),
    cache,
    persistedQueries: persistedDocuments.apolloOption,
    logger,
    introspection: development,
    // The composition root owns shutdown; Apollo's own signal handler would re-raise SIGTERM and kill the
    // process before databases and Redis are closed.
    stopOnTerminationSignals: false,
    includeStacktraceInErrorResponses: false,
    hideSchemaDetailsFromClientErrors: true,
    allowBatchedHttpRequests: false,
    maxRecursiveSelections: true,
    parseOptions: { maxTokens: deps.maxTokens ?? 10_000 },
    validationOptions: { maxErrors: deps.maxValidationErrors ?? 20 },
    formatError,
    plugins: [
      // First: its refusal must be the one Apollo answers with, before another plugin trips on the missing operation.
      refuseUnresolvedOperations(),
      observabilityPlugin(telemetry),
      explorer.plugin,
      rejectSubscriptionsOverHttp(),
      rejectLiveQueriesOverHttp(!!deps.liveQueries && deps.execution !== 'apollo'),
      operationLimitsPlugin(limits, () => listSizes),
      ...(responseCache ? [responseCache.plugin] : []),
    ],
  });
  await apollo.start();
  await responseCache?.start();
  // Apollo's executor validates against a schema without @live: live queries need the own one.
  const liveQueries = deps.liveQueries && deps.execution !== 'apollo'
    ? createLiveQueries({
        events: deps.liveQueries.events,
        throttleMs: deps.liveQueries.throttleMs ?? 100,
        replicaLagMs: deps.responseCache?.replicaLagMs,
        logger,
        wrote: () => writes.wrote(),
        // Each run a plain query, past the response cache (it runs because what it read changed), its reads tagged.
        run: async (body, viewer) => {
          const state: ResponseCacheRequest = { collecting: true, tags: new Set(), events: [] };
          const httpGraphQLRequest = { method: 'POST', headers: new HeaderMap([['content-type', 'application/json']]), search: '', body };
          const response = await apollo.executeHTTPGraphQLRequest({ httpGraphQLRequest, context: () => context(undefined, { viewer, responseCache: state }) });
          return { response, tags: state.untaggable ? undefined : state.tags };
        },
      })
    : undefined;
  await liveQueries?.start();
  readiness.loaded();
  // A typo in an override (`order=` for `orders=`) would otherwise silently route to the supergraph's URL,
  // or leave a subgraph on the development secret.
  for (const [setting, names] of [['URL overrides', Object.keys(subgraphUrls)], ['secrets', Object.keys(deps.subgraphSecrets)]] as const) {
    const unknown = names.filter((name) => !routed.has(name));
    if (unknown.length > 0) {
      readiness.stop();
      for (const breaker of breakers) breaker.shutdown();
      await responseCache?.stop();
      await liveQueries?.stop();
      await apollo.stop();
      throw new Error(`Subgraph ${setting} name subgraphs the supergraph does not have: ${unknown.join(', ')} (it has: ${[...routed].join(', ')})`);
    }
  }

  const rateLimit = deps.rateLimit === undefined ? DEFAULT_RATE_LIMIT : deps.rateLimit;
  const limitRate = rateLimit
    ? createRateLimitGate({ limiter: deps.rateLimiter, policy: rateLimit, trustedHops: deps.trustedProxyHops ?? 0 })
    : undefined;

  // Before anything is parsed: who is asking, and whether they may ask again so soon. A refused token still
  // counts against its address, so a flood of bad tokens is rate limited too. HTTP requests and event streams alike.
  const admitRequest = async (req: IncomingMessage, _body: string, scope?: RequestScope): Promise<GatewayAdmission> => {
    let viewer: Viewer | null = null;
    let refusal: unknown;
    try {
      viewer = await deps.authenticate(req.headers.authorization);
    } catch (error) {
      refusal = error;
    }
    await limitRate?.(req, viewer);
    if (refusal) throw refusal;
    return { viewer, idempotencyKey: idempotencyKeyOf(req), scope };
  };
  const context = async (_req: IncomingMessage | undefined, { viewer, idempotencyKey, responseCache: cacheState, incremental, scope }: GatewayAdmission): Promise<GatewayContext> =>
    withRequestScope({ viewer, idempotencyKey, responseCache: cacheState, incremental }, scope);

  // @defer's multipart answers around the response cache, which sees (and never stores) only a first part.
  const around = deps.execution === 'apollo' ? responseCache?.around : createIncrementalDelivery<GatewayAdmission>({ formatError, inner: responseCache?.around, metrics: telemetry.metrics });
  /** A query or mutation POSTed with `body` as `viewer`, as the HTTP front runs it: for the other transports. */
  /** A request as the HTTP front runs it after admission (the response cache, @defer's parts): for other routes. */
  const runHttp = (request: PlainRequest, admission: GatewayAdmission) => {
    const execute = () => apollo.executeHTTPGraphQLRequest({ httpGraphQLRequest: request, context: () => context(undefined, admission) });
    return around ? around({ ...request, admission, scope: admission.scope }, execute) : execute();
  };
  /**
   * A live query's POST body as its runs send it (without `@live`, nothing null, without the `live` request
   * extension), and the format its client asked for there; undefined for any other request.
   */
  const liveRequest = (sent: Record<string, unknown>) => {
    const live = liveQueries && liveOperationOf(sent);
    if (!live) return undefined;
    const body: Record<string, unknown> = Object.fromEntries(Object.entries(sent).filter(([, value]) => value !== null && value !== undefined));
    body.query = withoutLive(live.document);
    // The text is the document now (admission resolved a persisted one): a hash of the text with @live would not match it.
    const { live: asked, persistedQuery: _hash, ...extensions } = (body.extensions ?? {}) as Record<string, unknown>;
    if (Object.keys(extensions).length > 0) body.extensions = extensions;
    else delete body.extensions;
    return { body, format: (asked as { format?: unknown } | undefined)?.format === 'json-patch' ? ('json-patch' as const) : ('whole' as const) };
  };
  /** A query or mutation POSTed with `body` as `viewer`: over graphql-ws. A live query keeps answering. */
  const runOperation = async ({ body, viewer, accept, scope }: SocketOperation): Promise<HTTPGraphQLResponse | RawHttpResponse | { live: LiveAnswers }> => {
    const live = liveRequest(body);
    if (live && liveQueries) {
      const opened = await liveQueries.open(live.body, viewer, live.format);
      return 'refused' in opened ? opened.refused : { live: opened.answers };
    }
    const headers = new HeaderMap([['content-type', 'application/json']]);
    if (accept) headers.set('accept', accept);
    return runHttp({ method: 'POST', headers, search: '', body }, { viewer, scope });
  };

  // Subscriptions over graphql-ws and over server-sent events, on the same server and path, when the supergraph
  // has any: one engine (shared upstreams), one set of checks and one budget per client for both transports.
  const subscriptionEngine = hasSubscriptionRoot(supergraphSdl)
    ? createSubscriptionEngine({
        execution: () => reloader.engines.current(),
        clients: (name) => subscriptionClients.get(name),
        dataSources: () => dataSources,
        maxResubscribeAttempts: deps.subscriptions?.resubscribeAttempts,
        logger,
      })
    : undefined;
  const operations = subscriptionEngine
    ? createOperationAdmission({
        schema: subscriptionEngine.schema,
        limits,
        listSizes: () => listSizes,
        maxTokens: deps.maxTokens ?? 10_000,
        introspection: development,
        documentCache: { ...DEFAULT_DOCUMENT_CACHE, ...deps.subscriptions?.documentCache },
        admitOperation: admission.subscription,
      })
    : undefined;
  const registry = createSocketRegistry({ ...DEFAULT_SUBSCRIPTION_LIMITS, ...deps.subscriptions?.limits });
  const subscriptions =
    subscriptionEngine && operations
      ? serveSubscriptions({
          httpServer,
          engine: subscriptionEngine,
          authenticate: deps.authenticate,
          operations,
          registry,
          maxPayloadBytes: deps.maxBodyBytes ?? 1024 * 1024,
          formatError: formatError,
          // The HTTP path's limit, policy and keys: a socket cannot be a way around it.
          rateLimit: limitRate,
          trustedProxyHops: deps.trustedProxyHops ?? 0,
          runOperation,
          logger,
        })
      : undefined;
  const corsOrigins = deps.corsOrigins ?? (development ? '*' : undefined);
  // Subscriptions streamed over HTTP: server-sent events and Apollo's multipart protocol, with the same checks.
  const streamOptions =
    subscriptionEngine && operations
      ? {
          engine: subscriptionEngine,
          operations,
          registry,
          admit: admitRequest,
          formatError,
          maxBodyBytes: deps.maxBodyBytes ?? 1024 * 1024,
          corsOrigins,
          trustedProxyHops: deps.trustedProxyHops ?? 0,
          logger,
        }
      : undefined;
  const eventStreams =
    streamOptions &&
    serveEventStreams<GatewayAdmission>({
      ...streamOptions,
      // A query or mutation sent as an event stream runs as over HTTP (without the response cache).
      executePlain: (request, admitted) => apollo.executeHTTPGraphQLRequest({ httpGraphQLRequest: request, context: () => context(undefined, admitted) }),
      keepAliveMs: deps.subscriptions?.eventStreamKeepAliveMs,
      live: liveQueries && {
        is: (payload) => liveRequest({ ...payload }) !== undefined,
        open: (payload, { viewer }) => {
          const live = liveRequest({ ...payload });
          return liveQueries.open(live?.body ?? { ...payload }, viewer, live?.format);
        },
      },
    });
  const multipartStreams =
    streamOptions &&
    serveMultipartSubscriptions<GatewayAdmission>({
      ...streamOptions,
      // A query or mutation sent with the multipart subscription Accept header runs as the HTTP front runs it.
      executePlain: runHttp,
      heartbeatMs: deps.subscriptions?.multipartHeartbeatMs,
    });
  registerGatewayMetrics(telemetry.metrics, { cache: responseCache?.stats, sockets: subscriptions?.stats, eventStreams: eventStreams?.streams, multipartStreams: multipartStreams?.streams, live: liveQueries?.stats });

  httpServer.on(
    'request',
    graphqlRequestListener<GatewayContext, GatewayAdmission>({
      apollo,
      admit: admitRequest,
      inspect: admission.http,
      around,
      context,
      routes: async (req, res, url, scope) =>
        (await eventStreams?.handle(req, res, url, scope)) || (await multipartStreams?.handle(req, res, url, scope)) || explorer.handle(req, res, url),
      ready: () => readiness.check(),
      draining: () => readiness.isDraining(),
      telemetry,
      metrics: deps.metricsSources ?? (() => [telemetry.metrics]),
      corsOrigins,
      maxBodyBytes: deps.maxBodyBytes,
      logger,
    }),
  );

  let stopping: Promise<void> | undefined;
  return {
    httpServer,
    apollo,
    gateway,
    responseCache,
    liveQueries,
    telemetry,
    reloadSupergraph: (sdl, origin = 'api') => reloader.reload(sdl, origin),
    supergraphHash: () => reloader.served().hash,
    get subscriptions() {
      if (!subscriptions) return undefined;
      const { subscriptions: active, sockets, documentCache } = subscriptions.stats();
      const [sse, multipart] = [eventStreams?.streams() ?? 0, multipartStreams?.streams() ?? 0];
      return { active: active + sse + multipart, sockets, documentCache, eventStreams: sse, multipartStreams: multipart };
    },
    // The drain, once, however often it is called (a test, then the stack that owns it): readiness says so
    // first; then the listener closes while requests in flight finish and sockets close with 1001.
    stop: () =>
      (stopping ??= (async () => {
        readiness.drain();
        httpDrain.answerWithClose();
        if (deps.drain?.delayMs) await sleep(deps.drain.delayMs);
        eventStreams?.dispose();
        multipartStreams?.dispose();
        await Promise.all([subscriptions?.dispose(), httpDrain.close(deps.drain?.graceMs ?? 10_000).then(() => apollo.stop())]);
        await Promise.all([...subscriptionClients.values()].map((client) => client.dispose()));
        await responseCache?.stop();
        await liveQueries?.stop();
        readiness.stop();
        for (const breaker of breakers) breaker.shutdown();
        for (const dataSource of Object.values(dataSources)) dataSource.close();
      })()),
  };
}
