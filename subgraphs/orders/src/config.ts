import { dataDir, logLevel, milliseconds, nodeEnv, port, postgresUrl, productionRules, secret } from '@fed/platform';
import { z } from 'zod';

export const ordersConfigShape = z.object({
  ORDERS_PORT: port(4002),
  HOST: z.string().optional(),
  /** Unset: an embedded PGlite database under DATA_DIR/orders. */
  ORDERS_DATABASE_URL: postgresUrl.optional(),
  DATA_DIR: dataDir,
  /** The users subgraph, asked whether a user exists before an order is placed. */
  USERS_URL: z.string().url().default('http://localhost:4001/graphql'),
  USERS_TIMEOUT_MS: milliseconds(2_000),
  /** Every caller (the gateway) signs its requests with this. Unset in development: a fixed dev value. */
  ORDERS_SUBGRAPH_SECRET: secret.optional(),
  /** The users subgraph's secret: orders signs its own calls to users with it, as the caller `orders`. */
  USERS_SUBGRAPH_SECRET: secret.optional(),
  LOG_LEVEL: logLevel,
  NODE_ENV: nodeEnv,
});

export const ordersConfigSchema = ordersConfigShape.superRefine(productionRules(['ORDERS_SUBGRAPH_SECRET', 'USERS_SUBGRAPH_SECRET']));

export type OrdersConfig = z.infer<typeof ordersConfigSchema>;
