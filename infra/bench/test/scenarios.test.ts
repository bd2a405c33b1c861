// The scenarios' shape, checked without running anything: the deep query's real plan (Apollo's query planner on
// the committed supergraph, as bare Apollo Gateway plans it) and which gateways each scenario compares.
import { readFileSync } from 'node:fs';
import { operationFromDocument, Supergraph } from '@apollo/federation-internals';
import { QueryPlanner, type PlanNode } from '@apollo/query-planner';
import { SUPPORTED_SUPERGRAPH_FEATURES } from '@fed/gateway';
import { DEFAULT_SUPERGRAPH_PATH } from '@fed/gateway/config';
import { parse, validate, type SelectionSetNode } from 'graphql';
import { describe, expect, it } from 'vitest';
import { DEEP_USERS, deepQuery, httpScenarios, nestedQuery } from '../src/scenarios.ts';

const supergraph = Supergraph.build(readFileSync(DEFAULT_SUPERGRAPH_PATH, 'utf8'), { supportedFeatures: SUPPORTED_SUPERGRAPH_FEATURES });
const apiSchema = supergraph.apiSchema();
const planner = new QueryPlanner(supergraph);

/** The subgraphs of the longest chain of fetches that must run one after the other, in order. */
function longestChain(node: PlanNode | undefined): string[] {
  if (!node) return [];
  switch (node.kind) {
    case 'Fetch':
      return [node.serviceName];
    case 'Flatten':
      return longestChain(node.node);
    case 'Sequence':
      return node.nodes.flatMap(longestChain);
    case 'Parallel':
      return node.nodes.map(longestChain).reduce((longest, chain) => (chain.length > longest.length ? chain : longest), []);
    case 'Condition': {
      const [ifTrue, ifFalse] = [longestChain(node.ifClause), longestChain(node.elseClause)];
      return ifTrue.length >= ifFalse.length ? ifTrue : ifFalse;
    }
    default:
      throw new Error(`a ${node.kind} node in the plan`);
  }
}

/** How many fetches the plan makes in all. */
function fetches(node: PlanNode | undefined): number {
  if (!node) return 0;
  switch (node.kind) {
    case 'Fetch':
      return 1;
    case 'Flatten':
      return fetches(node.node);
    case 'Sequence':
    case 'Parallel':
      return node.nodes.reduce((total, child) => total + fetches(child), 0);
    case 'Condition':
      return fetches(node.ifClause) + fetches(node.elseClause);
    default:
      throw new Error(`a ${node.kind} node in the plan`);
  }
}

function plan(query: string): PlanNode | undefined {
  const { node } = planner.buildQueryPlan(operationFromDocument(apiSchema, parse(query)));
  if (node?.kind === 'Subscription') throw new Error('a subscription plan');
  return node;
}

/** The deepest field nesting of the operation, fragments spread in (root fields are depth 1), as limits count it. */
function depth(query: string): number {
  const document = parse(query);
  const fragments = new Map(document.definitions.flatMap((definition) => (definition.kind === 'FragmentDefinition' ? [[definition.name.value, definition]] : [])));
  const of = (set: SelectionSetNode | undefined): number =>
    Math.max(
      0,
      ...(set?.selections ?? []).map((selection) =>
        selection.kind === 'Field' ? 1 + of(selection.selectionSet) : selection.kind === 'FragmentSpread' ? of(fragments.get(selection.name.value)?.selectionSet) : of(selection.selectionSet),
      ),
    );
  const operation = document.definitions.find((definition) => definition.kind === 'OperationDefinition');
  return operation?.kind === 'OperationDefinition' ? of(operation.selectionSet) : 0;
}

describe('the deep scenario', () => {
  it('is a valid operation on the supergraph’s API schema', () => {
    expect(validate(apiSchema.toGraphQLJSSchema(), parse(deepQuery(DEEP_USERS)))).toEqual([]);
  });

  it('goes back and forth between the subgraphs: three fetches one after the other (users → orders → users), four in all', () => {
    const node = plan(deepQuery(DEEP_USERS));
    expect(longestChain(node)).toEqual(['users', 'orders', 'users']);
    expect(fetches(node)).toBe(4);
  });

  it('is deeper than the nested scenario, in fields and in sequential fetches, and stays within the gateway’s default depth limit (16)', () => {
    expect(longestChain(plan(nestedQuery(20))).length).toBeLessThan(longestChain(plan(deepQuery(DEEP_USERS))).length);
    expect(depth(deepQuery(DEEP_USERS))).toBeGreaterThan(depth(nestedQuery(20)));
    expect(depth(deepQuery(DEEP_USERS))).toBeLessThanOrEqual(16);
  });

  it('asks for the number of users it says, and the same query whatever the count but for that number', () => {
    expect(deepQuery(7)).toContain('users(first: 7)');
    expect(deepQuery(7).replace('users(first: 7)', `users(first: ${DEEP_USERS})`)).toBe(deepQuery(DEEP_USERS));
  });
});

describe('httpScenarios', () => {
  const scenarios = httpScenarios(1000);
  const byName = new Map(scenarios.map((scenario) => [scenario.name, scenario]));

  it('compares this gateway (sibling entity fetches merged, and not), bare Apollo, Hive and hive-router on the deep query, one request per cycle', () => {
    const deep = byName.get('deep')!;
    expect(deep.gateways).toEqual(['ours', 'ours-unmerged', 'apollo', 'hive', 'hive-router']);
    const requests = deep.requests('Bearer x');
    expect(requests).toEqual([{ body: JSON.stringify({ query: deepQuery(DEEP_USERS) }), authorization: 'Bearer x' }]);
  });

  it('runs hive-router, bare Apollo and this gateway uncached in every uncached scenario; cache hits compare the caches only', () => {
    for (const scenario of scenarios) {
      if (scenario.name === 'cache-hit') {
        expect(scenario.gateways).toEqual(['ours-cached', 'apollo-cached']);
        continue;
      }
      for (const name of ['ours', 'apollo', 'hive-router'] as const) expect(scenario.gateways, scenario.name).toContain(name);
    }
    expect(scenarios.map((scenario) => scenario.name)).toEqual(['nested', 'deep', 'entity', 'mix', 'cache-hit']);
  });
});
