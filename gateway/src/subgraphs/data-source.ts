import type { GraphQLDataSource, GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import type { GatewayGraphQLResponse } from '@apollo/server-gateway-interface';
import type { FetcherResponse } from '@apollo/utils.fetcher';
import { GraphQLError } from 'graphql';
import {
  requestScopeOf,
  IDENTITY_HEADER,
  injectTraceContext,
  REQUEST_ID_HEADER,
  requestFingerprint,
  signIdentity,
  type IdempotencyClaim,
  type Logger,
  type Metrics,
  type Viewer,
} from '@fed/platform';
import { ErrorCode } from '../errors/codes.ts';
import { CircuitOpenError, type SubgraphBreaker } from './circuit-breaker.ts';
import { createInFlightDedupe, type WriteClock } from './dedupe.ts';
import { createEntityQueryMerger, isEntitiesRequest, type BatchMember } from './entity-batch.ts';
import { createSubgraphTransport, type SubgraphTransport } from './transport.ts';

/** What the data source reads from the gateway's per-request context. */
interface ViewerContext {
  viewer?: Viewer | null;
  idempotencyKey?: string;
}

export type SubgraphRequest = GraphQLDataSourceProcessOptions['request'];
export type SubgraphResponse = GatewayGraphQLResponse;

/**
 * What a plan executor may add to a fetch's options: the fetches that may be merged into one request are those of
 * one scope started in one turn of the event loop. Without it, the client request's context is the scope.
 */
export interface MergeScoped {
  mergeScope?: object;
}

/** Sees every subgraph fetch made for an incoming operation (the response cache tags and purges from them). */
export interface FetchObserver<TContext> {
  /** May rewrite the subgraph operation before it is signed and sent. */
  willSend(subgraph: string, request: SubgraphRequest, context: TContext | undefined): void;
  didReceive(subgraph: string, request: SubgraphRequest, response: SubgraphResponse, context: TContext | undefined): void;
}

export interface SubgraphDataSourceOptions<TContext> {
  name: string;
  url: string;
  /** The default fetcher has no timeout at all; a hung subgraph would hang every request that touches it. */
  timeoutMs: number;
  /** The subgraph's own secret: the gateway signs the viewer it verified with it. */
  secret: string;
  logger: Logger;
  observer?: FetchObserver<TContext>;
  metrics: Metrics;
  /** Stops calling a subgraph that keeps failing; unset calls it whatever happens. */
  breaker?: SubgraphBreaker;
  /** Told whenever the subgraph answers with a 2xx: the gateway's readiness. */
  onAnswer?: () => void;
  /** Identical reads in flight at once share one fetch (never a mutation's). Default: on. */
  dedupe?: boolean;
  /** Sibling `_entities` fetches of one client request go out as one request (see entity-batch.ts). Default: on. */
  mergeEntityFetches?: boolean;
  /** The gateway's count of writes: told of every mutation fetch, and no read joins a fetch from before one. */
  writes: WriteClock;
}

interface Handoff {
  viewer: Viewer | null;
  readPrimary: boolean;
  idempotency?: IdempotencyClaim;
  requestId?: string;
}

const causes = (error: unknown, test: (error: Error) => boolean) =>
  error instanceof Error && (test(error) || (error.cause instanceof Error && test(error.cause)));
const isTimeout = (error: unknown) => causes(error, (e) => e.name === 'TimeoutError');
const isOpenCircuit = (error: unknown) => causes(error, (e) => e instanceof CircuitOpenError);
const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** A subgraph answered with a status that is not 2xx: for the log, with the start of its body. */
/** Statuses of a merged request that its fetches sent alone may not get: a body, URL or cost over a limit. */
const MERGE_REFUSALS = new Set([400, 413, 414, 422, 431]);

class SubgraphStatusError extends Error {
  override name = 'SubgraphStatusError';
  constructor(
    readonly status: number,
    readonly body: string,
  ) {
    super(`The subgraph answered HTTP ${status}`);
  }
}

/** The hint a subgraph's Cache-Control gives, read as Apollo's data source reads it. */
type CacheHint = { maxAge: number; scope?: 'PUBLIC' | 'PRIVATE' };

function cacheHintOf(header: string | null): CacheHint {
  const directives = new Map<string, string | true>();
  for (const part of header ? header.trim().split(/\s*,\s*/) : []) {
    const [name = '', value] = part.split(/\s*=\s*/, 2);
    directives.set(name, value === undefined ? true : value.replace(/^"|"$/g, ''));
  }
  const hint: CacheHint = { maxAge: 0 };
  const maxAge = directives.get('max-age');
  if (typeof maxAge === 'string' && /^[0-9]+$/.test(maxAge)) hint.maxAge = Number(maxAge);
  if (directives.get('private') === true) hint.scope = 'PRIVATE';
  if (directives.get('public') === true) hint.scope = 'PUBLIC';
  return hint;
}

/**
 * A subgraph fetch with a deadline and a signed identity, whose failures become one of two stable errors
 * naming the subgraph. The stock errors carry the subgraph's internal URL and raw response body; these carry
 * neither. Nothing the client sent is forwarded: only the viewer the gateway verified, signed.
 *
 * It does what @apollo/gateway's RemoteGraphQLDataSource does for a request (the same body, the same use of the
 * subgraph's Cache-Control), without its per-fetch Headers and Request objects or a round trip of the viewer
 * through a header: on a gateway that makes a few fetches per request, those were a tenth of its CPU.
 */
export class SubgraphDataSource<TContext extends ViewerContext = ViewerContext> implements GraphQLDataSource<TContext> {
  private readonly name: string;
  private readonly transport: SubgraphTransport;
  private readonly logger: Logger;
  private readonly observer: FetchObserver<TContext> | undefined;
  private readonly fetch: (handoff: Handoff, body: string) => Promise<FetcherResponse>;
  private readonly merge: boolean;
  private readonly mergeQueries = createEntityQueryMerger();
  /** These fetches are not merged again (the subgraph refused or spoiled their merged request), and it is counted. */
  private readonly mergeRefused: (queries: readonly string[]) => void;
  /** Entity fetches waiting for the end of the turn, by client request. */
  private readonly batches = new Map<object, BatchMember[]>();
  private readonly mergedFetches: ReturnType<Metrics['counter']>;

  constructor({ name, url, timeoutMs, secret, logger, observer, metrics, breaker, onAnswer, dedupe = true, mergeEntityFetches = true, writes }: SubgraphDataSourceOptions<TContext>) {
    const durations = metrics.histogram({
      name: 'subgraph_fetch_duration_seconds',
      help: 'Gateway fetches to a subgraph, by subgraph and outcome (ok, error, timeout, open_circuit)',
      labelNames: ['subgraph', 'outcome'] as const,
    });
    const failures = metrics.counter({
      name: 'subgraph_fetch_failures_total',
      help: 'Failed gateway fetches to a subgraph, by subgraph and reason (error, timeout, open_circuit, status_5xx)',
      labelNames: ['subgraph', 'reason'] as const,
    });
    const shared = metrics.counter({
      name: 'subgraph_fetches_deduplicated_total',
      help: 'Subgraph fetches answered by an identical one already in flight, by subgraph',
      labelNames: ['subgraph'] as const,
    });
    this.mergedFetches = metrics.counter({
      name: 'subgraph_fetches_merged_total',
      help: 'Entity fetches sent to a subgraph as part of one request with their siblings, by subgraph',
      labelNames: ['subgraph'] as const,
    });
    this.merge = mergeEntityFetches;
    const refused = metrics.counter({
      name: 'subgraph_fetch_merges_refused_total',
      help: 'Merged entity fetches a subgraph refused (400, 413) or answered in a way that does not split, sent alone from then on, by subgraph',
      labelNames: ['subgraph'] as const,
    });
    this.mergeRefused = (queries) => {
      refused.inc({ subgraph: name });
      this.mergeQueries.forbid(queries);
    };
    const inFlight = dedupe ? createInFlightDedupe<FetcherResponse>() : undefined;
    const transport = createSubgraphTransport(url);
    const send = (headers: Record<string, string>, body: string) => async () => {
      const response = await transport.post(headers, body, timeoutMs);
      // A 401 (a wrong secret) or 404 (a wrong URL) is an answer from the wrong place, not a healthy subgraph.
      if (response.ok) onAnswer?.();
      return response;
    };
    this.fetch = async ({ viewer, readPrimary, idempotency, requestId }, body) => {
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        [IDENTITY_HEADER]: signIdentity({ secret, caller: 'gateway', audience: name, viewer, readPrimary, idempotency, body }),
      };
      // The subgraph logs under the same request id, and its spans join the same trace.
      if (requestId) headers[REQUEST_ID_HEADER] = requestId;
      injectTraceContext(headers);
      const started = performance.now();
      const observe = (outcome: string) => durations.observe({ subgraph: name, outcome }, (performance.now() - started) / 1000);
      try {
        const request = send(headers, body);
        const call = () => (breaker ? breaker.call(request) : request());
        // Whatever the subgraph answers depends on the body and the signed viewer alone; a mutation's fetches
        // (readPrimary) must each run.
        const sent =
          inFlight && !readPrimary
            ? inFlight.fetch(`${viewer ? `${viewer.userId}\0${viewer.role}` : ''}\n${body}`, writes.generation(), call, () => shared.inc({ subgraph: name }))
            : call();
        // Whatever a write's fetch did, reads in flight since before it must not be joined any more.
        if (readPrimary) void sent.finally(writes.wrote).catch(() => {});
        const response = await sent;
        if (response.status >= 500) failures.inc({ subgraph: name, reason: 'status_5xx' });
        observe(response.status >= 500 ? 'error' : 'ok');
        return response;
      } catch (error) {
        const reason = isOpenCircuit(error) ? 'open_circuit' : isTimeout(error) ? 'timeout' : 'error';
        failures.inc({ subgraph: name, reason });
        observe(reason);
        throw error;
      }
    };
    this.transport = transport;
    this.name = name;
    this.logger = logger;
    this.observer = observer;
  }

  // A subgraph sends the same few Cache-Control values over and over: the last one is read once.
  private lastCacheControl: { header: string | null; hint: Readonly<CacheHint> } | undefined;
  private cacheHintOf(header: string | null): Readonly<CacheHint> {
    if (this.lastCacheControl?.header !== header) this.lastCacheControl = { header, hint: Object.freeze(cacheHintOf(header)) };
    return this.lastCacheControl.hint;
  }

  /** Closes its keep-alive connections to the subgraph. */
  close(): void {
    this.transport.close();
  }

  async process(options: GraphQLDataSourceProcessOptions<TContext>): Promise<SubgraphResponse> {
    const { request } = options;
    // Only a client's operation has a gateway context (not health checks or schema loading).
    const incoming = 'incomingRequestContext' in options ? options : undefined;
    const context = incoming?.context;
    // A query may read from replicas. Every fetch of a mutation must see its writes (a later fetch reads what an
    // earlier one wrote), and the fetches that complete a subscription event must see the write it announces
    // (the upstream subscription itself is signed the same way, in the subscription client).
    const operation = incoming?.incomingRequestContext.operation?.operation;
    const handoff: Handoff = { viewer: context?.viewer ?? null, readPrimary: !!incoming && operation !== 'query', requestId: requestScopeOf(options.context)?.requestId };
    // A mutation's key goes with a fingerprint of the client's whole request: a retry must be the same request.
    if (operation === 'mutation' && context?.idempotencyKey) {
      const { queryHash, operationName, request: clientRequest } = incoming!.incomingRequestContext;
      handoff.idempotency = { key: context.idempotencyKey, request: requestFingerprint({ queryHash, operationName, variables: clientRequest.variables }) };
    }
    this.observer?.willSend(this.name, request, context);
    if (!request.query) throw new Error('Missing query');

    let response: SubgraphResponse;
    try {
      // Sibling entity fetches of one client request start together: they wait for the end of this turn of
      // the event loop, and go out as one request.
      response = await (this.merge && incoming && isEntitiesRequest(request)
        ? this.merged((options as MergeScoped).mergeScope ?? incoming.incomingRequestContext, handoff, request)
        : this.send(handoff, request));
    } catch (error) {
      return this.didEncounterError(error as Error, handoff.requestId);
    }
    this.observer?.didReceive(this.name, request, response, context);
    const policy = incoming?.incomingRequestContext.overallCachePolicy;
    // The subgraph's hint restricts how long the whole answer may be cached, as with Apollo's data source.
    if (policy && 'restrict' in policy) policy.restrict(this.cacheHintOf((response.http as FetcherResponse).headers.get('cache-control')));
    return response;
  }

  /** One request to the subgraph, its answer parsed (`http`: the answer as received). */
  private async send(handoff: Handoff, request: SubgraphRequest): Promise<SubgraphResponse> {
    // The body Apollo's data source sends: the query first, then the rest of the request; never `http`.
    const { query, http: _http, ...rest } = request;
    const answer = await this.fetch(handoff, JSON.stringify({ query, ...rest }));
    if (!answer.ok) throw new SubgraphStatusError(answer.status, (await answer.text()).slice(0, 1_000));
    const parsed: unknown = await answer.json();
    if (!isObject(parsed)) throw new Error('The subgraph answered with JSON that is not an object');
    return { ...parsed, http: answer } as SubgraphResponse;
  }

  private merged(batchKey: object, handoff: Handoff, request: SubgraphRequest): Promise<SubgraphResponse> {
    let members = this.batches.get(batchKey);
    if (!members) {
      const batch: BatchMember[] = (members = []);
      this.batches.set(batchKey, batch);
      // Every fetch of one client request carries the same handoff: the batch is signed with the first one's.
      queueMicrotask(() => {
        this.batches.delete(batchKey);
        this.sendBatch(handoff, batch).catch((error: unknown) => {
          for (const member of batch) member.reject(error);
        });
      });
    }
    return new Promise((resolve, reject) => members.push({ request, resolve, reject }));
  }

  private async sendBatch(handoff: Handoff, members: readonly BatchMember[]): Promise<void> {
    const alone = () => {
      for (const member of members) this.send(handoff, member.request).then(member.resolve, member.reject);
    };
    const queries = members.map((member) => member.request.query!);
    const merged = members.length > 1 ? this.mergeQueries(queries) : undefined;
    const variables = merged?.variables(members.map((member) => member.request));
    if (!merged || !variables) return alone();
    let answers: SubgraphResponse[] | undefined;
    try {
      answers = merged.split(await this.send(handoff, { query: merged.query, variables, operationName: merged.operationName }));
    } catch (error) {
      // Refused as a whole (a body or cost limit the fetches alone stay under): they are sent alone, and these
      // fetches are not merged again. A subgraph that fails, does not answer, or refuses the caller (401, 403,
      // 429) would do the same to each of them, and is not asked twice.
      if (error instanceof SubgraphStatusError && MERGE_REFUSALS.has(error.status)) {
        this.mergeRefused(queries);
        return alone();
      }
      for (const member of members) member.reject(error);
      return;
    }
    // An answer that does not split cleanly (an error of the whole request, data nulled by one fetch's error)
    // is asked for again, fetch by fetch: each gets exactly what it would have had alone.
    if (!answers) {
      this.mergeRefused(queries);
      return alone();
    }
    this.mergedFetches.inc({ subgraph: this.name }, members.length);
    members.forEach((member, index) => member.resolve(answers[index]!));
  }

  private didEncounterError(error: Error, requestId: string | undefined): never {
    const serviceName = this.name;
    // Clients get a safe summary; operators need the real cause (refused, reset, HTTP 502 with a body...).
    // An open circuit was logged once, when it opened.
    if (!isOpenCircuit(error)) this.logger.warn({ requestId, err: error, serviceName }, 'subgraph request failed');
    if (isTimeout(error)) {
      throw new GraphQLError(`The ${serviceName} service did not answer in time`, {
        extensions: { code: ErrorCode.SubgraphTimeout, serviceName },
      });
    }
    throw new GraphQLError(`The ${serviceName} service is unavailable`, {
      extensions: { code: ErrorCode.SubgraphUnavailable, serviceName },
    });
  }
}
