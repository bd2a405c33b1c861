import { createHash } from 'node:crypto';
import { buildOperationContext, type ServiceMap } from '@apollo/gateway';
import { operationFromDocument, Supergraph, type Operation, type VariableDefinitions } from '@apollo/federation-internals';
import { QueryPlanner, type PlanNode, type SubscriptionNode } from '@apollo/query-planner';
import type { GatewayExecutionResult, GatewayExecutor, GatewayGraphQLRequestContext, GatewayInterface } from '@apollo/server-gateway-interface';
import { execute as executeGraphQL, getOperationAST, getVariableValues, GraphQLError, Kind, validate, type DocumentNode, type GraphQLSchema, type VariableDefinitionNode } from 'graphql';
import type { Logger, Telemetry, Viewer } from '@fed/platform';
import { createOverrideLabels, OVERRIDE_LABELS_HEADER, OVERRIDE_LABELS_SCOPE } from '../override/labels.ts';
import { forbiddenErrors, guardsOf, removedBy, stripDenied, withoutDenied, type OperationGuards, type Removed, type Verdict } from '../authorization/guards.ts';
import { grantsKey, grantsOf, readAuthorizationRules, type Policy } from '../authorization/rules.ts';
import { SUPPORTED_SUPERGRAPH_FEATURES } from '../authorization/supergraph.ts';
import { compileDeferredDelivery, type DeferredDelivery } from '../incremental/defer.ts';
import { runIncrementally, type IncrementalSlot } from '../incremental/run.ts';
import { createOperationCache, type OperationCacheStats } from './operation-cache.ts';
import { executePlanNode, rootCursor, supergraphTypes } from './plan.ts';
import { compileProjection, UnsupportedOperation, type Projection, type ProjectionResult } from './projection.ts';
import { withLiveDirective, withoutLiveDirective } from '../live/directive.ts';

type Tracer = NonNullable<Telemetry['tracer']>;
// SpanStatusCode.ERROR, without a dependency on the OpenTelemetry API for one constant.
const SPAN_ERROR = 2;

export interface ExecutionEngineOptions {
  supergraphSdl: string;
  logger: Logger;
  /** Set when tracing is on: plan and fetch spans, under the names Apollo's executor used. */
  tracer?: Tracer;
  /** Bound on the prepared operations kept (plans and projections), in estimated bytes. Default 32 MiB. */
  maxCacheBytes?: number;
  /**
   * Identical representations within one `_entities` fetch are sent once (five orders of one user ask for
   * that user once). Default: on; answers are the same either way, the subgraph requests are not.
   */
  dedupeRepresentations?: boolean;
  /** The named policies `@policy` refers to; a name without a function here is never granted. */
  policies?: Readonly<Record<string, Policy>>;
}

/** One operation, planned and compiled once, then run on every request for it. */
export type PreparedOperation =
  | {
      kind: 'own';
      /** Unset when there is nothing to fetch (only `__typename` asked, say). */
      node: PlanNode | undefined;
      projection: Projection;
      variableDefinitions: VariableDefinitions;
      /** The operation's definitions as written, which requests' variables are coerced against. */
      variableNodes: readonly VariableDefinitionNode[];
      operation: Operation;
      /** Set when the plan defers parts that can be delivered one by one (a client reading multipart). */
      deferred?: DeferredDelivery;
      /** What authorization removed from the plan: answered null, with FORBIDDEN at each place. */
      forbidden?: readonly Removed[];
    }
  /** Only `__schema`, `__type` and `__typename` at the root: answered from the API schema, which has @defer. */
  | { kind: 'introspection' }
  | { kind: 'fallback'; reason: string };

export interface ExecutionEngine {
  /** The API schema clients validate against. */
  readonly apiSchema: GraphQLSchema;
  readonly supergraph: Supergraph;
  readonly planner: QueryPlanner;
  /** Plans and runs one query or mutation; what this engine does not run goes to `fallback` (Apollo's executor). */
  execute(requestContext: GatewayGraphQLRequestContext, serviceMap: ServiceMap, fallback?: GatewayExecutor): Promise<GatewayExecutionResult>;
  /** Runs a plan (a subscription event's `rest`, say) for `operation` and shapes the answer to its selection. */
  run(prepared: Extract<PreparedOperation, { kind: 'own' }>, node: PlanNode | undefined, requestContext: GatewayGraphQLRequestContext, serviceMap: ServiceMap): Promise<GatewayExecutionResult>;
  /** Compiles the projection of an operation without planning it (subscriptions plan their own way). */
  prepareProjection(document: DocumentNode, operationName: string | undefined): Extract<PreparedOperation, { kind: 'own' }>;
  stats(): OperationCacheStats;
  /**
   * Plans, on this engine, the operations another (the one it replaces) ran most recently: a supergraph that
   * cannot plan what clients send now is refused before it takes over, and the first requests after a reload
   * find their plans ready. Operations that no longer validate are skipped: their clients get validation errors.
   */
  warm(from: ExecutionEngine): Promise<{ planned: number; failed: { operationName: string | null; reason: string }[] }>;
  /** The documents of the operations prepared most recently (up to RECENT_OPERATIONS), newest last. */
  recentOperations(): Iterable<RecentOperation>;
  /** Progressive override: which labels are on for `viewer` (undefined when the supergraph has none). */
  overrideConditions(viewer: Viewer | null): Map<string, boolean> | undefined;
  /**
   * For operations that run whole or not at all (subscriptions): FORBIDDEN errors when `viewer` may not read
   * something the operation selects; undefined (often synchronously) when it may.
   */
  refusal(document: DocumentNode, operationName: string | undefined, viewer: Viewer | null): Promise<GraphQLError[] | undefined> | undefined;
  /**
   * What tells apart answers to one request by who asks, beyond the viewer's own entries: what the authorization
   * directives grant them, and override labels a trusted caller turned on by header. Undefined when neither applies.
   */
  cacheVariant(viewer: Viewer | null, requestedLabels: string | undefined): Promise<string | undefined> | undefined;
}

interface RecentOperation {
  /** The cache key of its plan for a request no label or guard changes (the document's hash, the name). */
  key: string;
  document: DocumentNode;
  operationName: string | undefined;
}

/** Operations remembered for the next supergraph to plan before it takes over. */
const RECENT_OPERATIONS = 200;
const UNPREPARED = 'it could not be prepared';

const INTROSPECTION_FIELDS = new Set(['__schema', '__type', '__typename']);

function findsSubscription(node: PlanNode | SubscriptionNode | undefined): string | undefined {
  if (!node) return undefined;
  switch (node.kind) {
    case 'Defer':
      return findsSubscription(node.primary.node) ?? node.deferred.map((part) => findsSubscription(part.node)).find(Boolean);
    case 'Subscription':
      return 'a subscription';
    case 'Sequence':
    case 'Parallel':
      for (const child of node.nodes) {
        const found = findsSubscription(child);
        if (found) return found;
      }
      return undefined;
    case 'Flatten':
      return findsSubscription(node.node);
    case 'Condition':
      return findsSubscription(node.ifClause) ?? findsSubscription(node.elseClause);
    default:
      return undefined;
  }
}

const PLANNER_CONFIG = { incrementalDelivery: { enableDefer: true } } as const;

/**
 * A planner that plans as the engine's does, but in the form Apollo's `executeQueryPlan` can run (no
 * type-conditioned paths): for comparing the two executors on the same plans.
 */
export const plannerForApolloExecutor = (supergraph: Supergraph) => new QueryPlanner(supergraph, PLANNER_CONFIG);

/**
 * Our own query-plan executor. @apollo/gateway still loads the supergraph and @apollo/query-planner plans; this
 * runs the plans. Each operation is planned, and its projection compiled, once (kept in a cache bounded in bytes,
 * keyed by the document's hash and the operation name: one engine serves one supergraph). Anything it does not
 * run (introspection, say) goes to Apollo's executor, logged once per operation.
 */
export function createExecutionEngine(options: ExecutionEngineOptions): ExecutionEngine {
  const { logger, tracer, dedupeRepresentations = true } = options;
  const supergraph = Supergraph.build(options.supergraphSdl, { supportedFeatures: SUPPORTED_SUPERGRAPH_FEATURES });
  const apiSchema = supergraph.apiSchema();
  // Clients validate against it, and introspection shows it: @defer and @live are part of what this gateway
  // serves (a live query's runs are plain queries: the planner never sees @live).
  const apiSchemaJs = withLiveDirective(apiSchema.toGraphQLJSSchema({ includeDefer: true }));
  const types = supergraphTypes(supergraph.schema.toGraphQLJSSchema());
  // Type-conditioned paths: an entity fetch under an abstract type goes only to the entities of the types that
  // asked for it (Apollo's executor, which has no such paths, sends it every object at the path, and subgraphs
  // then resolve fields for types that never needed them).
  const planner = new QueryPlanner(supergraph, { ...PLANNER_CONFIG, typeConditionedFetching: true });
  const overrides = createOverrideLabels(supergraph);
  const authorization = readAuthorizationRules(options.supergraphSdl);
  const policies = options.policies ?? {};
  // Per parsed document (Apollo Server hands back the same one for the same text) and operation name.
  const guardsCache = new WeakMap<DocumentNode, Map<string, OperationGuards | undefined>>();
  const guardsFor = (document: DocumentNode, operationName: string | undefined): OperationGuards | undefined => {
    if (!authorization) return undefined;
    let byName = guardsCache.get(document);
    if (!byName) guardsCache.set(document, (byName = new Map()));
    const name = operationName ?? '';
    if (!byName.has(name)) byName.set(name, guardsOf(apiSchemaJs, authorization, document, operationName));
    return byName.get(name);
  };
  /** The guards this request's viewer fails; undefined when it fails none (or the operation touches none). */
  const verdictFor = (document: DocumentNode, operationName: string | undefined, viewer: Viewer | null): Promise<Verdict | undefined> | undefined => {
    const guards = guardsFor(document, operationName);
    if (!guards || !authorization) return undefined;
    return grantsOf(authorization, viewer, policies).then((grants) => {
      const verdict = guards.verdict(grants);
      return verdict.denied.length > 0 ? verdict : undefined;
    });
  };
  const cache = createOperationCache<PreparedOperation>(options.maxCacheBytes ?? 32 * 1024 * 1024);
  // Map order is insertion order: re-inserting keeps the most recent last, and the oldest goes first.
  const recent = new Map<string, RecentOperation>();
  const remember = (operation: RecentOperation) => {
    recent.delete(operation.key);
    recent.set(operation.key, operation);
    if (recent.size > RECENT_OPERATIONS) recent.delete(recent.keys().next().value!);
  };

  const shapingOperation = (document: DocumentNode, operationName: string | undefined) => {
    const context = buildOperationContext({ schema: apiSchemaJs, operationDocument: document, operationName });
    // The operation as Apollo's result shaping sees it: this definition and the fragments, unvalidated.
    const operation = operationFromDocument(
      apiSchema,
      { kind: Kind.DOCUMENT, definitions: [context.operation, ...Object.values(context.fragments)] },
      { validate: false },
    );
    return { operation, variableNodes: context.operation.variableDefinitions ?? [] };
  };

  const prepareProjection = (document: DocumentNode, operationName: string | undefined) => {
    const { operation, variableNodes } = shapingOperation(document, operationName);
    return {
      kind: 'own' as const,
      node: undefined,
      projection: compileProjection(operation),
      variableDefinitions: operation.variableDefinitions,
      variableNodes,
      operation,
    };
  };

  const prepare = (marked: DocumentNode, operationName: string | undefined, overrideConditions?: Map<string, boolean>, verdict?: Verdict): PreparedOperation => {
    const document = withoutLiveDirective(marked);
    // Planned without what the viewer may not read (no subgraph is asked for it); shaped to the whole selection.
    const planned = verdict ? withoutLiveDirective(withoutDenied(marked, verdict.denied)) : document;
    const selections = getOperationAST(document, operationName)?.selectionSet.selections;
    if (selections?.every((selection) => selection.kind === Kind.FIELD && INTROSPECTION_FIELDS.has(selection.name.value)) && !selections.every((selection) => selection.kind === Kind.FIELD && selection.name.value === '__typename')) {
      return { kind: 'introspection' };
    }
    try {
      const { node } = planner.buildQueryPlan(operationFromDocument(apiSchema, planned, { operationName }), overrideConditions && { overrideConditions });
      if (node?.kind === 'Subscription') return { kind: 'fallback', reason: 'a subscription' };
      const unsupported = findsSubscription(node);
      if (unsupported) return { kind: 'fallback', reason: unsupported };
      const prepared = prepareProjection(document, operationName);
      // An operation with parts removed runs whole: its deferred parts were compiled for the operation as written.
      if (verdict) return { ...prepared, node, forbidden: removedBy(verdict) };
      return { ...prepared, node, deferred: compileDeferredDelivery(prepared.operation, node) };
    } catch (error) {
      if (error instanceof UnsupportedOperation) return { kind: 'fallback', reason: error.message };
      // Apollo's executor reports what planning refused, in its own words.
      return { kind: 'fallback', reason: `${UNPREPARED} (${error instanceof Error ? error.message : String(error)})` };
    }
  };

  const prepared = (requestContext: GatewayGraphQLRequestContext, verdict: Verdict | undefined): PreparedOperation => {
    const { request, document } = requestContext;
    const hash = requestContext.queryHash ?? createHash('sha256').update(request.query ?? '').digest('hex');
    // Labels that are on change the plan: one entry per combination that requests actually have.
    const override = overrides?.resolve((requestContext.context as { viewer?: Viewer | null }).viewer ?? null, request.http?.headers.get(OVERRIDE_LABELS_HEADER) ?? undefined);
    let key = override ? `${hash}\0${request.operationName ?? ''}\0${override.key}` : `${hash}\0${request.operationName ?? ''}`;
    if (verdict) key += `\0auth:${verdict.key}`;
    const cached = cache.get(key);
    if (cached) return cached;
    const entry = tracer
      ? tracer.startActiveSpan('gateway.plan', (span) => {
          try {
            return prepare(document, request.operationName, override?.conditions, verdict);
          } finally {
            span.end();
          }
        })
      : prepare(document, request.operationName, override?.conditions, verdict);
    if (entry.kind === 'fallback') logger.info({ operationName: request.operationName ?? null, reason: entry.reason }, "operation runs on Apollo's executor");
    cache.set(key, entry, estimateBytes(request.query ?? '', entry));
    // Once per document and name, whatever the labels and verdicts: the next supergraph plans it afresh.
    remember({ key: `${hash}\0${request.operationName ?? ''}`, document, operationName: request.operationName });
    return entry;
  };

  const warm: ExecutionEngine['warm'] = async (from) => {
    const failed: { operationName: string | null; reason: string }[] = [];
    let planned = 0;
    let sliceStart = performance.now();
    for (const operation of [...from.recentOperations()]) {
      // Planning takes milliseconds each: requests get the event loop between slices.
      if (performance.now() - sliceStart > 10) {
        await new Promise((resolve) => setImmediate(resolve));
        sliceStart = performance.now();
      }
      if (validate(apiSchemaJs, operation.document).length > 0) continue;
      // Planned with every label off and nothing denied: what a request that no label or guard changes runs,
      // under the key such a request looks for. Others are planned when they come, with this supergraph's
      // labels and guards (the old engine's would not mean the same).
      const entry = prepare(operation.document, operation.operationName);
      if (entry.kind === 'fallback' && entry.reason.startsWith(UNPREPARED)) {
        failed.push({ operationName: operation.operationName ?? null, reason: entry.reason });
        continue;
      }
      planned += 1;
      if (!overrides) cache.set(operation.key, entry, estimateBytes('', entry));
      remember(operation);
    }
    return { planned, failed };
  };

  /** The answer from what the fetches gathered (or from the primary part's, for an answer in parts). */
  const shape = (project: () => ProjectionResult, errors: unknown[]): GatewayExecutionResult => {
    let data;
    try {
      let valueCompletion: GraphQLError[];
      ({ data, errors: valueCompletion } = project());
      // As Apollo does: errors found while shaping are noise after a fetch failed, and otherwise go in
      // `extensions.valueCompletion`, where clients that relied on their absence do not trip on them.
      if (errors.length === 0 && valueCompletion.length > 0) return { extensions: { valueCompletion }, data };
    } catch (error) {
      if (error instanceof GraphQLError) return { errors: [error] };
      if (error instanceof Error) return { errors: [new GraphQLError(error.message, { originalError: error })] };
      logger.error(`Unexpected error during query plan execution: ${String(error)}`);
      return { errors: [new GraphQLError('Unexpected error during query plan execution')] };
    }
    return errors.length === 0 ? { data } : { errors: errors as GraphQLError[], data };
  };

  const run: ExecutionEngine['run'] = async (operation, node, requestContext, serviceMap) => {
    const errors: unknown[] = [];
    const input: Record<string, unknown> = {};
    if (node) {
      await executePlanNode({ requestContext, serviceMap, variableDefinitions: operation.variableDefinitions, errors, tracer, dedupeRepresentations }, types, node, rootCursor(input));
    }
    const { forbidden } = operation;
    if (!forbidden) return shape(() => operation.projection(input, requestContext.request.variables), errors);
    stripDenied(input, forbidden);
    return shape(() => {
      const projected = operation.projection(input, requestContext.request.variables);
      const denied = forbiddenErrors(projected.data, forbidden, projected.errors);
      errors.push(...denied.errors);
      return { data: projected.data, errors: denied.completion };
    }, errors);
  };

  /** For a client reading multipart: the initial payload now, the deferred parts through the request's slot. */
  const runInParts = async (
    operation: Extract<PreparedOperation, { kind: 'own' }>,
    deferred: DeferredDelivery,
    slot: IncrementalSlot,
    requestContext: GatewayGraphQLRequestContext,
    serviceMap: ServiceMap,
  ): Promise<GatewayExecutionResult> => {
    const variables = requestContext.request.variables;
    const outcome = await runIncrementally({
      operation: operation.operation,
      delivery: deferred,
      node: operation.node!,
      run: { requestContext, serviceMap, variableDefinitions: operation.variableDefinitions, tracer, dedupeRepresentations },
      types,
      variables,
    });
    if (outcome.kind === 'whole') return shape(() => operation.projection(outcome.input, variables), outcome.errors);
    slot.subsequent = outcome.subsequent;
    slot.whole = () => outcome.finished.then((errors) => {
      const whole = shape(() => operation.projection(outcome.input, variables), errors);
      // As Apollo Server serialises a plain request's answer: that is what the response cache keeps.
      return whole.errors?.length || whole.data == null ? undefined : `${JSON.stringify({ data: whole.data, extensions: whole.extensions })}\n`;
    });
    return shape(() => outcome.initial.projected, outcome.initial.fetchErrors);
  };

  const execute: ExecutionEngine['execute'] = async (requestContext, serviceMap, fallback) => {
    const viewer = (requestContext.context as { viewer?: Viewer | null }).viewer ?? null;
    const verdict = authorization ? await verdictFor(requestContext.document, requestContext.request.operationName, viewer) : undefined;
    const operation = prepared(requestContext, verdict);
    // Apollo's executor (and graphql-js on introspection) would answer all of it: nothing is answered instead.
    if (verdict && operation.kind !== 'own') return { errors: forbiddenErrors(null, removedBy(verdict)).errors };
    if (operation.kind === 'introspection') {
      // As Apollo's executor answers it (graphql-js on the API schema), on the schema that has @defer.
      const { request, document } = requestContext;
      return (await executeGraphQL({ schema: apiSchemaJs, document, operationName: request.operationName, variableValues: request.variables })) as GatewayExecutionResult;
    }
    if (operation.kind === 'fallback') {
      if (!fallback) throw new Error(`This operation cannot run on the gateway's executor: ${operation.reason}`);
      return fallback(requestContext);
    }
    if (operation.variableNodes.length > 0) {
      const { errors } = getVariableValues(apiSchemaJs, operation.variableNodes, requestContext.request.variables ?? {});
      if (errors) return { errors };
    }
    const slot = (requestContext.context as { incremental?: IncrementalSlot }).incremental;
    if (slot && operation.deferred) return runInParts(operation, operation.deferred, slot, requestContext, serviceMap);
    if (!tracer) return run(operation, operation.node, requestContext, serviceMap);
    return tracer.startActiveSpan('gateway.request', async (span) => {
      try {
        const result = await run(operation, operation.node, requestContext, serviceMap);
        if (result.errors) span.setStatus({ code: SPAN_ERROR });
        return result;
      } catch (error) {
        span.recordException(error as Error);
        span.setStatus({ code: SPAN_ERROR });
        throw error;
      } finally {
        span.end();
      }
    });
  };

  return { apiSchema: apiSchemaJs, supergraph, planner, execute, run, prepareProjection, stats: cache.stats, warm, recentOperations: () => recent.values(), overrideConditions: (viewer) => overrides?.resolve(viewer, undefined).conditions,
    cacheVariant: (viewer, requestedLabels) => {
      // Percent labels split viewers, not answers: only labels named by header make an answer differ.
      const labels = requestedLabels !== undefined && viewer?.scopes?.includes(OVERRIDE_LABELS_SCOPE) ? overrides?.resolve(viewer, requestedLabels).key : undefined;
      if (!authorization) return labels === undefined ? undefined : Promise.resolve(`labels:${labels}`);
      return grantsOf(authorization, viewer, policies).then((grants) => (labels === undefined ? grantsKey(grants) : `${grantsKey(grants)}|labels:${labels}`));
    },
    refusal: (document, operationName, viewer) => verdictFor(document, operationName, viewer)?.then((verdict) => (verdict ? forbiddenErrors(null, removedBy(verdict)).errors : undefined)),
  };
}

/** A rough size: plans and projections grow with the document and with the subgraph operations planned. */
function estimateBytes(query: string, entry: PreparedOperation): number {
  if (entry.kind !== 'own') return 256 + query.length;
  let fetched = 0;
  const visit = (node: PlanNode | undefined): void => {
    if (!node) return;
    switch (node.kind) {
      case 'Fetch':
        fetched += node.operation.length;
        return;
      case 'Sequence':
      case 'Parallel':
        node.nodes.forEach(visit);
        return;
      case 'Flatten':
        return visit(node.node);
      case 'Condition':
        visit(node.ifClause);
        return visit(node.elseClause);
      case 'Defer':
        visit(node.primary.node);
        for (const part of node.deferred) visit(part.node);
        return;
      default:
        return;
    }
  };
  visit(entry.node);
  // Parsed ASTs and compiled selections take tens of bytes per character of source.
  return 2_048 + 40 * (query.length + fetched);
}

/** Which engine runs a request: the one of the schema it was validated against, so a reload never changes a request's schema mid-flight. */
export interface EngineRouter {
  current(): ExecutionEngine;
  forSchema(schema: GraphQLSchema): ExecutionEngine | undefined;
}

/**
 * Apollo Server drives any `GatewayInterface`: this one is @apollo/gateway (which loads the supergraph and
 * answers what the engine does not run) with its executor replaced by the engines'.
 */
export function withExecutionEngine(gateway: GatewayInterface, engines: EngineRouter, serviceMap: () => ServiceMap): GatewayInterface {
  return {
    // The engine's API schema, which has @defer: Apollo Server validates against the schema it hears of here.
    // On a reload, the new engine is current before @apollo/gateway announces its schema.
    onSchemaLoadOrUpdate: (callback) => gateway.onSchemaLoadOrUpdate((loaded) => callback({ ...loaded, apiSchema: engines.current().apiSchema })),
    stop: () => gateway.stop(),
    load: async (options) => {
      const loaded = await gateway.load(options);
      const fallback = loaded.executor;
      if (!fallback) return loaded;
      return {
        schema: engines.current().apiSchema,
        executor: (requestContext) => (engines.forSchema(requestContext.schema) ?? engines.current()).execute(requestContext, serviceMap(), fallback),
      };
    },
  };
}
