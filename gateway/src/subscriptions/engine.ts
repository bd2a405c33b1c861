import { buildOperationContext, executeQueryPlan, type GraphQLDataSource, type ServiceMap } from '@apollo/gateway';
import { operationFromDocument, Supergraph } from '@apollo/federation-internals';
import { QueryPlanner, type FetchNode, type PlanNode } from '@apollo/query-planner';
import { GraphQLError, print, type DocumentNode, type ExecutionResult, type FormattedExecutionResult, type GraphQLSchema } from 'graphql';
import type { Logger, SubgraphSubscriptionClient, Viewer } from '@fed/platform';

export interface SubscriptionEngineOptions {
  supergraphSdl: string;
  /** A signed graphql-ws client per subgraph that owns a Subscription field. */
  clients: (subgraph: string) => SubgraphSubscriptionClient | undefined;
  /** The gateway's own data sources, for the entity fetches that complete each event. */
  dataSources: () => Record<string, GraphQLDataSource>;
  logger: Logger;
  /** Events a slow client may have waiting; beyond it the oldest are dropped and counted. */
  maxQueuedEvents?: number;
}

export interface SubscriptionRequest {
  document: DocumentNode;
  operationName?: string | null;
  variables?: Record<string, unknown> | null;
  viewer: Viewer | null;
  /** The gateway context handed to the data sources (it signs the viewer into each fetch). */
  contextValue: Record<string, unknown>;
}

/** Attempts to win back a lost upstream before clients are told the subgraph is unavailable (about 15 s). */
const MAX_RESUBSCRIBE_ATTEMPTS = 10;

const pick = (variables: Record<string, unknown> | null | undefined, names: readonly string[] | undefined) =>
  Object.fromEntries((names ?? []).filter((name) => variables && name in variables).map((name) => [name, variables![name]]));

/** A subgraph's answer event, handed to the plan executor as if a fetch had returned it. */
const answering = (result: FormattedExecutionResult): GraphQLDataSource => ({ process: async () => result as never });

/**
 * Executes federated subscriptions, which @apollo/gateway plans but refuses to run. The query planner splits a
 * subscription into `primary` (the root field, on the subgraph that owns it) and `rest` (everything other
 * subgraphs contribute). `primary` runs as a graphql-ws subscription on its subgraph; for every event, the
 * gateway's own plan executor runs `rest` with that event standing in for the primary fetch, so the other
 * subgraphs answer through `_entities` exactly as for a query. Nothing here knows any field by name.
 */
export function createSubscriptionEngine(options: SubscriptionEngineOptions) {
  const supergraph = Supergraph.build(options.supergraphSdl);
  const apiSchema = supergraph.apiSchema();
  const planner = new QueryPlanner(supergraph);
  const supergraphSchema = supergraph.schema.toGraphQLJSSchema();
  const apiSchemaJs: GraphQLSchema = apiSchema.toGraphQLJSSchema();
  const maxQueued = options.maxQueuedEvents ?? 100;
  const stats = { dropped: 0 };
  const upstreams = new Map<string, Upstream>();

  // The event stands in for the primary fetch only, under a name no subgraph has: later fetches in `rest` to the
  // same subgraph (an entity it owns, further down) still go to the real one.
  const EVENT_SOURCE = '__subscription_event__';

  const executeEvent = async (request: SubscriptionRequest, primary: FetchNode, rest: PlanNode | undefined, event: FormattedExecutionResult): Promise<ExecutionResult> => {
    const replayed: FetchNode = { ...primary, serviceName: EVENT_SOURCE };
    const serviceMap: ServiceMap = { ...options.dataSources(), [EVENT_SOURCE]: answering(event) };
    const operationContext = buildOperationContext({ schema: apiSchemaJs, operationDocument: request.document, operationName: request.operationName ?? undefined });
    const requestContext = {
      request: { query: undefined, variables: request.variables ?? {}, operationName: request.operationName ?? undefined },
      context: request.contextValue,
      metrics: {},
      logger: options.logger,
    };
    // Always through the executor, `rest` or not: it shapes the answer to the client's selection exactly as for
    // a query (no planner-added fields, errors attributed to the subgraph).
    const result = await executeQueryPlan(
      { kind: 'QueryPlan', node: rest ? { kind: 'Sequence', nodes: [replayed, rest] } : replayed },
      serviceMap,
      requestContext as never,
      operationContext,
      supergraphSchema,
      apiSchema,
    );
    // Errors the event itself carried name the subgraph that sent it, not the stand-in.
    const errors = result.errors?.map((error) =>
      error.extensions.serviceName === EVENT_SOURCE
        ? new GraphQLError(error.message, { path: error.path, extensions: { ...error.extensions, serviceName: primary.serviceName } })
        : error,
    );
    return { data: result.data, ...(errors?.length ? { errors } : {}) } as ExecutionResult;
  };

  return {
    /** The API schema clients validate against (the same one HTTP serves). */
    schema: apiSchemaJs,
    stats,
    /** Distinct upstream subscriptions open now. */
    upstreams: () => upstreams.size,

    subscribe(request: SubscriptionRequest): AsyncIterableIterator<ExecutionResult> {
      const key = JSON.stringify([print(request.document), request.operationName ?? null, request.variables ?? {}, request.viewer]);
      const upstream = upstreams.get(key) ?? openUpstream(key, request);
      return upstream.attach();
    },
  };

  /**
   * One upstream subscription per distinct (operation, variables, viewer) on this replica, whatever the number
   * of clients: each event is completed once, then handed to every client's own bounded queue.
   */
  function openUpstream(key: string, request: SubscriptionRequest): Upstream {
    const operation = operationFromDocument(apiSchema, request.document, { operationName: request.operationName ?? undefined });
    const node = planner.buildQueryPlan(operation).node;
    if (node?.kind !== 'Subscription') throw new Error('the operation did not plan as a subscription');
    const { primary, rest } = node;
    const client = options.clients(primary.serviceName);
    if (!client) throw new Error(`no subscription client for subgraph ${primary.serviceName}`);

    const sinks = new Set<ClientQueue>();
    let closed = false;
    // Events are completed one after another, so clients see them in the order they were committed.
    let chain = Promise.resolve();
    const broadcast = (result: ExecutionResult) => {
      for (const sink of sinks) sink.push(result);
    };
    const close = () => {
      if (closed) return;
      closed = true;
      upstreams.delete(key);
      clearTimeout(retryTimer);
      stopUpstream();
      for (const sink of [...sinks]) sink.end();
    };
    const unavailable = () => {
      broadcast({
        errors: [
          new GraphQLError(`The ${primary.serviceName} service is unavailable`, {
            extensions: { code: 'SUBGRAPH_UNAVAILABLE', serviceName: primary.serviceName },
          }),
        ],
      });
      // Clients hear the error before their streams end.
      setImmediate(close);
    };

    // A lost connection (a subgraph replica going away) is not the end of the stream: subscribe again, signed
    // afresh, and the load balancer picks a live replica. Clients stay subscribed throughout. Events committed
    // while no replica listened for this gateway are not replayed (pub/sub is at-most-once).
    let attempts = 0;
    let pending = 0;
    let retryTimer: NodeJS.Timeout | undefined;
    let stopUpstream: () => void = () => {};
    const start = () => {
      const startedAt = Date.now();
      stopUpstream = client.subscribe(primary.operation, pick(request.variables, primary.variableUsages), request.viewer, {
        next: (event) => {
          attempts = 0;
          // Events wait here while `rest` runs for the one before. A subgraph too slow to keep up would grow
          // this without end, so past the per-client queue's size the newest are dropped, and counted.
          if (closed) return;
          if (pending >= maxQueued) {
            stats.dropped += 1;
            return;
          }
          pending += 1;
          chain = chain
            .then(() => (closed ? undefined : executeEvent(request, primary, rest, event)))
            .finally(() => (pending -= 1))
            .then((result) => result && broadcast(result), (error: unknown) => {
              options.logger.error({ err: error, subgraph: primary.serviceName }, 'could not complete a subscription event');
              broadcast({ errors: [new GraphQLError('Internal server error', { extensions: { code: 'INTERNAL_SERVER_ERROR' } })] });
            });
        },
        error: (error) => {
          if (closed) return;
          // GraphQL errors (the subgraph refused the operation) end the stream; anything else is the connection.
          if (Array.isArray(error) || attempts >= MAX_RESUBSCRIBE_ATTEMPTS) {
            options.logger.warn({ err: error, subgraph: primary.serviceName, attempts }, 'upstream subscription failed');
            void chain.then(unavailable);
            return;
          }
          if (Date.now() - startedAt > 5_000) attempts = 0;
          attempts += 1;
          const delay = Math.min(100 * 2 ** (attempts - 1), 2_000);
          options.logger.info({ subgraph: primary.serviceName, attempts, delay }, 'upstream subscription lost; subscribing again');
          retryTimer = setTimeout(() => {
            if (!closed) start();
          }, delay);
        },
        complete: () => void chain.then(() => setImmediate(close)),
      });
    };
    start();

    const upstream: Upstream = {
      attach: () => {
        const sink = clientQueue(maxQueued, stats, () => {
          sinks.delete(sink);
          // The last client gone: the upstream subscription (and the subgraph's channel) goes at once.
          if (sinks.size === 0) close();
        });
        sinks.add(sink);
        return sink.iterator;
      },
    };
    upstreams.set(key, upstream);
    return upstream;
  }
}

interface Upstream {
  attach(): AsyncIterableIterator<ExecutionResult>;
}

interface ClientQueue {
  push(result: ExecutionResult): void;
  end(): void;
  iterator: AsyncIterableIterator<ExecutionResult>;
}

/**
 * One client's stream. A client that does not keep up has at most `maxQueued` events waiting; beyond that the
 * oldest are dropped (and counted): a stalled socket must not grow the gateway, and the newest state matters
 * most for live updates.
 */
function clientQueue(maxQueued: number, stats: { dropped: number }, onLeave: () => void): ClientQueue {
  const queued: ExecutionResult[] = [];
  let waiting: ((result: IteratorResult<ExecutionResult>) => void) | undefined;
  let finished = false;
  const finish = () => {
    if (finished) return false;
    finished = true;
    waiting?.({ value: undefined, done: true });
    waiting = undefined;
    return true;
  };
  const iterator: AsyncIterableIterator<ExecutionResult> = {
    [Symbol.asyncIterator]: () => iterator,
    async next() {
      if (queued.length > 0) return { value: queued.shift()!, done: false };
      if (finished) return { value: undefined, done: true };
      return new Promise<IteratorResult<ExecutionResult>>((resolve) => (waiting = resolve));
    },
    async return() {
      queued.length = 0;
      if (finish()) onLeave();
      return { value: undefined, done: true };
    },
    async throw(error?: unknown) {
      if (finish()) onLeave();
      throw error;
    },
  };
  return {
    iterator,
    push(result) {
      if (finished) return;
      if (waiting) {
        const resolve = waiting;
        waiting = undefined;
        resolve({ value: result, done: false });
        return;
      }
      if (queued.length >= maxQueued) {
        queued.shift();
        stats.dropped += 1;
      }
      queued.push(result);
    },
    end() {
      finish();
    },
  };
}

export type SubscriptionEngine = ReturnType<typeof createSubscriptionEngine>;
