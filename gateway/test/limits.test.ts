import { readFileSync } from 'node:fs';
import { Supergraph } from '@apollo/federation-internals';
import { Kind, parse, validate, type OperationDefinitionNode } from 'graphql';
import { describe, expect, it } from 'vitest';
import { DEFAULT_SUPERGRAPH_PATH } from '../src/config.ts';
import { measureOperation, type OperationMeasure } from '../src/limits/measure.ts';
import { DEFAULT_OPERATION_LIMITS, type OperationLimits } from '../src/limits/operation-limits.ts';

const schema = Supergraph.build(readFileSync(DEFAULT_SUPERGRAPH_PATH, 'utf8')).apiSchema().toGraphQLJSSchema();

function measure(source: string, variables: Record<string, unknown> = {}, name?: string): OperationMeasure {
  const document = parse(source);
  expect(validate(schema, document)).toEqual([]);
  const operation = document.definitions.find(
    (definition): definition is OperationDefinitionNode => definition.kind === Kind.OPERATION_DEFINITION && (!name || definition.name?.value === name),
  );
  if (!operation) throw new Error('no operation');
  return measureOperation(schema, document, operation, variables);
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
      cost: 8201,
    });
  });
});

describe('measuring an operation', () => {
  it('prices a page by its `first`: the literal, the variable, the variable’s default, or the schema default (20)', () => {
    const page = (first: string) =>
      `query ${first === '$n' ? '($n: Int = 7)' : ''} { users(first: ${first}) { edges { node { id name } } } }`;
    // users (1) + first × (edges (1) + node (1) + id (1) + name (1))
    expect(measure(page('5')).cost).toBe(1 + 5 * 4);
    expect(measure(page('$n'), { n: 50 }).cost).toBe(1 + 50 * 4);
    expect(measure(page('$n')).cost).toBe(1 + 7 * 4);
    expect(measure('{ users { edges { node { id name } } } }').cost).toBe(1 + 20 * 4);
  });

  it('multiplies nested pages, so a million-row request is priced as one', () => {
    expect(measure('{ users(first: 1000000) { edges { node { id } } } }').cost).toBeGreaterThan(1_000_000);
    const nested = measure('{ users(first: 100) { edges { node { orders(first: 100) { edges { node { id } } } } } } }');
    expect(nested.cost).toBe(1 + 100 * (1 + 1 + (1 + 100 * (1 + 1 + 1))));
  });

  it('expands fragments and inline fragments, and does not count introspection fields', () => {
    const result = measure(`
      query { me { ...Card ... on User { renamed: name @include(if: true) } } }
      fragment Card on User { __typename id a: name b: name }
    `);
    expect(result).toEqual({ depth: 2, aliases: 3, directives: 1, cost: 1 + 4 });
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
