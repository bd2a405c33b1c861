import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { parseRedisTarget } from './redis.ts';

/** Thrown with every problem found, so an operator fixes the environment in one go. */
export class ConfigError extends Error {
  constructor(readonly issues: string[]) {
    super(`Invalid configuration:\n${issues.map((issue) => `  - ${issue}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export type Env = Record<string, string | undefined>;

/** Parses an env object (never process.env itself) against a schema, reporting every issue at once. */
export function parseConfig<TSchema extends z.ZodType>(schema: TSchema, env: Env): z.infer<TSchema> {
  // Empty strings mean "unset" in shells and compose files; treat them that way so defaults apply.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const result = schema.safeParse(cleaned);
  if (!result.success) {
    throw new ConfigError(
      result.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`),
    );
  }
  return result.data;
}

/** Composition roots call this: print every config problem and exit non-zero. */
export function loadConfigOrExit<TSchema extends z.ZodType>(schema: TSchema, env: Env): z.infer<TSchema> {
  try {
    return parseConfig(schema, env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
}

export const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);

export const logLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info');

export const nodeEnv = z.enum(['development', 'production', 'test']).default('development');

/**
 * Where a server listens when HOST is unset: every interface in production (containers), loopback otherwise,
 * because development secrets are public and anyone who could reach the port could mint an admin token.
 */
export const listenHost = (config: { HOST?: string; NODE_ENV: string }) =>
  config.HOST ?? (config.NODE_ENV === 'production' ? undefined : '127.0.0.1');

export const postgresUrl = z
  .string()
  .url()
  .refine((url) => /^postgres(ql)?:\/\//.test(url), 'must be a postgres:// URL');

/** Streaming read replicas of a database, comma-separated: selects are spread over them. */
export const replicaUrls = z
  .string()
  .transform((value) => value.split(',').map((url) => url.trim()).filter(Boolean))
  .pipe(z.array(postgresUrl))
  .default([]);

/**
 * `*_DATABASE_PREPARE`: `on` (default) keeps each statement prepared on its server connection (parsed and planned
 * once); `off` sends every statement unnamed, which a pooler in transaction mode needs (PgBouncer before 1.21
 * cannot follow named statements across server connections). See PostgresConnectionSettings.prepare.
 */
export const databasePrepare = z
  .enum(['on', 'off'], { message: 'must be on or off' })
  .default('on')
  .transform((value) => value === 'on');

/**
 * `*_DATABASE_MIGRATION_URL`: a direct Postgres URL for migrations, when the database URL goes through a
 * transaction-mode pooler. Migrations hold a session-level advisory lock, which needs one server connection
 * throughout. Unset: the database URL.
 */
export const migrationUrl = postgresUrl.optional();

/** Read replicas of what? A replica needs the primary it follows to be set too (PGlite has none). */
export const replicasNeedPrimary =
  (primary: string, replicas: string) =>
  (config: Record<string, unknown>, ctx: z.RefinementCtx): void => {
    if ((config[replicas] as string[] | undefined)?.length && !config[primary]) {
      ctx.addIssue({ code: 'custom', path: [replicas], message: `needs ${primary}: read replicas follow a Postgres primary` });
    }
  };

/**
 * REDIS_URL: one server (`redis://`, `rediss://`), a Redis Cluster (`redis+cluster://host:port,host:port`) or
 * the primary Sentinels follow (`redis+sentinel://host:port,host:port/mastername`); see RedisTarget. Checked
 * here with the parser createInfrastructure uses, so a bad value stops the service at startup; the value stays
 * a string because composition roots (the embedded stack) pass it on as one.
 */
export const redisUrl = z
  .string()
  .trim()
  .superRefine((url, ctx) => {
    const target = parseRedisTarget(url);
    if (typeof target === 'string') ctx.addIssue({ code: 'custom', message: target });
  });

/**
 * Put before every Redis key and channel a service uses (cache, rate limits, pub/sub, event streams), so that
 * two deployments can share one Redis (staging next to CI, or a benchmark next to tests). Every service of one
 * deployment must use the same prefix.
 */
export const redisKeyPrefix = z
  .string()
  .regex(/^[\w:.-]{0,64}$/, 'letters, digits, _ : . - only, at most 64')
  .default('');

export const milliseconds = (fallback: number) => z.coerce.number().int().positive().default(fallback);

/** Embedded PGlite data lives in the repo's git-ignored .data folder, wherever a command is run from. */
export const DEFAULT_DATA_DIR = fileURLToPath(new URL('../../../.data', import.meta.url));
export const dataDir = z.string().default(DEFAULT_DATA_DIR);

/** A shared secret (HMAC key, JWT secret): long enough that guessing it is hopeless. */
export const secret = z.string().min(32, 'must be at least 32 characters');

const DEVELOPMENT_SECRET_PREFIX = 'development-only-';

/**
 * Development needs no configuration, so each secret has a fixed, public development value. Production
 * refuses it (see productionRules).
 */
export const developmentSecret = (purpose: string) => `${DEVELOPMENT_SECRET_PREFIX}${purpose}-secret-do-not-use-in-production`;

export const isDevelopmentSecret = (value: unknown) => typeof value === 'string' && value.startsWith(DEVELOPMENT_SECRET_PREFIX);

/**
 * A zod refinement: each secret of `keys` that is set differs from the others. A secret shared by two
 * purposes lets whoever holds it for one act in the other (a service posing as the gateway, say).
 */
export function distinctSecrets(keys: readonly string[]) {
  return (config: Record<string, unknown>, ctx: z.RefinementCtx) => {
    const seen = new Map<unknown, string>();
    for (const key of keys) {
      const value = config[key];
      if (value === undefined) continue;
      const other = seen.get(value);
      if (other) ctx.addIssue({ code: 'custom', path: [key], message: `must differ from ${other}` });
      seen.set(value, key);
    }
  };
}

/**
 * A zod refinement: with NODE_ENV=production each of `keys` must be set, and none may hold a development
 * secret. Composition roots that merge several services' schemas apply each service's rules again.
 */
export function productionRules(keys: readonly string[]) {
  return (config: Record<string, unknown>, ctx: z.RefinementCtx) => {
    if (config.NODE_ENV !== 'production') return;
    for (const key of keys) {
      const value = config[key];
      if (value === undefined) ctx.addIssue({ code: 'custom', path: [key], message: 'is required in production' });
      else if (isDevelopmentSecret(value)) {
        ctx.addIssue({ code: 'custom', path: [key], message: 'is a development secret; set a real one in production' });
      }
    }
  };
}

/**
 * How many events the durable stream keeps: per user, which bounds how far back `userEvents(after:)` can
 * resume, and overall, which bounds how long a consumer (the orders projection) may be down.
 */
export const eventRetentionSettings = {
  EVENTS_RETENTION_PER_USER: z.coerce.number().int().min(1).default(1_000),
  EVENTS_RETENTION_LOG: z.coerce.number().int().min(100).default(100_000),
  /** Partitions new users' events are spread over, each its own cluster slot (see the README, "A partitioned event stream"). */
  EVENT_STREAM_PARTITIONS: z.coerce.number().int().min(1).max(64).default(1),
  /**
   * With replicas: an append waits this long for one to confirm it (WAIT 1), else the relay sends it again. Below
   * the Redis client's 200 ms command timeout, which the WAIT shares.
   */
  EVENT_STREAM_REPLICA_WAIT_MS: z.coerce.number().int().min(0).max(150).default(0),
  /**
   * Passes each outbox relay runs at once, each over its own lanes of the outbox (users): 0 means one per
   * partition of EVENT_STREAM_PARTITIONS. Postgres only (the embedded database runs one).
   */
  EVENT_RELAY_PASSES: z.coerce.number().int().min(0).max(16).default(0),
};

// The partition count and the replica wait travel with the retention: the stream's shape and durability, set per deployment.
export const retentionFrom = (config: {
  EVENTS_RETENTION_PER_USER: number;
  EVENTS_RETENTION_LOG: number;
  EVENT_STREAM_PARTITIONS?: number;
  EVENT_STREAM_REPLICA_WAIT_MS?: number;
}) => ({
  perUser: config.EVENTS_RETENTION_PER_USER,
  log: config.EVENTS_RETENTION_LOG,
  partitions: config.EVENT_STREAM_PARTITIONS ?? 1,
  replicaWaitMs: config.EVENT_STREAM_REPLICA_WAIT_MS ?? 0,
});

/**
 * How a subgraph executes operations: `compiled` (each document compiled once, with graphql-jit) or `graphql-js`
 * (graphql-js's executor on every request, as before compilation existed). The answers are the same.
 */
export const subgraphExecution = z.enum(['compiled', 'graphql-js']).default('compiled');

/** Metrics, tracing and drain settings every service reads the same way. */
export const observabilitySettings = {
  /** OpenTelemetry traces: off unless turned on. */
  TRACING: z.enum(['on', 'off']).default('off'),
  /** An OTLP/HTTP collector; spans go to `<endpoint>/v1/traces`. */
  OTEL_EXPORTER_OTLP_ENDPOINT: z.string().url().default('http://localhost:4318'),
  /** Share of new traces recorded (0–1). */
  OTEL_TRACES_SAMPLER_ARG: z.coerce.number().min(0).max(1).default(1),
  /** Operation names metrics may label by (comma-separated); others count as `other`. */
  METRICS_OPERATION_NAMES: z
    .string()
    .transform((value) => value.split(',').map((name) => name.trim()).filter(Boolean))
    .default([]),
  /** On SIGTERM: how long /readyz says draining before the listener closes. */
  DRAIN_DELAY_MS: z.coerce.number().int().min(0).default(0),
  /** Then: how long requests in flight have to finish before their connections are cut. */
  DRAIN_GRACE_MS: milliseconds(10_000),
};

type ObservabilityConfig = { [K in keyof typeof observabilitySettings]: z.infer<(typeof observabilitySettings)[K]> };

/** The plain settings a composition root hands to startTelemetry and to the app's drain. */
export const observabilityFrom = (config: ObservabilityConfig) => ({
  tracing: config.TRACING === 'on' ? { endpoint: config.OTEL_EXPORTER_OTLP_ENDPOINT, sampleRatio: config.OTEL_TRACES_SAMPLER_ARG } : null,
  knownOperations: config.METRICS_OPERATION_NAMES,
  drain: { delayMs: config.DRAIN_DELAY_MS, graceMs: config.DRAIN_GRACE_MS },
});
