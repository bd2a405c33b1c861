import type { ApolloServerOptionsWithGateway, BaseContext } from '@apollo/server';
import { execute, GraphQLError, Kind, visit, type DocumentNode, type GraphQLSchema, type OperationDefinitionNode } from 'graphql';
import { compileQuery, isCompiledQuery, type CompiledQuery } from 'graphql-jit';
import type { Logger } from '../logger.ts';
import { beginCacheHints, finishCacheHints, type CachePolicyLike } from './cache-hints.ts';

type Gateway = ApolloServerOptionsWithGateway<BaseContext>['gateway'];
type Executor = NonNullable<Awaited<ReturnType<Gateway['load']>>['executor']>;
type ExecutorRequest = Parameters<Executor>[0];

/** How a subgraph executes operations: compiled once per document (the default), or graphql-js every time. */
export type SubgraphExecution = 'compiled' | 'graphql-js';

/** Documents kept compiled per server; a subgraph's callers (the gateway's plans) send a small, fixed set. */
export const DEFAULT_COMPILED_DOCUMENTS = 500;

export interface CompiledExecutionOptions {
  /** The schema Apollo validates against; documents the compiler cannot take run on it with graphql-js. */
  schema: GraphQLSchema;
  /**
   * A second instance of the same schema, instrumented for cache hints (`instrumentCacheHints`), that compiled
   * queries run on. It must not be the one Apollo executes: Apollo wraps every resolver of that one.
   */
  compiledSchema: GraphQLSchema;
  logger: Logger;
  /** At most this many compiled documents are kept (least recently used go first). */
  maxDocuments?: number;
}

/** Counts since start: how requests ran, for tests and for anyone profiling a subgraph. */
export interface CompiledExecutionStats {
  compiled: number;
  fallback: number;
  documents: number;
}

/** Marks a document the compiler refused, so it is not tried again on every request. */
const FALLBACK = Symbol('graphql-js');

interface Compiled {
  query: CompiledQuery;
  /**
   * Variables of a nullable type (validation lets them in only with a default) that feed `@skip(if:)` or
   * `@include(if:)`. Sent an explicit null, graphql-js raises a field error where it meets the directive, while
   * graphql-jit reads false: such a request runs on graphql-js.
   */
  nullableConditions: string[];
}
type Entry = Compiled | typeof FALLBACK;

/**
 * Apollo Server's executor seam for a subgraph: Apollo still parses, validates, runs every plugin hook and
 * formats errors; only `execute` is swapped, for a graphql-jit query compiled once per document. Apollo offers
 * that seam to gateways only, hence the `GatewayInterface` shape: `load` hands Apollo the subgraph's own schema.
 */
export function compiledExecution({ schema, compiledSchema, logger, maxDocuments = DEFAULT_COMPILED_DOCUMENTS }: CompiledExecutionOptions): {
  gateway: Gateway;
  stats: CompiledExecutionStats;
} {
  // Keyed by the query's hash and operation name, in recency order: a Map iterates oldest first.
  const documents = new Map<string, Entry>();
  const stats: CompiledExecutionStats = { compiled: 0, fallback: 0, documents: 0 };
  let onSchema: ((context: { apiSchema: GraphQLSchema; coreSupergraphSdl: string }) => void) | undefined;

  const compile = (document: DocumentNode, operationName: string | undefined, operation: OperationDefinitionNode): Entry => {
    // graphql-js runs subscriptions (served over graphql-ws, not here) and anything the compiler refuses.
    if (operation.operation !== 'query' && operation.operation !== 'mutation') return FALLBACK;
    try {
      const compiled = compileQuery(compiledSchema, document, operationName, { disablingCapturingStackErrors: true });
      if (isCompiledQuery(compiled)) return { query: compiled, nullableConditions: nullableConditions(document, operation) };
      logger.warn({ errors: compiled.errors?.map((error) => error.message), operationName }, 'compiled execution refused a document; it runs on graphql-js');
    } catch (error) {
      logger.warn({ err: error, operationName }, 'compiled execution failed to compile a document; it runs on graphql-js');
    }
    return FALLBACK;
  };

  const entryFor = (request: ExecutorRequest): Entry => {
    const operationName = request.request.operationName ?? undefined;
    const key = `${operationName ?? ''}:${request.queryHash}`;
    let entry = documents.get(key);
    if (entry !== undefined) {
      documents.delete(key);
    } else {
      entry = compile(request.document, operationName, request.operation);
      if (documents.size >= maxDocuments) {
        const oldest = documents.keys().next();
        if (!oldest.done) documents.delete(oldest.value);
      }
    }
    documents.set(key, entry);
    stats.documents = documents.size;
    return entry;
  };

  const runOnGraphqlJs = (request: ExecutorRequest) =>
    execute({
      schema,
      document: request.document,
      contextValue: request.context,
      variableValues: request.request.variables,
      operationName: request.request.operationName,
    });

  const executor: Executor = async (request) => {
    // No operation to run (an unknown operationName): graphql-js words the refusal Apollo turns into a 400.
    // The type says there always is one; Apollo calls the executor anyway.
    const entry = (request.operation as OperationDefinitionNode | undefined) ? entryFor(request) : FALLBACK;
    const variables = request.request.variables;
    if (entry === FALLBACK || entry.nullableConditions.some((name) => variables?.[name] === null)) {
      stats.fallback++;
      return await runOnGraphqlJs(request);
    }
    stats.compiled++;
    const hints = beginCacheHints(request.context, request.overallCachePolicy as CachePolicyLike);
    const result = await entry.query.query(undefined, request.context, variables);
    // No data at all means the variables were refused before any resolver ran: graphql-js words that refusal
    // (Apollo matches its messages to answer 400 BAD_USER_INPUT), and running it costs no side effect.
    if (!('data' in result)) return await runOnGraphqlJs(request);
    finishCacheHints(hints);
    return result.errors ? { ...result, errors: result.errors.map(asGraphqlJsError) } : result;
  };

  const gateway: Gateway = {
    onSchemaLoadOrUpdate(callback) {
      onSchema = callback;
      return () => {
        onSchema = undefined;
      };
    },
    async load() {
      // A subgraph has no supergraph: its own schema is the API schema.
      onSchema?.({ apiSchema: schema, coreSupergraphSdl: '' });
      return { executor };
    },
    async stop() {
      documents.clear();
      stats.documents = 0;
    },
  };
  return { gateway, stats };
}

function nullableConditions(document: DocumentNode, operation: OperationDefinitionNode): Compiled['nullableConditions'] {
  const used = new Set<string>();
  visit(document, {
    Directive(node) {
      if (node.name.value !== 'skip' && node.name.value !== 'include') return;
      for (const argument of node.arguments ?? []) if (argument.value.kind === Kind.VARIABLE) used.add(argument.value.name.value);
    },
  });
  return (operation.variableDefinitions ?? [])
    .filter((definition) => used.has(definition.variable.name.value) && definition.type.kind !== Kind.NON_NULL_TYPE)
    .map((definition) => definition.variable.name.value);
}

/**
 * graphql-jit's errors only inherit from GraphQLError: `extensions` is missing when the original error had none,
 * which Apollo's error formatting does not survive, and their stack is not captured. graphql-js would have
 * located the resolver's error at the field: same message, path, locations and original error.
 */
function asGraphqlJsError(error: GraphQLError): GraphQLError {
  const original = error.originalError;
  // A resolver's error that graphql-js had already located elsewhere keeps its own place, as graphql-js does.
  if (original instanceof GraphQLError && Array.isArray(original.path)) return original;
  const located = new GraphQLError(error.message, { path: error.path, originalError: original ?? undefined });
  // GraphQLError derives locations from AST nodes, which graphql-jit resolved to positions when compiling.
  (located as { locations: GraphQLError['locations'] }).locations = error.locations;
  return located;
}
