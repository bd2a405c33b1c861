import { ordersConfigSchema } from '@fed/orders/config';
import { ConfigError, developmentSecret, parseConfig } from '@fed/platform';
import { usersConfigSchema } from '@fed/users/config';
import { describe, expect, it } from 'vitest';
import { stackConfigSchema } from '../src/config.ts';

const issues = (schema: Parameters<typeof parseConfig>[0], env: Record<string, string>) => {
  try {
    parseConfig(schema, env);
    return [];
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return error.issues;
  }
};
const secret = (letter: string) => letter.repeat(40);

describe('configuration across the services', () => {
  it('standalone subgraphs need their callers’ secrets in production, each different', () => {
    expect(issues(usersConfigSchema, { NODE_ENV: 'production' }).sort()).toEqual([
      'ORDERS_TO_USERS_SECRET: is required in production',
      'USERS_SUBGRAPH_SECRET: is required in production',
    ]);
    expect(issues(ordersConfigSchema, { NODE_ENV: 'production', ORDERS_SUBGRAPH_SECRET: secret('a'), ORDERS_TO_USERS_SECRET: secret('a') })).toEqual([
      'ORDERS_TO_USERS_SECRET: must differ from ORDERS_SUBGRAPH_SECRET',
    ]);
    expect(issues(usersConfigSchema, {})).toEqual([]);
  });

  it('npm start generates the subgraph secrets, but applies the gateway’s rules and refuses secrets set twice or for development', () => {
    expect(issues(stackConfigSchema, {})).toEqual([]);
    expect(issues(stackConfigSchema, { NODE_ENV: 'production' })).toEqual(['JWT_SECRET: is required in production']);
    expect(issues(stackConfigSchema, { NODE_ENV: 'production', JWT_SECRET: secret('j'), USERS_SUBGRAPH_SECRET: developmentSecret('users-subgraph') })).toEqual([
      'USERS_SUBGRAPH_SECRET: is a development secret; set a real one in production',
    ]);
    expect(issues(stackConfigSchema, { JWT_SECRET: secret('j'), ORDERS_TO_USERS_SECRET: secret('j') })).toEqual([
      'ORDERS_TO_USERS_SECRET: must differ from JWT_SECRET',
    ]);
  });
});
