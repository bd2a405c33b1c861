import { databasePrepare, replicasNeedPrimary, replicaUrls, dataDir, eventRetentionSettings, observabilitySettings, distinctSecrets, logLevel, nodeEnv, port, postgresUrl, productionRules, redisKeyPrefix, redisUrl, secret, subgraphExecution } from '@fed/platform';
import { z } from 'zod';

export const usersConfigShape = z.object({
  USERS_PORT: port(4001),
  HOST: z.string().optional(),
  /** Unset: an embedded PGlite database under DATA_DIR/users. */
  USERS_DATABASE_URL: postgresUrl.optional(),
  /** Streaming replicas of USERS_DATABASE_URL (comma-separated): queries read from them, writes never do. */
  USERS_DATABASE_REPLICA_URLS: replicaUrls,
  /**
   * `off` behind a pooler in transaction mode (PgBouncer before 1.21): no statement is kept prepared on the
   * server. Default `on`. Applies to the replicas' connections too.
   */
  USERS_DATABASE_PREPARE: databasePrepare,
  DATA_DIR: dataDir,
  /**
   * Unset: in-memory pub/sub, which only reaches services in the same process.
   * One server (`redis://`, `rediss://`), a Redis Cluster (`redis+cluster://host:port,host:port`) or the primary
   * Sentinels name (`redis+sentinel://host:port,host:port/name`); see RedisTarget.
   */
  REDIS_URL: redisUrl.optional(),
  REDIS_KEY_PREFIX: redisKeyPrefix,
  /** The gateway signs its requests to users with this. Unset in development: a fixed development value. */
  USERS_SUBGRAPH_SECRET: secret.optional(),
  /** Orders signs its own calls to users (as itself, never for a user) with this one. */
  ORDERS_TO_USERS_SECRET: secret.optional(),
  ...eventRetentionSettings,
  ...observabilitySettings,
  /** `compiled` (default) or `graphql-js`: how this subgraph executes operations. */
  SUBGRAPH_EXECUTION: subgraphExecution,
  LOG_LEVEL: logLevel,
  NODE_ENV: nodeEnv,
});

const SECRETS = ['USERS_SUBGRAPH_SECRET', 'ORDERS_TO_USERS_SECRET'];

export const usersConfigSchema = usersConfigShape
  // A standalone process in production without a database URL would quietly keep its data in an embedded
  // PGlite inside its container, lost on restart and different in every replica.
  .superRefine(productionRules([...SECRETS, 'USERS_DATABASE_URL']))
  .superRefine(distinctSecrets(SECRETS))
  .superRefine(replicasNeedPrimary('USERS_DATABASE_URL', 'USERS_DATABASE_REPLICA_URLS'));

export type UsersConfig = z.infer<typeof usersConfigSchema>;
