// @requires: fields computed by one subgraph from fields another owns. Scalars, a field with arguments, nested
// object fields, fields behind type conditions, a chain over three subgraphs, required values that are null or
// fail, and entities in lists. The requiring subgraph sees exactly the representation it asked for: its
// resolvers compute from it (and echo what they were sent where that is the point).
import { describe, expect, it } from 'vitest';
import { federation, federationSdl, testError } from '../harness.ts';

interface Product {
  upc: string;
  name: string;
  weight: number | null;
  prices: Record<string, number>;
  dimensions: { width: number; height: number; depth: number; unit: string };
  packaging: { __typename: 'Box'; size: string } | { __typename: 'Envelope'; padded: boolean };
}

const PRODUCTS: Product[] = [
  { upc: 'p1', name: 'Lamp', weight: 2, prices: { USD: 30, EUR: 28 }, dimensions: { width: 2, height: 3, depth: 4, unit: 'dm' }, packaging: { __typename: 'Box', size: 'M' } },
  { upc: 'p2', name: 'Card', weight: null, prices: { USD: 3, EUR: 2 }, dimensions: { width: 1, height: 1, depth: 1, unit: 'cm' }, packaging: { __typename: 'Envelope', padded: true } },
  // Its price fails in the owning subgraph.
  { upc: 'p3', name: 'Vase', weight: 5, prices: {}, dimensions: { width: 1, height: 5, depth: 1, unit: 'dm' }, packaging: { __typename: 'Box', size: 'L' } },
];

const product = (upc: string) => PRODUCTS.find((row) => row.upc === upc) ?? null;

const products = {
  name: 'products',
  typeDefs: federationSdl(
    ['@key', '@shareable'],
    `
type Query {
  products: [Product!]!
  product(upc: String!): Product
  "p1, p2, p1, null, p3."
  bundle: [Product]!
}
type Product @key(fields: "upc") {
  upc: String!
  name: String!
  weight: Int
  price(currency: String! = "USD"): Int
  dimensions: Dimensions!
  packaging: Packaging!
}
type Dimensions @shareable {
  width: Int!
  height: Int!
  depth: Int!
  unit: String!
}
interface Packaging {
  kind: String!
}
type Box implements Packaging @shareable {
  kind: String!
  size: String!
}
type Envelope implements Packaging @shareable {
  kind: String!
  padded: Boolean!
}
`,
  ),
  resolvers: {
    Query: {
      products: () => PRODUCTS,
      product: (_: unknown, { upc }: { upc: string }) => product(upc),
      bundle: () => [PRODUCTS[0], PRODUCTS[1], PRODUCTS[0], null, PRODUCTS[2]],
    },
    Product: {
      __resolveReference: ({ upc }: { upc: string }) => product(upc),
      price: (row: Product, { currency }: { currency: string }) => {
        const price = row.prices[currency];
        if (price === undefined) throw testError(`no ${currency} price for ${row.upc}`);
        return price;
      },
      packaging: (row: Product) => ({ ...row.packaging, kind: row.packaging.__typename.toLowerCase() }),
    },
    Packaging: { __resolveType: (packaging: { __typename: string }) => packaging.__typename },
  },
};

interface ShippingRepresentation {
  upc: string;
  weight?: number | null;
  price?: number | null;
  dimensions?: Partial<Product['dimensions']>;
  packaging?: { __typename?: string; size?: string; padded?: boolean };
}

/** Computes shipping from the owner's fields: each field requires what it reads. */
const shipping = {
  name: 'shipping',
  typeDefs: federationSdl(
    ['@key', '@external', '@requires', '@shareable'],
    `
type Product @key(fields: "upc") {
  upc: String!
  weight: Int @external
  price(currency: String! = "USD"): Int @external
  dimensions: Dimensions! @external
  packaging: Packaging! @external
  "Needs the weight (nullable) only."
  shippingCost: Int @requires(fields: "weight")
  "Needs the price in euros: a required field with an argument."
  dutyEur(rate: Int! = 10): Int @requires(fields: "price(currency: \\"EUR\\") weight")
  "Needs some of a nested object's fields."
  volume(scale: Int! = 1): Int! @requires(fields: "dimensions { width height depth unit }")
  unitLabel: String! @requires(fields: "dimensions { unit }")
  "Needs fields behind type conditions of an interface."
  handling: String! @requires(fields: "packaging { __typename ... on Box { size } ... on Envelope { padded } }")
  "Echoes the representation it was sent for the given fields, to show what the gateway passed."
  sent: String! @requires(fields: "weight dimensions { unit }")
  "Fails for p3 (it is non-null, so p3's whole entity is null in this subgraph's answer)."
  insured: Boolean!
}
type Dimensions @shareable {
  width: Int!
  height: Int!
  depth: Int!
  unit: String!
}
interface Packaging {
  kind: String!
}
type Box implements Packaging @shareable {
  kind: String!
  size: String!
}
type Envelope implements Packaging @shareable {
  kind: String!
  padded: Boolean!
}
`,
  ),
  resolvers: {
    Product: {
      __resolveReference: (representation: ShippingRepresentation) => representation,
      shippingCost: ({ weight }: ShippingRepresentation) => (weight === null || weight === undefined ? null : weight * 7),
      dutyEur: ({ price, weight }: ShippingRepresentation, { rate }: { rate: number }) => (typeof price === 'number' ? (price * rate) / 10 + (weight ?? 0) : null),
      volume: ({ dimensions }: ShippingRepresentation, { scale }: { scale: number }) => dimensions!.width! * dimensions!.height! * dimensions!.depth! * scale,
      unitLabel: ({ dimensions }: ShippingRepresentation) => `in ${dimensions!.unit}³`,
      handling: ({ packaging }: ShippingRepresentation) =>
        packaging?.__typename === 'Box' ? `box ${packaging.size}` : packaging?.padded ? 'padded envelope' : 'envelope',
      sent: ({ upc, weight, dimensions }: ShippingRepresentation) => JSON.stringify({ upc, weight, dimensions }),
      insured: ({ upc }: ShippingRepresentation) => {
        if (upc === 'p3') throw testError(`no insurance data for ${upc}`);
        return upc === 'p1';
      },
    },
    Packaging: { __resolveType: (packaging: { __typename: string }) => packaging.__typename },
  },
};

/** A third subgraph requiring a field that shipping computes from products: products → shipping → delivery. */
const delivery = {
  name: 'delivery',
  typeDefs: federationSdl(
    ['@key', '@external', '@requires'],
    `
type Product @key(fields: "upc") {
  upc: String!
  name: String! @external
  shippingCost: Int @external
  quote: String! @requires(fields: "name shippingCost")
  insured: Boolean! @external
  "Echoes what it was sent; needs a non-null field that fails for p3 in shipping."
  policy: String @requires(fields: "insured")
}
`,
  ),
  resolvers: {
    Product: {
      __resolveReference: (representation: { upc: string; name?: string; shippingCost?: number | null }) => representation,
      quote: ({ name, shippingCost }: { name: string; shippingCost: number | null }) => (shippingCost === null ? `${name}: ask us` : `${name}: ${shippingCost}`),
      policy: (representation: { upc: string; insured?: boolean | null }) => `${representation.upc}: ${JSON.stringify(representation.insured ?? 'missing')}`,
    },
  },
};

describe('@requires', () => {
  const graph = federation([products, shipping, delivery]);

  it('computes a field from a required scalar of another subgraph, over a list, passing null where the value is null', async () => {
    await graph.expectAnswer(`{ products { upc shippingCost } }`, undefined, {
      data: {
        products: [
          { upc: 'p1', shippingCost: 14 },
          { upc: 'p2', shippingCost: null },
          { upc: 'p3', shippingCost: 35 },
        ],
      },
    });
  });

  it('sends the requiring subgraph exactly the representation it declared (key and required fields, nothing the client asked)', async () => {
    await graph.expectAnswer(`{ product(upc: "p1") { name sent } }`, undefined, {
      data: { product: { name: 'Lamp', sent: '{"upc":"p1","weight":2,"dimensions":{"unit":"dm"}}' } },
    });
  });

  it('requires a field with an argument and passes the client its own arguments on the requiring field', async () => {
    await graph.expectAnswer(`{ product(upc: "p1") { usd: price dutyEur(rate: 20) eur: price(currency: "EUR") defaultRate: dutyEur } }`, undefined, {
      data: { product: { usd: 30, dutyEur: 58, eur: 28, defaultRate: 30 } },
    });
  });

  it('requires nested object fields, the client asking for some of the same fields with an alias and an argument', async () => {
    await graph.expectAnswer(`{ products { dimensions { w: width unit } volume(scale: 2) unitLabel } }`, undefined, {
      data: {
        products: [
          { dimensions: { w: 2, unit: 'dm' }, volume: 48, unitLabel: 'in dm³' },
          { dimensions: { w: 1, unit: 'cm' }, volume: 2, unitLabel: 'in cm³' },
          { dimensions: { w: 1, unit: 'dm' }, volume: 10, unitLabel: 'in dm³' },
        ],
      },
    });
  });

  it('requires fields behind type conditions of an interface: each entity sends the fields of its runtime type', async () => {
    await graph.expectAnswer(`{ products { handling packaging { kind ... on Box { size } } } }`, undefined, {
      data: {
        products: [
          { handling: 'box M', packaging: { kind: 'box', size: 'M' } },
          { handling: 'padded envelope', packaging: { kind: 'envelope' } },
          { handling: 'box L', packaging: { kind: 'box', size: 'L' } },
        ],
      },
    });
  });

  it('chains requirements over three subgraphs: a required field that is itself computed from required fields', async () => {
    await graph.expectAnswer(`{ products { quote } }`, undefined, {
      data: { products: [{ quote: 'Lamp: 14' }, { quote: 'Card: ask us' }, { quote: 'Vase: 35' }] },
    });
  });

  it('when a required field fails in its owner, reports that error at its path and still computes from the null it became', async () => {
    await graph.expectAnswer(`{ products { upc dutyEur } }`, undefined, {
      data: {
        products: [
          { upc: 'p1', dutyEur: 30 },
          { upc: 'p2', dutyEur: 2 },
          { upc: 'p3', dutyEur: null },
        ],
      },
      errors: [{ message: 'no EUR price for p3', path: ['products', 2, 'price'], extensions: { code: 'FED_TEST_ERROR', serviceName: 'products' } }],
    });
  });

  it('fetches the required fields once for several requiring fields and the client selection of them', async () => {
    const query = `{ product(upc: "p2") { weight shippingCost sent quote } }`;
    const answers = await graph.expectAnswer(query, undefined, {
      data: { product: { weight: null, shippingCost: null, sent: '{"upc":"p2","weight":null,"dimensions":{"unit":"cm"}}', quote: 'Card: ask us' } },
    });
    expect(answers.apollo.status).toBe(200);
    for (const execution of ['apollo', 'own'] as const) {
      const { requests } = await graph.askWith(execution, query);
      expect(requests.map((request) => request.subgraph)).toEqual(['products', 'shipping', 'delivery']);
    }
  });

  it('passes the variables of the requiring field and of the required one to the fetches that use them', async () => {
    await graph.expectAnswer(
      `query ($rate: Int!, $scale: Int!, $currency: String!) { products { price(currency: $currency) dutyEur(rate: $rate) volume(scale: $scale) } }`,
      { rate: 5, scale: 3, currency: 'EUR' },
      {
        data: {
          products: [
            { price: 28, dutyEur: 16, volume: 72 },
            { price: 2, dutyEur: 1, volume: 3 },
            { price: null, dutyEur: null, volume: 15 },
          ],
        },
        errors: [{ message: 'no EUR price for p3', path: ['products', 2, 'price'], extensions: { code: 'FED_TEST_ERROR', serviceName: 'products' } }],
      },
    );
  });

  it('computes required fields for an entity repeated in a list with a null among them', async () => {
    await graph.expectAnswer(`{ bundle { upc handling quote dutyEur } }`, undefined, {
      data: {
        bundle: [
          { upc: 'p1', handling: 'box M', quote: 'Lamp: 14', dutyEur: 30 },
          { upc: 'p2', handling: 'padded envelope', quote: 'Card: ask us', dutyEur: 2 },
          { upc: 'p1', handling: 'box M', quote: 'Lamp: 14', dutyEur: 30 },
          null,
          { upc: 'p3', handling: 'box L', quote: 'Vase: 35', dutyEur: null },
        ],
      },
      errors: [{ message: 'no EUR price for p3', path: ['bundle', 4, 'price'], extensions: { code: 'FED_TEST_ERROR', serviceName: 'products' } }],
    });
  });

  it('leaves out of the requiring fetch an entity whose non-null required field failed (no fetch at all if none is left)', async () => {
    await graph.expectAnswer(`{ products { upc policy } }`, undefined, {
      data: {
        products: [
          { upc: 'p1', policy: 'p1: true' },
          { upc: 'p2', policy: 'p2: false' },
          { upc: 'p3', policy: null },
        ],
      },
      errors: [{ message: 'no insurance data for p3', path: ['products', 2, 'insured'], extensions: { code: 'FED_TEST_ERROR', serviceName: 'shipping' } }],
    });
    await graph.expectAnswer(`{ product(upc: "p3") { name policy } }`, undefined, {
      data: { product: { name: 'Vase', policy: null } },
      errors: [{ message: 'no insurance data for p3', path: ['product', 'insured'], extensions: { code: 'FED_TEST_ERROR', serviceName: 'shipping' } }],
    });
    for (const execution of ['apollo', 'own'] as const) {
      const { requests } = await graph.askWith(execution, `{ products { upc policy } }`);
      expect(requests.find((request) => request.subgraph === 'delivery')?.variables.representations).toEqual([
        { __typename: 'Product', insured: true, upc: 'p1' },
        { __typename: 'Product', insured: false, upc: 'p2' },
      ]);
      const single = await graph.askWith(execution, `{ product(upc: "p3") { name policy } }`);
      expect(single.requests.map((request) => request.subgraph)).toEqual(['products', 'shipping']);
    }
  });
});
