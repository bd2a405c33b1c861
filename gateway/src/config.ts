import { fileURLToPath } from 'node:url';
import {
  DEFAULT_HTTP_TIMEOUTS,
  developmentSecret,
  distinctSecrets,
  isDevelopmentSecret,
  logLevel,
  milliseconds,
  nodeEnv,
  observabilitySettings,
  port,
  productionRules,
  redisKeyPrefix,
  redisUrl,
  secret,
} from '@fed/platform';
import { z } from 'zod';
import type { AuthenticatorOptions } from './auth/authenticate.ts';
import type { GatewayDeps } from './gateway.ts';
import { DEFAULT_OPERATION_LIMITS } from './limits/operation-limits.ts';
import { DEFAULT_RATE_LIMIT } from './limits/rate-limit.ts';
import { DEFAULT_VARIABLE_LIMITS } from './limits/variables.ts';
import { DEFAULT_APQ_POLICY } from './persisted-documents/apq-store.ts';
import { loadTrustedDocuments } from './persisted-documents/manifest.ts';
import type { PersistedDocumentsOptions } from './persisted-documents/persisted-documents.ts';
import { DEFAULT_BREAKER } from './subgraphs/circuit-breaker.ts';
import { DEFAULT_SUBSCRIPTION_LIMITS } from './subscriptions/admission.ts';
import { DEFAULT_DOCUMENT_CACHE } from './subscriptions/document-cache.ts';

/** `users=a,orders=b` → { users: 'a', orders: 'b' }, each value checked by `value`. */
const namedValues = <T>(value: z.ZodType<T>, example: string) =>
  z
    .string()
    .transform((text, ctx) => {
      const entries: Record<string, T> = {};
      const pairs = text.split(',').map((part) => part.trim()).filter(Boolean);
      pairs.forEach((pair, index) => {
        const [name, raw] = pair.split(/=(.*)/s, 2).map((part) => part.trim());
        const parsed = value.safeParse(raw);
        if (!name || !/^[A-Za-z_][\w-]*$/.test(name) || !parsed.success) {
          // Never echo the entry: it may be (part of) a secret.
          ctx.addIssue({ code: 'custom', message: `entry ${index + 1} is not name=${example}` });
          return;
        }
        entries[name] = parsed.data;
      });
      return entries;
    })
    .default({});

const origins = z
  .string()
  .transform((value): string[] | '*' => (value.trim() === '*' ? '*' : value.split(',').map((o) => o.trim()).filter(Boolean)))
  .optional();

const count = (fallback: number) => z.coerce.number().int().min(0).default(fallback);
const limit = (fallback: number) => z.coerce.number().int().positive().default(fallback);

// Asymmetric algorithms only: a JWKS publishes public keys, and HS* with a public key is the classic forgery.
const JWKS_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;

export const DEFAULT_SUPERGRAPH_PATH = fileURLToPath(new URL('../../schema/supergraph.graphql', import.meta.url));

/** What development tokens (`npm run token`) and the gateway agree on when nothing is configured: HS256. */
export const DEVELOPMENT_AUTH = { issuer: 'federated-graph-dev', audience: 'federated-graph', secret: developmentSecret('jwt') } as const;

export const gatewayConfigShape = z.object({
  GATEWAY_PORT: port(4000),
  HOST: z.string().optional(),
  SUPERGRAPH_PATH: z.string().default(DEFAULT_SUPERGRAPH_PATH),
  /** A changed SUPERGRAPH_PATH is rolled out without a restart (SIGHUP reloads it either way). */
  SUPERGRAPH_WATCH: z.enum(['on', 'off']).default('on'),
  /** Where to fetch the supergraph instead of SUPERGRAPH_PATH (an artifact store): polled, with its ETag. */
  SUPERGRAPH_URL: z.string().url().optional(),
  SUPERGRAPH_POLL_MS: z.coerce.number().int().min(1_000).default(10_000),
  SUBGRAPH_URLS: namedValues(z.string().url(), 'url'),
  /** Each subgraph's secret (`users=…,orders=…`). Unset in development: fixed development values. */
  SUBGRAPH_SECRETS: namedValues(secret, 'secret of 32+ characters'),
  SUBGRAPH_TIMEOUT_MS: milliseconds(10_000),
  /** Identical subgraph reads in flight at once share one fetch (keyed by the signed viewer): `off` sends each. */
  SUBGRAPH_DEDUPE: z.enum(['on', 'off']).default('on'),
  /** Who runs query plans: this gateway's executor, or @apollo/gateway's (a way back, should ours misbehave). */
  EXECUTOR: z.enum(['own', 'apollo']).default('own'),
  /** Our executor sends identical representations within one `_entities` fetch once. */
  DEDUPE_REPRESENTATIONS: z.enum(['on', 'off']).default('on'),
  /** Sibling `_entities` fetches to one subgraph go out as one request, each under its own alias. */
  MERGE_ENTITY_FETCHES: z.enum(['on', 'off']).default('on'),
  /**
   * Unset: in-memory cache and rate limits, private to this process.
   * One server (`redis://`, `rediss://`), a Redis Cluster (`redis+cluster://host:port,host:port`) or the primary
   * Sentinels name (`redis+sentinel://host:port,host:port/name`); see RedisTarget.
   */
  REDIS_URL: redisUrl.optional(),
  REDIS_KEY_PREFIX: redisKeyPrefix,
  CORS_ORIGINS: origins,
  MAX_BODY_BYTES: z.coerce.number().int().positive().default(1024 * 1024),
  /** Extra subgraph error codes (comma-separated) whose messages may reach clients, for other supergraphs. */
  PUBLIC_ERROR_CODES: z
    .string()
    .transform((value) => value.split(',').map((code) => code.trim()).filter(Boolean))
    .default([]),

  /** HS256 tokens. Unset in development: a fixed development secret. Production needs it or JWKS_URL. */
  JWT_SECRET: secret.optional(),
  /** Verify tokens against this remote key set instead (production with an identity provider). */
  JWKS_URL: z.string().url().optional(),
  JWT_ALGORITHMS: z
    .string()
    .transform((value) => value.split(',').map((alg) => alg.trim()).filter(Boolean))
    .pipe(z.array(z.enum(JWKS_ALGORITHMS)).min(1))
    .default(['RS256']),
  JWT_ISSUER: z.string().min(1).optional(),
  JWT_AUDIENCE: z.string().min(1).optional(),
  JWT_CLOCK_TOLERANCE_S: z.coerce.number().int().min(0).max(300).default(5),

  MAX_DEPTH: limit(DEFAULT_OPERATION_LIMITS.maxDepth),
  MAX_ALIASES: limit(DEFAULT_OPERATION_LIMITS.maxAliases),
  MAX_DIRECTIVES: limit(DEFAULT_OPERATION_LIMITS.maxDirectives),
  MAX_COST: limit(DEFAULT_OPERATION_LIMITS.maxCost),
  MAX_TOKENS: limit(10_000),
  MAX_VALIDATION_ERRORS: limit(20),
  /** Variables per request, declared or not; undeclared ones within it are dropped before anything runs. */
  MAX_VARIABLES: limit(DEFAULT_VARIABLE_LIMITS.maxVariables),
  /** Values in all of a request's variables, nested ones included. */
  MAX_VARIABLE_VALUES: limit(DEFAULT_VARIABLE_LIMITS.maxValues),
  /** A client sends its headers within this, and its whole request (body included) within the next: else 408. */
  HTTP_HEADERS_TIMEOUT_MS: milliseconds(DEFAULT_HTTP_TIMEOUTS.headersTimeoutMs),
  HTTP_REQUEST_TIMEOUT_MS: milliseconds(DEFAULT_HTTP_TIMEOUTS.requestTimeoutMs),

  /**
   * `apq`: automatic persisted queries, stored within APQ_TTL_S / APQ_MAX_BYTES / APQ_MAX_ENTRIES; `trusted`:
   * only the documents of TRUSTED_DOCUMENTS_PATH run (production with known clients); `off`: neither.
   */
  PERSISTED_QUERIES: z.enum(['off', 'apq', 'trusted']).default('apq'),
  /** An Apollo persisted query manifest (`@apollo/generate-persisted-query-manifest`); needed by `trusted`. */
  TRUSTED_DOCUMENTS_PATH: z.string().min(1).optional(),
  APQ_TTL_S: limit(DEFAULT_APQ_POLICY.ttlSeconds),
  APQ_MAX_BYTES: limit(DEFAULT_APQ_POLICY.maxBytes),
  /** New documents stored per APQ_TTL_S, across every replica and client. */
  APQ_MAX_ENTRIES: limit(DEFAULT_APQ_POLICY.maxEntries),
  /** Requests per client per window; 0 turns the rate limit off. */
  RATE_LIMIT_MAX: count(DEFAULT_RATE_LIMIT.limit),
  RATE_LIMIT_WINDOW_MS: milliseconds(DEFAULT_RATE_LIMIT.windowMs),
  /** Proxies in front of the gateway whose X-Forwarded-For entries are trusted (1 behind one load balancer). */
  TRUST_PROXY_HOPS: count(0),
  /**
   * graphql-ws, per gateway replica: subscriptions per socket; sockets and subscriptions per signed-in user;
   * and per address for anonymous sockets (and sockets not signed in yet). Past one: TOO_MANY_SUBSCRIPTIONS, or
   * the socket closes with 4429.
   */
  WS_MAX_SUBSCRIPTIONS_PER_SOCKET: limit(DEFAULT_SUBSCRIPTION_LIMITS.subscriptionsPerSocket),
  WS_MAX_SOCKETS_PER_VIEWER: limit(DEFAULT_SUBSCRIPTION_LIMITS.socketsPerViewer),
  WS_MAX_SUBSCRIPTIONS_PER_VIEWER: limit(DEFAULT_SUBSCRIPTION_LIMITS.subscriptionsPerViewer),
  WS_MAX_SOCKETS_PER_ADDRESS: limit(DEFAULT_SUBSCRIPTION_LIMITS.socketsPerAddress),
  WS_MAX_SUBSCRIPTIONS_PER_ADDRESS: limit(DEFAULT_SUBSCRIPTION_LIMITS.subscriptionsPerAddress),
  /** Query text the running subscriptions of one user (or anonymous address) may hold on a replica. */
  WS_MAX_DOCUMENT_BYTES_PER_CLIENT: limit(DEFAULT_SUBSCRIPTION_LIMITS.documentBytesPerClient),
  /** Query text the graphql-ws document cache holds in all; longer documents than the second are never kept. */
  WS_DOCUMENT_CACHE_BYTES: limit(DEFAULT_DOCUMENT_CACHE.maxBytes),
  WS_CACHED_DOCUMENT_MAX_BYTES: limit(DEFAULT_DOCUMENT_CACHE.maxDocumentBytes),

  /** The full-response cache: `off` for benchmarks and debugging. */
  RESPONSE_CACHE: z.enum(['on', 'off']).default('on'),
  /** No response is cached longer than this, whatever the subgraphs' hints say. */
  RESPONSE_CACHE_MAX_TTL_S: z.coerce.number().int().positive().default(300),
  /** Lower caps for responses containing a type, in seconds (`Order=10,User=30`). */
  RESPONSE_CACHE_TYPE_TTL_S: namedValues(z.coerce.number().int().min(0), 'seconds'),
  /** With read replicas under the subgraphs: repeat each purge this long after it (0: never). */
  RESPONSE_CACHE_REPLICA_LAG_MS: z.coerce.number().int().min(0).max(60_000).default(0),

  /** Live queries (`query @live` over graphql-ws and server-sent events): `off` refuses them. */
  LIVE_QUERIES: z.enum(['on', 'off']).default('on'),
  /** At most one run of each live query per this many ms, however many commits touch it. */
  LIVE_QUERY_THROTTLE_MS: z.coerce.number().int().min(0).max(60_000).default(100),

  /** Each subgraph's circuit breaker: `off` calls subgraphs whatever happens. */
  SUBGRAPH_BREAKER: z.enum(['on', 'off']).default('on'),
  /** A run of this many failed calls in a row to one subgraph opens its breaker. */
  SUBGRAPH_BREAKER_FAILURES: limit(DEFAULT_BREAKER.failures),
  /** The first cool-down before one probe call may close it again. */
  SUBGRAPH_BREAKER_RESET_MS: milliseconds(DEFAULT_BREAKER.resetTimeoutMs),
  /** Each failed probe doubles the cool-down, up to this (never below SUBGRAPH_BREAKER_RESET_MS). */
  SUBGRAPH_BREAKER_MAX_RESET_MS: milliseconds(DEFAULT_BREAKER.maxResetTimeoutMs ?? DEFAULT_BREAKER.resetTimeoutMs),
  ...observabilitySettings,

  LOG_LEVEL: logLevel,
  NODE_ENV: nodeEnv,
});

/** Checks across variables, and what production refuses; the stack config applies them again. */
export function gatewayConfigRules(config: Record<string, unknown>, ctx: z.RefinementCtx): void {
  if (config.JWT_SECRET && config.JWKS_URL) {
    ctx.addIssue({ code: 'custom', path: ['JWKS_URL'], message: 'set either JWT_SECRET or JWKS_URL, not both' });
  }
  if (config.PERSISTED_QUERIES === 'trusted' && !config.TRUSTED_DOCUMENTS_PATH) {
    ctx.addIssue({ code: 'custom', path: ['TRUSTED_DOCUMENTS_PATH'], message: 'is required with PERSISTED_QUERIES=trusted' });
  }
  if (config.NODE_ENV !== 'production') return;
  productionRules(config.JWKS_URL ? ['JWT_ISSUER', 'JWT_AUDIENCE'] : ['JWT_SECRET'])(config, ctx);
  // Whoever can change the key set in transit can sign any token.
  if (typeof config.JWKS_URL === 'string' && !config.JWKS_URL.startsWith('https://')) {
    ctx.addIssue({ code: 'custom', path: ['JWKS_URL'], message: 'must be an https:// URL in production' });
  }
  const subgraphSecrets = Object.entries((config.SUBGRAPH_SECRETS ?? {}) as Record<string, string>);
  distinctSecrets(['JWT_SECRET', ...subgraphSecrets.map(([name]) => name)])(
    { JWT_SECRET: config.JWT_SECRET, ...Object.fromEntries(subgraphSecrets) },
    ctx,
  );
  for (const [name, value] of subgraphSecrets) {
    if (isDevelopmentSecret(value)) {
      ctx.addIssue({ code: 'custom', path: ['SUBGRAPH_SECRETS', name], message: 'is a development secret; set a real one in production' });
    }
  }
}

export const gatewayConfigSchema = gatewayConfigShape.superRefine(gatewayConfigRules);

export type GatewayConfig = z.infer<typeof gatewayConfigSchema>;

/** The persisted-documents mode; `trusted` reads its manifest here, once, and fails the start if it is unusable. */
function persistedDocumentsFrom(config: Omit<GatewayConfig, 'SUBGRAPH_SECRETS'>): PersistedDocumentsOptions {
  if (config.PERSISTED_QUERIES === 'off') return { mode: 'off' };
  if (config.PERSISTED_QUERIES === 'apq') {
    return { mode: 'apq', policy: { ttlSeconds: config.APQ_TTL_S, maxBytes: config.APQ_MAX_BYTES, maxEntries: config.APQ_MAX_ENTRIES } };
  }
  // gatewayConfigRules requires the path with `trusted`.
  return { mode: 'trusted', documents: loadTrustedDocuments(config.TRUSTED_DOCUMENTS_PATH ?? '') };
}

/**
 * The plain settings createAuthenticator and createGateway take, from a parsed config: shared by the
 * gateway's composition root and the embedded stack's. Subgraph secrets are left to each root.
 */
export function gatewaySettings(config: Omit<GatewayConfig, 'SUBGRAPH_SECRETS'>) {
  const auth: AuthenticatorOptions = {
    issuer: config.JWT_ISSUER ?? DEVELOPMENT_AUTH.issuer,
    audience: config.JWT_AUDIENCE ?? DEVELOPMENT_AUTH.audience,
    clockToleranceSeconds: config.JWT_CLOCK_TOLERANCE_S,
    // Production refuses to start without one of the two (gatewayConfigRules).
    ...(config.JWKS_URL
      ? { jwksUrl: config.JWKS_URL, algorithms: config.JWT_ALGORITHMS }
      : { secret: config.JWT_SECRET ?? DEVELOPMENT_AUTH.secret }),
  };
  const gateway = {
    mode: config.NODE_ENV === 'production' ? 'production' : 'development',
    subgraphUrls: config.SUBGRAPH_URLS,
    subgraphTimeoutMs: config.SUBGRAPH_TIMEOUT_MS,
    dedupe: config.SUBGRAPH_DEDUPE === 'on',
    execution: config.EXECUTOR,
    dedupeRepresentations: config.DEDUPE_REPRESENTATIONS === 'on',
    mergeEntityFetches: config.MERGE_ENTITY_FETCHES === 'on',
    corsOrigins: config.CORS_ORIGINS,
    maxBodyBytes: config.MAX_BODY_BYTES,
    extraPublicErrorCodes: config.PUBLIC_ERROR_CODES,
    rateLimit: config.RATE_LIMIT_MAX > 0 ? { limit: config.RATE_LIMIT_MAX, windowMs: config.RATE_LIMIT_WINDOW_MS } : null,
    trustedProxyHops: config.TRUST_PROXY_HOPS,
    subscriptions: {
      limits: {
        subscriptionsPerSocket: config.WS_MAX_SUBSCRIPTIONS_PER_SOCKET,
        socketsPerViewer: config.WS_MAX_SOCKETS_PER_VIEWER,
        subscriptionsPerViewer: config.WS_MAX_SUBSCRIPTIONS_PER_VIEWER,
        socketsPerAddress: config.WS_MAX_SOCKETS_PER_ADDRESS,
        subscriptionsPerAddress: config.WS_MAX_SUBSCRIPTIONS_PER_ADDRESS,
        documentBytesPerClient: config.WS_MAX_DOCUMENT_BYTES_PER_CLIENT,
      },
      documentCache: { maxBytes: config.WS_DOCUMENT_CACHE_BYTES, maxDocumentBytes: config.WS_CACHED_DOCUMENT_MAX_BYTES },
    },
    limits: { maxDepth: config.MAX_DEPTH, maxAliases: config.MAX_ALIASES, maxDirectives: config.MAX_DIRECTIVES, maxCost: config.MAX_COST },
    maxTokens: config.MAX_TOKENS,
    maxValidationErrors: config.MAX_VALIDATION_ERRORS,
    variableLimits: { maxVariables: config.MAX_VARIABLES, maxValues: config.MAX_VARIABLE_VALUES },
    httpTimeouts: { headersTimeoutMs: config.HTTP_HEADERS_TIMEOUT_MS, requestTimeoutMs: config.HTTP_REQUEST_TIMEOUT_MS },
    persistedDocuments: persistedDocumentsFrom(config),
    breaker:
      config.SUBGRAPH_BREAKER === 'on'
        ? {
            failures: config.SUBGRAPH_BREAKER_FAILURES,
            resetTimeoutMs: config.SUBGRAPH_BREAKER_RESET_MS,
            maxResetTimeoutMs: config.SUBGRAPH_BREAKER_MAX_RESET_MS,
          }
        : null,
  } satisfies Partial<GatewayDeps>;
  // The store and the event bus come from the composition root's infrastructure.
  const responseCache =
    config.RESPONSE_CACHE === 'on'
      ? { maxTtlSeconds: config.RESPONSE_CACHE_MAX_TTL_S, typeTtlSeconds: config.RESPONSE_CACHE_TYPE_TTL_S, replicaLagMs: config.RESPONSE_CACHE_REPLICA_LAG_MS }
      : null;
  // The event bus comes from the composition root's infrastructure too.
  const liveQueries = config.LIVE_QUERIES === 'on' ? { throttleMs: config.LIVE_QUERY_THROTTLE_MS } : null;
  const supergraph = { path: config.SUPERGRAPH_PATH, watch: config.SUPERGRAPH_WATCH === 'on', url: config.SUPERGRAPH_URL, pollMs: config.SUPERGRAPH_POLL_MS };
  return { auth, gateway, responseCache, liveQueries, supergraph };
}
