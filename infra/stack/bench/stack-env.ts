/**
 * The environment a benchmark gives the stack process it starts: production mode, free ports, quiet logs, no
 * seeding and no telemetry, plus `extra` (databases, Redis, secrets, limits).
 */
export function stackEnv(extra: Record<string, string>): Record<string, string | undefined> {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    GATEWAY_PORT: '0',
    USERS_PORT: '0',
    ORDERS_PORT: '0',
    LOG_LEVEL: 'warn',
    NODE_ENV: 'production',
    SEED_ON_FIRST_START: 'false',
    APOLLO_TELEMETRY_DISABLED: '1',
    ...extra,
  };
}
