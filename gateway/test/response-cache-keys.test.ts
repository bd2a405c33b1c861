// The response cache on a supergraph written for the test, whose keys are `@external` where the type is
// extended, compound, or nested: with the cache on, every answer equals the answer with it off (tagging never
// changes what a subgraph is asked for), it is cached, and a write to such an entity purges it. Real subgraphs
// over HTTP on loopback; the writes are announced on the bus, as a subgraph's event is.
import { randomUUID } from 'node:crypto';
import { DOMAIN_EVENTS_CHANNEL, listen, MemoryPubSub, MemoryResponseStore, slotOf, type DomainEvent } from '@fed/platform';
import { graphql, waitFor, type GraphQLResponse } from '@fed/platform/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGateway, type Gateway } from '../src/gateway.ts';
import { cacheKeys } from '../src/response-cache/request-key.ts';
import { accountKey, shipmentKey, startKeyedGraph, type KeyedGraph } from './fixtures/keyed-entities-graph.ts';
import { testGatewayDeps } from './fixtures/composed-gateway.ts';

const isHit = (response: GraphQLResponse<unknown>) => response.headers.get('age') !== null;

describe('the response cache on entities with @external, compound and nested keys', () => {
  let graph: KeyedGraph;
  const gateways: Gateway[] = [];
  const bus = new MemoryPubSub();
  let cached: string;
  let uncached: string;

  const start = async (responseCache: boolean) => {
    const gateway = await createGateway({
      supergraphSdl: graph.supergraphSdl,
      subgraphUrls: graph.urls,
      subgraphSecrets: graph.secrets,
      ...testGatewayDeps(),
      responseCache: responseCache ? { store: new MemoryResponseStore({ maxTtlSeconds: 300 }), events: bus, maxTtlSeconds: 300 } : null,
    });
    gateways.push(gateway);
    return `http://127.0.0.1:${await listen(gateway.httpServer, 0, '127.0.0.1')}/graphql`;
  };

  /** A write committed by `source`, announced as its outbox would. */
  const announce = (source: 'catalog' | 'reviews', ...changed: string[]) => {
    const event: DomainEvent = { id: randomUUID(), kind: 'USER_UPDATED', userId: '0', occurredAt: new Date().toISOString(), source, changed };
    return bus.publish(DOMAIN_EVENTS_CHANNEL, event);
  };

  /** The answer through the cache equals the uncached one, has no error, and the next one is a hit. */
  const cachedAnswer = async (query: string) => {
    const reference = await graphql(uncached, query);
    expect(reference.errors).toBeUndefined();
    const first = await graphql(cached, query);
    expect({ data: first.data, errors: first.errors }).toEqual({ data: reference.data, errors: undefined });
    const again = await graphql(cached, query);
    expect(isHit(again)).toBe(true);
    expect(again.data).toEqual(reference.data);
    return reference.data;
  };

  /** After `write`, the cached gateway answers as the uncached one does (the entry was purged). */
  const purgedBy = async (query: string, write: () => Promise<void>) => {
    const before = await cachedAnswer(query);
    await write();
    const reference = await graphql(uncached, query);
    expect(reference.data).not.toEqual(before);
    await waitFor(async () => expect((await graphql(cached, query)).data).toEqual(reference.data));
  };

  beforeAll(async () => {
    graph = await startKeyedGraph();
    cached = await start(true);
    uncached = await start(false);
  });
  afterAll(async () => {
    for (const gateway of gateways) await gateway.stop();
    await graph?.stop();
  });

  it('answers as without the cache where the extending subgraph declares the key @external (and never returns it)', async () => {
    for (const query of [
      '{ product(upc: "p1") { name reviewCount } }',
      '{ product(upc: "p1") { upc name reviewCount } }',
      '{ products { upc reviewCount } }',
      '{ shipment(carrier: "ups", number: "42") { status eta } }',
      '{ account(ownerId: "o1", handle: "ada") { displayName followers owner { id } } }',
      // Named fragments, which the planner may pass on to the subgraphs.
      'query { product(upc: "p2") { ...Product } } fragment Product on Product { name reviewCount }',
      'query { shipment(carrier: "ups", number: "42") { ...Shipment } } fragment Shipment on Shipment { carrier status eta }',
    ]) {
      await cachedAnswer(query);
    }
  });

  it('purges an answer when the subgraph that extends the entity writes it (its event names the key it was sent)', async () => {
    await purgedBy('{ product(upc: "p1") { name reviewCount } }', async () => {
      graph.data.products.get('p1')!.reviewCount += 1;
      await announce('reviews', 'Product:p1');
    });
    await purgedBy('{ products { name reviewCount } }', async () => {
      graph.data.products.get('p2')!.reviewCount += 1;
      await announce('reviews', 'Product:p2');
    });
    // Compound: the key's values in its order, joined by commas.
    await purgedBy('{ shipment(carrier: "ups", number: "42") { status eta } }', async () => {
      graph.data.shipments.get(shipmentKey('ups', '42'))!.eta = 'tuesday';
      await announce('reviews', 'Shipment:ups,42');
    });
    // Nested: the leaves of the key, depth first, in its order.
    await purgedBy('{ account(ownerId: "o1", handle: "ada") { displayName followers } }', async () => {
      graph.data.accounts.get(accountKey('o1', 'ada'))!.followers += 1;
      await announce('reviews', 'Account:o1,ada');
    });
  });

  it('purges an answer when the subgraph that owns the entity writes it, though the client never asked for the key', async () => {
    await purgedBy('{ product(upc: "p1") { name reviewCount } }', async () => {
      graph.data.products.get('p1')!.name = 'Brass Lamp';
      await announce('catalog', 'Product:p1');
    });
    await purgedBy('{ shipment(carrier: "ups", number: "42") { status } }', async () => {
      graph.data.shipments.get(shipmentKey('ups', '42'))!.status = 'DELIVERED';
      await announce('catalog', 'Shipment:ups,42');
    });
    await purgedBy('{ account(ownerId: "o1", handle: "ada") { displayName } }', async () => {
      graph.data.accounts.get(accountKey('o1', 'ada'))!.displayName = 'Ada L.';
      await announce('catalog', 'Account:o1,ada');
    });
  });
});

describe('cache keys', () => {
  const request = { documentHash: 'a'.repeat(64), operationName: 'Q', variables: '{}', contentType: 'application/json' };
  const admin = { userId: '1', role: 'admin' } as const;

  it("puts a viewer's private key in its public twin's cluster slot, and tells viewers apart", () => {
    const keys = cacheKeys('schema', request, admin);
    // One slot: on a Redis Cluster both sit in one bucket, so the lookup of the two is one script on one node.
    expect(slotOf(keys.private ?? '')).toBe(slotOf(keys.public));
    expect(keys.private).not.toBe(keys.public);
    expect(cacheKeys('schema', request, { userId: '2', role: 'admin' }).private).not.toBe(keys.private);
    expect(cacheKeys('schema', request, { userId: '1', role: 'user' }).private).not.toBe(keys.private);
    expect(cacheKeys('schema', request, null)).toEqual({ public: keys.public, private: undefined });
    // Other requests spread over the slots.
    const slots = new Set(Array.from({ length: 16 }, (_, index) => slotOf(cacheKeys('schema', { ...request, variables: `{"n":${index}}` }, admin).public)));
    expect(slots.size).toBeGreaterThan(8);
  });
});
