import { ApolloServerErrorCode, unwrapResolverError } from '@apollo/server/errors';
import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import type { Logger } from './logger.ts';
import { requestFields } from './observability/request-scope.ts';

export const INTERNAL_SERVER_ERROR = ApolloServerErrorCode.INTERNAL_SERVER_ERROR;
/** The service's own database could not be reached; the request changed nothing and may be retried. */
export const DATABASE_UNAVAILABLE = 'DATABASE_UNAVAILABLE';

// Socket-level failures (Node), postgres.js connection states, and Postgres "shutting down / starting up".
const CONNECTION_FAILURES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'EPIPE',
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  '57P01',
  '57P02',
  '57P03',
]);

/** True when an error, or anything in its cause chain, says the database connection failed. */
export function isConnectionFailure(error: unknown): boolean {
  for (let current: unknown = error; current instanceof Error; current = current.cause) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && CONNECTION_FAILURES.has(code)) return true;
    if (current instanceof AggregateError && current.errors.some(isConnectionFailure)) return true;
  }
  return false;
}

/** Codes Apollo Server itself produces for bad requests; they describe the client's input, so they are safe. */
export const APOLLO_CLIENT_CODES = new Set<string>([
  ApolloServerErrorCode.GRAPHQL_PARSE_FAILED,
  ApolloServerErrorCode.GRAPHQL_VALIDATION_FAILED,
  ApolloServerErrorCode.BAD_USER_INPUT,
  ApolloServerErrorCode.BAD_REQUEST,
  ApolloServerErrorCode.OPERATION_RESOLUTION_FAILURE,
  ApolloServerErrorCode.PERSISTED_QUERY_NOT_FOUND,
  ApolloServerErrorCode.PERSISTED_QUERY_NOT_SUPPORTED,
]);

/** Extension keys a client may see; everything else (stack traces, upstream responses, URLs) is dropped. */
const PUBLIC_EXTENSIONS = ['code', 'field', 'serviceName'] as const;

/** The client-facing shape of an error that was raised on purpose: message, location, path, public extensions. */
export function publicShape(formatted: GraphQLFormattedError): GraphQLFormattedError {
  const extensions: Record<string, unknown> = {};
  for (const key of PUBLIC_EXTENSIONS) {
    if (formatted.extensions?.[key] !== undefined) extensions[key] = formatted.extensions[key];
  }
  return { message: formatted.message, locations: formatted.locations, path: formatted.path, extensions };
}

/** What a client sees instead of an unexpected error: no message, SQL, URL or stack from the original. */
export function maskedShape(formatted: GraphQLFormattedError, extra: Record<string, unknown> = {}): GraphQLFormattedError {
  return {
    message: 'Internal server error',
    locations: formatted.locations,
    path: formatted.path,
    extensions: { code: INTERNAL_SERVER_ERROR, ...extra },
  };
}

export interface ErrorFormatterOptions {
  /** The service's own ErrorCode values: errors carrying one were raised on purpose and pass through. */
  knownCodes: Iterable<string>;
  logger: Logger;
}

/**
 * Apollo `formatError`: errors the service raised on purpose keep their message and code; anything
 * unexpected (a driver error with SQL in it, a bug, an upstream URL) is logged and replaced by a generic one.
 */
export function createErrorFormatter({ knownCodes, logger }: ErrorFormatterOptions) {
  const known = new Set([...knownCodes, ...APOLLO_CLIENT_CODES]);
  // Apollo gives every unexpected error this code, so it can never vouch for a message.
  known.delete(INTERNAL_SERVER_ERROR);
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const code = formatted.extensions?.code;
    if (typeof code === 'string' && known.has(code)) return publicShape(formatted);
    const original = unwrapResolverError(error);
    if (isConnectionFailure(original)) {
      logger.warn({ ...requestFields(error), err: original, path: formatted.path }, 'database unavailable');
      return {
        message: 'The database is unavailable. Try again shortly.',
        locations: formatted.locations,
        path: formatted.path,
        extensions: { code: DATABASE_UNAVAILABLE },
      };
    }
    logger.error({ ...requestFields(error), err: original, path: formatted.path }, 'unexpected error (masked)');
    return maskedShape(formatted);
  };
}

/** An error raised on purpose: a stable code, a message safe for clients, and optionally the offending field. */
export function publicError(code: string, message: string, field?: string): GraphQLError {
  return new GraphQLError(message, { extensions: field ? { code, field } : { code } });
}

// NUL and other control characters are never meaningful in names, emails or SKUs, and Postgres rejects NUL
// in text outright; refusing them up front keeps that a clear input error instead of a masked 500.
export const hasControlCharacters = (value: string) =>
  [...value].some((char) => {
    const code = char.charCodeAt(0);
    return code < 0x20 || code === 0x7f;
  });
