import { parse, type FieldNode, type FragmentDefinitionNode, type OperationDefinitionNode } from 'graphql';
import { describe, expect, it } from 'vitest';
import { selectsPath } from '../src/graphql/selection.ts';

/** The field nodes and fragments graphql hands the resolver of the query's first root field. */
function infoOf(document: string) {
  const parsed = parse(document);
  const operation = parsed.definitions.find((definition): definition is OperationDefinitionNode => definition.kind === 'OperationDefinition')!;
  const fragments = Object.fromEntries(
    parsed.definitions.filter((definition): definition is FragmentDefinitionNode => definition.kind === 'FragmentDefinition').map((fragment) => [fragment.name.value, fragment]),
  );
  return { fieldNodes: [operation.selectionSet.selections[0] as FieldNode], fragments };
}

describe('selectsPath', () => {
  const selectsItems = selectsPath('edges', 'node', 'items');

  it.each([
    ['plain fields', '{ orders { edges { node { id items { sku } } } } }', true],
    ['aliases', '{ orders { e: edges { n: node { i: items { sku } } } } }', true],
    ['an inline fragment', '{ orders { edges { node { ... on Order { items { sku } } } } } }', true],
    ['a fragment spread', '{ orders { edges { ...Edge } } } fragment Edge on OrderEdge { node { items { sku } } }', true],
    ['not selected', '{ orders { edges { node { id } } } }', false],
    ['elsewhere in the tree', '{ orders { pageInfo { hasNextPage } edges { cursor } } }', false],
    ['under @include, which depends on the variables', 'query ($x: Boolean!) { orders { edges { node { items @include(if: $x) { sku } } } } }', false],
    ['under @skip on a fragment', 'query ($x: Boolean!) { orders { edges { ...Edge @skip(if: $x) } } } fragment Edge on OrderEdge { node { items { sku } } }', false],
  ])('%s', (_, document, expected) => {
    const info = infoOf(document);
    expect(selectsItems(info)).toBe(expected);
    // Asked again for the same field nodes: the same answer, from the cache.
    expect(selectsItems(info)).toBe(expected);
  });
});
