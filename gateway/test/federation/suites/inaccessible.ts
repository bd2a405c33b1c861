// @inaccessible: what a client sees when a subgraph returns something the API schema hides. An enum value that
// is inaccessible (directly and behind an entity fetch, nullable and not, alone and in a list), an object type that
// is inaccessible returned as a union member or an interface implementation, and the hidden parts refused in
// operations and variables.
import { describe, it } from 'vitest';
import { federation, federationSdl } from '../harness.ts';

const ITEMS = [
  { id: 'i1', status: 'ACTIVE' },
  { id: 'i2', status: 'RETIRED' },
];

/** Owns items; RETIRED is a status only it knows about, and Hidden a type only it can see. */
const catalog = {
  name: 'catalog',
  typeDefs: federationSdl(
    ['@key', '@inaccessible'],
    `
type Query {
  items(status: Status): [Item!]!
  statuses: [Status]!
  strictStatuses: [Status!]
  things: [Thing]!
  thing: Thing
  strictThing: Thing!
  nodes: [Node!]
}
enum Status {
  ACTIVE
  RETIRED @inaccessible
}
type Item @key(fields: "id") {
  id: ID!
  status: Status
  strictStatus: Status!
  internalCode: String @inaccessible
}
union Thing = Visible | Hidden
type Visible {
  name: String!
}
type Hidden @inaccessible {
  secret: String!
}
interface Node {
  id: ID!
}
type Public implements Node {
  id: ID!
}
type Private implements Node @inaccessible {
  id: ID!
}
`,
  ),
  resolvers: {
    Query: {
      items: (_: unknown, { status }: { status?: string }) => ITEMS.filter((item) => !status || item.status === status),
      statuses: () => ['ACTIVE', 'RETIRED', null],
      strictStatuses: () => ['ACTIVE', 'RETIRED'],
      things: () => [
        { __typename: 'Visible', name: 'sun' },
        { __typename: 'Hidden', secret: 'moon' },
      ],
      thing: () => ({ __typename: 'Hidden', secret: 'moon' }),
      strictThing: () => ({ __typename: 'Hidden', secret: 'moon' }),
      nodes: () => [
        { __typename: 'Public', id: 'n1' },
        { __typename: 'Private', id: 'n2' },
      ],
    },
    Item: {
      __resolveReference: ({ id }: { id: string }) => ITEMS.find((item) => item.id === id),
      strictStatus: (item: { status: string }) => item.status,
      internalCode: () => 'x',
    },
    Thing: { __resolveType: (thing: { __typename: string }) => thing.__typename },
    Node: { __resolveType: (node: { __typename: string }) => node.__typename },
  },
};

/** Grades items; its grade enum has a value the API hides too, returned across the entity boundary. */
const grading = {
  name: 'grading',
  typeDefs: federationSdl(
    ['@key', '@inaccessible'],
    `
type Item @key(fields: "id") {
  id: ID!
  grade: Grade
  grades: [Grade!]!
}
enum Grade {
  GOOD
  POOR
  DRAFT @inaccessible
}
`,
  ),
  resolvers: {
    Item: {
      __resolveReference: ({ id }: { id: string }) => ({ id }),
      grade: ({ id }: { id: string }) => (id === 'i1' ? 'GOOD' : 'DRAFT'),
      grades: ({ id }: { id: string }) => (id === 'i1' ? ['GOOD', 'POOR'] : ['POOR', 'DRAFT']),
    },
  },
};

/** Apollo's executor reports a value the API schema does not have as a value-completion problem: in `extensions`. */
const invalid = (message: string, path: Array<string | number>) => ({ message, path, extensions: { code: 'INVALID_GRAPHQL' } });

describe('@inaccessible values returned by subgraphs', () => {
  const graph = federation([catalog, grading]);

  it('nulls an inaccessible enum value in a nullable field, and says so in extensions.valueCompletion (not in errors)', async () => {
    await graph.expectAnswer(`{ items { id status } }`, undefined, {
      data: {
        items: [
          { id: 'i1', status: 'ACTIVE' },
          { id: 'i2', status: null },
        ],
      },
      extensions: { valueCompletion: [invalid('Invalid value found for field Item.status.', ['items', 1, 'status'])] },
    });
  });

  it('propagates the null of an inaccessible enum value in a non-null field to the nearest nullable parent (here data)', async () => {
    // Apollo's answer: data null with no entry in errors at all, only the value-completion note.
    await graph.expectAnswer(`{ items { id strictStatus } }`, undefined, {
      data: null,
      extensions: { valueCompletion: [invalid('Invalid value found for field Item.strictStatus.', ['items', 1, 'strictStatus'])] },
    });
  });

  it('nulls an inaccessible enum value in a list: the element where it may be null, else the whole list', async () => {
    await graph.expectAnswer(`{ statuses strictStatuses }`, undefined, {
      data: { statuses: ['ACTIVE', null, null], strictStatuses: null },
      extensions: {
        valueCompletion: [
          invalid('Invalid value found for array element of type Status at index 1.', ['statuses', 1]),
          invalid('Invalid value found for array element of type Status at index 1.', ['strictStatuses', 1]),
        ],
      },
    });
  });

  it('treats an inaccessible enum value from an entity fetch the same way (a non-null list element nulls up to data)', async () => {
    await graph.expectAnswer(`{ items { id grade } }`, undefined, {
      data: {
        items: [
          { id: 'i1', grade: 'GOOD' },
          { id: 'i2', grade: null },
        ],
      },
      extensions: { valueCompletion: [invalid('Invalid value found for field Item.grade.', ['items', 1, 'grade'])] },
    });
    await graph.expectAnswer(`{ items { id grade grades } }`, undefined, {
      data: null,
      extensions: {
        valueCompletion: [
          invalid('Invalid value found for field Item.grade.', ['items', 1, 'grade']),
          invalid('Invalid value found for array element of type Grade at index 1.', ['items', 1, 'grades', 1]),
        ],
      },
    });
  });

  it('nulls an object of an inaccessible type returned as a union member or an interface implementation', async () => {
    await graph.expectAnswer(`{ things { __typename ... on Visible { name } } thing { __typename } nodes { __typename id } }`, undefined, {
      data: { things: [{ __typename: 'Visible', name: 'sun' }, null], thing: null, nodes: null },
      extensions: {
        valueCompletion: [
          invalid('Invalid __typename found for object at array element of type Thing at index 1.', ['things', 1]),
          invalid('Invalid __typename found for object at field Query.thing.', ['thing']),
          invalid('Invalid __typename found for object at array element of type Node at index 1.', ['nodes', 1]),
        ],
      },
    });
  });

  it('nulls data for an object of an inaccessible type in a non-null root field', async () => {
    await graph.expectAnswer(`{ strictThing { __typename } }`, undefined, {
      data: null,
      extensions: { valueCompletion: [invalid('Invalid __typename found for object at field Query.strictThing.', ['strictThing'])] },
    });
  });

  it('refuses an inaccessible field in the operation, and an inaccessible enum value in a variable', async () => {
    await graph.expectAnswer(`{ items { internalCode } }`, undefined, {
      status: 400,
      errors: [{ message: 'Cannot query field "internalCode" on type "Item".', locations: [{ line: 1, column: 11 }], extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } }],
    });
    await graph.expectAnswer(`query ($s: Status) { items(status: $s) { id } }`, { s: 'RETIRED' }, {
      status: 400,
      errors: [
        {
          message: 'Variable "$s" got invalid value "RETIRED"; Value "RETIRED" does not exist in "Status" enum.',
          locations: [{ line: 1, column: 8 }],
          extensions: { code: 'BAD_USER_INPUT' },
        },
      ],
    });
  });
});
