import { unwrapResolverError } from '@apollo/server/errors';
import { APOLLO_CLIENT_CODES, maskedShape, publicShape, type Logger } from '@fed/platform';
import type { GraphQLFormattedError } from 'graphql';
import { DOWNSTREAM_PUBLIC_CODES, ErrorCode } from './codes.ts';

/**
 * The gateway's `formatError`: an allowlist. The gateway's own codes, Apollo's client-input codes and the
 * subgraphs' public codes keep their message and public extensions (no upstream URL or response body);
 * everything else is logged and masked, keeping only the subgraph's name.
 */
export function createGatewayErrorFormatter(logger: Logger, downstreamCodes: Iterable<string> = DOWNSTREAM_PUBLIC_CODES) {
  const known = new Set<string>([...Object.values(ErrorCode), ...APOLLO_CLIENT_CODES, ...downstreamCodes]);
  // Apollo gives every unexpected error this code, so it can never vouch for a message.
  known.delete(ErrorCode.Internal);
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const code = formatted.extensions?.code;
    if (typeof code === 'string' && known.has(code)) return publicShape(formatted);
    const serviceName = formatted.extensions?.serviceName;
    logger.error({ err: unwrapResolverError(error), path: formatted.path, serviceName, code }, 'unexpected error (masked)');
    return maskedShape(formatted, typeof serviceName === 'string' ? { serviceName } : {});
  };
}
