import { ApolloServer, HeaderMap, type BaseContext } from '@apollo/server';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { GraphQLError, parse } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compiledExecution, createErrorFormatter, createLogger, instrumentCacheHints, type CompiledExecutionStats } from '../src/index.ts';

// In process, against a schema written to reach the corners of Apollo's cache hints (type and field hints,
// inheritMaxAge, the default of 0 for objects and root fields, hints set by a resolver, parents that are null)
// and of errors. The same ApolloServer setup twice: graphql-js as Apollo runs it, and compiled execution.
const typeDefs = parse(`
  enum CacheControlScope { PUBLIC PRIVATE }
  directive @cacheControl(maxAge: Int, scope: CacheControlScope, inheritMaxAge: Boolean) on FIELD_DEFINITION | OBJECT | INTERFACE | UNION

  type Query {
    shop(id: ID!): Shop
    shops: [Shop!]! @cacheControl(maxAge: 30)
    dynamic: Item @cacheControl(maxAge: 100)
    boom: String
    coded: String
    plain: String
    strict: Shop!
  }
  type Shop @cacheControl(maxAge: 60) {
    id: ID!
    name: String
    owner: Owner
    secret: String @cacheControl(scope: PRIVATE)
    items: [Item!]!
    inherited: Owner @cacheControl(inheritMaxAge: true)
  }
  type Owner { name: String }
  type Item @cacheControl(inheritMaxAge: true) { sku: String! price: Int }
`);

interface Shop {
  id: string;
  name: string | null;
  owner: { name: string } | null;
  secret: string;
  items: { sku: string | null; price: number }[];
  inherited: { name: string };
}

const shops: Shop[] = [
  { id: '1', name: 'One', owner: { name: 'Ada' }, secret: 's1', items: [{ sku: 'A', price: 1 }], inherited: { name: 'x' } },
  { id: '2', name: null, owner: null, secret: 's2', items: [], inherited: { name: 'y' } },
];

const resolvers = {
  Query: {
    shop: (_: unknown, { id }: { id: string }) => shops.find((shop) => shop.id === id) ?? null,
    shops: async () => shops,
    dynamic: (_: unknown, __: unknown, ___: unknown, info: { cacheControl: { setCacheHint(hint: object): void } }) => {
      info.cacheControl.setCacheHint({ maxAge: 5, scope: 'PRIVATE' });
      return { sku: 'D', price: 3 };
    },
    boom: () => {
      throw new Error('relation "secrets" does not exist: select * from secrets');
    },
    coded: () => {
      throw new GraphQLError('No such thing', { extensions: { code: 'NOT_FOUND' } });
    },
    plain: () => 'plain',
    strict: () => ({ ...shops[0], id: null }),
  },
};

const logger = createLogger({ name: 'test', level: 'silent' });
const build = () => buildSubgraphSchema([{ typeDefs, resolvers }] as Parameters<typeof buildSubgraphSchema>[0]);

function server(options: { schema: ReturnType<typeof build> } | { gateway: ReturnType<typeof compiledExecution>['gateway'] }) {
  return new ApolloServer<BaseContext>({
    ...options,
    includeStacktraceInErrorResponses: false,
    formatError: createErrorFormatter({ knownCodes: ['NOT_FOUND'], logger }),
    logger,
  });
}

let graphqlJs: ApolloServer<BaseContext>;
let compiled: ApolloServer<BaseContext>;
let stats: CompiledExecutionStats;
let bounded: ApolloServer<BaseContext>;
let boundedStats: CompiledExecutionStats;

beforeAll(async () => {
  graphqlJs = server({ schema: build() });
  const schema = build();
  const execution = compiledExecution({ schema, compiledSchema: instrumentCacheHints(build()), logger });
  compiled = server({ gateway: execution.gateway });
  stats = execution.stats;
  const small = compiledExecution({ schema, compiledSchema: instrumentCacheHints(build()), logger, maxDocuments: 2 });
  bounded = server({ gateway: small.gateway });
  boundedStats = small.stats;
  await Promise.all([graphqlJs.start(), compiled.start(), bounded.start()]);
});

afterAll(async () => {
  await Promise.all([graphqlJs?.stop(), compiled?.stop(), bounded?.stop()]);
});

/** What Apollo would send over HTTP: its status, Cache-Control and body text. */
async function answer(on: ApolloServer<BaseContext>, query: string, variables?: Record<string, unknown>, operationName?: string) {
  const response = await on.executeHTTPGraphQLRequest({
    httpGraphQLRequest: { method: 'POST', headers: new HeaderMap([['content-type', 'application/json']]), search: '', body: JSON.parse(JSON.stringify({ query, variables, operationName })) as unknown },
    context: async () => ({}),
  });
  if (response.body.kind !== 'complete') throw new Error('expected a complete body');
  return { status: response.status, cacheControl: response.headers.get('cache-control'), body: response.body.string };
}

const OPERATIONS: { query: string; variables?: Record<string, unknown>; operationName?: string; cacheControl?: string }[] = [
  { query: '{ shop(id: "1") { id name } }', cacheControl: 'max-age=60, public' },
  { query: '{ shop(id: "1") { id secret } }', cacheControl: 'max-age=60, private' },
  { query: '{ shop(id: "1") { owner { name } } }', cacheControl: 'no-store' },
  // The owner is never resolved under a missing shop, so its default of 0 never applies.
  { query: '{ shop(id: "404") { owner { name } } }', cacheControl: 'max-age=60, public' },
  { query: '{ shop(id: "2") { owner { name } inherited { name } } }', cacheControl: 'no-store' },
  { query: '{ shop(id: "1") { inherited { name } items { sku price } } }', cacheControl: 'max-age=60, public' },
  { query: '{ shops { id items { sku } } }', cacheControl: 'max-age=30, public' },
  { query: '{ dynamic { sku } }', cacheControl: 'max-age=5, private' },
  { query: '{ plain }', cacheControl: 'no-store' },
  { query: '{ __typename }' },
  { query: '{ __schema { queryType { name } } __type(name: "Shop") { name fields { name type { kind ofType { name } } } } }' },
  { query: '{ boom plain }', cacheControl: 'no-store' },
  { query: '{ coded shop(id: "1") { name } }' },
  { query: '{ strict { id name } }' },
  { query: 'query ($id: ID!) { shop(id: $id) { name } }' },
  { query: 'query ($id: ID!) { shop(id: $id) { name } }', variables: { id: { nested: 1 } } },
  { query: 'query ($on: Boolean = true) { shop(id: "1") { name @include(if: $on) id } }', variables: { on: null } },
  { query: 'query ($on: Boolean = true) { shop(id: "1") { name @include(if: $on) id } }', variables: { on: false } },
  { query: 'query A { plain } query B { shop(id: "1") { id } }', operationName: 'B' },
  { query: 'query A { plain } query B { shop(id: "1") { id } }', operationName: 'C' },
];

describe('compiled execution (in process)', () => {
  it.each(OPERATIONS.map((operation) => [operation.query, operation] as const))('answers %s as graphql-js does', async (_name, { query, variables, operationName, cacheControl }) => {
    const expected = await answer(graphqlJs, query, variables, operationName);
    expect(await answer(compiled, query, variables, operationName)).toEqual(expected);
    if (cacheControl) expect(expected.cacheControl).toBe(cacheControl);
  });

  it('masks an unexpected error, keeping its path and location, and passes a coded one through', async () => {
    const body = JSON.parse((await answer(compiled, '{ boom coded }')).body) as { errors: unknown[] };
    expect(body.errors).toEqual([
      { message: 'Internal server error', locations: [{ line: 1, column: 3 }], path: ['boom'], extensions: { code: 'INTERNAL_SERVER_ERROR' } },
      { message: 'No such thing', locations: [{ line: 1, column: 8 }], path: ['coded'], extensions: { code: 'NOT_FOUND' } },
    ]);
  });

  it('compiled the documents it could, and ran the rest on graphql-js', () => {
    expect(stats.compiled).toBeGreaterThan(OPERATIONS.length / 2);
    // A null for a nullable @include variable, and an unknown operation name.
    expect(stats.fallback).toBeGreaterThanOrEqual(2);
  });

  it('keeps at most maxDocuments compiled documents, and still answers the ones it let go', async () => {
    for (const query of ['{ plain }', '{ shop(id: "1") { id } }', '{ shops { id } }', '{ plain }']) {
      expect(await answer(bounded, query)).toEqual(await answer(graphqlJs, query));
      expect(boundedStats.documents).toBeLessThanOrEqual(2);
    }
    expect(boundedStats.compiled).toBe(4);
  });
});
