import { ordersConfigSchema } from '@fed/orders/config';
import { developmentSecret } from '@fed/platform';
import { configIssues } from '@fed/platform/testing';
import { usersConfigSchema } from '@fed/users/config';
import { describe, expect, it } from 'vitest';
import { databaseToolsConfigSchema, stackConfigSchema } from '../src/config.ts';

const secret = (letter: string) => letter.repeat(40);

describe('configuration across the services', () => {
  it('standalone subgraphs need their database and their callers’ secrets in production, each different', () => {
    expect(configIssues(usersConfigSchema, { NODE_ENV: 'production' }).sort()).toEqual([
      'ORDERS_TO_USERS_SECRET: is required in production',
      'USERS_DATABASE_URL: is required in production',
      'USERS_SUBGRAPH_SECRET: is required in production',
    ]);
    const ordersDatabase = { ORDERS_DATABASE_URL: 'postgres://postgres@db:5432/orders' };
    expect(configIssues(ordersConfigSchema, { NODE_ENV: 'production', ...ordersDatabase, ORDERS_SUBGRAPH_SECRET: secret('a'), ORDERS_TO_USERS_SECRET: secret('a') })).toEqual([
      'ORDERS_TO_USERS_SECRET: must differ from ORDERS_SUBGRAPH_SECRET',
    ]);
    expect(configIssues(usersConfigSchema, {})).toEqual([]);
  });

  it('read replicas follow a primary, and the migrate and seed jobs need both databases in production', () => {
    expect(configIssues(usersConfigSchema, { USERS_DATABASE_REPLICA_URLS: 'postgres://postgres@replica:5432/users' })).toEqual([
      'USERS_DATABASE_REPLICA_URLS: needs USERS_DATABASE_URL: read replicas follow a Postgres primary',
    ]);
    expect(configIssues(ordersConfigSchema, { ORDERS_DATABASE_URL: 'postgres://postgres@db:5432/orders', ORDERS_DATABASE_REPLICA_URLS: 'postgres://a@r1/orders, mysql://r2/orders' })).toEqual([
      'ORDERS_DATABASE_REPLICA_URLS.1: must be a postgres:// URL',
    ]);
    expect(configIssues(databaseToolsConfigSchema, { NODE_ENV: 'production' }).sort()).toEqual([
      'ORDERS_DATABASE_URL: is required in production',
      'USERS_DATABASE_URL: is required in production',
    ]);
    expect(configIssues(databaseToolsConfigSchema, {})).toEqual([]);
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
