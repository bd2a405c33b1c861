import { gatewayConfigRules, gatewayConfigShape } from '@fed/gateway/config';
import { ordersConfigShape } from '@fed/orders/config';
import { databasePrepare, dataDir, productionRules, replicasNeedPrimary, distinctSecrets, isDevelopmentSecret, logLevel, migrationUrl, nodeEnv, postgresUrl } from '@fed/platform';
import { usersConfigShape } from '@fed/users/config';
import { z } from 'zod';

/**
 * Where migrations connect when the database URLs go through PgBouncer in transaction mode: this process migrates
 * at start, under a session-level advisory lock that needs a direct connection. Unset: the database URL.
 */
const migrationSettings = {
  USERS_DATABASE_MIGRATION_URL: migrationUrl,
  ORDERS_DATABASE_MIGRATION_URL: migrationUrl,
};

const SUBGRAPH_SECRETS = ['USERS_SUBGRAPH_SECRET', 'ORDERS_SUBGRAPH_SECRET', 'ORDERS_TO_USERS_SECRET'] as const;

/** One process, three services: the union of their settings, parsed once. */
export const stackConfigSchema = usersConfigShape
  .extend(ordersConfigShape.shape)
  .extend(gatewayConfigShape.shape)
  // In one process the services find each other by themselves, and the subgraph secrets are generated at
  // start-up unless USERS_SUBGRAPH_SECRET / ORDERS_SUBGRAPH_SECRET are set.
  .omit({ USERS_URL: true, SUBGRAPH_URLS: true, SUBGRAPH_SECRETS: true })
  .extend({
    ...migrationSettings,
    /** Seed a small dataset when the users database is empty (the first start). */
    SEED_ON_FIRST_START: z
      .enum(['true', 'false'])
      .default('true')
      .transform((value) => value === 'true'),
  })
  .superRefine((config, ctx) => {
    gatewayConfigRules(config, ctx);
    replicasNeedPrimary('USERS_DATABASE_URL', 'USERS_DATABASE_REPLICA_URLS')(config, ctx);
    replicasNeedPrimary('ORDERS_DATABASE_URL', 'ORDERS_DATABASE_REPLICA_URLS')(config, ctx);
    // Generated secrets are fine in one process; secrets that are set must not be development values.
    distinctSecrets(['JWT_SECRET', ...SUBGRAPH_SECRETS])(config, ctx);
    for (const key of SUBGRAPH_SECRETS) {
      if (config.NODE_ENV === 'production' && isDevelopmentSecret(config[key])) {
        ctx.addIssue({ code: 'custom', path: [key], message: 'is a development secret; set a real one in production' });
      }
    }
  });

export type StackConfig = z.infer<typeof stackConfigSchema>;

/**
 * The one-shot jobs (`db:migrate`, `seed`): only where the two databases are. They hold no secrets, so a
 * migration Job or container needs nothing but the database URLs.
 */
export const databaseToolsConfigSchema = z
  .object({
    USERS_DATABASE_URL: postgresUrl.optional(),
    ORDERS_DATABASE_URL: postgresUrl.optional(),
    // Seeding through PgBouncer in transaction mode needs prepared statements off, as the services do.
    USERS_DATABASE_PREPARE: databasePrepare,
    ORDERS_DATABASE_PREPARE: databasePrepare,
    ...migrationSettings,
    DATA_DIR: dataDir,
    LOG_LEVEL: logLevel,
    NODE_ENV: nodeEnv,
  })
  // In production a job without the URLs would migrate or seed an embedded database nobody reads.
  .superRefine(productionRules(['USERS_DATABASE_URL', 'ORDERS_DATABASE_URL']));
