import type { ApolloServerPlugin, BaseContext } from '@apollo/server';
import { GraphQLError, type DocumentNode, type GraphQLSchema, type OperationDefinitionNode } from 'graphql';
import { ErrorCode } from '../errors/codes.ts';
import { measureOperation, type ListSizes, type OperationMeasure } from './measure.ts';

export interface OperationLimits {
  maxDepth: number;
  maxAliases: number;
  maxDirectives: number;
  maxCost: number;
}

/**
 * Measured, not guessed: the widest and deepest legitimate operations of the contract
 * (test/fixtures/contract-operations.graphql) need depth 8, 4 aliases, 1 directive and a cost of 154 756 (an
 * admin dashboard of 50 users × 10 orders, items priced at their declared maximum of 100); each default leaves
 * at least twice that (test/limits.test.ts checks it).
 */
export const DEFAULT_OPERATION_LIMITS: OperationLimits = {
  maxDepth: 16,
  maxAliases: 15,
  maxDirectives: 20,
  maxCost: 320_000,
};

const CHECKS: { measure: keyof OperationMeasure; limit: keyof OperationLimits; code: ErrorCode; what: string }[] = [
  { measure: 'depth', limit: 'maxDepth', code: ErrorCode.DepthLimitExceeded, what: 'Query depth' },
  { measure: 'aliases', limit: 'maxAliases', code: ErrorCode.AliasLimitExceeded, what: 'Number of aliases' },
  { measure: 'directives', limit: 'maxDirectives', code: ErrorCode.DirectiveLimitExceeded, what: 'Number of directives' },
  { measure: 'cost', limit: 'maxCost', code: ErrorCode.CostLimitExceeded, what: 'Query cost' },
];

/**
 * Depth, alias, directive and cost limits. They run once the operation is parsed, validated and resolved
 * (variables known, so `first: $n` is priced at its value), before the gateway plans it: a refused
 * operation never reaches a subgraph. Each limit has its own code and answers HTTP 400.
 */
/** The first limit an operation exceeds, as the error to answer with; undefined when it is within them all. */
export function exceededLimit(
  limits: OperationLimits,
  listSizes: ListSizes,
  schema: GraphQLSchema,
  document: DocumentNode,
  operation: OperationDefinitionNode,
  variables: Record<string, unknown>,
): GraphQLError | undefined {
  return limitExceeded(limits, measureOperation(schema, document, operation, variables, listSizes));
}

/** The first limit `measured` exceeds, as the error to answer with; undefined when it is within them all. */
function limitExceeded(limits: OperationLimits, measured: OperationMeasure): GraphQLError | undefined {
  for (const { measure, limit, code, what } of CHECKS) {
    if (measured[measure] > limits[limit]) {
      return new GraphQLError(`${what} ${measured[measure]} exceeds the limit of ${limits[limit]}`, {
        extensions: { code, http: { status: 400 } },
      });
    }
  }
  return undefined;
}

/** `listSizes` is read per request: the supergraph (and its `@listSize`s) may be reloaded. */
export function operationLimitsPlugin(limits: OperationLimits, listSizes: () => ListSizes): ApolloServerPlugin<BaseContext> {
  // Apollo hands back the same parsed document (and operation node) for the same text: an operation without
  // variables measures the same every time, so it is measured once.
  const measuredOnce = new WeakMap<OperationDefinitionNode, OperationMeasure>();
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ schema, document, operation, request }) {
          if (!operation) return;
          let measured = measuredOnce.get(operation);
          if (!measured) {
            measured = measureOperation(schema, document, operation, request.variables ?? {}, listSizes());
            if (!operation.variableDefinitions?.length) measuredOnce.set(operation, measured);
          }
          const exceeded = limitExceeded(limits, measured);
          if (exceeded) throw exceeded;
        },
      };
    },
  };
}
