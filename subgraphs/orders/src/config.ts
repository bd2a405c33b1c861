import { databasePrepare, replicasNeedPrimary, replicaUrls, dataDir, eventRetentionSettings, observabilitySettings, distinctSecrets, logLevel, milliseconds, nodeEnv, port, postgresUrl, productionRules, redisKeyPrefix, redisUrl, secret, subgraphExecution } from '@fed/platform';
import { z } from 'zod';

export const ordersConfigShape = z.object({
  ORDERS_PORT: port(4002),
  HOST: z.string().optional(),
  /** Unset: an embedded PGlite database under DATA_DIR/orders. */
  ORDERS_DATABASE_URL: postgresUrl.optional(),
  /** Streaming replicas of ORDERS_DATABASE_URL (comma-separated): queries read from them, writes never do. */
  ORDERS_DATABASE_REPLICA_URLS: replicaUrls,
  /**
   * `off` behind a pooler in transaction mode (PgBouncer before 1.21): no statement is kept prepared on the
   * server. Default `on`. Applies to the replicas' connections too.
   */
  ORDERS_DATABASE_PREPARE: databasePrepare,
  DATA_DIR: dataDir,
  /** The users subgraph, asked for every user id once, when a new deployment builds its projection of users. */
  USERS_URL: z.string().url().default('http://localhost:4001/graphql'),
  USERS_TIMEOUT_MS: milliseconds(2_000),
  /** The gateway signs its requests to orders with this. Unset in development: a fixed development value. */
  ORDERS_SUBGRAPH_SECRET: secret.optional(),
  /** Orders signs its own calls to users with this, as the caller `orders`; users holds the same one. */
  ORDERS_TO_USERS_SECRET: secret.optional(),
  /**
   * Unset: events and the signatures that ran a write stay in this process.
   * One server (`redis://`, `rediss://`), a Redis Cluster (`redis+cluster://host:port,host:port`) or the primary
   * Sentinels name (`redis+sentinel://host:port,host:port/name`); see RedisTarget.
   */
  REDIS_URL: redisUrl.optional(),
  REDIS_KEY_PREFIX: redisKeyPrefix,
  ...eventRetentionSettings,
  ...observabilitySettings,
  /** `compiled` (default) or `graphql-js`: how this subgraph executes operations. */
  SUBGRAPH_EXECUTION: subgraphExecution,
  LOG_LEVEL: logLevel,
  NODE_ENV: nodeEnv,
});

const SECRETS = ['ORDERS_SUBGRAPH_SECRET', 'ORDERS_TO_USERS_SECRET'];

export const ordersConfigSchema = ordersConfigShape
  // A standalone process in production without a database URL would quietly keep its data in an embedded
  // PGlite inside its container, lost on restart and different in every replica.
  .superRefine(productionRules([...SECRETS, 'ORDERS_DATABASE_URL']))
  .superRefine(distinctSecrets(SECRETS))
  .superRefine(replicasNeedPrimary('ORDERS_DATABASE_URL', 'ORDERS_DATABASE_REPLICA_URLS'));

export type OrdersConfig = z.infer<typeof ordersConfigSchema>;
