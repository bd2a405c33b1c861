import { readFileSync } from 'node:fs';
import { Kind, parse, type DocumentNode, type OperationDefinitionNode, type TypeNode } from 'graphql';
import { TEST_OPERATIONS } from './corpus-tests.ts';

/** One operation with one set of variables: the unit the harness records, replays and mutates. */
export interface CorpusEntry {
  /** Unique and stable: names the test and seeds the mutations. */
  id: string;
  origin: 'tests' | 'contract' | 'generated';
  query: string;
  operationName?: string;
  /** Unset as a client that sends no variables leaves it. */
  variables: Record<string, unknown> | undefined;
  document: DocumentNode;
  kind: 'query' | 'mutation';
}

const CONTRACT_PATH = new URL('../fixtures/contract-operations.graphql', import.meta.url);

const namedType = (type: TypeNode): string => (type.kind === Kind.NAMED_TYPE ? type.name.value : namedType(type.type));

/**
 * Values for the variables of operations taken from tests, by name first and type second: ids of seeded rows,
 * so the recorded answers have data. Variables with a default value, and nullable cursors, are left out (the
 * executor then sees the default, as a client that omits them would have it).
 */
function variablesFor(operation: OperationDefinitionNode): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const definition of operation.variableDefinitions ?? []) {
    const name = definition.variable.name.value;
    const type = namedType(definition.type);
    if (definition.defaultValue) continue;
    if (name === 'after') continue;
    if (type === 'ID') values[name] = name === 'id' ? '2' : '4';
    else if (type === 'Int') values[name] = 3;
    else if (type === 'Boolean') values[name] = true;
    else if (type === 'OrderStatus') values[name] = 'PAID';
    else if (type === 'PlaceOrderInput') values[name] = { userId: '5', items: [{ sku: 'DIFF-1', quantity: 2, unitPriceCents: 150 }] };
    else if (type === 'CreateUserInput') values[name] = { email: 'created.by.harness@example.com', name: 'Harness' };
    else if (name === 'email') values[name] = 'variable.email@example.com';
    else if (name === 'sku') values[name] = 'DIFF-SKU';
    else if (type === 'String') values[name] = 'Differential Name';
    else throw new Error(`no value for $${name}: ${type}`);
  }
  return values;
}

const operationsOf = (document: DocumentNode) => document.definitions.filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION);

/** What the contract operations are sent with (each variable set is its own entry). */
const CONTRACT_VARIABLES: Record<string, Record<string, unknown>[]> = {
  ReadmeNested: [{}],
  AdminDashboard: [{ status: 'PAID' }, {}],
  MyAccount: [{}, { withOrders: false }, { withOrders: true, first: 2 }],
  OrderPage: [{ id: '5' }, { id: '999999' }],
  CompareCustomers: [{}],
  ItemsOfEveryone: [{}],
  OrderQueue: [{ status: 'DELIVERED' }],
  PlaceOrder: [{ input: { userId: '7', items: [{ sku: 'CONTRACT-1', quantity: 3, unitPriceCents: 499 }, { sku: 'CONTRACT-2', quantity: 1, unitPriceCents: 1 }] } }],
  RenameMe: [{ id: '1', name: 'Renamed By The Contract' }],
};

/**
 * Written for this harness: the shapes an executor must get right over this supergraph. Fragments (named,
 * inline, nested, with and without type condition), aliases (the same field twice with other arguments),
 * `@skip`/`@include` on fields, spreads and inline fragments with literals and variables (each variable set is
 * an entry of its own), nested lists, `__typename` in every kind of place, repeated fields with other
 * sub-selections, back-and-forth between the subgraphs, missing entities, subgraph errors, and mutations.
 */
const GENERATED: { query: string; variables?: (Record<string, unknown> | undefined)[] }[] = [
  { query: '{ __typename user(id: "1") { __typename id } }' },
  { query: '{ t: __typename u: user(id: "2") { t1: __typename t2: __typename name } }' },
  { query: '{ users(first: 2) { __typename edges { __typename node { __typename id orders(first: 1) { __typename edges { node { __typename items { __typename sku } } } } } } } }' },
  { query: '{ a: user(id: "1") { name } b: user(id: "2") { name } c: user(id: "999999") { name } }' },
  { query: '{ user(id: "3") { few: orders(first: 1) { totalCount edges { node { id } } } paid: orders(first: 5, status: PAID) { totalCount edges { node { id status } } } all: orders { totalCount } } }' },
  { query: '{ user(id: "3") { orders(first: 2) { edges { node { id } } } orders(first: 2) { edges { node { status totalCents } } totalCount } } }' },
  { query: '{ user(id: "4") { id ... on User { name } ... { email } ...Counts } } fragment Counts on User { orderCount totalSpentCents ... on User { id } }' },
  { query: 'query Nested { ...Root } fragment Root on Query { users(first: 3) { ...Conn } } fragment Conn on UserConnection { totalCount edges { ...Edge } } fragment Edge on UserEdge { cursor node { ...U } } fragment U on User { id name orders(first: 2) { ...OConn } } fragment OConn on OrderConnection { edges { node { ...O } } } fragment O on Order { id status items { ...I } } fragment I on OrderItem { sku quantity }' },
  { query: 'query Flags($a: Boolean!, $b: Boolean!) { user(id: "5") { id name @skip(if: $a) email @include(if: $b) orderCount @include(if: $a) orders(first: 2) @skip(if: $b) { totalCount } } }', variables: [{ a: true, b: true }, { a: true, b: false }, { a: false, b: true }, { a: false, b: false }, { a: true }, { a: 'yes', b: false }, { a: null, b: true }, undefined] },
  { query: '{ user(id: "5") { id name @skip(if: true) email @include(if: false) orderCount @include(if: true) totalSpentCents @skip(if: false) } }' },
  { query: 'query Spreads($on: Boolean!) { user(id: "6") { id ...Private @include(if: $on) ... on User @skip(if: $on) { name orders(first: 1) { totalCount } } ... @include(if: $on) { createdAt } } } fragment Private on User { email orderCount }', variables: [{ on: true }, { on: false }] },
  { query: 'query Both($x: Boolean!, $y: Boolean = true) { user(id: "2") { id name @include(if: $x) @skip(if: $y) orders(first: 1) @include(if: $y) { totalCount } } }', variables: [{ x: true }, { x: true, y: false }, { x: false, y: false }, { x: true, y: null }, { x: false, y: true, unused: 1 }] },
  { query: 'query Root($withUsers: Boolean!, $withOrders: Boolean!) { users(first: 2) @include(if: $withUsers) { totalCount } orders(first: 2) @include(if: $withOrders) { totalCount edges { node { id user { id name } } } } }', variables: [{ withUsers: true, withOrders: true }, { withUsers: false, withOrders: true }, { withUsers: true, withOrders: false }] },
  { query: 'query Deep($id: ID!) { order(id: $id) { id status user { id name orders(first: 2) { edges { node { id user { id name orderCount orders(first: 1) { totalCount } } } } } } } }', variables: [{ id: '4' }, { id: '999999' }] },
  { query: '{ orders(first: 6) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id status totalCents currency createdAt items { sku quantity unitPriceCents } user { __typename id name email createdAt updatedAt } } } } }' },
  { query: '{ orders(first: 4, status: CANCELLED) { edges { node { id status user { name orderCount totalSpentCents } } } } }' },
  { query: 'query Page($first: Int, $status: OrderStatus) { users(first: $first) { edges { node { id orders(first: $first, status: $status) { totalCount edges { node { id status } } } } } } }', variables: [{ first: 2, status: 'SHIPPED' }, { first: 3 }, { first: 0 }] },
  { query: '{ users(first: 1000) { totalCount } }' },
  { query: '{ user(id: "1") { name orders(first: -1) { totalCount } } }' },
  { query: '{ orders(first: 500) { totalCount } }' },
  { query: '{ me { id name email orderCount totalSpentCents orders(first: 2) { edges { node { id items { sku } } } } } }' },
  { query: '{ user(id: "999999") { id name orders(first: 2) { totalCount } } order(id: "999999") { id user { name } } }' },
  { query: '{ user(id: "abc") { id orderCount } users(first: 1) { edges { node { name } } } }' },
  { query: '{ users(first: 4) { edges { node { id a: orders(first: 1) { edges { node { id } } } b: orders(first: 1) { edges { node { status } } } } } } }' },
  { query: '{ users(first: 3) { edges { node { ... on User { id ... on User { name ... { orderCount } } } } } } }' },
  { query: 'query Repeated { user(id: "2") { id orders(first: 2) { edges { node { id items { sku } } } } ... on User { orders(first: 2) { edges { node { items { quantity unitPriceCents } status } } } } } }' },
  { query: '{ user(id: "7") { ...A ...B } } fragment A on User { orders(first: 2) { edges { node { id } } } } fragment B on User { orders(first: 2) { totalCount edges { cursor node { totalCents } } } }' },
  { query: 'query Vars($id: ID!, $first: Int!, $status: OrderStatus) { user(id: $id) { name orders(first: $first, status: $status) { edges { node { id status } } } } }', variables: [{ id: '8', first: 3 }, { id: '8', first: 3, status: 'DELIVERED' }, { id: 8, first: 1 }, { id: '8', first: '3' }, { id: '8', first: 3, status: 'NOPE' }, { id: '8', first: 2.5 }, { first: 3 }] },
  { query: '{ users(first: 5) { pageInfo { endCursor hasNextPage } edges { cursor } } }' },
  { query: '{ users(first: 8) { edges { node { orders(first: 3) { edges { node { items { sku quantity } user { id } } } } } } } }' },
  { query: '{ order(id: "12") { __typename ... on Order { id totalCents } user { ... on User { __typename name } } } }' },
  { query: '{ user(id: "9") { id } user(id: "9") { name orderCount } }' },
  { query: '{ users(first: 3) { edges { node { id } } } users(first: 3) { totalCount edges { node { name totalSpentCents } } } }' },
  { query: 'query Cond($skip: Boolean!) { orders(first: 3) { edges { node { id user @skip(if: $skip) { name orders(first: 1) @include(if: $skip) { totalCount } } } } } }', variables: [{ skip: true }, { skip: false }] },
  { query: '{ users(first: 2) { edges { node { createdAt updatedAt createdAt } } } }' },
  // Mutations: each is recorded once, so no write happens twice.
  { query: 'mutation { createUser(input: { email: "generated.one@example.com", name: "Generated One" }) { __typename id name email orderCount orders(first: 1) { totalCount } } }' },
  { query: 'mutation { createUser(input: { email: "not-an-email", name: "" }) { id } }' },
  { query: 'mutation Rename($id: ID!) { updateUser(id: $id, input: { name: "Generated Rename" }) { id name orderCount orders(first: 2) { edges { node { id status user { name } } } } } }', variables: [{ id: '10' }, { id: '999999' }] },
  { query: 'mutation { placeOrder(input: { userId: "11", items: [{ sku: "GEN-1", quantity: 2, unitPriceCents: 300 }, { sku: "GEN-2", quantity: 1, unitPriceCents: 5 }] }) { id status totalCents items { sku quantity } user { id name orderCount totalSpentCents orders(first: 1) { edges { node { id } } } } } }' },
  { query: 'mutation { placeOrder(input: { userId: "11", items: [] }) { id } }' },
  { query: 'mutation Two { first: updateUser(id: "12", input: { name: "First" }) { name } second: updateUser(id: "12", input: { name: "Second" }) { name orderCount } third: placeOrder(input: { userId: "12", items: [{ sku: "T", quantity: 1, unitPriceCents: 1 }] }) { id user { name } } }' },
  { query: 'mutation { cancelOrder(id: "999999") { id } }' },
  { query: 'mutation { deleteUser(id: "999999") }' },
];

const MATERIALIZED_FROM_TEMPLATES = [
  // infra/stack/test/tracing.test.ts, circuit-breaker.test.ts and metrics.test.ts build these from a template.
  'query NestedTrace { users(first: 3) { edges { node { id name orders(first: 2) { edges { node { id status items { sku quantity } } } } } } } }',
  '{ users(first: 3) { edges { node { id name orders(first: 2) { edges { node { id status } } } } } } }',
  'query Named { user(id: "2") { id name } }',
];

function entry(id: string, origin: CorpusEntry['origin'], query: string, variables: Record<string, unknown> | undefined, operationName?: string): CorpusEntry {
  const document = parse(query);
  const operations = operationsOf(document);
  const operation = operationName ? operations.find((o) => o.name?.value === operationName) : operations[0];
  if (!operation) throw new Error(`no operation ${operationName ?? ''} in ${id}`);
  if (operation.operation === 'subscription') throw new Error(`${id} is a subscription`);
  return { id, origin, query, operationName, variables, document, kind: operation.operation };
}

/**
 * The whole corpus, queries before mutations (so that the writes, recorded once, do not change what the queries
 * read), each group in a fixed order.
 */
export function buildCorpus(): CorpusEntry[] {
  const entries: CorpusEntry[] = [];
  TEST_OPERATIONS.forEach(({ source, query }, index) => {
    const [operation] = operationsOf(parse(query));
    const variables = operation!.variableDefinitions?.length ? variablesFor(operation!) : undefined;
    entries.push(entry(`tests#${index} ${source.replace(/^.*\//, '')}`, 'tests', query, variables));
  });
  MATERIALIZED_FROM_TEMPLATES.forEach((query, index) => entries.push(entry(`tests-template#${index}`, 'tests', query, index === 0 ? {} : undefined)));

  const contract = readFileSync(CONTRACT_PATH, 'utf8');
  for (const operation of operationsOf(parse(contract))) {
    const name = operation.name!.value;
    const sets = CONTRACT_VARIABLES[name];
    if (!sets) throw new Error(`no variables for contract operation ${name}`);
    sets.forEach((variables, index) => entries.push(entry(`contract ${name}#${index}`, 'contract', contract, variables, name)));
  }

  GENERATED.forEach(({ query, variables = [undefined] }, index) => {
    variables.forEach((set, n) => entries.push(entry(`generated#${index}.${n}`, 'generated', query, set)));
  });

  const seen = new Set<string>();
  for (const { id } of entries) {
    if (seen.has(id)) throw new Error(`duplicate corpus id ${id}`);
    seen.add(id);
  }
  // Deletions last: a user deleted early would turn most later writes into NOT_FOUND.
  const deletes = (e: CorpusEntry) => e.kind === 'mutation' && e.query.includes('deleteUser');
  return [...entries.filter((e) => e.kind === 'query'), ...entries.filter((e) => e.kind === 'mutation' && !deletes(e)), ...entries.filter(deletes)];
}
