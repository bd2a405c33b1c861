import { developmentSecret, parseConfig } from '@fed/platform';
import { configIssues } from '@fed/platform/testing';
import { describe, expect, it } from 'vitest';
import { gatewayConfigSchema, gatewaySettings } from '../src/config.ts';

const SECRET = 'j'.repeat(40);

describe('gateway configuration', () => {
  it('needs nothing in development: a development secret, issuer and audience, and every limit at its default', () => {
    const { auth, gateway } = gatewaySettings(parseConfig(gatewayConfigSchema, {}));
    expect(auth).toMatchObject({ secret: developmentSecret('jwt'), issuer: 'federated-graph-dev', audience: 'federated-graph' });
    expect(gateway).toMatchObject({ rateLimit: { limit: 600, windowMs: 60_000 }, limits: { maxDepth: 16, maxAliases: 15, maxDirectives: 20, maxCost: 320_000 } });
  });

  it('refuses production without a JWT secret or a key set, and with development secrets', () => {
    expect(configIssues(gatewayConfigSchema, { NODE_ENV: 'production' })).toEqual(['JWT_SECRET: is required in production']);
    expect(configIssues(gatewayConfigSchema, { NODE_ENV: 'production', JWT_SECRET: developmentSecret('jwt') })).toEqual([
      'JWT_SECRET: is a development secret; set a real one in production',
    ]);
    expect(configIssues(gatewayConfigSchema, { NODE_ENV: 'production', JWT_SECRET: SECRET, SUBGRAPH_SECRETS: `users=${developmentSecret('users-subgraph')}` })).toEqual([
      'SUBGRAPH_SECRETS.users: is a development secret; set a real one in production',
    ]);
  });

  it('with a key set: production needs https, an issuer and an audience; and it cannot be combined with a secret', () => {
    expect(configIssues(gatewayConfigSchema, { NODE_ENV: 'production', JWKS_URL: 'http://idp.internal/jwks.json' }).sort()).toEqual([
      'JWKS_URL: must be an https:// URL in production',
      'JWT_AUDIENCE: is required in production',
      'JWT_ISSUER: is required in production',
    ]);
    expect(configIssues(gatewayConfigSchema, { NODE_ENV: 'production', JWKS_URL: 'https://idp.example/jwks.json', JWT_ISSUER: 'https://idp.example', JWT_AUDIENCE: 'shop' })).toEqual([]);
    expect(configIssues(gatewayConfigSchema, { JWKS_URL: 'https://idp.example/jwks.json', JWT_SECRET: SECRET })).toEqual(['JWKS_URL: set either JWT_SECRET or JWKS_URL, not both']);
    expect(configIssues(gatewayConfigSchema, { JWKS_URL: 'https://idp.example/jwks.json', JWT_ALGORITHMS: 'RS256,HS256' })).toHaveLength(1);
  });

  it('refuses the same secret for two purposes in production', () => {
    expect(configIssues(gatewayConfigSchema, { NODE_ENV: 'production', JWT_SECRET: SECRET, SUBGRAPH_SECRETS: `users=${SECRET},orders=${'o'.repeat(40)}` })).toEqual([
      'users: must differ from JWT_SECRET',
    ]);
  });

  it('reports a malformed secret entry by its position, never echoing any part of it', () => {
    const leaked = 'sup3r-s3cret-with,a-comma-inside-it-0123456789';
    const problems = configIssues(gatewayConfigSchema, { SUBGRAPH_SECRETS: `users=${leaked}` });
    expect(problems).toEqual([
      'SUBGRAPH_SECRETS: entry 1 is not name=secret of 32+ characters',
      'SUBGRAPH_SECRETS: entry 2 is not name=secret of 32+ characters',
    ]);
    expect(problems.join()).not.toMatch(/sup3r|a-comma/);
  });

  it('bounds graphql-ws per socket, user and address, and its document cache: defaults, and WS_* to set them', () => {
    expect(gatewaySettings(parseConfig(gatewayConfigSchema, {})).gateway.subscriptions).toEqual({
      limits: {
        subscriptionsPerSocket: 200,
        socketsPerViewer: 16,
        subscriptionsPerViewer: 200,
        socketsPerAddress: 32,
        subscriptionsPerAddress: 200,
        documentBytesPerClient: 2 * 1024 * 1024,
      },
      documentCache: { maxBytes: 1024 * 1024, maxDocumentBytes: 16 * 1024 },
    });
    const set = gatewaySettings(
      parseConfig(gatewayConfigSchema, {
        WS_MAX_SUBSCRIPTIONS_PER_SOCKET: '10',
        WS_MAX_SOCKETS_PER_VIEWER: '2',
        WS_MAX_SUBSCRIPTIONS_PER_VIEWER: '20',
        WS_MAX_SOCKETS_PER_ADDRESS: '4',
        WS_MAX_SUBSCRIPTIONS_PER_ADDRESS: '8',
        WS_DOCUMENT_CACHE_BYTES: '65536',
        WS_CACHED_DOCUMENT_MAX_BYTES: '4096',
        WS_MAX_DOCUMENT_BYTES_PER_CLIENT: '100000',
      }),
    ).gateway.subscriptions;
    expect(set).toEqual({
      limits: { subscriptionsPerSocket: 10, socketsPerViewer: 2, subscriptionsPerViewer: 20, socketsPerAddress: 4, subscriptionsPerAddress: 8, documentBytesPerClient: 100_000 },
      documentCache: { maxBytes: 65_536, maxDocumentBytes: 4_096 },
    });
    expect(configIssues(gatewayConfigSchema, { WS_MAX_SOCKETS_PER_VIEWER: '0' })).toHaveLength(1);
  });

  it('refuses a limit of 0 (it would refuse every operation); RATE_LIMIT_MAX=0 turns the rate limit off', () => {
    expect(configIssues(gatewayConfigSchema, { MAX_DEPTH: '0' })).toHaveLength(1);
    expect(gatewaySettings(parseConfig(gatewayConfigSchema, { RATE_LIMIT_MAX: '0' })).gateway.rateLimit).toBeNull();
  });
});
