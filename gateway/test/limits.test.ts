import { readFileSync } from 'node:fs';
import { Supergraph } from '@apollo/federation-internals';
import { Kind, parse, validate, type OperationDefinitionNode } from 'graphql';
import { describe, expect, it } from 'vitest';
import { SUPPORTED_SUPERGRAPH_FEATURES } from '../src/authorization/supergraph.ts';
import { DEFAULT_SUPERGRAPH_PATH } from '../src/config.ts';
import { measureOperation, readListSizes, type OperationMeasure } from '../src/limits/measure.ts';
import { DEFAULT_OPERATION_LIMITS, type OperationLimits } from '../src/limits/operation-limits.ts';

const supergraphSdl = readFileSync(DEFAULT_SUPERGRAPH_PATH, 'utf8');
const schema = Supergraph.build(supergraphSdl, { supportedFeatures: SUPPORTED_SUPERGRAPH_FEATURES }).apiSchema().toGraphQLJSSchema();
const listSizes = readListSizes(supergraphSdl);

function measure(source: string, variables: Record<string, unknown> = {}, name?: string): OperationMeasure {
  const document = parse(source);
  expect(validate(schema, document)).toEqual([]);
  const operation = document.definitions.find(
    (definition): definition is OperationDefinitionNode => definition.kind === Kind.OPERATION_DEFINITION && (!name || definition.name?.value === name),
  );
  if (!operation) throw new Error('no operation');
  return measureOperation(schema, document, operation, variables, listSizes);
}

describe('the default limits, chosen from measurement', () => {
  const corpus = readFileSync(new URL('./fixtures/contract-operations.graphql', import.meta.url), 'utf8');
  const names = parse(corpus)
    .definitions.filter((definition): definition is OperationDefinitionNode => definition.kind === Kind.OPERATION_DEFINITION)
    .map((operation) => operation.name?.value ?? '');
  const measured = Object.fromEntries(names.map((name) => [name, measure(corpus, {}, name)]));

  it.each([
    ['maxDepth', 'depth'],
    ['maxAliases', 'aliases'],
    ['maxDirectives', 'directives'],
    ['maxCost', 'cost'],
  ] as [keyof OperationLimits, keyof OperationMeasure][])(
    '%s leaves at least twice what the most demanding legitimate operation of the contract needs',
    (limit, dimension) => {
      const needed = Math.max(...Object.values(measured).map((m) => m[dimension]));
      expect(needed).toBeGreaterThan(0);
      expect(DEFAULT_OPERATION_LIMITS[limit]).toBeGreaterThanOrEqual(2 * needed);
    },
  );

  it('measures the corpus as the limits’ comment says (update both if the contract grows)', () => {
    const max = (dimension: keyof OperationMeasure) => Math.max(...Object.values(measured).map((m) => m[dimension]));
    expect({ depth: max('depth'), aliases: max('aliases'), directives: max('directives'), cost: max('cost') }).toEqual({
      depth: 8,
      aliases: 4,
      directives: 1,
      cost: 154_756,
    });
  });
});

describe('measuring an operation', () => {
  it('reads the @listSize of every list from the supergraph', () => {
    expect(Object.fromEntries(listSizes)).toEqual({
      'Query.users': { slicingArguments: ['first'], sizedFields: ['edges'] },
      'Query.orders': { slicingArguments: ['first'], sizedFields: ['edges'] },
      'User.orders': { slicingArguments: ['first'], sizedFields: ['edges'] },
      'Order.items': { assumedSize: 100 },
    });
  });

  it('sizes a connection’s edges by its `first`: the literal, the variable, the variable’s default, or the schema default (20)', () => {
    const page = (first: string) =>
      `query ${first === '$n' ? '($n: Int = 7)' : ''} { users(first: ${first}) { totalCount edges { node { id name } } } }`;
    // users (1) + totalCount (1, not multiplied) + edges (1 + first × (node (1) + id (1) + name (1)))
    expect(measure(page('5')).cost).toBe(1 + 1 + 1 + 5 * 3);
    expect(measure(page('$n'), { n: 50 }).cost).toBe(3 + 50 * 3);
    expect(measure(page('$n')).cost).toBe(3 + 7 * 3);
    expect(measure('{ users { totalCount edges { node { id name } } } }').cost).toBe(3 + 20 * 3);
  });

  it('prices a bounded list at its declared size, and multiplies nested pages', () => {
    expect(measure('{ order(id: "1") { items { sku } } }').cost).toBe(1 + 1 + 100 * 1);
    const nested = measure('{ users(first: 100) { edges { node { orders(first: 100) { edges { node { id } } } } } } }');
    expect(nested.cost).toBe(1 + 1 + 100 * (1 + 1 + (1 + 100 * (1 + 1))));
    expect(measure('{ users(first: 1000000) { edges { node { id } } } }').cost).toBeGreaterThan(1_000_000);
  });

  it('counts __typename like any field, so an aliased __typename multiplies like one', () => {
    const bomb = measure(`{ users(first: 100) { edges { node { ${Array.from({ length: 50 }, (_, i) => `t${i}: __typename`).join(' ')} } } } }`);
    expect(bomb.aliases).toBe(50);
    expect(bomb.cost).toBe(1 + 1 + 100 * (1 + 50));
  });

  it('expands fragments and inline fragments, and leaves the introspection roots unmeasured', () => {
    const result = measure(`
      query { me { ...Card ... on User { renamed: name @include(if: true) } } __type(name: "User") { fields { name } } }
      fragment Card on User { __typename id a: name b: name }
    `);
    expect(result).toEqual({ depth: 2, aliases: 3, directives: 1, cost: 1 + 5 });
  });

  it('prices a fragment spread inside a connection with the connection’s size', () => {
    const viaFragment = measure('{ users(first: 10) { ...Page } } fragment Page on UserConnection { edges { node { id } } }');
    expect(viaFragment.cost).toBe(measure('{ users(first: 10) { edges { node { id } } } }').cost);
  });

  it('counts a fragment as often as it is spread, without expanding it: a 40-level explosion is measured at once', () => {
    const levels = 40;
    const fragments = Array.from({ length: levels }, (_, i) => `fragment F${i} on User { a${i}: name ...F${i + 1} ...F${i + 1} }`).join('\n');
    const source = `query { me { ...F0 } }\n${fragments}\nfragment F${levels} on User { id }`;
    const started = performance.now();
    const result = measure(source);
    expect(performance.now() - started).toBeLessThan(500);
    expect(result.aliases).toBeGreaterThan(2 ** 39);
    expect(result.cost).toBeGreaterThan(2 ** 40);
  });
});
