// Entity fetches under an abstract type go only to the entities of the types that selected them: the planner's
// type-conditioned paths (`feed.@|[Article].product`), which our executor follows and Apollo's cannot. Without
// them every product in the feed is sent to every subgraph any branch needs, and a subgraph answers (or fails)
// for entities nobody asked it about. Three real subgraphs on loopback; the product subgraphs record what they
// were asked for.
import { graphql } from '@fed/platform/testing';
import { GraphQLError } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startComposedGateway } from '../fixtures/composed-gateway.ts';
import { serveSubgraph } from '../fixtures/keyed-entities-graph.ts';

const LINK = `extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])`;
const FEED_SDL = `${LINK}
type Query { feed: [FeedItem!]! }
union FeedItem = Article | Ad
type Article { id: ID! product: Product! }
type Ad { id: ID! product: Product! }
type Product @key(fields: "id") { id: ID! }
`;
const PRICES_SDL = `${LINK}
type Product @key(fields: "id") { id: ID! price: Int! }
`;
const RATINGS_SDL = `${LINK}
type Product @key(fields: "id") { id: ID! rating: Int }
`;

const FEED = [
  { __typename: 'Article', id: 'a1', product: { id: 'p1' } },
  { __typename: 'Ad', id: 'ad1', product: { id: 'p2' } },
  { __typename: 'Article', id: 'a2', product: { id: 'p3' } },
  { __typename: 'Ad', id: 'ad2', product: { id: 'unrated' } },
];

describe('type-conditioned entity fetches', () => {
  const stops: (() => Promise<unknown>)[] = [];
  const asked = { prices: [] as string[], ratings: [] as string[] };
  let url: string;

  beforeAll(async () => {
    const feed = await serveSubgraph('feed', FEED_SDL, { Query: { feed: () => FEED }, FeedItem: { __resolveType: (item: { __typename: string }) => item.__typename } });
    const prices = await serveSubgraph('prices', PRICES_SDL, {
      Product: {
        __resolveReference: ({ id }: { id: string }) => {
          asked.prices.push(id);
          // Only articles' products have a price: asked about an ad's, the subgraph fails.
          if (!id.startsWith('p') || id === 'p2') throw new GraphQLError(`No price for ${id}`);
          return { id, price: Number(id.slice(1)) * 100 };
        },
      },
    });
    const ratings = await serveSubgraph('ratings', RATINGS_SDL, {
      Product: {
        __resolveReference: ({ id }: { id: string }) => {
          asked.ratings.push(id);
          return { id };
        },
        rating: ({ id }: { id: string }) => {
          if (id === 'unrated') throw new GraphQLError('Not rated yet');
          return 4;
        },
      },
    });
    stops.push(() => feed.app.stop(), () => prices.app.stop(), () => ratings.app.stop());
    const started = await startComposedGateway([feed, prices, ratings]);
    stops.push(() => started.gateway.stop());
    url = started.url;
  });
  afterAll(async () => {
    for (const stop of stops.reverse()) await stop();
  });

  it('asks each subgraph only about the entities under the type that selected its field', async () => {
    asked.prices.length = 0;
    asked.ratings.length = 0;
    const response = await graphql(url, '{ feed { ... on Article { id product { price } } ... on Ad { id product { rating } } } }');
    expect(asked.prices.sort()).toEqual(['p1', 'p3']);
    expect(asked.ratings.sort()).toEqual(['p2', 'unrated']);
    expect(response.data).toEqual({
      feed: [
        { id: 'a1', product: { price: 100 } },
        { id: 'ad1', product: { rating: 4 } },
        { id: 'a2', product: { price: 300 } },
        { id: 'ad2', product: { rating: null } },
      ],
    });
    // The one failure is the one entity that failed, at its place in the whole feed (not among the ads alone).
    expect(response.errors?.map((error) => [error.path, error.extensions?.serviceName])).toEqual([[['feed', 3, 'product', 'rating'], 'ratings']]);
  });

  it('leaves out the entities of other types that hold the same field, so their failures never reach the answer', async () => {
    asked.ratings.length = 0;
    // Ads' products are in the answer too, whole entities (type and key), but only articles' ask for a rating.
    const response = await graphql(url, '{ feed { ... on Article { product { rating } } ... on Ad { product { __typename id } } } }');
    expect(asked.ratings.sort()).toEqual(['p1', 'p3']);
    expect(response.errors).toBeUndefined();
    expect(response.data).toEqual({ feed: [{ product: { rating: 4 } }, { product: { __typename: 'Product', id: 'p2' } }, { product: { rating: 4 } }, { product: { __typename: 'Product', id: 'unrated' } }] });
  });
});
