import { ordersConfigSchema } from '@fed/orders/config';
import { developmentSecret } from '@fed/platform';
import { configIssues } from '@fed/platform/testing';
import { usersConfigSchema } from '@fed/users/config';
import { describe, expect, it } from 'vitest';
import { stackConfigSchema } from '../src/config.ts';

const secret = (letter: string) => letter.repeat(40);

describe('configuration across the services', () => {
  it('standalone subgraphs need their callers’ secrets in production, each different', () => {
    expect(configIssues(usersConfigSchema, { NODE_ENV: 'production' }).sort()).toEqual([
      'ORDERS_TO_USERS_SECRET: is required in production',
      'USERS_SUBGRAPH_SECRET: is required in production',
    ]);
    expect(configIssues(ordersConfigSchema, { NODE_ENV: 'production', ORDERS_SUBGRAPH_SECRET: secret('a'), ORDERS_TO_USERS_SECRET: secret('a') })).toEqual([
      'ORDERS_TO_USERS_SECRET: must differ from ORDERS_SUBGRAPH_SECRET',
    ]);
    expect(configIssues(usersConfigSchema, {})).toEqual([]);
  });

  it('npm start generates the subgraph secrets, but applies the gateway’s rules and refuses secrets set twice or for development', () => {
    expect(configIssues(stackConfigSchema, {})).toEqual([]);
    expect(configIssues(stackConfigSchema, { NODE_ENV: 'production' })).toEqual(['JWT_SECRET: is required in production']);
    expect(configIssues(stackConfigSchema, { NODE_ENV: 'production', JWT_SECRET: secret('j'), USERS_SUBGRAPH_SECRET: developmentSecret('users-subgraph') })).toEqual([
      'USERS_SUBGRAPH_SECRET: is a development secret; set a real one in production',
    ]);
    expect(configIssues(stackConfigSchema, { JWT_SECRET: secret('j'), ORDERS_TO_USERS_SECRET: secret('j') })).toEqual([
      'ORDERS_TO_USERS_SECRET: must differ from JWT_SECRET',
    ]);
  });
});
