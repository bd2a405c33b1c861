// Fields several subgraphs can resolve: @shareable fields answered by whichever subgraph the plan is already in,
// value types (objects, enums, a union of value types) defined in both subgraphs, @external key fields of a type
// extended in fed-1 style, and @override moving a field from one subgraph to another.
import { GraphQLScalarType } from 'graphql';
import { describe, expect, it } from 'vitest';
import { federation, federationSdl, type Execution } from '../harness.ts';

const PRODUCTS = [
  { id: 'p1', name: 'Lamp', price: { amount: 30, currency: 'EUR' }, condition: 'NEW', tag: { __typename: 'TextTag', text: 'bright' } },
  { id: 'p2', name: 'Desk', price: { amount: 120, currency: 'USD' }, condition: 'USED', tag: { __typename: 'NumberTag', number: 7 } },
];
const product = (id: string) => PRODUCTS.find((row) => row.id === id) ?? null;

const SPECS: Record<string, unknown> = {
  p1: { __typename: 'Fake', id: 'not-an-entity', sizes: [1, 2.5, -0, 1e21], nested: { a: null, b: [true, { c: 'd' }] }, '': 'empty key' },
  p2: ['list', 3, null],
};
/** Strings JSON must escape, or must not: quotes, backslashes, control characters, line separators, astral planes. */
const NOTES = ['"quoted" \\ back\\slash', 'tab\tnew\nline \u0001', 'Émile — “typographic” \u2028\u2029 </script>', '😀 𝄞 \ud83d'];

const VALUE_TYPES = `
type Money @shareable {
  amount: Int!
  currency: String!
}
enum Condition {
  NEW
  USED
}
type TextTag @shareable {
  text: String!
}
type NumberTag @shareable {
  number: Int!
}
union Tag = TextTag | NumberTag
`;

/** Owns products; their name, price and tag are shareable. Its stock figure moved to inventory (@override). */
const catalog = {
  name: 'catalog',
  typeDefs: federationSdl(
    ['@key', '@shareable'],
    `
type Query {
  products: [Product!]!
  "Both subgraphs can answer it."
  featured: Product @shareable
}
type Product @key(fields: "id") {
  id: ID!
  name: String! @shareable
  price: Money! @shareable
  condition: Condition! @shareable
  tag: Tag! @shareable
  stock: Int!
  description: String!
}
${VALUE_TYPES}`,
  ),
  resolvers: {
    Query: { products: () => PRODUCTS, featured: () => PRODUCTS[0] },
    Product: {
      __resolveReference: ({ id }: { id: string }) => product(id),
      // The old figure: never asked once inventory overrides the field.
      stock: () => -1,
      description: (row: { name: string }) => `A fine ${row.name.toLowerCase()}`,
    },
    Tag: { __resolveType: (tag: { __typename: string }) => tag.__typename },
  },
};

/** Lists deals with the same shareable product fields, and now owns `stock`. */
const inventory = {
  name: 'inventory',
  typeDefs: federationSdl(
    ['@key', '@shareable', '@override'],
    `
type Query {
  deals: [Deal!]!
  featured: Product @shareable
}
type Deal {
  discount: Int!
  product: Product!
}
type Product @key(fields: "id") {
  id: ID!
  name: String! @shareable
  price: Money! @shareable
  condition: Condition! @shareable
  tag: Tag! @shareable
  stock: Int! @override(from: "catalog")
  "Free-form: objects, lists and strings that look like selections must pass through untouched."
  specs: JSON
  notes: [String!]!
}
scalar JSON
${VALUE_TYPES}`,
  ),
  resolvers: {
    Query: { deals: () => [{ discount: 10, product: PRODUCTS[1] }], featured: () => PRODUCTS[0] },
    JSON: new GraphQLScalarType({ name: 'JSON', serialize: (value) => value }),
    Product: {
      __resolveReference: ({ id }: { id: string }) => product(id),
      stock: ({ id }: { id: string }) => (id === 'p1' ? 4 : 0),
      specs: ({ id }: { id: string }) => SPECS[id],
      notes: ({ id }: { id: string }) => (id === 'p1' ? NOTES : []),
    },
    Tag: { __resolveType: (tag: { __typename: string }) => tag.__typename },
  },
};

/** Extends products in fed-1 style: the key is @external, and it adds the reviews' value-typed summary. */
const reviews = {
  name: 'reviews',
  typeDefs: federationSdl(
    ['@key', '@external', '@extends', '@shareable'],
    `
type Product @key(fields: "id") @extends {
  id: ID! @external
  rating: Rating!
}
type Rating {
  stars: Int!
  price: Money!
}
type Money @shareable {
  amount: Int!
  currency: String!
}
`,
  ),
  resolvers: {
    Product: {
      __resolveReference: ({ id }: { id: string }) => ({ id }),
      rating: ({ id }: { id: string }) => ({ stars: id === 'p1' ? 5 : 2, price: { amount: 1, currency: 'EUR' } }),
    },
  },
};

const subgraphsOf = (requests: Array<{ subgraph: string }>) => requests.map((request) => request.subgraph);
const executions: Execution[] = ['apollo', 'own'];

describe('@shareable fields, value types, @external keys and @override', () => {
  const graph = federation([catalog, inventory, reviews]);

  it('answers shareable fields and value types from the subgraph that owns the root field, whichever it is', async () => {
    const fromCatalog = `{ products { name price { amount currency } condition tag { __typename ... on TextTag { text } ... on NumberTag { number } } } }`;
    await graph.expectAnswer(fromCatalog, undefined, {
      data: {
        products: [
          { name: 'Lamp', price: { amount: 30, currency: 'EUR' }, condition: 'NEW', tag: { __typename: 'TextTag', text: 'bright' } },
          { name: 'Desk', price: { amount: 120, currency: 'USD' }, condition: 'USED', tag: { __typename: 'NumberTag', number: 7 } },
        ],
      },
    });
    const fromInventory = `{ deals { discount product { name price { amount } condition tag { ... on NumberTag { number } } } } }`;
    await graph.expectAnswer(fromInventory, undefined, {
      data: { deals: [{ discount: 10, product: { name: 'Desk', price: { amount: 120 }, condition: 'USED', tag: { number: 7 } } }] },
    });
    for (const execution of executions) {
      expect(subgraphsOf((await graph.askWith(execution, fromCatalog)).requests)).toEqual(['catalog']);
      expect(subgraphsOf((await graph.askWith(execution, fromInventory)).requests)).toEqual(['inventory']);
    }
  });

  it('mixes a shareable field from the current subgraph with a field only the other has', async () => {
    await graph.expectAnswer(`{ deals { product { name description } } }`, undefined, {
      data: { deals: [{ product: { name: 'Desk', description: 'A fine desk' } }] },
    });
  });

  it('routes an overridden field to the subgraph that overrides it, from either root', async () => {
    await graph.expectAnswer(`{ products { id stock } deals { product { stock } } }`, undefined, {
      data: {
        products: [
          { id: 'p1', stock: 4 },
          { id: 'p2', stock: 0 },
        ],
        deals: [{ product: { stock: 0 } }],
      },
    });
  });

  it('extends an entity whose key is @external in the extending subgraph, and answers its value types', async () => {
    await graph.expectAnswer(`{ products { id rating { stars price { amount currency } } price { amount } } }`, undefined, {
      data: {
        products: [
          { id: 'p1', rating: { stars: 5, price: { amount: 1, currency: 'EUR' } }, price: { amount: 30 } },
          { id: 'p2', rating: { stars: 2, price: { amount: 1, currency: 'EUR' } }, price: { amount: 120 } },
        ],
      },
    });
  });

  it('merges the same value-typed field selected twice with different subfields and aliases', async () => {
    await graph.expectAnswer(`{ deals { product { price { amount } p: price { currency } price { currency amount } } } }`, undefined, {
      data: { deals: [{ product: { price: { amount: 120, currency: 'USD' }, p: { currency: 'USD' } } }] },
    });
  });

  it('passes a custom scalar through untouched (objects with __typename, lists, numbers) and strings that need escaping', async () => {
    await graph.expectAnswer(`{ products { specs notes } }`, undefined, {
      data: {
        products: [
          { specs: { __typename: 'Fake', id: 'not-an-entity', sizes: [1, 2.5, 0, 1e21], nested: { a: null, b: [true, { c: 'd' }] }, '': 'empty key' }, notes: NOTES },
          { specs: ['list', 3, null], notes: [] },
        ],
      },
    });
  });

  it('answers a shareable root field from one subgraph, going to the other for what only it has', async () => {
    await graph.expectAnswer(`{ featured { name stock description rating { stars } } }`, undefined, {
      data: { featured: { name: 'Lamp', stock: 4, description: 'A fine lamp', rating: { stars: 5 } } },
    });
  });
});
