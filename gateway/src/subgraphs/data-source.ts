import { RemoteGraphQLDataSource, type GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import type { Fetcher, FetcherResponse } from '@apollo/utils.fetcher';
import { GraphQLError } from 'graphql';
import {
  currentRequestId,
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
import { createSubgraphTransport, type SubgraphTransport } from './transport.ts';

/** What the data source reads from the gateway's per-request context. */
interface ViewerContext {
  viewer?: Viewer | null;
  idempotencyKey?: string;
}

export type SubgraphRequest = GraphQLDataSourceProcessOptions['request'];
export type SubgraphResponse = Awaited<ReturnType<RemoteGraphQLDataSource['process']>>;

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
  /** The gateway's count of writes: told of every mutation fetch, and no read joins a fetch from before one. */
  writes: WriteClock;
}

// Carries the viewer and the read consistency from willSendRequest to the fetcher, which alone sees the exact
// body to sign. It never leaves the process: the fetcher always replaces it with the signed identity.
const IDENTITY_HANDOFF = 'x-fed-identity-unsigned';

interface Handoff {
  viewer: Viewer | null;
  readPrimary: boolean;
  idempotency?: IdempotencyClaim;
}

const causes = (error: unknown, test: (error: Error) => boolean) =>
  error instanceof Error && (test(error) || (error.cause instanceof Error && test(error.cause)));
const isTimeout = (error: unknown) => causes(error, (e) => e.name === 'TimeoutError');
const isOpenCircuit = (error: unknown) => causes(error, (e) => e instanceof CircuitOpenError);

/**
 * A subgraph fetch with a deadline and a signed identity, whose failures become one of two stable errors
 * naming the subgraph. The stock errors carry the subgraph's internal URL and raw response body; these carry
 * neither. Nothing the client sent is forwarded: only the viewer the gateway verified, signed.
 */
export class SubgraphDataSource<TContext extends ViewerContext = ViewerContext> extends RemoteGraphQLDataSource<TContext> {
  private readonly subgraphName: string;
  private readonly transport: SubgraphTransport;
  private readonly logger: Logger;
  private readonly observer: FetchObserver<TContext> | undefined;

  constructor({ name, url, timeoutMs, secret, logger, observer, metrics, breaker, onAnswer, dedupe = true, writes }: SubgraphDataSourceOptions<TContext>) {
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
    const inFlight = dedupe ? createInFlightDedupe<FetcherResponse>() : undefined;
    // Apollo fetches `url` itself, always: the transport is bound to it.
    const transport = createSubgraphTransport(url);
    const send = (headers: Record<string, string>, body: string) => async () => {
      const response = await transport.post(headers, body, AbortSignal.timeout(timeoutMs));
      // A 401 (a wrong secret) or 404 (a wrong URL) is an answer from the wrong place, not a healthy subgraph.
      if (response.ok) onAnswer?.();
      return response;
    };
    const fetcher: Fetcher = async (_input, init) => {
      const headers = { ...init?.headers } as Record<string, string>;
      const handoff = headers[IDENTITY_HANDOFF];
      delete headers[IDENTITY_HANDOFF];
      const { viewer, readPrimary, idempotency }: Handoff = handoff ? (JSON.parse(handoff) as Handoff) : { viewer: null, readPrimary: false };
      const body = String(init?.body ?? '');
      headers[IDENTITY_HEADER] = signIdentity({ secret, caller: 'gateway', audience: name, viewer, readPrimary, idempotency, body });
      // The subgraph logs under the same request id, and its spans join the same trace.
      const requestId = currentRequestId();
      if (requestId) headers[REQUEST_ID_HEADER] = requestId;
      injectTraceContext(headers);
      const started = performance.now();
      const observe = (outcome: string) => durations.observe({ subgraph: name, outcome }, (performance.now() - started) / 1000);
      try {
        const request = send(headers, body);
        const call = () => (breaker ? breaker.call(request) : request());
        // Whatever the subgraph answers depends on the body and the signed viewer alone; a mutation's fetches
        // (readPrimary) must each run.
        const sent = inFlight && !readPrimary ? inFlight.fetch(`${handoff ?? ''}\n${body}`, writes.generation(), call, () => shared.inc({ subgraph: name })) : call();
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
    super({ url, fetcher });
    this.transport = transport;
    this.subgraphName = name;
    this.logger = logger;
    this.observer = observer;
  }

  /** Closes its keep-alive connections to the subgraph. */
  close(): void {
    this.transport.close();
  }

  override willSendRequest(options: GraphQLDataSourceProcessOptions<TContext>): void {
    const { request } = options;
    // Cleared first, so that forwarding client headers here one day could never smuggle one in.
    request.http?.headers.delete(IDENTITY_HANDOFF);
    // Only a client's operation has a gateway context (not health checks or schema loading).
    const incoming = 'incomingRequestContext' in options ? options : undefined;
    const context = incoming?.context;
    // A query may read from replicas. Every fetch of a mutation must see its writes (a later fetch reads what an
    // earlier one wrote), and the fetches that complete a subscription event must see the write it announces
    // (the upstream subscription itself is signed the same way, in the subscription client).
    const handoff: Handoff = { viewer: context?.viewer ?? null, readPrimary: !!incoming && incoming.incomingRequestContext.operation?.operation !== 'query' };
    // A mutation's key goes with a fingerprint of the client's whole request: a retry must be the same request.
    if (incoming?.incomingRequestContext.operation?.operation === 'mutation' && context?.idempotencyKey) {
      const { queryHash, operationName, request: clientRequest } = incoming.incomingRequestContext;
      handoff.idempotency = { key: context.idempotencyKey, request: requestFingerprint({ queryHash, operationName, variables: clientRequest.variables }) };
    }
    if (handoff.viewer || handoff.readPrimary) request.http?.headers.set(IDENTITY_HANDOFF, JSON.stringify(handoff));
    this.observer?.willSend(this.subgraphName, request, context);
  }

  override didReceiveResponse({ response, request, context }: { response: SubgraphResponse; request: SubgraphRequest; context: TContext }): SubgraphResponse {
    this.observer?.didReceive(this.subgraphName, request, response, context);
    return response;
  }

  override didEncounterError(error: Error): never {
    const serviceName = this.subgraphName;
    // Clients get a safe summary; operators need the real cause (refused, reset, HTTP 502 with a body...).
    // An open circuit was logged once, when it opened.
    if (!isOpenCircuit(error)) this.logger.warn({ err: error, serviceName }, 'subgraph request failed');
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
