// Authorization directives imported under other names (`{ name: "@authenticated", as: "@signedIn" }`, or a
// renamed namespace): composed supergraphs name them so, and the gateway must still find and enforce them.
import { graphql } from '@fed/platform/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAuthorizationRules } from '../../src/authorization/rules.ts';
import { DEVELOPMENT_AUTH } from '../../src/config.ts';
import { mintToken } from '../../src/gateway.ts';
import { startComposedGateway } from '../fixtures/composed-gateway.ts';
import { serveSubgraph } from '../fixtures/keyed-entities-graph.ts';

const SDL = `extend schema @link(url: "https://specs.apollo.dev/federation/v2.9", import: ["@key", { name: "@authenticated", as: "@signedIn" }, { name: "@requiresScopes", as: "@scoped" }])
type Query { open: String secret: String @signedIn scoped: String @scoped(scopes: [["s"]]) }
`;

describe('renamed authorization directives', () => {
  const stops: (() => Promise<unknown>)[] = [];
  let supergraphSdl: string;
  let url: string;

  beforeAll(async () => {
    const alpha = await serveSubgraph('alpha', SDL, { Query: { open: () => 'open', secret: () => 'secret', scoped: () => 'scoped' } });
    stops.push(() => alpha.app.stop());
    const started = await startComposedGateway([alpha]);
    stops.push(() => started.gateway.stop());
    ({ url, supergraphSdl } = started);
  });
  afterAll(async () => {
    for (const stop of stops.reverse()) await stop();
  });

  it('reads them under their new names', () => {
    const rules = readAuthorizationRules(supergraphSdl);
    expect(rules?.fields.get('Query.secret')).toEqual([{ kind: 'authenticated' }]);
    expect(rules?.fields.get('Query.scoped')).toEqual([{ kind: 'scopes', anyOf: [['s']] }]);
  });

  it('serves the supergraph and enforces them', async () => {
    const anonymous = await graphql(url, '{ open secret scoped }');
    expect(anonymous.data).toEqual({ open: 'open', secret: null, scoped: null });
    expect(anonymous.errors?.map((error) => error.extensions?.code)).toEqual(['FORBIDDEN', 'FORBIDDEN']);
    const scoped = await graphql(url, '{ open secret scoped }', {}, { authorization: `Bearer ${await mintToken({ ...DEVELOPMENT_AUTH, sub: '1', scopes: ['s'] })}` });
    expect(scoped.data).toEqual({ open: 'open', secret: 'secret', scoped: 'scoped' });
  });
});
