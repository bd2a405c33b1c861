import { dataDir, logLevel, nodeEnv, port, postgresUrl, redisUrl } from '@fed/platform';
import { z } from 'zod';

export const usersConfigSchema = z.object({
  USERS_PORT: port(4001),
  HOST: z.string().optional(),
  /** Unset: an embedded PGlite database under DATA_DIR/users. */
  USERS_DATABASE_URL: postgresUrl.optional(),
  DATA_DIR: dataDir,
  /** Unset: in-memory pub/sub, which only reaches services in the same process. */
  REDIS_URL: redisUrl.optional(),
  LOG_LEVEL: logLevel,
  NODE_ENV: nodeEnv,
});

export type UsersConfig = z.infer<typeof usersConfigSchema>;
