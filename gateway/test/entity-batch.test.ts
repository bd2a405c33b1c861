// Merging sibling entity fetches (src/subgraphs/entity-batch.ts): the merged query a subgraph receives, and how
// its answer is split back into each fetch's, or refused when it cannot be (the fetches are then sent alone).
// End to end, against real subgraphs and Apollo's executor as the reference: test/federation/suites/merged-fetches.ts.
import { buildSubgraphSchema } from '@apollo/subgraph';
import { execute, parse, validate } from 'graphql';
import { describe, expect, it } from 'vitest';
import { createEntityQueryMerger, isEntitiesRequest, mergeEntityQueries } from '../src/subgraphs/entity-batch.ts';

const schema = buildSubgraphSchema({
  typeDefs: parse(`
    extend schema @link(url: "https://specs.apollo.dev/federation/v2.7", import: ["@key"])
    type Query { me: User }
    type User @key(fields: "id") { id: ID! name: String email: String friends(first: Int): [User!]! }
  `),
  resolvers: {
    User: {
      __resolveReference: ({ id }: { id: string }) => ({ id }),
      name: ({ id }: { id: string }) => `name of ${id}`,
      email: ({ id }: { id: string }) => `${id}@example.com`,
      friends: ({ id }: { id: string }, { first }: { first: number }) => Array.from({ length: first }, (_, index) => ({ id: `${id}.${index}` })),
    },
  },
});

// As the query planner writes them: each fetch's fragments named on their own, here with one name for two
// different selections.
const NAMES = 'query Q__accounts__1($representations:[_Any!]!){_entities(representations:$representations){...on User{...F}}}fragment F on User{name}';
const EMAILS =
  'query Q__accounts__2($representations:[_Any!]!,$first:Int){_entities(representations:$representations){...on User{...F friends(first:$first){id}}}}fragment F on User{email}';

const users = (...ids: string[]) => ids.map((id) => ({ __typename: 'User', id }));

describe('merging sibling entity fetches', () => {
  it('builds one valid query whose aliases answer each fetch as it would be answered alone, fragments kept apart', async () => {
    const merged = mergeEntityQueries([NAMES, EMAILS])!;
    expect(merged.operationName).toBe('Q__accounts__1__merged');
    const document = parse(merged.query);
    expect(validate(schema, document)).toEqual([]);

    const requests = [
      { query: NAMES, variables: { representations: users('a', 'b') } },
      { query: EMAILS, variables: { representations: users('c'), first: 2 } },
    ];
    const variables = merged.variables(requests)!;
    const response = await execute({ schema, document, variableValues: variables });
    const answers = merged.split({ data: response.data as Record<string, unknown> })!;
    for (const [index, request] of requests.entries()) {
      const alone = await execute({ schema, document: parse(request.query), variableValues: request.variables });
      expect(answers[index]!.data).toEqual(JSON.parse(JSON.stringify(alone.data)));
    }
    expect(answers[0]!.data).toEqual({ _entities: [{ name: 'name of a' }, { name: 'name of b' }] });
  });

  it("puts each error back on its own fetch's `_entities` path, in the subgraph's order", () => {
    const merged = mergeEntityQueries([NAMES, EMAILS])!;
    const answers = merged.split({
      data: { _0: [null], _1: [{ email: null, friends: [] }] },
      errors: [
        { message: 'b', path: ['_1', 0, 'email'] },
        { message: 'a', path: ['_0', 0] },
      ],
    })!;
    expect(answers.map((answer) => answer.errors)).toEqual([[{ message: 'a', path: ['_entities', 0] }], [{ message: 'b', path: ['_entities', 0, 'email'] }]]);
  });

  it('refuses to split what one fetch alone might not have had: data nulled, an alias missing, an error of the whole request', () => {
    const merged = mergeEntityQueries([NAMES, EMAILS])!;
    expect(merged.split({ data: null, errors: [{ message: 'x', path: ['_0', 0, 'name'] }] })).toBeUndefined();
    expect(merged.split({ data: { _0: [] } })).toBeUndefined();
    expect(merged.split({ data: { _0: [], _1: [] }, errors: [{ message: 'query too costly' }] })).toBeUndefined();
    expect(merged.split({ data: { _0: [], _1: [] }, errors: [{ message: 'x', path: ['_entities', 0] }] })).toBeUndefined();
    // What a misbehaving subgraph may send instead of errors.
    expect(merged.split({ data: { _0: [], _1: [] }, errors: [null] as never })).toBeUndefined();
    expect(merged.split({ data: { _0: [], _1: [] }, errors: 5 as never })).toBeUndefined();
  });

  it('remembers merged queries, and never merges again fetches whose merged request a subgraph refused', () => {
    const merger = createEntityQueryMerger();
    const first = merger([NAMES, EMAILS]);
    expect(first).toBeDefined();
    expect(merger([NAMES, EMAILS])).toBe(first);
    merger.forbid([NAMES, EMAILS]);
    expect(merger([NAMES, EMAILS])).toBeUndefined();
    expect(merger([EMAILS, NAMES])).toBeDefined();
  });

  it('merges nothing but plain `_entities` fetches whose shared variables agree', () => {
    expect(mergeEntityQueries([NAMES, 'query R{me{id}}'])).toBeUndefined();
    expect(mergeEntityQueries([NAMES, 'query R($representations:[_Any!]!){a:_entities(representations:$representations){__typename}}'])).toBeUndefined();
    const merged = mergeEntityQueries([EMAILS, EMAILS])!;
    expect(merged.variables([{ query: EMAILS, variables: { representations: [], first: 1 } }, { query: EMAILS, variables: { representations: [], first: 2 } }])).toBeUndefined();
    // One fetch uses a variable it was not given (a context value its entities lack): it would take the other's.
    expect(merged.variables([{ query: EMAILS, variables: { representations: [], first: 1 } }, { query: EMAILS, variables: { representations: [] } }])).toBeUndefined();
    expect(mergeEntityQueries([NAMES, EMAILS])!.variables([{ query: NAMES, variables: { representations: [] } }, { query: EMAILS, variables: { representations: [], first: 1 } }])).toBeDefined();
    expect(isEntitiesRequest({ query: NAMES, variables: { representations: users('a') } })).toBe(true);
    expect(isEntitiesRequest({ query: 'query R{me{id}}', variables: {} })).toBe(false);
  });
});
