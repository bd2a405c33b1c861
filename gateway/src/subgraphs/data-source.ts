import { RemoteGraphQLDataSource } from '@apollo/gateway';
import type { Fetcher } from '@apollo/utils.fetcher';
import { GraphQLError } from 'graphql';
import type { Logger } from '@fed/platform';
import { ErrorCode } from '../errors/codes.ts';

export interface SubgraphDataSourceOptions {
  name: string;
  url: string;
  /** The default fetcher has no timeout at all; a hung subgraph would hang every request that touches it. */
  timeoutMs: number;
  logger: Logger;
}

const isTimeout = (error: unknown) =>
  error instanceof Error && (error.name === 'TimeoutError' || (error.cause instanceof Error && error.cause.name === 'TimeoutError'));

/**
 * A subgraph fetch with a deadline, whose failures become one of two stable errors naming the subgraph.
 * The stock errors carry the subgraph's internal URL and raw response body; these carry neither.
 */
export class SubgraphDataSource extends RemoteGraphQLDataSource {
  private readonly subgraphName: string;
  private readonly logger: Logger;

  constructor({ name, url, timeoutMs, logger }: SubgraphDataSourceOptions) {
    const fetcher: Fetcher = (input, init) =>
      fetch(input, { ...init, signal: AbortSignal.timeout(timeoutMs) }) as unknown as ReturnType<Fetcher>;
    super({ url, fetcher });
    this.subgraphName = name;
    this.logger = logger;
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
