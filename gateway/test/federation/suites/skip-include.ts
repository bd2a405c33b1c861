// @skip and @include with variables where a field, an inline fragment or a fragment spread crosses into another
// subgraph: the answer has exactly the selected fields, a fetch whose every field is excluded is not made, and a
// key the client skips is still sent to the next subgraph.
import { describe, expect, it } from 'vitest';
import { federation, federationSdl, type Execution } from '../harness.ts';

const USERS = [
  { id: 'u1', name: 'Ada' },
  { id: 'u2', name: 'Alan' },
];
const POSTS = [
  { id: 'x1', title: 'Engines', authorId: 'u1' },
  { id: 'x2', title: 'Machines', authorId: 'u2' },
  { id: 'x3', title: 'Notes', authorId: 'u1' },
];

const users = {
  name: 'users',
  typeDefs: federationSdl(
    ['@key'],
    `
type Query {
  users: [User!]!
}
type User @key(fields: "id") {
  id: ID!
  name: String!
}
`,
  ),
  resolvers: {
    Query: { users: () => USERS },
    User: { __resolveReference: ({ id }: { id: string }) => USERS.find((user) => user.id === id) },
  },
};

const posts = {
  name: 'posts',
  typeDefs: federationSdl(
    ['@key'],
    `
type Query {
  posts(where: PostFilter): [Post!]!
}
input PostFilter {
  authorIds: [ID!]
  titleContains: String
}
type Post {
  id: ID!
  title: String!
  author: User!
}
type User @key(fields: "id") {
  id: ID!
  "All of them unless first is given."
  posts(first: Int, order: Order = OLDEST): [Post!]!
  "The newest one, unless the arguments say otherwise (null: all of them, oldest first)."
  recent(first: Int = 1, order: Order = NEWEST): [Post!]!
  postCount: Int!
}
enum Order {
  OLDEST
  NEWEST
}
`,
  ),
  resolvers: {
    Query: {
      posts: (_: unknown, { where }: { where?: { authorIds?: string[] | null; titleContains?: string | null } | null }) =>
        POSTS.filter((post) => (!where?.authorIds || where.authorIds.includes(post.authorId)) && (!where?.titleContains || post.title.includes(where.titleContains))),
    },
    Post: { author: (post: { authorId: string }) => ({ id: post.authorId }) },
    User: {
      __resolveReference: ({ id }: { id: string }) => ({ id }),
      posts: ({ id }: { id: string }, { first, order }: { first?: number | null; order: string | null }) => {
        const own = POSTS.filter((post) => post.authorId === id);
        if (order === 'NEWEST') own.reverse();
        return first === null || first === undefined ? own : own.slice(0, first);
      },
      recent: ({ id }: { id: string }, { first, order }: { first: number | null; order: string | null }) => {
        const own = POSTS.filter((post) => post.authorId === id);
        if (order === 'NEWEST') own.reverse();
        return first === null ? own : own.slice(0, first);
      },
      postCount: ({ id }: { id: string }) => POSTS.filter((post) => post.authorId === id).length,
    },
  },
};

const subgraphsOf = (requests: Array<{ subgraph: string }>) => requests.map((request) => request.subgraph);
const executions: Execution[] = ['apollo', 'own'];

describe('@skip and @include across fetch boundaries', () => {
  const graph = federation([users, posts]);

  const withPosts = `query ($withPosts: Boolean!) { users { name posts @include(if: $withPosts) { title } } }`;

  it('includes a field of another subgraph when the variable says so, and makes no fetch for it otherwise', async () => {
    await graph.expectAnswer(withPosts, { withPosts: true }, {
      data: {
        users: [
          { name: 'Ada', posts: [{ title: 'Engines' }, { title: 'Notes' }] },
          { name: 'Alan', posts: [{ title: 'Machines' }] },
        ],
      },
    });
    await graph.expectAnswer(withPosts, { withPosts: false }, { data: { users: [{ name: 'Ada' }, { name: 'Alan' }] } });
    for (const execution of executions) {
      expect(subgraphsOf((await graph.askWith(execution, withPosts, { withPosts: false })).requests)).toEqual(['users']);
      expect(subgraphsOf((await graph.askWith(execution, withPosts, { withPosts: true })).requests)).toEqual(['users', 'posts']);
    }
  });

  it('applies @skip on an inline fragment with a type condition and on a named fragment spread', async () => {
    const query = `query ($brief: Boolean!) {
      users { name ... on User @skip(if: $brief) { postCount } ...Titles @skip(if: $brief) }
    }
    fragment Titles on User { posts { title } }`;
    await graph.expectAnswer(query, { brief: true }, { data: { users: [{ name: 'Ada' }, { name: 'Alan' }] } });
    await graph.expectAnswer(query, { brief: false }, {
      data: {
        users: [
          { name: 'Ada', postCount: 2, posts: [{ title: 'Engines' }, { title: 'Notes' }] },
          { name: 'Alan', postCount: 1, posts: [{ title: 'Machines' }] },
        ],
      },
    });
  });

  it('needs both conditions of @skip and @include on one field to let it through', async () => {
    const query = `query ($skip: Boolean!, $include: Boolean!) { users { name postCount @skip(if: $skip) @include(if: $include) } }`;
    const without = { data: { users: [{ name: 'Ada' }, { name: 'Alan' }] } };
    await graph.expectAnswer(query, { skip: false, include: true }, { data: { users: [{ name: 'Ada', postCount: 2 }, { name: 'Alan', postCount: 1 }] } });
    await graph.expectAnswer(query, { skip: true, include: true }, without);
    await graph.expectAnswer(query, { skip: false, include: false }, without);
    await graph.expectAnswer(query, { skip: true, include: false }, without);
  });

  it("uses a variable's default value when the request leaves it out", async () => {
    const query = `query ($counts: Boolean = false) { users { name postCount @include(if: $counts) } }`;
    await graph.expectAnswer(query, undefined, { data: { users: [{ name: 'Ada' }, { name: 'Alan' }] } });
    await graph.expectAnswer(query, { counts: true }, { data: { users: [{ name: 'Ada', postCount: 2 }, { name: 'Alan', postCount: 1 }] } });
  });

  it('still sends the key to the next subgraph when the client skips the key field itself', async () => {
    const query = `query ($ids: Boolean!) { users { id @include(if: $ids) postCount } }`;
    await graph.expectAnswer(query, { ids: false }, { data: { users: [{ postCount: 2 }, { postCount: 1 }] } });
    await graph.expectAnswer(query, { ids: true }, { data: { users: [{ id: 'u1', postCount: 2 }, { id: 'u2', postCount: 1 }] } });
  });

  it('keeps a field selected both with a false condition and without one', async () => {
    await graph.expectAnswer(`query ($no: Boolean!) { users { name @include(if: $no) postCount @skip(if: true) name } }`, { no: false }, {
      data: { users: [{ name: 'Ada' }, { name: 'Alan' }] },
    });
  });

  it('skips a root field of one subgraph while the other root field and its nested entity fields are fetched', async () => {
    const query = `query ($u: Boolean!, $n: Boolean!) { users @include(if: $u) { name } posts { title author { name @include(if: $n) } } }`;
    await graph.expectAnswer(query, { u: false, n: true }, {
      data: {
        posts: [
          { title: 'Engines', author: { name: 'Ada' } },
          { title: 'Machines', author: { name: 'Alan' } },
          { title: 'Notes', author: { name: 'Ada' } },
        ],
      },
    });
    await graph.expectAnswer(query, { u: true, n: false }, {
      data: { users: [{ name: 'Ada' }, { name: 'Alan' }], posts: [{ title: 'Engines', author: {} }, { title: 'Machines', author: {} }, { title: 'Notes', author: {} }] },
    });
    for (const execution of executions) {
      expect(subgraphsOf((await graph.askWith(execution, query, { u: false, n: false })).requests)).toEqual(['posts']);
    }
  });

  it('applies literal conditions, and conditions inside a fragment spread under another condition', async () => {
    const query = `query ($outer: Boolean!, $inner: Boolean!) {
      posts { title author @include(if: $outer) { ...Author } }
      users @skip(if: false) { name @include(if: false) id }
    }
    fragment Author on User { name postCount @include(if: $inner) }`;
    await graph.expectAnswer(query, { outer: true, inner: true }, {
      data: {
        posts: [
          { title: 'Engines', author: { name: 'Ada', postCount: 2 } },
          { title: 'Machines', author: { name: 'Alan', postCount: 1 } },
          { title: 'Notes', author: { name: 'Ada', postCount: 2 } },
        ],
        users: [{ id: 'u1' }, { id: 'u2' }],
      },
    });
    await graph.expectAnswer(query, { outer: true, inner: false }, {
      data: {
        posts: [
          { title: 'Engines', author: { name: 'Ada' } },
          { title: 'Machines', author: { name: 'Alan' } },
          { title: 'Notes', author: { name: 'Ada' } },
        ],
        users: [{ id: 'u1' }, { id: 'u2' }],
      },
    });
    await graph.expectAnswer(query, { outer: false, inner: true }, {
      data: { posts: [{ title: 'Engines' }, { title: 'Machines' }, { title: 'Notes' }], users: [{ id: 'u1' }, { id: 'u2' }] },
    });
  });

  it('leaves an argument out of an entity fetch when its variable is not given, so the subgraph applies its default', async () => {
    const query = `query ($n: Int, $order: Order) { users { name recent(first: $n, order: $order) { title } } }`;
    const answer = (ada: string[], alan: string[]) => ({
      data: {
        users: [
          { name: 'Ada', recent: ada.map((title) => ({ title })) },
          { name: 'Alan', recent: alan.map((title) => ({ title })) },
        ],
      },
    });
    await graph.expectAnswer(query, {}, answer(['Notes'], ['Machines']));
    await graph.expectAnswer(query, { n: 2 }, answer(['Notes', 'Engines'], ['Machines']));
    // An explicit null is passed on as null: every post, oldest first.
    await graph.expectAnswer(query, { n: null, order: null }, answer(['Engines', 'Notes'], ['Machines']));
    await graph.expectAnswer(`{ users { name recent(first: null) { title } } }`, undefined, answer(['Notes', 'Engines'], ['Machines']));
  });

  it('passes input objects, lists and enums in variables and literals to the root fetch and to entity fetches', async () => {
    await graph.expectAnswer(
      `query ($where: PostFilter!, $order: Order!) { posts(where: $where) { title author { name posts(order: $order, first: 1) { title } } } }`,
      { where: { authorIds: ['u1'], titleContains: 'e' }, order: 'NEWEST' },
      { data: { posts: [{ title: 'Engines', author: { name: 'Ada', posts: [{ title: 'Notes' }] } }, { title: 'Notes', author: { name: 'Ada', posts: [{ title: 'Notes' }] } }] } },
    );
    await graph.expectAnswer(`{ posts(where: { authorIds: ["u2", "nobody"], titleContains: null }) { title } }`, undefined, { data: { posts: [{ title: 'Machines' }] } });
  });

  it('answers empty objects where every field is skipped, and __typename of an entity without fetching it', async () => {
    const query = `query ($no: Boolean!) { users { posts @include(if: $no) { title } } posts { author { __typename } } }`;
    await graph.expectAnswer(query, { no: false }, {
      data: { users: [{}, {}], posts: [{ author: { __typename: 'User' } }, { author: { __typename: 'User' } }, { author: { __typename: 'User' } }] },
    });
    for (const execution of executions) {
      expect(subgraphsOf((await graph.askWith(execution, query, { no: false })).requests).sort()).toEqual(['posts', 'users']);
    }
  });

  it('goes back and forth between the subgraphs several levels deep', async () => {
    await graph.expectAnswer(`{ users { name posts { title author { name postCount posts(first: 1) { author { id name } } } } } }`, undefined, {
      data: {
        users: [
          {
            name: 'Ada',
            posts: [
              { title: 'Engines', author: { name: 'Ada', postCount: 2, posts: [{ author: { id: 'u1', name: 'Ada' } }] } },
              { title: 'Notes', author: { name: 'Ada', postCount: 2, posts: [{ author: { id: 'u1', name: 'Ada' } }] } },
            ],
          },
          { name: 'Alan', posts: [{ title: 'Machines', author: { name: 'Alan', postCount: 1, posts: [{ author: { id: 'u2', name: 'Alan' } }] } }] },
        ],
      },
    });
  });

  it('applies conditions to __typename, and to fragments on the root type', async () => {
    const query = `query ($t: Boolean!) { ...Root ... on Query @include(if: $t) { posts { title } } kind: __typename @skip(if: $t) }
      fragment Root on Query { users { __typename @include(if: $t) t: __typename @skip(if: $t) postCount } }`;
    await graph.expectAnswer(query, { t: true }, {
      data: {
        users: [
          { __typename: 'User', postCount: 2 },
          { __typename: 'User', postCount: 1 },
        ],
        posts: [{ title: 'Engines' }, { title: 'Machines' }, { title: 'Notes' }],
      },
    });
    await graph.expectAnswer(query, { t: false }, {
      data: {
        users: [
          { t: 'User', postCount: 2 },
          { t: 'User', postCount: 1 },
        ],
        kind: 'Query',
      },
    });
  });

  it("answers response keys named like an object's built-in properties, within and across fetches", async () => {
    await graph.expectAnswer(`{ users { constructor: name toString: postCount hasOwnProperty: id valueOf: __typename } }`, undefined, {
      data: {
        users: [
          { constructor: 'Ada', toString: 2, hasOwnProperty: 'u1', valueOf: 'User' },
          { constructor: 'Alan', toString: 1, hasOwnProperty: 'u2', valueOf: 'User' },
        ],
      },
    });
  });

  it('answers a response key named __proto__ (our executor hands such operations to Apollo\'s, by design)', async () => {
    // Parsed from text: in an object literal, `__proto__` would set the prototype instead of a key.
    const fallsBack = 'a response key named __proto__';
    await graph.expectAnswer(`{ users { __proto__: name } }`, undefined, { data: JSON.parse('{"users":[{"__proto__":"Ada"},{"__proto__":"Alan"}]}'), fallsBack });
    await graph.expectAnswer(`{ posts { author { __proto__: postCount name } } }`, undefined, {
      data: JSON.parse('{"posts":[{"author":{"__proto__":2,"name":"Ada"}},{"author":{"__proto__":1,"name":"Alan"}},{"author":{"__proto__":2,"name":"Ada"}}]}'),
      fallsBack,
    });
  });
});
