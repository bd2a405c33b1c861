import { unwrapResolverError } from '@apollo/server/errors';
import { APOLLO_CLIENT_CODES, maskedShape, publicShape, type Logger } from '@fed/platform';
import type { GraphQLFormattedError } from 'graphql';
import { ErrorCode } from './codes.ts';

// Errors a subgraph sent without a code of its own; their messages are not vetted, so they are masked.
const UNVETTED_DOWNSTREAM_CODES = new Set(['DOWNSTREAM_SERVICE_ERROR', ErrorCode.Internal]);

/**
 * The gateway's `formatError`. Its own codes and Apollo's client-input codes pass; an error a subgraph raised
 * on purpose (it carries a code and the gateway tagged it with `serviceName`) passes with only its public
 * extensions, so no upstream URL or response body leaks. Everything else is logged and masked.
 */
export function createGatewayErrorFormatter(logger: Logger) {
  const known = new Set<string>([...Object.values(ErrorCode), ...APOLLO_CLIENT_CODES]);
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const code = formatted.extensions?.code;
    const serviceName = formatted.extensions?.serviceName;
    if (typeof code === 'string' && code !== ErrorCode.Internal && known.has(code)) return publicShape(formatted);
    if (typeof code === 'string' && typeof serviceName === 'string' && !UNVETTED_DOWNSTREAM_CODES.has(code)) {
      return publicShape(formatted);
    }
    logger.error({ err: unwrapResolverError(error), path: formatted.path, serviceName }, 'unexpected error (masked)');
    return maskedShape(formatted, typeof serviceName === 'string' ? { serviceName } : {});
  };
}
