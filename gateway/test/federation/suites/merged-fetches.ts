// Sibling entity fetches to one subgraph merged into one request (each fetch's `_entities` under an alias of its
// own): the own executor's gateway merges them, Apollo's (the reference) sends each alone, and every answer must
// be byte for byte the same, errors and nulls included.
import { describe, expect, it } from 'vitest';
import { federation, federationSdl, testError } from '../harness.ts';

const USERS: Record<string, { name: string | null; email: string | null }> = {
  u1: { name: 'Ada', email: 'ada@example.com' },
  u2: { name: 'Alan', email: 'alan@example.com' },
  // Its name fails to resolve; its email, non-null, resolves to null and nulls the whole user.
  u3: { name: null, email: null },
};

const accounts = {
  name: 'accounts',
  typeDefs: federationSdl(
    ['@key'],
    `
type Query {
  viewer: User
}
type User @key(fields: "id") {
  id: ID!
  name: String
  email: String!
}
`,
  ),
  resolvers: {
    Query: { viewer: () => ({ id: 'u1' }) },
    User: {
      __resolveReference: ({ id }: { id: string }) => ({ id }),
      name: ({ id }: { id: string }) => {
        const name = USERS[id]?.name;
        if (!name) throw testError(`no name for ${id}`);
        return name;
      },
      email: ({ id }: { id: string }) => USERS[id]?.email ?? null,
    },
  },
};

const POSTS = [
  { id: 'p1', title: 'Engines', authorId: 'u1', editorId: 'u2' },
  // u3 is never an editor: each answer's errors come from one fetch, so their order is the same whichever of
  // Apollo's two fetches answers first.
  { id: 'p2', title: 'Machines', authorId: 'u2', editorId: 'u1' },
  { id: 'p3', title: 'Numbers', authorId: 'u3', editorId: 'u1' },
];

const posts = {
  name: 'posts',
  typeDefs: federationSdl(
    ['@key'],
    `
type Query {
  posts: [Post!]!
}
type Post {
  id: ID!
  title: String!
  author: User
  editor: User
}
type User @key(fields: "id") {
  id: ID!
}
`,
  ),
  resolvers: {
    Query: { posts: () => POSTS },
    Post: {
      author: (post: { authorId: string }) => ({ id: post.authorId }),
      editor: (post: { editorId: string }) => ({ id: post.editorId }),
    },
  },
};

const isMerged = (query: string) => /_0:_entities/.test(query.replace(/\s+/g, ''));

describe('sibling entity fetches merged into one request', () => {
  const graph = federation([accounts, posts]);

  it('sends the author and editor fetches as one request, and answers as if they were sent one by one', async () => {
    const query = `{ posts { title author { name } editor { name } } }`;
    await graph.expectAnswer(query, undefined, {
      data: {
        posts: [
          { title: 'Engines', author: { name: 'Ada' }, editor: { name: 'Alan' } },
          { title: 'Machines', author: { name: 'Alan' }, editor: { name: 'Ada' } },
          { title: 'Numbers', author: { name: null }, editor: { name: 'Ada' } },
        ],
      },
      errors: [{ message: 'no name for u3', path: ['posts', 2, 'author', 'name'], extensions: { code: 'FED_TEST_ERROR', serviceName: 'accounts' } }],
    });
    const own = await graph.askWith('own', query);
    const apollo = await graph.askWith('apollo', query);
    expect(own.answer.text).toBe(apollo.answer.text);
    expect(own.requests.map((request) => request.subgraph)).toEqual(['posts', 'accounts']);
    expect(isMerged(own.requests[1]!.query)).toBe(true);
    expect(apollo.requests.map((request) => request.subgraph)).toEqual(['posts', 'accounts', 'accounts']);
  });

  it('keeps a null that bubbles up to one entity inside that fetch', async () => {
    const query = `{ posts { id author { email } editor { email name } } }`;
    expect((await graph.askWith('own', query)).requests.filter((request) => isMerged(request.query))).toHaveLength(1);
    await graph.expectAnswer(query, undefined, {
      data: {
        posts: [
          { id: 'p1', author: { email: 'ada@example.com' }, editor: { email: 'alan@example.com', name: 'Alan' } },
          { id: 'p2', author: { email: 'alan@example.com' }, editor: { email: 'ada@example.com', name: 'Ada' } },
          { id: 'p3', author: null, editor: { email: 'ada@example.com', name: 'Ada' } },
        ],
      },
      // The subgraph's own non-null errors carry no code of ours: the gateway masks them.
      errors: [{ message: 'Internal server error', path: ['posts', 2, 'author', 'email'], extensions: { code: 'INTERNAL_SERVER_ERROR', serviceName: 'accounts' } }],
    });
  });

  it('fails each fetch as it would fail alone when the subgraph is down', async () => {
    await graph.stopSubgraph('accounts');
    const answers = await graph.ask(`{ posts { title author { name } editor { name } } }`);
    // Apollo's two fetches fail in whichever order their connections are refused: the errors are compared as a set.
    const sorted = (errors: unknown[] | undefined) => errors?.map((error) => JSON.stringify(error)).sort();
    expect(answers.own.body.data).toEqual(answers.apollo.body.data);
    expect(sorted(answers.own.body.errors)).toEqual(sorted(answers.apollo.body.errors));
    const body = answers.own.body;
    expect(body.data).toEqual({
      posts: [
        { title: 'Engines', author: { name: null }, editor: { name: null } },
        { title: 'Machines', author: { name: null }, editor: { name: null } },
        { title: 'Numbers', author: { name: null }, editor: { name: null } },
      ],
    });
    expect(body.errors?.map((error) => error.extensions?.code)).toEqual(['SUBGRAPH_UNAVAILABLE', 'SUBGRAPH_UNAVAILABLE']);
  });
});
