import type { GraphQLDataSource, ServiceMap } from '@apollo/gateway';
import { operationFromDocument } from '@apollo/federation-internals';
import type { FetchNode, PlanNode } from '@apollo/query-planner';
import { getNamedType, GraphQLError, Kind, parse, print, validate, type DocumentNode, type ExecutionResult, type FieldNode, type FormattedExecutionResult, type GraphQLSchema, type OperationDefinitionNode, visit } from 'graphql';
import { expiredSubscription, type Logger, type SubgraphSubscriptionClient, type Viewer } from '@fed/platform';
import { ErrorCode } from '../errors/codes.ts';
import type { ExecutionEngine, PreparedOperation } from '../execution/engine.ts';

export interface SubscriptionEngineOptions {
  /**
   * The gateway's executor of the supergraph served now: it plans each new subscription and runs its events'
   * `rest` (a subscription keeps the executor it started on).
   */
  execution: () => ExecutionEngine;
  /** A signed graphql-ws client per subgraph that owns a Subscription field. */
  clients: (subgraph: string) => SubgraphSubscriptionClient | undefined;
  /** The gateway's own data sources, for the entity fetches that complete each event. */
  dataSources: () => Record<string, GraphQLDataSource>;
  logger: Logger;
  /**
   * Events a slow client may have waiting, and events an upstream may have waiting for completion. Beyond
   * either, the stream ends with EVENTS_OVERFLOW rather than dropping events silently: the client resumes with
   * `after`.
   */
  maxQueuedEvents?: number;
  /** Attempts to win back a lost upstream before clients get STREAM_UNAVAILABLE (default 10, about 15 s). */
  maxResubscribeAttempts?: number;
}

export interface SubscriptionRequest {
  document: DocumentNode;
  operationName?: string | null;
  variables?: Record<string, unknown> | null;
  viewer: Viewer | null;
  /** The gateway context handed to the data sources (it signs the viewer into each fetch). */
  contextValue: Record<string, unknown>;
}

/** Attempts to win back a lost upstream before clients are told the stream is unavailable (about 15 s). */
const MAX_RESUBSCRIBE_ATTEMPTS = 10;

const pick = (variables: Record<string, unknown> | null | undefined, names: readonly string[] | undefined) =>
  Object.fromEntries((names ?? []).filter((name) => variables && name in variables).map((name) => [name, variables![name]]));

const overflow = () =>
  new GraphQLError('This subscription fell too far behind and was ended. Subscribe again with `after` set to the id of the last event received.', {
    extensions: { code: ErrorCode.EventsOverflow },
  });

const RESUME_VARIABLE = '__resume_after';
const RESUME_ID = '__resume_id';

interface Resumable {
  /** The primary operation, rewritten to take its cursor from RESUME_VARIABLE and to select RESUME_ID. */
  operation: string;
  /** The response key of the root field in the subgraph's events. */
  responseKey: string;
  /** The cursor the client asked to start after (null: from now). */
  from: string | null;
}

/** A subscription root field resumes when it takes `after: ID` and its events have an `id` (as `userEvents` does). */
export function isResumableField(schema: GraphQLSchema, fieldName: string): boolean {
  const field = schema.getSubscriptionType()?.getFields()[fieldName];
  const type = field && getNamedType(field.type);
  return !!field?.args.some((arg) => arg.name === 'after') && !!type && 'getFields' in type && 'id' in type.getFields();
}

/**
 * A resumable field's primary operation is rewritten so the gateway passes the cursor itself and sees each
 * event's id: when the upstream is lost, it subscribes again after the last event it received, so clients see
 * no gap and no repeat across a subgraph replica going away. The client's own selection is unchanged: the
 * executor shapes each answer to it.
 */
function resumable(schema: GraphQLSchema, primaryOperation: string, variables: Record<string, unknown>): Resumable | undefined {
  const document = parse(primaryOperation);
  const operation = document.definitions.find((definition): definition is OperationDefinitionNode => definition.kind === Kind.OPERATION_DEFINITION);
  const root = operation?.selectionSet.selections[0];
  if (!operation || root?.kind !== Kind.FIELD || !root.selectionSet) return undefined;
  if (!isResumableField(schema, root.name.value)) return undefined;
  const given = root.arguments?.find((arg) => arg.name.value === 'after')?.value;
  const from =
    given?.kind === Kind.VARIABLE ? ((variables[given.name.value] as string | null | undefined) ?? null) : given && 'value' in given ? String(given.value) : null;
  const rewritten: FieldNode = {
    ...root,
    arguments: [
      ...(root.arguments ?? []).filter((arg) => arg.name.value !== 'after'),
      { kind: Kind.ARGUMENT, name: { kind: Kind.NAME, value: 'after' }, value: { kind: Kind.VARIABLE, name: { kind: Kind.NAME, value: RESUME_VARIABLE } } },
    ],
    selectionSet: {
      ...root.selectionSet,
      selections: [
        ...root.selectionSet.selections,
        { kind: Kind.FIELD, alias: { kind: Kind.NAME, value: RESUME_ID }, name: { kind: Kind.NAME, value: 'id' } },
      ],
    },
  };
  // A variable the client used only for `after` would be left unused, which validation refuses. Fragments the
  // planner put in the operation stay, and count as uses.
  const fragments = document.definitions.filter((definition) => definition !== operation);
  const used = new Set<string>();
  visit({ ...document, definitions: [rewritten, ...fragments] as never }, { Variable: (variable) => void used.add(variable.name.value) });
  return {
    operation: print({
      ...document,
      definitions: [
        ...fragments,
        {
          ...operation,
          variableDefinitions: [
            ...(operation.variableDefinitions ?? []).filter((definition) => used.has(definition.variable.name.value)),
            {
              kind: Kind.VARIABLE_DEFINITION,
              variable: { kind: Kind.VARIABLE, name: { kind: Kind.NAME, value: RESUME_VARIABLE } },
              type: { kind: Kind.NAMED_TYPE, name: { kind: Kind.NAME, value: 'ID' } },
            },
          ],
          selectionSet: { ...operation.selectionSet, selections: [rewritten] },
        },
      ],
    }),
    responseKey: root.alias?.value ?? root.name.value,
    from,
  };
}

interface Prepared {
  primary: FetchNode;
  rest: PlanNode | undefined;
  operation: Extract<PreparedOperation, { kind: 'own' }>;
  definition: OperationDefinitionNode | undefined;
  /** The executor it was planned on, which runs all its events. */
  execution: ExecutionEngine;
}

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
  const maxQueued = options.maxQueuedEvents ?? 1_000;
  const maxAttempts = options.maxResubscribeAttempts ?? MAX_RESUBSCRIBE_ATTEMPTS;
  const stats = { overflowed: 0 };
  let unshared = 0;
  // The cursor of each event of a resumable subscription, beside the result rather than in it: results are
  // shared by every client of an upstream, and the client may not have selected `id` at all.
  const cursors = new WeakMap<ExecutionResult, string>();
  const upstreams = new Map<string, Upstream>();
  // A number per executor, for upstream keys: distinct supergraphs never share an upstream.
  const executorIds = new WeakMap<ExecutionEngine, number>();
  const supergraphOf = (execution: ExecutionEngine): number => {
    let id = executorIds.get(execution);
    if (id === undefined) executorIds.set(execution, (id = ++unshared));
    return id;
  };

  // The event stands in for the primary fetch only, under a name no subgraph has: later fetches in `rest` to the
  // same subgraph (an entity it owns, further down) still go to the real one.
  const EVENT_SOURCE = '__subscription_event__';

  const executeEvent = async (request: SubscriptionRequest, prepared: Prepared, event: FormattedExecutionResult): Promise<ExecutionResult> => {
    const { primary, rest, operation, execution } = prepared;
    const replayed: FetchNode = { ...primary, serviceName: EVENT_SOURCE };
    const serviceMap: ServiceMap = { ...options.dataSources(), [EVENT_SOURCE]: answering(event) };
    const requestContext = {
      request: { query: undefined, variables: request.variables ?? {}, operationName: request.operationName ?? undefined },
      context: request.contextValue,
      // Subgraph fetches read what the event says was just committed: they go to the primaries (see SubgraphDataSource).
      operation: prepared.definition,
      metrics: {},
      logger: options.logger,
    };
    // Always through the executor, `rest` or not: it shapes the answer to the client's selection exactly as for
    // a query (no planner-added fields, errors attributed to the subgraph).
    const result = await execution.run(operation, rest ? { kind: 'Sequence', nodes: [replayed, rest] } : replayed, requestContext as never, serviceMap);
    // Errors the event itself carried name the subgraph that sent it, not the stand-in.
    const errors = result.errors?.map((error) =>
      error.extensions?.serviceName === EVENT_SOURCE
        ? new GraphQLError(error.message, { path: error.path, extensions: { ...error.extensions, serviceName: primary.serviceName } })
        : error,
    );
    return { data: result.data, ...(errors?.length ? { errors } : {}) } as ExecutionResult;
  };

  return {
    /** The API schema clients validate against (the same one HTTP serves). */
    schema: (): GraphQLSchema => options.execution().apiSchema,
    stats,
    /** Distinct upstream subscriptions open now. */
    upstreams: () => upstreams.size,
    /** The cursor (`after`) of an event a resumable subscription delivered: resuming after it repeats nothing. */
    cursorOf: (result: ExecutionResult): string | undefined => cursors.get(result),

    /**
     * After a supergraph reload: a subscription whose operation does not validate against `schema` ends with
     * SCHEMA_CHANGED; the others keep running as they were planned. Returns how many ended.
     */
    async retire(next: ExecutionEngine): Promise<number> {
      let ended = 0;
      for (const upstream of [...upstreams.values()]) {
        const { document, operationName, viewer } = upstream.request;
        if (validate(next.apiSchema, document).length > 0) {
          ended += 1;
          upstream.end([
            new GraphQLError('The schema changed and this subscription selects what it no longer has; subscribe again with an operation valid against the new schema', {
              extensions: { code: ErrorCode.SchemaChanged },
            }),
          ]);
          continue;
        }
        // The new supergraph's authorization directives hold for running subscriptions too.
        const refused = await next.refusal(document, operationName ?? undefined, viewer);
        if (refused) {
          ended += 1;
          upstream.end(refused);
        }
      }
      return ended;
    },

    subscribe(request: SubscriptionRequest): AsyncIterableIterator<ExecutionResult> {
      // Authorized and planned on one executor, even if a reload lands while the check runs.
      const execution = options.execution();
      const open = () => {
        // Keyed by the executor too: after a reload, new clients get an upstream planned on the new supergraph.
        const key = JSON.stringify([supergraphOf(execution), print(request.document), request.operationName ?? null, request.variables ?? {}, request.viewer]);
        const upstream = upstreams.get(key) ?? openUpstream(key, request, execution);
        return upstream.attach();
      };
      // A subscription runs whole or not at all: one that selects what the viewer may not read is refused.
      const refusal = execution.refusal(request.document, request.operationName ?? undefined, request.viewer);
      if (!refusal) return open();
      return whenSettled(refusal.then((errors) => (errors ? single({ errors }) : open())));
    },
  };

  /** Planned and compiled once per upstream, for all its events. */
  function prepare(request: SubscriptionRequest, execution: ExecutionEngine): Prepared {
    const operationName = request.operationName ?? undefined;
    // Override labels as for the subscriber's queries (percent labels by viewer; no header over a socket).
    const overrideConditions = execution.overrideConditions(request.viewer);
    const node = execution.planner.buildQueryPlan(operationFromDocument(execution.supergraph.apiSchema(), request.document, { operationName }), overrideConditions && { overrideConditions }).node;
    if (node?.kind !== 'Subscription') throw new Error('the operation did not plan as a subscription');
    const definition = request.document.definitions.find(
      (definition): definition is OperationDefinitionNode => definition.kind === Kind.OPERATION_DEFINITION && (!operationName || definition.name?.value === operationName),
    );
    return { primary: node.primary, rest: node.rest, operation: execution.prepareProjection(request.document, operationName), definition, execution };
  }

  /**
   * One upstream subscription per distinct (operation, variables, viewer) on this replica, whatever the number
   * of clients: each event is completed once, then handed to every client's own bounded queue. A client that
   * resumes (`after`) gets an upstream of its own: one that joined a shared upstream would miss its replay.
   */
  function openUpstream(sharedKey: string, request: SubscriptionRequest, execution: ExecutionEngine): Upstream {
    const prepared = prepare(request, execution);
    const { primary } = prepared;
    const client = options.clients(primary.serviceName);
    if (!client) throw new Error(`no subscription client for subgraph ${primary.serviceName}`);
    const resume = resumable(prepared.execution.apiSchema, primary.operation, request.variables ?? {});
    const key = resume?.from ? `${sharedKey}#${++unshared}` : sharedKey;
    let lastId = resume?.from ?? null;

    const sinks = new Set<ClientQueue>();
    let closed = false;
    // Ended by a reload: events still arriving are not delivered.
    let retired = false;
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
      // Not SUBGRAPH_UNAVAILABLE: within an event that code marks fields of a subgraph that is down, and the
      // stream goes on. This one is the last message of the stream.
      broadcast({
        errors: [
          new GraphQLError(`The ${primary.serviceName} service is unavailable, so this subscription has ended; subscribe again after the last event received`, {
            extensions: { code: ErrorCode.StreamUnavailable, serviceName: primary.serviceName },
          }),
        ],
      });
      // Clients hear the error before their streams end.
      setImmediate(close);
    };

    // A lost connection (a subgraph replica going away) is not the end of the stream: subscribe again, signed
    // afresh, and the load balancer picks a live replica. Clients stay subscribed throughout, and a resumable
    // field resumes after the last event received, so none is lost or repeated.
    let attempts = 0;
    let pending = 0;
    // The subgraph ended the upstream for its signed lifetime: it completes next, and is subscribed again.
    let renewing = false;
    let retryTimer: NodeJS.Timeout | undefined;
    let stopUpstream: () => void = () => {};
    const start = () => {
      const startedAt = Date.now();
      const variables = pick(request.variables, primary.variableUsages);
      const operation = resume ? resume.operation : primary.operation;
      renewing = false;
      stopUpstream = client.subscribe(operation, resume ? { ...variables, [RESUME_VARIABLE]: lastId } : variables, request.viewer, {
        next: (event) => {
          attempts = 0;
          if (closed || retired) return;
          const expired = expiredSubscription(event);
          if (expired) {
            // Before any event, the subgraph says where the stream stood: resuming there skips nothing.
            if (lastId === null) lastId = expired.after;
            renewing = true;
            return;
          }
          const found = resume && (event.data?.[resume.responseKey] as Record<string, unknown> | null | undefined)?.[RESUME_ID];
          const id = typeof found === 'string' ? found : undefined;
          if (id !== undefined) lastId = id;
          // Events wait here while `rest` runs for the one before. A subgraph too fast for it would grow this
          // without end: past the limit the stream ends with a code that tells clients to resume.
          if (pending >= maxQueued) {
            stats.overflowed += 1;
            broadcast({ errors: [overflow()] });
            close();
            return;
          }
          pending += 1;
          chain = chain
            .then(() => (closed ? undefined : executeEvent(request, prepared, event)))
            .finally(() => (pending -= 1))
            .then((result) => {
              if (!result) return;
              if (id !== undefined) cursors.set(result, id);
              broadcast(result);
            }, (error: unknown) => {
              options.logger.error({ err: error, subgraph: primary.serviceName }, 'could not complete a subscription event');
              broadcast({ errors: [new GraphQLError('Internal server error', { extensions: { code: 'INTERNAL_SERVER_ERROR' } })] });
            });
        },
        error: (error) => {
          if (closed) return;
          // GraphQL errors (the subgraph refused the operation) end the stream; anything else is the connection.
          if (Array.isArray(error) || attempts >= maxAttempts) {
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
        complete: () => {
          // Signed afresh, after the last event received: clients see neither a gap nor a repeat.
          if (renewing && !closed) {
            options.logger.debug({ subgraph: primary.serviceName }, 'renewing an upstream subscription at the end of its signed lifetime');
            start();
            return;
          }
          void chain.then(() => setImmediate(close));
        },
      });
    };
    start();

    const upstream: Upstream = {
      request,
      end: (errors) => {
        // Events already being completed go first; none after the error.
        retired = true;
        void chain.then(() => {
          broadcast({ errors });
          // Clients hear the error before their streams end.
          setImmediate(close);
        });
      },
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

/** A stream of one result. */
function single(result: ExecutionResult): AsyncIterableIterator<ExecutionResult> {
  let sent = false;
  const iterator: AsyncIterableIterator<ExecutionResult> = {
    [Symbol.asyncIterator]: () => iterator,
    next: async () => (sent ? { value: undefined, done: true } : ((sent = true), { value: result, done: false })),
    return: async () => ((sent = true), { value: undefined, done: true }),
  };
  return iterator;
}

/** A stream that is another one once `pending` settles (a check that must finish before anything is sent). */
function whenSettled(pending: Promise<AsyncIterableIterator<ExecutionResult>>): AsyncIterableIterator<ExecutionResult> {
  let ended = false;
  const iterator: AsyncIterableIterator<ExecutionResult> = {
    [Symbol.asyncIterator]: () => iterator,
    next: async () => (ended ? { value: undefined, done: true } : (await pending).next()),
    return: async () => {
      ended = true;
      const inner = await pending.catch(() => undefined);
      return (await inner?.return?.()) ?? { value: undefined, done: true };
    },
  };
  return iterator;
}

interface Upstream {
  request: SubscriptionRequest;
  attach(): AsyncIterableIterator<ExecutionResult>;
  /** Ends every client's stream with `errors`, after the events already being completed. */
  end(errors: readonly GraphQLError[]): void;
}


interface ClientQueue {
  push(result: ExecutionResult): void;
  end(): void;
  iterator: AsyncIterableIterator<ExecutionResult>;
}

/**
 * One client's stream. A client that does not keep up has at most `maxQueued` events waiting; one more ends
 * its stream with EVENTS_OVERFLOW (it resumes with `after`): a stalled socket must not grow the gateway, and
 * dropping events silently would break the promise that none is lost.
 */
function clientQueue(maxQueued: number, stats: { overflowed: number }, onLeave: () => void): ClientQueue {
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
        stats.overflowed += 1;
        queued.push({ errors: [overflow()] });
        // The error is delivered after what is queued, then the stream ends; the upstream goes with the last client.
        if (finish()) onLeave();
        return;
      }
      queued.push(result);
    },
    end() {
      finish();
    },
  };
}

export type SubscriptionEngine = ReturnType<typeof createSubscriptionEngine>;
