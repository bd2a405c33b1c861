import { RemoteGraphQLDataSource, type GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import type { Fetcher } from '@apollo/utils.fetcher';
import { GraphQLError } from 'graphql';
import { IDENTITY_HEADER, signIdentity, type Logger, type Viewer } from '@fed/platform';
import { ErrorCode } from '../errors/codes.ts';

/** What the data source reads from the gateway's per-request context. */
interface ViewerContext {
  viewer?: Viewer | null;
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
}

// Carries the viewer from willSendRequest to the fetcher, which alone sees the exact body to sign. It never
// leaves the process: the fetcher always replaces it with the signed identity.
const VIEWER_HANDOFF = 'x-fed-viewer-unsigned';

const isTimeout = (error: unknown) =>
  error instanceof Error && (error.name === 'TimeoutError' || (error.cause instanceof Error && error.cause.name === 'TimeoutError'));

/**
 * A subgraph fetch with a deadline and a signed identity, whose failures become one of two stable errors
 * naming the subgraph. The stock errors carry the subgraph's internal URL and raw response body; these carry
 * neither. Nothing the client sent is forwarded: only the viewer the gateway verified, signed.
 */
export class SubgraphDataSource<TContext extends ViewerContext = ViewerContext> extends RemoteGraphQLDataSource<TContext> {
  private readonly subgraphName: string;
  private readonly logger: Logger;
  private readonly observer: FetchObserver<TContext> | undefined;

  constructor({ name, url, timeoutMs, secret, logger, observer }: SubgraphDataSourceOptions<TContext>) {
    const fetcher: Fetcher = (input, init) => {
      const headers = { ...init?.headers } as Record<string, string>;
      const handoff = headers[VIEWER_HANDOFF];
      delete headers[VIEWER_HANDOFF];
      const viewer = handoff ? (JSON.parse(handoff) as Viewer) : null;
      headers[IDENTITY_HEADER] = signIdentity({ secret, caller: 'gateway', audience: name, viewer, body: String(init?.body ?? '') });
      return fetch(input, { ...init, headers, signal: AbortSignal.timeout(timeoutMs) }) as unknown as ReturnType<Fetcher>;
    };
    super({ url, fetcher });
    this.subgraphName = name;
    this.logger = logger;
    this.observer = observer;
  }

  override willSendRequest(options: GraphQLDataSourceProcessOptions<TContext>): void {
    const { request } = options;
    // Cleared first, so that forwarding client headers here one day could never smuggle one in.
    request.http?.headers.delete(VIEWER_HANDOFF);
    // Only a client's operation has a gateway context (not health checks or schema loading).
    const context = 'incomingRequestContext' in options ? options.context : undefined;
    const viewer = context?.viewer ?? null;
    if (viewer) request.http?.headers.set(VIEWER_HANDOFF, JSON.stringify(viewer));
    this.observer?.willSend(this.subgraphName, request, context);
  }

  override didReceiveResponse({ response, request, context }: { response: SubgraphResponse; request: SubgraphRequest; context: TContext }): SubgraphResponse {
    this.observer?.didReceive(this.subgraphName, request, response, context);
    return response;
  }

  override didEncounterError(error: Error): never {
    const serviceName = this.subgraphName;
    // Clients get a safe summary; operators need the real cause (refused, reset, HTTP 502 with a body...).
    this.logger.warn({ err: error, serviceName }, 'subgraph request failed');
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
