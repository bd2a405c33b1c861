import { unwrapResolverError } from '@apollo/server/errors';
import { APOLLO_CLIENT_CODES, maskedShape, publicShape, requestFields, type Logger } from '@fed/platform';
import type { GraphQLFormattedError } from 'graphql';
import { DOWNSTREAM_PUBLIC_CODES, ErrorCode } from './codes.ts';

// graphql-js's suggestions always end the message: ` Did you mean "quantity"?`, ` Did you mean the enum value "PAID"?`.
const SUGGESTION = /\s*Did you mean\b[\s\S]*$/;

/**
 * A public message as clients see it. Apollo's hideSchemaDetailsFromClientErrors strips suggestions from
 * validation errors only: variable coercion (enum values, input fields) still names what the schema has. And
 * a document that overflows the parser's stack would answer with the engine's own words.
 */
function clientMessage(code: string, message: string): string {
  if (code === 'GRAPHQL_PARSE_FAILED' && message.includes('Maximum call stack size exceeded')) return 'The document is nested too deeply to parse';
  return message.replace(SUGGESTION, '');
}

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
    if (typeof code === 'string' && known.has(code)) return publicShape({ ...formatted, message: clientMessage(code, formatted.message) });
    const serviceName = formatted.extensions?.serviceName;
    logger.error({ ...requestFields(error), err: unwrapResolverError(error), path: formatted.path, serviceName, code }, 'unexpected error (masked)');
    return maskedShape(formatted, typeof serviceName === 'string' ? { serviceName } : {});
  };
}
