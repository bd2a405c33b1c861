import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { composeServices } from '@apollo/composition';
import { createLogger, createMemoryCache, developmentSecret, listen, MemoryRateLimiter } from '@fed/platform';
import { graphql } from '@fed/platform/testing';
import { parse } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SUPERGRAPH_PATH, DEVELOPMENT_AUTH } from '../src/config.ts';
import { createAuthenticator, createGateway, type Gateway } from '../src/gateway.ts';
import { readSupergraph } from '../src/supergraph/load.ts';

// Requests in this file are all refused before any subgraph is called, so the subgraph URLs point nowhere.
const NOWHERE = { users: 'http://127.0.0.1:9/graphql', orders: 'http://127.0.0.1:9/graphql' };
const committedSupergraph = readSupergraph(DEFAULT_SUPERGRAPH_PATH);

async function start(
  supergraphSdl: string,
  mode: 'development' | 'production',
  subgraphUrls: Record<string, string> = NOWHERE,
): Promise<{ gateway: Gateway; url: string }> {
  const gateway = await createGateway({
    supergraphSdl,
    subgraphUrls,
    logger: createLogger({ name: 'test', level: 'silent' }),
    cache: createMemoryCache(),
    rateLimiter: new MemoryRateLimiter(),
    authenticate: createAuthenticator(DEVELOPMENT_AUTH),
    subgraphSecrets: {},
    defaultSubgraphSecret: (name) => developmentSecret(name),
    mode,
    maxBodyBytes: 64 * 1024,
  });
  await listen(gateway.httpServer, 0, '127.0.0.1');
  return { gateway, url: `http://127.0.0.1:${(gateway.httpServer.address() as AddressInfo).port}/graphql` };
}

const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

describe('gateway HTTP contract (production mode)', () => {
  let app: { gateway: Gateway; url: string };
  beforeAll(async () => {
    app = await start(committedSupergraph, 'production');
  });
  afterAll(() => app?.gateway.stop());

  it('answers a malformed query with 400 GRAPHQL_PARSE_FAILED', async () => {
    const response = await graphql(app.url, '{ users(first: 1) { edges { node { id }');
    expect(response.status).toBe(400);
    expect(response.errors?.[0]?.extensions?.code).toBe('GRAPHQL_PARSE_FAILED');
  });

  it('answers an unknown field with 400 GRAPHQL_VALIDATION_FAILED and no schema hints', async () => {
    const response = await graphql(app.url, '{ users(first: 1) { edges { node { emial } } } }');
    expect(response.status).toBe(400);
    expect(response.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(response.errors?.[0]?.message).not.toContain('Did you mean');
  });

  it('answers a wrongly typed argument or variable with 400', async () => {
    const literal = await graphql(app.url, '{ users(first: "ten") { totalCount } }');
    expect(literal.status).toBe(400);
    expect(literal.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');

    const variable = await graphql(app.url, 'query ($n: Int) { users(first: $n) { totalCount } }', { n: 'ten' });
    expect(variable.status).toBe(400);
    expect(variable.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('refuses introspection in production', async () => {
    const response = await graphql(app.url, '{ __schema { types { name } } }');
    expect(response.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(response.data ?? null).toBeNull();
  });

  it('refuses batched requests and oversized bodies', async () => {
    const batched = await post(app.url, [{ query: '{ __typename }' }, { query: '{ __typename }' }]);
    expect(batched.status).toBe(400);

    const huge = await post(app.url, { query: `{ __typename }${' '.repeat(70 * 1024)}` });
    expect(huge.status).toBe(413);
    expect(((await huge.json()) as { errors: { extensions: { code: string } }[] }).errors[0]?.extensions.code).toBe(
      'PAYLOAD_TOO_LARGE',
    );
  });

  it('refuses a simple cross-site GET (CSRF prevention)', async () => {
    const response = await fetch(`${app.url}?query=${encodeURIComponent('{ __typename }')}`);
    expect(response.status).toBe(400);
  });

  it('answers a subscription with a clear 400: they are served over graphql-ws only', async () => {
    const response = await graphql(app.url, 'subscription { userEvents { kind } }');
    expect(response.status).toBe(400);
    expect(response.errors?.[0]?.extensions?.code).toBe('SUBSCRIPTION_OVER_HTTP');
  });
});

describe('subscriptions over HTTP', () => {
  let app: { gateway: Gateway; url: string };
  beforeAll(async () => {
    // Any valid supergraph must work; this one adds a subscription root, which the gateway can plan but
    // not execute over HTTP.
    const composed = composeServices([
      { name: 'users', url: NOWHERE.users, typeDefs: parse(readFileSync(new URL('../../subgraphs/users/schema.graphql', import.meta.url), 'utf8')) },
      {
        name: 'events',
        url: NOWHERE.users,
        typeDefs: parse('extend schema @link(url: "https://specs.apollo.dev/federation/v2.7", import: ["@key"]) type Subscription { ticks: Int! } type Query { ping: Boolean }'),
      },
    ]);
    if (composed.errors) throw composed.errors[0];
    app = await start(composed.supergraphSdl, 'production', { users: NOWHERE.users, events: NOWHERE.users });
  });
  afterAll(() => app?.gateway.stop());

  it('get a clear 400 SUBSCRIPTION_OVER_HTTP instead of the gateway’s 500', async () => {
    const response = await graphql(app.url, 'subscription { ticks }');
    expect(response.status).toBe(400);
    expect(response.errors).toHaveLength(1);
    expect(response.errors?.[0]?.extensions?.code).toBe('SUBSCRIPTION_OVER_HTTP');
    expect(response.errors?.[0]?.message).toMatch(/WebSocket/);
  });
});

describe('development mode', () => {
  let app: { gateway: Gateway; url: string };
  beforeAll(async () => {
    app = await start(committedSupergraph, 'development');
  });
  afterAll(() => app?.gateway.stop());

  it('serves Apollo Sandbox as the landing page to a browser', async () => {
    const response = await fetch(app.url, { headers: { accept: 'text/html' } });
    expect(response.status).toBe(200);
    const html = await response.text();
    expect(html).toMatch(/sandbox/i);
  });

  it('allows introspection, so Sandbox and GraphiQL can explore the schema', async () => {
    const response = await graphql<{ __type: { fields: { name: string }[] } }>(app.url, '{ __type(name: "User") { fields { name } } }');
    expect(response.errors).toBeUndefined();
    expect(response.data?.__type.fields.map((field) => field.name)).toEqual(
      expect.arrayContaining(['id', 'email', 'name', 'orders', 'orderCount', 'totalSpentCents']),
    );
  });
});

describe('subgraph URL overrides', () => {
  it('refuse to start when an override names a subgraph the supergraph does not have (a typo would misroute)', async () => {
    await expect(start(committedSupergraph, 'production', { users: NOWHERE.users, order: NOWHERE.orders })).rejects.toThrow(
      /order\b.*does not have|does not have.*\border\b/,
    );
  });
});
