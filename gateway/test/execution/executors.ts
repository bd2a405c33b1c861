import { createHash } from 'node:crypto';
import { buildOperationContext, executeQueryPlan, type ServiceMap } from '@apollo/gateway';
import type { Supergraph } from '@apollo/federation-internals';
import { operationFromDocument } from '@apollo/federation-internals';
import type { QueryPlanner} from '@apollo/query-planner';
import { type QueryPlan } from '@apollo/query-planner';
import type { GatewayExecutionResult, GatewayGraphQLRequestContext } from '@apollo/server-gateway-interface';
import { createLogger } from '@fed/platform';
import { getVariableValues, type GraphQLSchema } from 'graphql';
import type { CorpusEntry } from './corpus.ts';
import { RECORDING_VIEWER } from './subgraphs.ts';

export const logger = createLogger({ name: 'differential', level: 'silent' });

/** Runs one operation's plan against a service map. */
export type Executor = (entry: CorpusEntry, serviceMap: ServiceMap) => Promise<GatewayExecutionResult>;

/** The minimal request context both executors read, fresh for every run (an executor may write into it). */
export function requestContextFor(entry: CorpusEntry, apiSchemaJs: GraphQLSchema): GatewayGraphQLRequestContext {
  const operationContext = buildOperationContext({ schema: apiSchemaJs, operationDocument: entry.document, operationName: entry.operationName });
  return {
    request: { query: entry.query, variables: entry.variables && structuredClone(entry.variables), operationName: entry.operationName },
    document: entry.document,
    source: entry.query,
    queryHash: createHash('sha256').update(entry.query).digest('hex'),
    operationName: entry.operationName ?? operationContext.operation.name?.value ?? null,
    operation: operationContext.operation,
    // The answers were recorded as this viewer; with the scopes the graph's @requiresScopes name, no
    // authorization directive removes anything, and both executors run the same whole plan.
    context: { viewer: { ...RECORDING_VIEWER, scopes: ['users:stats'] } },
    metrics: {},
    logger,
    cache: undefined,
    schema: apiSchemaJs,
    overallCachePolicy: undefined,
  } as unknown as GatewayGraphQLRequestContext;
}

/**
 * Apollo's own executor as ApolloGateway's `executor` runs it: the request's variables checked against the
 * operation, then `executeQueryPlan` of @apollo/gateway on the plan of `planner` (cached per corpus entry).
 */
export function apolloExecutor(supergraph: Supergraph, planner: QueryPlanner): { execute: Executor; plan(entry: CorpusEntry): QueryPlan; apiSchemaJs: GraphQLSchema } {
  const apiSchema = supergraph.apiSchema();
  const apiSchemaJs = apiSchema.toGraphQLJSSchema();
  const supergraphSchemaJs = supergraph.schema.toGraphQLJSSchema();
  const plans = new Map<string, QueryPlan>();
  const plan = (entry: CorpusEntry) => {
    let found = plans.get(entry.id);
    if (!found) {
      found = planner.buildQueryPlan(operationFromDocument(apiSchema, entry.document, { operationName: entry.operationName }));
      plans.set(entry.id, found);
    }
    return found;
  };
  const execute: Executor = async (entry, serviceMap) => {
    const requestContext = requestContextFor(entry, apiSchemaJs);
    const operationContext = buildOperationContext({ schema: apiSchemaJs, operationDocument: entry.document, operationName: entry.operationName });
    // As ApolloGateway's executor does before it executes (its validateIncomingRequest).
    const definitions = operationContext.operation.variableDefinitions;
    if (definitions && definitions.length > 0) {
      const { errors } = getVariableValues(apiSchemaJs, definitions, requestContext.request.variables ?? {});
      if (errors) return { errors };
    }
    return executeQueryPlan(plan(entry), serviceMap, requestContext, operationContext, supergraphSchemaJs, apiSchema);
  };
  return { execute, plan, apiSchemaJs };
}

/** An error as the harness compares it: message, path and extensions, nothing else. */
const errorOf = (error: { message: string; path?: readonly (string | number)[]; extensions?: Record<string, unknown> }) => ({
  message: error.message,
  path: error.path,
  extensions: error.extensions,
});

/** What must be byte-equal between the executors. */
export interface Observed {
  /** `JSON.stringify({ data, errors })`, errors reduced to message, path and extensions. */
  result: string;
  /** `JSON.stringify(extensions)` of the result (Apollo puts value-completion errors there). */
  extensions: string | undefined;
  /** Each subgraph request: `service query variables`, in the order made. */
  requests: string[];
}

export async function observe(execute: () => Promise<GatewayExecutionResult>, calls: { service: string; query: string; variables: string }[]): Promise<Observed> {
  let result: string;
  let extensions: string | undefined;
  try {
    const executed = await execute();
    result = JSON.stringify({ data: executed.data, errors: executed.errors?.map(errorOf) });
    extensions = JSON.stringify(executed.extensions);
  } catch (error) {
    result = `threw: ${(error as Error).message}`;
  }
  return { result, extensions, requests: calls.map((c) => `${c.service} ${c.query} ${c.variables}`) };
}
