import { dataDir, logLevel, nodeEnv, port, postgresUrl, productionRules, redisUrl, secret } from '@fed/platform';
import { z } from 'zod';

export const usersConfigShape = z.object({
  USERS_PORT: port(4001),
  HOST: z.string().optional(),
  /** Unset: an embedded PGlite database under DATA_DIR/users. */
  USERS_DATABASE_URL: postgresUrl.optional(),
  DATA_DIR: dataDir,
  /** Unset: in-memory pub/sub, which only reaches services in the same process. */
  REDIS_URL: redisUrl.optional(),
  /** Every caller (the gateway, orders) signs its requests with this. Unset in development: a fixed dev value. */
  USERS_SUBGRAPH_SECRET: secret.optional(),
  LOG_LEVEL: logLevel,
  NODE_ENV: nodeEnv,
});

export const usersConfigSchema = usersConfigShape.superRefine(productionRules(['USERS_SUBGRAPH_SECRET']));

export type UsersConfig = z.infer<typeof usersConfigSchema>;
