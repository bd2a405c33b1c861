import { buildSubgraphSchema } from '@apollo/subgraph';
import { parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import { assertResolversMatchSchema } from '../src/subgraph.ts';
import { DateTimeScalar } from '../src/scalars.ts';

const schema = buildSubgraphSchema(
  parse(`
    extend schema @link(url: "https://specs.apollo.dev/federation/v2.7", import: ["@key"])
    scalar DateTime
    type Query { user(id: ID!): User }
    type User @key(fields: "id") { id: ID! name: String! createdAt: DateTime! }
  `),
);

describe('resolver map vs. schema.graphql', () => {
  it('accepts resolvers that all name real types and fields (entity hooks and scalars included)', () => {
    expect(() =>
      assertResolversMatchSchema(schema, {
        DateTime: DateTimeScalar,
        Query: { user: () => null },
        User: { __resolveReference: () => null, name: () => 'x' },
      }),
    ).not.toThrow();
  });

  it('refuses to start when a resolver names a field or type the SDL no longer has, listing each', () => {
    expect(() =>
      assertResolversMatchSchema(schema, {
        Query: { users: () => [] },
        User: { fullName: () => 'x' },
        Order: { id: () => '1' },
      }),
    ).toThrow(/Query\.users[\s\S]*User\.fullName[\s\S]*type Order/);
  });
});
