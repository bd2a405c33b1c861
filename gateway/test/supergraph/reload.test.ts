// Reloads that change what plans depend on: authorization guards moving between fields, an override label's
// share, and a refused supergraph that would have repointed a subgraph. Real subgraphs on loopback; the reloads
// go through the gateway's own reloadSupergraph, as the file watcher's do.
import { graphql } from '@fed/platform/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEVELOPMENT_AUTH } from '../../src/config.ts';
import { mintToken, type Gateway } from '../../src/gateway.ts';
import { composeSubgraphs, startComposedGateway } from '../fixtures/composed-gateway.ts';
import { serveSubgraph } from '../fixtures/keyed-entities-graph.ts';

const sdl = (a: string, b: string) => `extend schema @link(url: "https://specs.apollo.dev/federation/v2.9", import: ["@key", "@requiresScopes"])
type Query { a: String ${a} b: String ${b} }
`;
const GUARD_A = sdl('@requiresScopes(scopes: [["x"]])', '');
const GUARD_B = sdl('', '@requiresScopes(scopes: [["y"]])');

describe('reloads that change plans', () => {
  const stops: (() => Promise<unknown>)[] = [];
  let gateway: Gateway;
  let url: string;
  let urls: { first: string; second: string };
  let secret: string;
  const compose = (sdl: string, target = urls.first, extra: { name: string; url: string; sdl: string }[] = []) => composeSubgraphs([{ name: 'alpha', url: target, sdl }, ...extra]);

  beforeAll(async () => {
    const first = await serveSubgraph('alpha', GUARD_B, { Query: { a: () => 'A', b: () => 'B' } });
    const second = await serveSubgraph('alpha', GUARD_B, { Query: { a: () => 'A from the second', b: () => 'B from the second' } }, first.secret);
    stops.push(() => first.app.stop(), () => second.app.stop());
    urls = { first: first.url, second: second.url };
    secret = first.secret;
    ({ gateway, url } = await startComposedGateway([{ ...first, sdl: GUARD_A }], { defaultSubgraphSecret: () => secret }));
    stops.push(() => gateway.stop());
  });
  afterAll(async () => {
    for (const stop of stops.reverse()) await stop();
  });

  it("a guard that moves to another field is enforced where it now is, for an operation planned before the reload", async () => {
    const headers = { authorization: `Bearer ${await mintToken({ ...DEVELOPMENT_AUTH, sub: '1' })}` };
    const before = await graphql(url, '{ a b }', {}, headers);
    expect(before.data).toEqual({ a: null, b: 'B' });
    expect(before.errors?.map((error) => error.path)).toEqual([['a']]);

    expect(await gateway.reloadSupergraph(compose(GUARD_B), 'test')).toMatchObject({ outcome: 'loaded', warmed: 1 });
    const after = await graphql(url, '{ a b }', {}, headers);
    expect(after.data).toEqual({ a: 'A', b: null });
    expect(after.errors?.map((error) => ({ path: error.path, code: error.extensions?.code }))).toEqual([{ path: ['b'], code: 'FORBIDDEN' }]);
  });

  it('a refused supergraph changes nothing: not even the URL of a subgraph it names', async () => {
    const served = gateway.supergraphHash();
    // It has a secret (the default), so only @apollo/gateway's building its data source refuses it: its URL is none.
    const ghost = { name: 'ghost', url: 'not a url', sdl: 'extend schema @link(url: "https://specs.apollo.dev/federation/v2.9", import: ["@key"])\ntype Query { ghost: String }' };
    const refused = await gateway.reloadSupergraph(compose(GUARD_B, urls.second, [ghost]), 'test');
    expect(refused).toMatchObject({ outcome: 'refused', serving: served });
    expect(refused.outcome === 'refused' && refused.reason).toMatch(/URL/);
    expect(gateway.supergraphHash()).toBe(served);
    expect((await graphql(url, '{ a }')).data).toEqual({ a: 'A' });

    // @apollo/gateway built the new URL's data source before it refused; the next supergraph naming that URL
    // (it builds nothing for a URL it has) must still be served there.
    expect(await gateway.reloadSupergraph(compose(GUARD_B, urls.second), 'test')).toMatchObject({ outcome: 'loaded' });
    expect((await graphql(url, '{ a }')).data).toEqual({ a: 'A from the second' });
  });
});
