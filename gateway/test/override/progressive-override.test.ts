// Progressive override on a running gateway: a field moving from one subgraph to another behind labels,
// `percent(50)` split by viewer and a custom label only trusted callers may turn on. Two real subgraphs on
// loopback, each answering with its own name, so every answer says which one served it.
import { graphql } from '@fed/platform/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEVELOPMENT_AUTH } from '../../src/config.ts';
import { mintToken, type Gateway } from '../../src/gateway.ts';
import { OVERRIDE_LABELS_HEADER, OVERRIDE_LABELS_SCOPE } from '../../src/override/labels.ts';
import { startComposedGateway } from '../fixtures/composed-gateway.ts';
import { serveSubgraph } from '../fixtures/keyed-entities-graph.ts';

const FEDERATION = 'extend schema @link(url: "https://specs.apollo.dev/federation/v2.7", import: ["@key", "@override"])';
const LEGACY_SDL = `${FEDERATION}
type Query { product(id: ID!): Product }
type Product @key(fields: "id") { id: ID! price: String! stock: String! }
`;
const PRICING_SDL = `${FEDERATION}
type Product @key(fields: "id") {
  id: ID!
  price: String! @override(from: "legacy", label: "percent(50)")
  stock: String! @override(from: "legacy", label: "canary")
}
`;

describe('progressive override labels', () => {
  const stops: (() => Promise<unknown>)[] = [];
  let url: string;
  let gateway: Gateway;
  const token = (sub: string, scopes?: string[]) => mintToken({ ...DEVELOPMENT_AUTH, sub, scopes });
  const ask = async (field: 'price' | 'stock', headers: Record<string, string>) => {
    const response = await graphql<{ product: Record<string, string> }>(url, `{ product(id: "p1") { id ${field} } }`, {}, headers);
    expect(response.errors).toBeUndefined();
    return String(response.data!.product[field]);
  };

  beforeAll(async () => {
    const product = (from: string) => ({ __resolveReference: ({ id }: { id: string }) => ({ id, price: from, stock: from }) });
    const legacy = await serveSubgraph('legacy', LEGACY_SDL, { Query: { product: (_: unknown, { id }: { id: string }) => ({ id, price: 'legacy', stock: 'legacy' }) }, Product: product('legacy') });
    const pricing = await serveSubgraph('pricing', PRICING_SDL, { Product: product('pricing') });
    stops.push(() => legacy.app.stop(), () => pricing.app.stop());
    ({ gateway, url } = await startComposedGateway([legacy, pricing]));
    stops.push(() => gateway.stop());
  });
  afterAll(async () => {
    for (const stop of stops.reverse()) await stop();
  });

  it('percent(50) sends about half of the viewers to the new subgraph, each viewer always to the same one', async () => {
    const served = new Map<string, string>();
    for (let sub = 1; sub <= 200; sub++) {
      const headers = { authorization: `Bearer ${await token(String(sub))}` };
      const first = await ask('price', headers);
      served.set(String(sub), first);
      // Asked again (plans are cached per label combination): never the other subgraph.
      for (let again = 0; again < 3; again++) expect(await ask('price', headers)).toBe(first);
    }
    const moved = [...served.values()].filter((from) => from === 'pricing').length;
    expect(moved).toBeGreaterThan(70);
    expect(moved).toBeLessThan(130);
    expect(new Set(served.values())).toEqual(new Set(['legacy', 'pricing']));
  });

  it('anonymous requests are split per request', async () => {
    const answers = new Set<string>();
    for (let request = 0; request < 60 && answers.size < 2; request++) answers.add(await ask('price', {}));
    expect(answers).toEqual(new Set(['legacy', 'pricing']));
  });

  it('a custom label is on only for a caller with the trusted scope that names it', async () => {
    const trusted = { authorization: `Bearer ${await token('7', [OVERRIDE_LABELS_SCOPE])}` };
    const untrusted = { authorization: `Bearer ${await token('7', ['orders:read'])}` };
    expect(await ask('stock', trusted)).toBe('legacy');
    expect(await ask('stock', { ...trusted, [OVERRIDE_LABELS_HEADER]: 'canary' })).toBe('pricing');
    expect(await ask('stock', { ...trusted, [OVERRIDE_LABELS_HEADER]: 'other, canary' })).toBe('pricing');
    expect(await ask('stock', { ...untrusted, [OVERRIDE_LABELS_HEADER]: 'canary' })).toBe('legacy');
    expect(await ask('stock', { [OVERRIDE_LABELS_HEADER]: 'canary' })).toBe('legacy');
    // And the trusted caller without the header is back on the old subgraph: the label is not remembered.
    expect(await ask('stock', trusted)).toBe('legacy');
  });
});
