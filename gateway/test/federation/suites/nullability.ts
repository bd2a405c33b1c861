// Nulls and errors across subgraph boundaries: a subgraph returning null for a non-null field (its own, and one
// fetched through _entities), errors raised inside _entities whose paths must be those of the client's
// operation, an entity the other subgraph does not know, and a subgraph that cannot be reached; each null
// propagating to the nearest nullable parent.
import { describe, it } from 'vitest';
import { federation, federationSdl, testError } from '../harness.ts';

const PRODUCTS = [
  { id: 'p1', name: 'Lamp' },
  { id: 'p2', name: 'Desk' },
  { id: 'p3', name: 'Vase' },
  // Unknown to pricing.
  { id: 'p4', name: 'Ghost' },
];
const product = (id: string) => PRODUCTS.find((row) => row.id === id) ?? null;

/** Owns products. `brokenName` is a non-null field it answers null for. */
const catalog = {
  name: 'catalog',
  typeDefs: federationSdl(
    ['@key'],
    `
type Query {
  products: [Product!]!
  shelf: [Product]
  product(id: ID!): Product
  strictProduct(id: ID!): Product!
  rows: [[Product]!]
  "p3 and p4."
  pair: [Product]
  "p3, p1, p3: the same entity twice."
  twice: [Product]
  "p3, p2, p3."
  mixed: [Product]
}
type Product @key(fields: "id") {
  id: ID!
  name: String!
  brokenName: String
}
`,
  ),
  resolvers: {
    Query: {
      products: () => PRODUCTS.slice(0, 3),
      shelf: () => PRODUCTS,
      product: (_: unknown, { id }: { id: string }) => product(id),
      strictProduct: (_: unknown, { id }: { id: string }) => product(id),
      rows: () => [[PRODUCTS[0], PRODUCTS[2]], [PRODUCTS[1]]],
      pair: () => PRODUCTS.slice(2),
      twice: () => [PRODUCTS[2], PRODUCTS[0], PRODUCTS[2]],
      mixed: () => [PRODUCTS[2], PRODUCTS[1], PRODUCTS[2]],
    },
    Product: {
      __resolveReference: ({ id }: { id: string }) => product(id),
      brokenName: (row: { id: string; name: string }) => {
        if (row.id === 'p2') throw testError('name unavailable for p2');
        return row.name;
      },
    },
  },
};

/**
 * Prices products. For p2 it answers null for its non-null `price`; for p3 `discount` (nullable) and `stockNote`
 * (non-null) fail; p4 it does not know (its reference resolves to null).
 */
const pricing = {
  name: 'pricing',
  typeDefs: federationSdl(
    ['@key'],
    `
type Product @key(fields: "id") {
  id: ID!
  price: Int!
  "Named like built-in properties of objects: missing where the entity is unknown (p4)."
  constructor: String
  toString: Int!
  discount: Int
  stockNote: String!
  offers: [Offer!]
}
type Offer {
  label: String!
  until: String
}
`,
  ),
  resolvers: {
    Product: {
      __resolveReference: ({ id }: { id: string }) => (id === 'p4' ? null : { id }),
      price: ({ id }: { id: string }) => (id === 'p2' ? null : Number(id.slice(1)) * 10),
      constructor: ({ id }: { id: string }) => `made ${id}`,
      toString: ({ id }: { id: string }) => Number(id.slice(1)),
      discount: ({ id }: { id: string }) => {
        if (id === 'p3') throw testError(`no discount for ${id}`);
        return id === 'p1' ? 5 : null;
      },
      stockNote: ({ id }: { id: string }) => {
        if (id === 'p3') throw testError(`stock unknown for ${id}`);
        return `in stock: ${id}`;
      },
      offers: ({ id }: { id: string }) => [
        { label: `${id} a`, until: 'monday' },
        // The second offer's non-null label is null for p1.
        { label: id === 'p1' ? null : `${id} b`, until: null },
      ],
    },
  },
};

/** Adds a field from a subgraph that the test stops: every fetch to it is refused. */
const gone = {
  name: 'gone',
  typeDefs: federationSdl(
    ['@key'],
    `
type Product @key(fields: "id") {
  id: ID!
  legacyCode: String
  strictLegacyCode: String!
}
`,
  ),
  resolvers: { Product: { __resolveReference: ({ id }: { id: string }) => ({ id }), legacyCode: () => 'x', strictLegacyCode: () => 'x' } },
};

/** A subgraph error without a public code: the gateway masks its message, keeping its path and service. */
const masked = (path: Array<string | number>, serviceName: string) => ({ message: 'Internal server error', path, extensions: { code: 'INTERNAL_SERVER_ERROR', serviceName } });
const raised = (message: string, path: Array<string | number>, serviceName: string) => ({ message, path, extensions: { code: 'FED_TEST_ERROR', serviceName } });

/**
 * Its reference resolver fails for p2 (a rejected promise: the error's path is `_entities.<index>` in its answer)
 * and throws for p4 (synchronously: the whole `_entities` field fails); a nested field fails for p3.
 */
const reviews = {
  name: 'reviews',
  typeDefs: federationSdl(
    ['@key'],
    `
type Product @key(fields: "id") {
  id: ID!
  stars: Int
  strictStars: Int!
  comments: [Comment!]!
}
type Comment {
  text: String
  author: String!
  "Fails for p3's second comment, a turn of the event loop later than anything else fails."
  late: String
}
`,
  ),
  resolvers: {
    Product: {
      __resolveReference: ({ id }: { id: string }) => {
        if (id === 'p4') throw testError(`no reviews at all for ${id}`);
        if (id !== 'p2') return Promise.resolve({ id });
        return Promise.reject(testError(`reviews of ${id} are sealed`));
      },
      stars: ({ id }: { id: string }) => Number(id.slice(1)),
      strictStars: ({ id }: { id: string }) => Number(id.slice(1)),
      comments: ({ id }: { id: string }) => [{ text: `${id} ok` }, { text: `${id} odd` }],
    },
    Comment: {
      text: (comment: { text: string }) => {
        if (comment.text === 'p3 odd') throw testError('comment hidden');
        return comment.text;
      },
      author: (comment: { text: string }) => (comment.text === 'p1 odd' ? null : 'anon'),
      late: async (comment: { text: string }) => {
        if (comment.text !== 'p3 odd') return comment.text;
        await new Promise((resolve) => setImmediate(resolve));
        throw testError('comment withdrawn');
      },
    },
  },
};

describe('nullability and errors across subgraph boundaries', () => {
  const graph = federation([catalog, pricing, gone, reviews]);

  it('nulls the nearest nullable parent when a subgraph answers null for a non-null field of an entity it resolves', async () => {
    // The subgraph itself reports the null (its message is masked) and nulls its _entities entry.
    await graph.expectAnswer(`{ product(id: "p2") { id name price } }`, undefined, { data: { product: null }, errors: [masked(['product', 'price'], 'pricing')] });
    await graph.expectAnswer(`{ shelf { id price } }`, undefined, {
      data: { shelf: [{ id: 'p1', price: 10 }, null, { id: 'p3', price: 30 }, null] },
      errors: [masked(['shelf', 1, 'price'], 'pricing')],
    });
  });

  it('nulls data when the null reaches a non-null root field', async () => {
    await graph.expectAnswer(`{ strictProduct(id: "p2") { price } }`, undefined, { data: null, errors: [masked(['strictProduct', 'price'], 'pricing')] });
  });

  it('reports an error raised inside _entities at the path of the client operation (lists, and lists of lists)', async () => {
    await graph.expectAnswer(`{ products { id discount } }`, undefined, {
      data: {
        products: [
          { id: 'p1', discount: 5 },
          { id: 'p2', discount: null },
          { id: 'p3', discount: null },
        ],
      },
      errors: [raised('no discount for p3', ['products', 2, 'discount'], 'pricing')],
    });
    await graph.expectAnswer(`{ rows { id discount } }`, undefined, {
      data: {
        rows: [
          [
            { id: 'p1', discount: 5 },
            { id: 'p3', discount: null },
          ],
          [{ id: 'p2', discount: null }],
        ],
      },
      errors: [raised('no discount for p3', ['rows', 0, 1, 'discount'], 'pricing')],
    });
  });

  it('nulls the parent of a non-null field whose resolver failed inside _entities', async () => {
    // p4's entity is null in pricing: its non-null field is missing too, but with an error already reported
    // Apollo adds no value-completion note for it.
    await graph.expectAnswer(`{ shelf { id stockNote } }`, undefined, {
      data: { shelf: [{ id: 'p1', stockNote: 'in stock: p1' }, { id: 'p2', stockNote: 'in stock: p2' }, null, null] },
      errors: [raised('stock unknown for p3', ['shelf', 2, 'stockNote'], 'pricing')],
    });
    await graph.expectAnswer(`{ product(id: "p3") { name stockNote discount } }`, undefined, {
      data: { product: null },
      errors: [raised('stock unknown for p3', ['product', 'stockNote'], 'pricing')],
    });
  });

  it('answers null for the fields of an entity the other subgraph does not know', async () => {
    await graph.expectAnswer(`{ product(id: "p4") { id name discount } }`, undefined, { data: { product: { id: 'p4', name: 'Ghost', discount: null } } });
    // A non-null one nulls the parent; Apollo reports that only as a value-completion note, with no error.
    await graph.expectAnswer(`{ product(id: "p4") { id name price } }`, undefined, {
      data: { product: null },
      extensions: {
        valueCompletion: [{ message: 'Cannot return null for non-nullable field Product.price.', path: ['product', 'price'], extensions: { code: 'INVALID_GRAPHQL' } }],
      },
    });
  });

  it('keeps the errors of both subgraphs when their nulls meet, in the order the fetches ran', async () => {
    await graph.expectAnswer(`{ products { id brokenName price } }`, undefined, {
      data: null,
      errors: [raised('name unavailable for p2', ['products', 1, 'brokenName'], 'catalog'), masked(['products', 1, 'price'], 'pricing')],
    });
  });

  it('nulls a nullable list when a non-null field of one of its elements is null, inside an entity fetch', async () => {
    await graph.expectAnswer(`{ product(id: "p1") { offers { label until } } }`, undefined, {
      data: { product: { offers: null } },
      errors: [masked(['product', 'offers', 1, 'label'], 'pricing')],
    });
    await graph.expectAnswer(`{ shelf { id offers { label } } }`, undefined, {
      data: {
        shelf: [
          { id: 'p1', offers: null },
          { id: 'p2', offers: [{ label: 'p2 a' }, { label: 'p2 b' }] },
          { id: 'p3', offers: [{ label: 'p3 a' }, { label: 'p3 b' }] },
          { id: 'p4', offers: null },
        ],
      },
      errors: [masked(['shelf', 0, 'offers', 1, 'label'], 'pricing')],
    });
  });

  it('reports a failed entity reference at the path of that entity, nulling only its fields', async () => {
    await graph.expectAnswer(`{ products { id stars } }`, undefined, {
      data: {
        products: [
          { id: 'p1', stars: 1 },
          { id: 'p2', stars: null },
          { id: 'p3', stars: 3 },
        ],
      },
      errors: [raised('reviews of p2 are sealed', ['products', 1], 'reviews')],
    });
    await graph.expectAnswer(`{ products { id strictStars } }`, undefined, {
      data: null,
      errors: [raised('reviews of p2 are sealed', ['products', 1], 'reviews')],
    });
  });

  it('nulls every entity of a fetch whose whole _entities field failed, with the error at the list (Apollo: `@` and `_entities` in the path)', async () => {
    await graph.expectAnswer(`{ pair { id stars } }`, undefined, {
      data: {
        pair: [
          { id: 'p3', stars: null },
          { id: 'p4', stars: null },
        ],
      },
      errors: [raised('no reviews at all for p4', ['pair', '@', '_entities'], 'reviews')],
    });
    await graph.expectAnswer(`{ product(id: "p4") { id stars } }`, undefined, {
      data: { product: { id: 'p4', stars: null } },
      errors: [raised('no reviews at all for p4', ['product', '_entities'], 'reviews')],
    });
  });

  it('rewrites the path of an error deep inside an entity (a list element of a list field) to the operation', async () => {
    await graph.expectAnswer(`{ rows { name comments { text } } }`, undefined, {
      data: {
        rows: [
          [
            { name: 'Lamp', comments: [{ text: 'p1 ok' }, { text: 'p1 odd' }] },
            { name: 'Vase', comments: [{ text: 'p3 ok' }, { text: null }] },
          ],
          [null],
        ],
      },
      errors: [raised('comment hidden', ['rows', 0, 1, 'comments', 1, 'text'], 'reviews'), raised('reviews of p2 are sealed', ['rows', 1, 0], 'reviews')],
    });
  });

  it('nulls an entity up to its nullable list element when a non-null field deep inside it is null', async () => {
    await graph.expectAnswer(`{ rows { id comments { author } } }`, undefined, {
      data: { rows: [[null, { id: 'p3', comments: [{ author: 'anon' }, { author: 'anon' }] }], [null]] },
      errors: [masked(['rows', 0, 0, 'comments', 1, 'author'], 'reviews'), raised('reviews of p2 are sealed', ['rows', 1, 0], 'reviews')],
    });
  });

  it('reports the error of an entity that occurs twice at each of its places, nulling both', async () => {
    await graph.expectAnswer(`{ twice { id discount } }`, undefined, {
      data: {
        twice: [
          { id: 'p3', discount: null },
          { id: 'p1', discount: 5 },
          { id: 'p3', discount: null },
        ],
      },
      errors: [raised('no discount for p3', ['twice', 0, 'discount'], 'pricing'), raised('no discount for p3', ['twice', 2, 'discount'], 'pricing')],
    });
    await graph.expectAnswer(`{ twice { id stockNote } }`, undefined, {
      data: { twice: [null, { id: 'p1', stockNote: 'in stock: p1' }, null] },
      errors: [raised('stock unknown for p3', ['twice', 0, 'stockNote'], 'pricing'), raised('stock unknown for p3', ['twice', 2, 'stockNote'], 'pricing')],
    });
    await graph.expectAnswer(`{ twice { name comments { text } } }`, undefined, {
      data: {
        twice: [
          { name: 'Vase', comments: [{ text: 'p3 ok' }, { text: null }] },
          { name: 'Lamp', comments: [{ text: 'p1 ok' }, { text: 'p1 odd' }] },
          { name: 'Vase', comments: [{ text: 'p3 ok' }, { text: null }] },
        ],
      },
      errors: [
        raised('comment hidden', ['twice', 0, 'comments', 1, 'text'], 'reviews'),
        raised('comment hidden', ['twice', 2, 'comments', 1, 'text'], 'reviews'),
      ],
    });
  });

  it('keeps apart sibling entity fetches to the same subgraph for aliased root fields, errors at each alias', async () => {
    await graph.expectAnswer(`{ a: product(id: "p3") { discount price } b: product(id: "p1") { discount } c: product(id: "p3") { d: discount } }`, undefined, {
      data: { a: { discount: null, price: 30 }, b: { discount: 5 }, c: { d: null } },
      errors: [raised('no discount for p3', ['a', 'discount'], 'pricing'), raised('no discount for p3', ['c', 'd'], 'pricing')],
    });
  });

  it('runs the operation the request names, among several in the document', async () => {
    const document = `query Prices { products { price } } query Names($id: ID!) { product(id: $id) { ...N } } fragment N on Product { name stars }`;
    await graph.expectAnswer({ query: document, operationName: 'Names' }, { id: 'p3' }, { data: { product: { name: 'Vase', stars: 3 } } });
    await graph.expectAnswer({ query: document, operationName: 'Prices' }, undefined, { data: null, errors: [masked(['products', 1, 'price'], 'pricing')] });
  });

  it("keeps the subgraph's order of errors when a repeated entity fails later than another one", async () => {
    // The subgraph raises p2's error first (its reference fails at once) and p3's a turn later; Apollo's executor
    // reports them in that order, each of p3's places where the subgraph put it.
    await graph.expectAnswer(`{ mixed { id comments { late } } }`, undefined, {
      data: {
        mixed: [{ id: 'p3', comments: [{ late: 'p3 ok' }, { late: null }] }, null, { id: 'p3', comments: [{ late: 'p3 ok' }, { late: null }] }],
      },
      errors: [
        raised('reviews of p2 are sealed', ['mixed', 1], 'reviews'),
        raised('comment withdrawn', ['mixed', 0, 'comments', 1, 'late'], 'reviews'),
        raised('comment withdrawn', ['mixed', 2, 'comments', 1, 'late'], 'reviews'),
      ],
    });
  });

  it("treats a missing field named like an object's built-in property as missing (null), not as the built-in", async () => {
    await graph.expectAnswer(`{ shelf { id constructor } }`, undefined, {
      data: {
        shelf: [
          { id: 'p1', constructor: 'made p1' },
          { id: 'p2', constructor: 'made p2' },
          { id: 'p3', constructor: 'made p3' },
          { id: 'p4', constructor: null },
        ],
      },
    });
    await graph.expectAnswer(`{ shelf { id toString } }`, undefined, {
      data: { shelf: [{ id: 'p1', toString: 1 }, { id: 'p2', toString: 2 }, { id: 'p3', toString: 3 }, null] },
      extensions: {
        valueCompletion: [{ message: 'Cannot return null for non-nullable field Product.toString.', path: ['shelf', 3, 'toString'], extensions: { code: 'INVALID_GRAPHQL' } }],
      },
    });
  });

  it('nulls what an unreachable subgraph owns, up to the nearest nullable parent, with one error naming it', async () => {
    await graph.stopSubgraph('gone');
    const unavailable = { message: 'The gone service is unavailable', extensions: { code: 'SUBGRAPH_UNAVAILABLE', serviceName: 'gone' } };
    await graph.expectAnswer(`{ product(id: "p1") { name legacyCode } }`, undefined, { data: { product: { name: 'Lamp', legacyCode: null } }, errors: [unavailable] });
    await graph.expectAnswer(`{ product(id: "p1") { name strictLegacyCode price } }`, undefined, { data: { product: null }, errors: [unavailable] });
    await graph.expectAnswer(`{ products { name strictLegacyCode } }`, undefined, { data: null, errors: [unavailable] });
  });
});
