// @provides: a subgraph that can return some external fields of an entity on a given path answers them itself,
// and the owner is asked only for what was not provided. Which subgraphs each operation reaches is part of the
// answer here, as it is what @provides is for.
import { describe, expect, it } from 'vitest';
import { federation, federationSdl, type Execution } from '../harness.ts';

// The providing subgraph answers provided fields with values of its own ("(from reviews)"), to show which subgraph
// answered. Deferred, those fields are planned in a fetch of their own, from their owner.
const PROVIDED_VALUES_DIFFER = "provided values differ from the owner's on purpose, and a deferred fragment asks the owner";

const USERS = [
  { id: 'u1', username: 'ada', email: 'ada@example.com', address: { city: 'London', street: '12 Analytical Row' } },
  { id: 'u2', username: 'alan', email: 'alan@example.com', address: { city: 'Wilmslow', street: '43 Adlington Rd' } },
];
const user = (id: string) => USERS.find((row) => row.id === id) ?? null;

/** Owns users. */
const accounts = {
  name: 'accounts',
  typeDefs: federationSdl(
    ['@key', '@shareable'],
    `
type Query {
  me: User
}
type User @key(fields: "id") {
  id: ID!
  username: String! @shareable
  email: String!
  address: Address! @shareable
}
type Address @shareable {
  city: String!
  street: String!
}
interface Media {
  id: ID!
  title: String!
}
type Book implements Media @key(fields: "id") {
  id: ID!
  title: String! @shareable
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
    Query: { me: () => USERS[0] },
    User: { __resolveReference: ({ id }: { id: string }) => user(id) },
    Media: { __resolveType: (media: { __typename: string }) => media.__typename },
    Book: { __resolveReference: ({ id }: { id: string }) => ({ id, title: 'Dune', pages: 412 }) },
    Movie: { __resolveReference: ({ id }: { id: string }) => ({ id, title: 'Alien', minutes: 117 }) },
  },
};

// Reviews denormalise the author's username and city: it can answer them on `Review.author`, not elsewhere.
// The values it holds are deliberately marked, so the answers show which subgraph gave them.
const REVIEWS = [
  { id: 'r1', body: 'Great', authorId: 'u1', editorId: 'u2' },
  { id: 'r2', body: 'Fine', authorId: 'u2', editorId: 'u2' },
];

const reviews = {
  name: 'reviews',
  typeDefs: federationSdl(
    ['@key', '@external', '@provides', '@shareable'],
    `
type Query {
  reviews: [Review!]!
  picks: [Pick!]!
}
"Provides the title of books only, behind a type condition."
type Pick {
  subject: Media! @provides(fields: "... on Book { title }")
}
interface Media {
  id: ID!
}
type Book implements Media @key(fields: "id") {
  id: ID!
  title: String! @external
}
type Movie implements Media @key(fields: "id") {
  id: ID!
}
type Review {
  id: ID!
  body: String!
  author: User! @provides(fields: "username address { city }")
  "Not provided: every field but the id comes from accounts."
  editor: User!
}
type User @key(fields: "id") {
  id: ID!
  username: String! @external
  address: Address! @external
  reviews: [Review!]!
}
type Address @shareable {
  city: String!
}
`,
  ),
  resolvers: {
    Query: {
      reviews: () => REVIEWS,
      picks: () => [{ subject: { __typename: 'Book', id: 'b1', title: 'Dune (from reviews)' } }, { subject: { __typename: 'Movie', id: 'm1' } }],
    },
    Media: { __resolveType: (media: { __typename: string }) => media.__typename },
    Review: {
      author: (review: { authorId: string }) => {
        const author = user(review.authorId)!;
        return { id: author.id, username: `${author.username} (from reviews)`, address: { city: `${author.address.city} (from reviews)` } };
      },
      editor: (review: { editorId: string }) => ({ id: review.editorId }),
    },
    User: {
      __resolveReference: ({ id }: { id: string }) => ({ id }),
      reviews: ({ id }: { id: string }) => REVIEWS.filter((review) => review.authorId === id),
    },
  },
};

const subgraphsOf = (requests: Array<{ subgraph: string }>) => requests.map((request) => request.subgraph);

describe('@provides', () => {
  const graph = federation([accounts, reviews]);
  const executions: Execution[] = ['apollo', 'own'];

  it('answers provided fields (a scalar and a nested object field) from the providing subgraph alone', async () => {
    const query = `{ reviews { body author { id username address { city } } } }`;
    await graph.expectAnswer(query, undefined, {
      deferDiffers: PROVIDED_VALUES_DIFFER,
      data: {
        reviews: [
          { body: 'Great', author: { id: 'u1', username: 'ada (from reviews)', address: { city: 'London (from reviews)' } } },
          { body: 'Fine', author: { id: 'u2', username: 'alan (from reviews)', address: { city: 'Wilmslow (from reviews)' } } },
        ],
      },
    });
    for (const execution of executions) expect(subgraphsOf((await graph.askWith(execution, query)).requests)).toEqual(['reviews']);
  });

  it('asks the owner only for the fields that were not provided', async () => {
    const query = `{ reviews { author { username email address { city street } } } }`;
    await graph.expectAnswer(query, undefined, {
      deferDiffers: PROVIDED_VALUES_DIFFER,
      data: {
        reviews: [
          { author: { username: 'ada (from reviews)', email: 'ada@example.com', address: { city: 'London (from reviews)', street: '12 Analytical Row' } } },
          { author: { username: 'alan (from reviews)', email: 'alan@example.com', address: { city: 'Wilmslow (from reviews)', street: '43 Adlington Rd' } } },
        ],
      },
    });
    for (const execution of executions) {
      const { requests } = await graph.askWith(execution, query);
      expect(subgraphsOf(requests)).toEqual(['reviews', 'accounts']);
      // One _entities fetch, for both authors, of the missing fields only.
      expect(requests[1]!.query).toContain('_entities');
      expect(requests[1]!.query).not.toContain('username');
      expect(requests[1]!.variables.representations).toEqual([
        { __typename: 'User', id: 'u1' },
        { __typename: 'User', id: 'u2' },
      ]);
    }
  });

  it('does not use a provision off its path: the same fields of another User field come from the owner', async () => {
    const query = `{ reviews { editor { username address { city } } author { username } } }`;
    await graph.expectAnswer(query, undefined, {
      data: {
        reviews: [
          { editor: { username: 'alan', address: { city: 'Wilmslow' } }, author: { username: 'ada (from reviews)' } },
          { editor: { username: 'alan', address: { city: 'Wilmslow' } }, author: { username: 'alan (from reviews)' } },
        ],
      },
    });
  });

  it('goes back to the owner for an entity reached through the providing subgraph but off the provided path', async () => {
    await graph.expectAnswer(`{ me { username reviews { body author { username email } } } }`, undefined, {
      data: {
        me: { username: 'ada', reviews: [{ body: 'Great', author: { username: 'ada (from reviews)', email: 'ada@example.com' } }] },
      },
    });
  });

  it('uses a provision behind a type condition for the members it names, and the owner for the others', async () => {
    const query = `{ picks { subject { __typename id ... on Book { title } ... on Movie { title } } } }`;
    await graph.expectAnswer(query, undefined, {
      deferDiffers: PROVIDED_VALUES_DIFFER,
      data: {
        picks: [{ subject: { __typename: 'Book', id: 'b1', title: 'Dune (from reviews)' } }, { subject: { __typename: 'Movie', id: 'm1', title: 'Alien' } }],
      },
    });
    for (const execution of executions) {
      const { requests } = await graph.askWith(execution, query);
      expect(subgraphsOf(requests)).toEqual(['reviews', 'accounts']);
      expect(requests[1]!.variables.representations).toEqual([{ __typename: 'Movie', id: 'm1' }]);
    }
  });
});
