// @interfaceObject: a subgraph that sees an entity interface as one object type adds fields to every
// implementation. From it, the plan must learn each object's concrete type from the subgraph that owns the
// interface before type conditions (and __typename) can be applied; into it, entities of any implementation are
// sent as the interface.
import { describe, expect, it } from 'vitest';
import { federation, federationSdl } from '../harness.ts';

const MEDIA = [
  { __typename: 'Book', id: 'b1', title: 'Dune', pages: 412 },
  { __typename: 'Movie', id: 'm1', title: 'Alien', minutes: 117 },
  { __typename: 'Book', id: 'b2', title: 'Emma', pages: 474 },
];
const medium = (id: string) => MEDIA.find((row) => row.id === id) ?? null;

/** Owns the interface and its implementations. */
const catalog = {
  name: 'catalog',
  typeDefs: federationSdl(
    ['@key'],
    `
type Query {
  media: [Media!]!
}
interface Media @key(fields: "id") {
  id: ID!
  title: String!
}
type Book implements Media @key(fields: "id") {
  id: ID!
  title: String!
  pages: Int!
}
type Movie implements Media @key(fields: "id") {
  id: ID!
  title: String!
  minutes: Int!
}
`,
  ),
  resolvers: {
    Query: { media: () => MEDIA },
    Media: {
      __resolveReference: ({ id }: { id: string }) => medium(id),
      __resolveType: (row: { __typename: string }) => row.__typename,
    },
    Book: { __resolveReference: ({ id }: { id: string }) => medium(id) },
    Movie: { __resolveReference: ({ id }: { id: string }) => medium(id) },
  },
};

/** x9 is rated, but the catalog does not know it: nobody can tell its concrete type. */
const RATINGS: Record<string, number> = { b1: 5, m1: 4, b2: 3, x9: 2 };

/** Sees Media as an object type: adds a rating and related media to every implementation, without knowing them. */
const ratings = {
  name: 'ratings',
  typeDefs: federationSdl(
    ['@key', '@interfaceObject'],
    `
type Query {
  topRated(first: Int!): [Media!]!
  rated(id: ID!): Media
}
type Media @key(fields: "id") @interfaceObject {
  id: ID!
  rating: Int!
  similar: [Media!]!
}
`,
  ),
  resolvers: {
    Query: {
      topRated: (_: unknown, { first }: { first: number }) =>
        Object.entries(RATINGS)
          .sort(([, a], [, b]) => b - a)
          .slice(0, first)
          .map(([id]) => ({ id })),
      rated: (_: unknown, { id }: { id: string }) => (id in RATINGS ? { id } : null),
    },
    Media: {
      __resolveReference: ({ id }: { id: string }) => ({ id }),
      rating: ({ id }: { id: string }) => RATINGS[id],
      similar: ({ id }: { id: string }) => (id === 'b1' ? [{ id: 'b2' }, { id: 'm1' }] : []),
    },
  },
};

describe('@interfaceObject', () => {
  const graph = federation([catalog, ratings]);

  it('adds the interface object fields to every implementation reached from the owner', async () => {
    await graph.expectAnswer(`{ media { __typename title rating } }`, undefined, {
      data: {
        media: [
          { __typename: 'Book', title: 'Dune', rating: 5 },
          { __typename: 'Movie', title: 'Alien', rating: 4 },
          { __typename: 'Book', title: 'Emma', rating: 3 },
        ],
      },
    });
  });

  it('learns the concrete type of objects that come from the interface object subgraph, for __typename and type conditions', async () => {
    await graph.expectAnswer(`{ topRated(first: 3) { id rating __typename ... on Book { pages } ... on Movie { minutes title } } }`, undefined, {
      data: {
        topRated: [
          { id: 'b1', rating: 5, __typename: 'Book', pages: 412 },
          { id: 'm1', rating: 4, __typename: 'Movie', minutes: 117, title: 'Alien' },
          { id: 'b2', rating: 3, __typename: 'Book', pages: 474 },
        ],
      },
    });
  });

  it('answers interface fields of objects from the interface object subgraph without asking for their type', async () => {
    await graph.expectAnswer(`{ topRated(first: 2) { title rating } }`, undefined, {
      data: {
        topRated: [
          { title: 'Dune', rating: 5 },
          { title: 'Alien', rating: 4 },
        ],
      },
    });
  });

  it('goes back and forth: implementations → interface object → its related media → their implementations', async () => {
    await graph.expectAnswer(`{ rated(id: "b1") { ... on Book { title similar { __typename rating ... on Movie { minutes } ... on Book { pages } } } } }`, undefined, {
      data: {
        rated: {
          title: 'Dune',
          similar: [
            { __typename: 'Book', rating: 3, pages: 474 },
            { __typename: 'Movie', rating: 4, minutes: 117 },
          ],
        },
      },
    });
  });

  it('answers null for a nullable interface object root that is missing, without another fetch', async () => {
    const query = `{ rated(id: "zz") { __typename title } }`;
    await graph.expectAnswer(query, undefined, { data: { rated: null } });
    for (const execution of ['apollo', 'own'] as const) {
      expect((await graph.askWith(execution, query)).requests.map((request) => request.subgraph)).toEqual(['ratings']);
    }
  });

  it('answers fields that need no concrete type for an object the interface owner does not know, and skips type conditions', async () => {
    await graph.expectAnswer(`{ rated(id: "x9") { id rating ... on Book { pages } } }`, undefined, { data: { rated: { id: 'x9', rating: 2 } } });
    await graph.expectAnswer(`{ rated(id: "x9") { id title } }`, undefined, {
      data: { rated: null },
      extensions: {
        valueCompletion: [{ message: 'Cannot return null for non-nullable field Media.title.', path: ['rated', 'title'], extensions: { code: 'INVALID_GRAPHQL' } }],
      },
    });
  });

  // Questionable, but Apollo's answer, which ours must give too: with no concrete type to report for x9, its
  // __typename nulls the object with no error at all, and in a non-null list even data is null without one.
  it("answers __typename of an object of unknown concrete type as Apollo's executor does: null, and no error", async () => {
    await graph.expectAnswer(`{ rated(id: "x9") { id rating __typename } }`, undefined, {
      data: { rated: null },
      // Deferred, the null stops at the deferred fragment (the spec's boundary), and `rated` keeps its id.
      deferDiffers: 'the silent null of __typename stops at a deferred fragment',
    });
    await graph.expectAnswer(`{ topRated(first: 4) { id __typename } }`, undefined, { data: null, deferDiffers: 'the silent null of __typename stops at a deferred fragment' });
  });
});
