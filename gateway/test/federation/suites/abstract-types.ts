// Abstract types across subgraphs: an interface and a union whose members are entities owned by one subgraph and
// extended by another, a union declared only in the extending subgraph, type conditions (inline and named
// fragments, nested, on members that never occur) and __typename, with the fields behind each type condition
// fetched from the subgraph that owns them.
import { describe, expect, it } from 'vitest';
import { federation, federationSdl } from '../harness.ts';

const BOOKS = [
  { id: 'b1', title: 'Dune', pages: 412, authorId: 'a1' },
  { id: 'b2', title: 'Emma', pages: 474, authorId: 'a2' },
];
const MOVIES = [{ id: 'm1', title: 'Alien', minutes: 117 }];
/** A movie whose id is also a book's: only the type tells their representations apart. */
const TWIN_MOVIE = { id: 'b1', title: 'Dune (film)', minutes: 137 };
const AUTHORS = [
  { id: 'a1', name: 'Herbert' },
  { id: 'a2', name: 'Austen' },
];
const REVIEWS: Record<string, Array<{ stars: number; body: string }>> = {
  b1: [{ stars: 5, body: 'vast' }],
  b2: [],
  m1: [
    { stars: 4, body: 'tense' },
    { stars: 3, body: 'dark' },
  ],
};

const byId = <T extends { id: string }>(rows: T[], id: string) => rows.find((row) => row.id === id) ?? null;

/** Owns the media, their titles and authors; the interface and the union are its own. */
const catalog = {
  name: 'catalog',
  typeDefs: federationSdl(
    ['@key', '@shareable'],
    `
type Query {
  media: [Media!]!
  medium(id: ID!): Media
  search(term: String!): [SearchResult!]!
  "Book b1 and the movie with the same id, twice each."
  twins: [Media!]!
}
interface Media {
  id: ID!
  title: String!
}
type Book implements Media @key(fields: "id") {
  id: ID!
  title: String!
  pages: Int!
  author: Author!
}
type Movie implements Media @key(fields: "id") {
  id: ID!
  title: String!
  minutes: Int!
}
type Author @key(fields: "id") {
  id: ID!
  name: String!
}
union SearchResult = Book | Movie | Author
`,
  ),
  resolvers: {
    Query: {
      media: () => [...BOOKS.map((book) => ({ __typename: 'Book', ...book })), ...MOVIES.map((movie) => ({ __typename: 'Movie', ...movie }))],
      medium: (_: unknown, { id }: { id: string }) => {
        const book = byId(BOOKS, id);
        if (book) return { __typename: 'Book', ...book };
        const movie = byId(MOVIES, id);
        return movie && { __typename: 'Movie', ...movie };
      },
      twins: () => [
        { __typename: 'Book', ...BOOKS[0] },
        { __typename: 'Movie', ...TWIN_MOVIE },
        { __typename: 'Movie', ...TWIN_MOVIE },
        { __typename: 'Book', ...BOOKS[0] },
      ],
      search: (_: unknown, { term }: { term: string }) => [
        ...BOOKS.filter((book) => book.title.includes(term)).map((book) => ({ __typename: 'Book', ...book })),
        ...AUTHORS.filter((author) => author.name.includes(term)).map((author) => ({ __typename: 'Author', ...author })),
        ...MOVIES.filter((movie) => movie.title.includes(term)).map((movie) => ({ __typename: 'Movie', ...movie })),
      ],
    },
    Media: { __resolveType: (media: { __typename: string }) => media.__typename },
    SearchResult: { __resolveType: (result: { __typename: string }) => result.__typename },
    Book: {
      __resolveReference: ({ id }: { id: string }) => byId(BOOKS, id),
      author: (book: { authorId: string }) => byId(AUTHORS, book.authorId),
    },
    Movie: { __resolveReference: ({ id }: { id: string }) => byId([...MOVIES, TWIN_MOVIE], id) },
    Author: { __resolveReference: ({ id }: { id: string }) => byId(AUTHORS, id) },
  },
};

/**
 * Adds reviews to both media types, and the interface's `reviewCount` (so an interface field lives in another
 * subgraph than the interface's root field); its own union `Reviewable` groups the entities it reviews.
 */
const reviews = {
  name: 'reviews',
  typeDefs: federationSdl(
    ['@key'],
    `
type Query {
  latestReviews: [Review!]!
}
interface Media {
  id: ID!
  reviewCount: Int!
}
type Book implements Media @key(fields: "id") {
  id: ID!
  reviewCount: Int!
  reviews: [Review!]!
  label: String!
}
type Movie implements Media @key(fields: "id") {
  id: ID!
  reviewCount: Int!
  reviews: [Review!]!
  label: String!
}
type Review {
  stars: Int!
  body: String!
  subject: Reviewable!
}
union Reviewable = Book | Movie
`,
  ),
  resolvers: {
    Query: {
      latestReviews: () => [
        { stars: 4, body: 'tense', subject: { __typename: 'Movie', id: 'm1' } },
        { stars: 5, body: 'vast', subject: { __typename: 'Book', id: 'b1' } },
      ],
    },
    Media: { __resolveType: (media: { __typename: string }) => media.__typename },
    Reviewable: { __resolveType: (subject: { __typename: string }) => subject.__typename },
    Book: {
      __resolveReference: ({ id }: { id: string }) => ({ id }),
      reviewCount: ({ id }: { id: string }) => REVIEWS[id]!.length,
      reviews: ({ id }: { id: string }) => REVIEWS[id]!.map((review) => ({ ...review, subject: { __typename: 'Book', id } })),
      label: ({ id }: { id: string }) => `book ${id}`,
    },
    Movie: {
      __resolveReference: ({ id }: { id: string }) => ({ id }),
      reviewCount: ({ id }: { id: string }) => REVIEWS[id]!.length,
      reviews: ({ id }: { id: string }) => REVIEWS[id]!.map((review) => ({ ...review, subject: { __typename: 'Movie', id } })),
      label: ({ id }: { id: string }) => `movie ${id}`,
    },
  },
};

describe('abstract types across subgraphs', () => {
  const graph = federation([catalog, reviews]);

  it('resolves an interface list with inline fragments on each member, fetching member fields from another subgraph', async () => {
    await graph.expectAnswer(
      `{ media { __typename id title ... on Book { pages reviews { stars } } ... on Movie { minutes reviewCount } } }`,
      undefined,
      {
        data: {
          media: [
            { __typename: 'Book', id: 'b1', title: 'Dune', pages: 412, reviews: [{ stars: 5 }] },
            { __typename: 'Book', id: 'b2', title: 'Emma', pages: 474, reviews: [] },
            { __typename: 'Movie', id: 'm1', title: 'Alien', minutes: 117, reviewCount: 2 },
          ],
        },
      },
    );
  });

  it('resolves an interface field that another subgraph contributes, on every member', async () => {
    await graph.expectAnswer(`{ media { title reviewCount } }`, undefined, {
      data: {
        media: [
          { title: 'Dune', reviewCount: 1 },
          { title: 'Emma', reviewCount: 0 },
          { title: 'Alien', reviewCount: 2 },
        ],
      },
    });
  });

  it('merges named fragments on the interface and on a member, with aliases and __typename in both', async () => {
    await graph.expectAnswer(
      `query Q { medium(id: "b1") { ...M ...B kind: __typename } }
       fragment M on Media { id name: title __typename }
       fragment B on Book { pages author { name } count: reviewCount }`,
      undefined,
      { data: { medium: { id: 'b1', name: 'Dune', __typename: 'Book', pages: 412, author: { name: 'Herbert' }, count: 1, kind: 'Book' } } },
    );
  });

  it('answers null for a nullable interface field whose object is missing, with no fetch to the other subgraph', async () => {
    const answers = await graph.expectAnswer(`{ medium(id: "nope") { id reviewCount } }`, undefined, { data: { medium: null } });
    expect(Object.keys(answers)).toHaveLength(2);
    for (const execution of ['apollo', 'own'] as const) {
      const { requests } = await graph.askWith(execution, `{ medium(id: "nope") { id reviewCount } }`);
      expect(requests.map((request) => request.subgraph)).toEqual(['catalog']);
    }
  });

  it('selects union members by their runtime type: fragments on some members only, and on an interface they implement', async () => {
    await graph.expectAnswer(
      `{ search(term: "e") { __typename ... on Media { id } ... on Book { title reviewCount } ... on Author { name } } }`,
      undefined,
      {
        data: {
          search: [
            // In the order the subgraph returned them (Dune, not Emma: no lowercase e); a Movie gets only the Media fields.
            { __typename: 'Book', id: 'b1', title: 'Dune', reviewCount: 1 },
            { __typename: 'Author', name: 'Herbert' },
            { __typename: 'Author', name: 'Austen' },
            { __typename: 'Movie', id: 'm1' },
          ],
        },
      },
    );
  });

  it('gives a member no fields when no type condition matches it, only __typename when asked', async () => {
    await graph.expectAnswer(`{ search(term: "Alien") { ... on Book { title } } all: search(term: "Alien") { __typename ... on Author { name } } }`, undefined, {
      data: { search: [{}], all: [{ __typename: 'Movie' }] },
    });
  });

  it('resolves a union declared only in the extending subgraph, with fields of its members from the owner', async () => {
    await graph.expectAnswer(
      `{ latestReviews { stars subject { __typename ... on Book { title author { name } } ... on Movie { title minutes } } } }`,
      undefined,
      {
        data: {
          latestReviews: [
            { stars: 4, subject: { __typename: 'Movie', title: 'Alien', minutes: 117 } },
            { stars: 5, subject: { __typename: 'Book', title: 'Dune', author: { name: 'Herbert' } } },
          ],
        },
      },
    );
  });

  it('follows nested abstract types back and forth: union → member → its list → union again', async () => {
    await graph.expectAnswer(
      `{ search(term: "Alien") { ... on Movie { title reviews { body subject { ... on Movie { minutes } ... on Book { pages } } } } } }`,
      undefined,
      {
        data: {
          search: [
            {
              title: 'Alien',
              reviews: [
                { body: 'tense', subject: { minutes: 117 } },
                { body: 'dark', subject: { minutes: 117 } },
              ],
            },
          ],
        },
      },
    );
  });

  it('applies a type condition spread inside another one (a fragment on the union inside a fragment on a member)', async () => {
    await graph.expectAnswer(
      `{ media { ... on Book { ...R } } } fragment R on SearchResult { ... on Book { id } ... on Movie { id minutes } }`,
      undefined,
      { data: { media: [{ id: 'b1' }, { id: 'b2' }, {}] } },
    );
  });

  it('answers one response key from different fields on different member types, and __typename at the root', async () => {
    await graph.expectAnswer(`{ kind: __typename media { ... on Book { size: pages n: reviewCount } ... on Movie { size: minutes n: reviewCount } } }`, undefined, {
      data: {
        kind: 'Query',
        media: [
          { size: 412, n: 1 },
          { size: 474, n: 0 },
          { size: 117, n: 2 },
        ],
      },
    });
  });

  // Keys in Apollo's order, which the gateway keeps: graphql-js would order a Book's keys author, id, reviews
  // (first seen) and a review's stars, body; Apollo's executor answers author, reviews, id and body, stars.
  it('merges the sub-selections of one field selected under several type conditions', async () => {
    await graph.expectAnswer(
      `{ media { ... on Book { author { name } } ... on Media { id ... on Book { author { id } reviews { stars } } } ... on Book { reviews { body } } } }`,
      undefined,
      {
        data: {
          media: [
            { author: { name: 'Herbert', id: 'a1' }, reviews: [{ body: 'vast', stars: 5 }], id: 'b1' },
            { author: { name: 'Austen', id: 'a2' }, reviews: [], id: 'b2' },
            { id: 'm1' },
          ],
        },
      },
    );
  });

  it('tells apart entities of different types with the same key in one fetch, each repeated', async () => {
    await graph.expectAnswer(`{ twins { __typename title ... on Book { label } ... on Movie { label minutes } } }`, undefined, {
      data: {
        twins: [
          { __typename: 'Book', title: 'Dune', label: 'book b1' },
          { __typename: 'Movie', title: 'Dune (film)', label: 'movie b1', minutes: 137 },
          { __typename: 'Movie', title: 'Dune (film)', label: 'movie b1', minutes: 137 },
          { __typename: 'Book', title: 'Dune', label: 'book b1' },
        ],
      },
    });
  });

  it('makes no entity fetch when no object needs it (no match for the type condition, or an empty list)', async () => {
    for (const query of [`{ search(term: "Alien") { ... on Book { reviewCount } } }`, `{ search(term: "zzz") { ... on Movie { reviewCount } } }`]) {
      const answers = await graph.ask(query);
      expect(answers.own.text).toBe(answers.apollo.text);
      for (const execution of ['apollo', 'own'] as const) {
        expect((await graph.askWith(execution, query)).requests.map((request) => request.subgraph)).toEqual(['catalog']);
      }
    }
    await graph.expectAnswer(`{ search(term: "Alien") { ... on Book { reviewCount } } none: search(term: "zzz") { ... on Movie { reviewCount } } }`, undefined, {
      data: { search: [{}], none: [] },
    });
  });
});
