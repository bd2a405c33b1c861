// Entity keys beyond a single id: compound keys, keys with nested objects two levels deep, a list-typed key,
// entities in lists (nested lists, nulls and duplicates among them), and a type with several @key, which the
// plan hops between: a subgraph that knows one key reaches a subgraph that knows only the other through a third.
import { describe, expect, it } from 'vitest';
import { federation, federationSdl } from '../harness.ts';

const SKUS = [
  { code: 'lamp', region: 'EU', stock: 4 },
  { code: 'lamp', region: 'US', stock: 0 },
  { code: 'desk', region: 'EU', stock: 9 },
];
const SEATS = [
  { venue: { id: 'v1', city: { name: 'Paris', country: 'FR' } }, number: 1, row: 'A' },
  { venue: { id: 'v1', city: { name: 'Paris', country: 'FR' } }, number: 2, row: 'A' },
  { venue: { id: 'v1', city: { name: 'Lyon', country: 'FR' } }, number: 1, row: 'C' },
];
const BATCHES = [
  { ids: ['a', 'b'], size: 2 },
  { ids: [], size: 0 },
  { ids: ['c'], size: 1 },
];
const PRICES: Record<string, number> = { 'lamp/EU': 30, 'lamp/US': 35, 'desk/EU': 120 };

/** Owns the entities and all their keys. */
const inventory = {
  name: 'inventory',
  typeDefs: federationSdl(
    ['@key', '@shareable'],
    `
type Query {
  skus: [Sku!]!
  "With gaps and a duplicate."
  shelf: [Sku]!
  "A list of lists."
  seatRows: [[Seat!]!]!
  batches: [Batch!]!
}
type Sku @key(fields: "code region") {
  code: String!
  region: String!
  stock: Int!
}
type Seat @key(fields: "venue { id city { name } } number") {
  venue: Venue!
  number: Int!
  row: String!
}
type Venue @shareable {
  id: ID!
  city: City!
}
type City @shareable {
  name: String!
  country: String!
}
type Batch @key(fields: "ids") {
  ids: [ID!]!
  size: Int!
}
`,
  ),
  resolvers: {
    Query: {
      skus: () => SKUS,
      shelf: () => [SKUS[2], null, SKUS[0], SKUS[2]],
      seatRows: () => [[SEATS[0], SEATS[1]], [], [SEATS[2]]],
      batches: () => BATCHES,
    },
    Sku: { __resolveReference: ({ code, region }: { code: string; region: string }) => SKUS.find((sku) => sku.code === code && sku.region === region) },
    Seat: {
      __resolveReference: ({ venue, number }: { venue: { id: string; city: { name: string } }; number: number }) =>
        SEATS.find((seat) => seat.venue.id === venue.id && seat.venue.city.name === venue.city.name && seat.number === number),
    },
    Batch: { __resolveReference: ({ ids }: { ids: string[] }) => BATCHES.find((batch) => batch.ids.join() === ids.join()) },
  },
};

/** Extends each entity, resolving it from its key alone (it echoes the key it was sent where useful). */
const pricing = {
  name: 'pricing',
  typeDefs: federationSdl(
    ['@key', '@shareable'],
    `
type Sku @key(fields: "code region") {
  code: String!
  region: String!
  price: Int
}
type Seat @key(fields: "venue { id city { name } } number") {
  venue: Venue!
  number: Int!
  price: Int!
  "The key this subgraph was sent."
  ref: String!
}
type Venue @shareable {
  id: ID!
  city: City!
}
type City @shareable {
  name: String!
}
type Batch @key(fields: "ids") {
  ids: [ID!]!
  label: String!
}
`,
  ),
  resolvers: {
    Sku: {
      __resolveReference: (key: { code: string; region: string }) => key,
      price: ({ code, region }: { code: string; region: string }) => PRICES[`${code}/${region}`] ?? null,
    },
    Seat: {
      __resolveReference: (key: { venue: { id: string; city: { name: string } }; number: number }) => key,
      price: ({ venue, number }: { venue: { city: { name: string } }; number: number }) => (venue.city.name === 'Paris' ? 50 : 40) + number,
      ref: (key: unknown) => JSON.stringify(key),
    },
    Batch: {
      __resolveReference: (key: { ids: string[] }) => key,
      label: ({ ids }: { ids: string[] }) => (ids.length ? ids.join('+') : 'empty'),
    },
  },
};

describe('compound, nested and list-typed keys, and entities in lists', () => {
  const graph = federation([inventory, pricing]);

  it('resolves an entity by a compound key', async () => {
    await graph.expectAnswer(`{ skus { code region stock price } }`, undefined, {
      data: {
        skus: [
          { code: 'lamp', region: 'EU', stock: 4, price: 30 },
          { code: 'lamp', region: 'US', stock: 0, price: 35 },
          { code: 'desk', region: 'EU', stock: 9, price: 120 },
        ],
      },
    });
  });

  it('fans entities of a list with nulls and duplicates back into place, the client not asking for the key', async () => {
    await graph.expectAnswer(`{ shelf { price stock } }`, undefined, {
      data: { shelf: [{ price: 120, stock: 9 }, null, { price: 30, stock: 4 }, { price: 120, stock: 9 }] },
    });
  });

  it('resolves an entity by a key with nested objects, in a list of lists with an empty one', async () => {
    await graph.expectAnswer(`{ seatRows { row number price venue { city { name country } } } }`, undefined, {
      data: {
        seatRows: [
          [
            { row: 'A', number: 1, price: 51, venue: { city: { name: 'Paris', country: 'FR' } } },
            { row: 'A', number: 2, price: 52, venue: { city: { name: 'Paris', country: 'FR' } } },
          ],
          [],
          [{ row: 'C', number: 1, price: 41, venue: { city: { name: 'Lyon', country: 'FR' } } }],
        ],
      },
    });
  });

  it('sends a nested key with exactly its own fields (not the rest of the nested objects)', async () => {
    await graph.expectAnswer(`{ seatRows { ref } }`, undefined, {
      data: {
        seatRows: [
          [
            { ref: '{"__typename":"Seat","venue":{"id":"v1","city":{"name":"Paris"}},"number":1}' },
            { ref: '{"__typename":"Seat","venue":{"id":"v1","city":{"name":"Paris"}},"number":2}' },
          ],
          [],
          [{ ref: '{"__typename":"Seat","venue":{"id":"v1","city":{"name":"Lyon"}},"number":1}' }],
        ],
      },
    });
  });

  // Apollo's answer today is wrong: with an entity fetch to follow, `{ skus { code: region price } }` answers each
  // sku's code under "code", not its region (the first fetch is planned as `{ skus { __typename code region } }`).
  // Without the entity fetch (`{ skus { code: region } }`) it is right. The spec's answer is pinned here as a known
  // failure; the next test holds our executor to Apollo's answer meanwhile.
  it.fails('answers the aliased field, not the key field the alias is named after, when an entity fetch follows (Apollo: wrong today)', async () => {
    await graph.expectAnswer(`{ skus { code: region price } }`, undefined, {
      data: {
        skus: [
          { code: 'EU', price: 30 },
          { code: 'US', price: 35 },
          { code: 'EU', price: 120 },
        ],
      },
    });
  });

  it("answers an alias named after a key field as Apollo's executor does, byte for byte", async () => {
    for (const query of [`{ skus { code: region price } }`, `{ skus { code: region region: code price stock } }`, `{ skus { code: region } }`]) {
      const answers = await graph.ask(query);
      expect(answers.own.text, query).toBe(answers.apollo.text);
    }
    // What that is today, for the record.
    expect((await graph.ask(`{ skus { code: region price } }`)).apollo.body).toEqual({
      data: {
        skus: [
          { code: 'lamp', price: 30 },
          { code: 'lamp', price: 35 },
          { code: 'desk', price: 120 },
        ],
      },
    });
  });

  it('orders keys as the operation does, when fields of two subgraphs interleave and a fragment repeats some', async () => {
    await graph.expectAnswer(`{ skus { price ...S code stock price } } fragment S on Sku { region price stock }`, undefined, {
      data: {
        skus: [
          { price: 30, region: 'EU', stock: 4, code: 'lamp' },
          { price: 35, region: 'US', stock: 0, code: 'lamp' },
          { price: 120, region: 'EU', stock: 9, code: 'desk' },
        ],
      },
    });
  });

  it('resolves an entity by a list-typed key, an empty list included', async () => {
    await graph.expectAnswer(`{ batches { size label ids } }`, undefined, {
      data: {
        batches: [
          { size: 2, label: 'a+b', ids: ['a', 'b'] },
          { size: 0, label: 'empty', ids: [] },
          { size: 1, label: 'c', ids: ['c'] },
        ],
      },
    });
  });
});

const PEOPLE = [
  { id: 'p1', email: 'ada@example.com', name: 'Ada' },
  { id: 'p2', email: 'alan@example.com', name: 'Alan' },
];

/** Knows people by both keys. */
const directory = {
  name: 'directory',
  typeDefs: federationSdl(
    ['@key'],
    `
type Query {
  people: [Person!]!
}
type Person @key(fields: "id") @key(fields: "email") {
  id: ID!
  email: String!
  name: String!
}
`,
  ),
  resolvers: {
    Query: { people: () => PEOPLE },
    Person: {
      __resolveReference: (key: { id?: string; email?: string }) => PEOPLE.find((person) => (key.id ? person.id === key.id : person.email === key.email)) ?? null,
    },
  },
};

/** Knows people by email only. */
const mail = {
  name: 'mail',
  typeDefs: federationSdl(
    ['@key'],
    `
type Query {
  recipients: [Person!]!
}
type Person @key(fields: "email") {
  email: String!
  unread: Int!
}
`,
  ),
  resolvers: {
    Query: { recipients: () => [{ email: 'alan@example.com' }, { email: 'ada@example.com' }] },
    Person: {
      __resolveReference: ({ email }: { email: string }) => ({ email }),
      unread: ({ email }: { email: string }) => email.length,
    },
  },
};

/** Knows people by id only. */
const badges = {
  name: 'badges',
  typeDefs: federationSdl(
    ['@key'],
    `
type Person @key(fields: "id") {
  id: ID!
  badges: [String!]!
}
`,
  ),
  resolvers: {
    Person: {
      __resolveReference: ({ id }: { id: string }) => ({ id }),
      badges: ({ id }: { id: string }) => (id === 'p1' ? ['first', 'engine'] : []),
    },
  },
};

describe('several @key on one type', () => {
  const graph = federation([directory, mail, badges]);

  it('reaches each subgraph by the key it knows', async () => {
    await graph.expectAnswer(`{ people { name unread badges } }`, undefined, {
      data: {
        people: [
          { name: 'Ada', unread: 15, badges: ['first', 'engine'] },
          { name: 'Alan', unread: 16, badges: [] },
        ],
      },
    });
  });

  it('hops keys: from a subgraph that knows only the email, through one that knows both, to one that knows only the id', async () => {
    const query = `{ recipients { email badges name } }`;
    await graph.expectAnswer(query, undefined, {
      data: {
        recipients: [
          { email: 'alan@example.com', badges: [], name: 'Alan' },
          { email: 'ada@example.com', badges: ['first', 'engine'], name: 'Ada' },
        ],
      },
    });
    for (const execution of ['apollo', 'own'] as const) {
      const { requests } = await graph.askWith(execution, query);
      expect(requests.map((request) => request.subgraph)).toEqual(['mail', 'directory', 'badges']);
      expect(requests[2]!.variables.representations).toEqual([
        { __typename: 'Person', id: 'p2' },
        { __typename: 'Person', id: 'p1' },
      ]);
    }
  });
});
