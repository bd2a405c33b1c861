import { dataDir, logLevel, milliseconds, nodeEnv, port, postgresUrl } from '@fed/platform';
import { z } from 'zod';

export const ordersConfigSchema = z.object({
  ORDERS_PORT: port(4002),
  HOST: z.string().optional(),
  /** Unset: an embedded PGlite database under DATA_DIR/orders. */
  ORDERS_DATABASE_URL: postgresUrl.optional(),
  DATA_DIR: dataDir,
  /** The users subgraph, asked whether a user exists before an order is placed. */
  USERS_URL: z.string().url().default('http://localhost:4001/graphql'),
  USERS_TIMEOUT_MS: milliseconds(2_000),
  LOG_LEVEL: logLevel,
  NODE_ENV: nodeEnv,
});

export type OrdersConfig = z.infer<typeof ordersConfigSchema>;
