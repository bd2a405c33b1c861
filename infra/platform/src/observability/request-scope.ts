import { randomUUID } from 'node:crypto';

export const REQUEST_ID_HEADER = 'x-request-id';

/** What one HTTP request accumulates while it runs, for its log lines and its access-log line. */
export interface RequestScope {
  requestId: string;
  /** The operation Apollo resolved, else the name the client sent. */
  operationName?: string;
  /** Every `extensions.code` the response carried (or the refusal's code). */
  errorCodes: Set<string>;
}

// Ids we echo back and write to logs: anything longer, or with other characters, is replaced rather than
// trusted (log injection, unbounded headers).
const ACCEPTABLE_ID = /^[\w.:@/+=-]{1,128}$/;

/**
 * The caller's `x-request-id` when it is a sane token, else a fresh one. A `probe:` id is kept only when
 * `probes` says the callers are our own services: anyone else could use one to move requests out of the log.
 */
export function acceptRequestId(header: string | string[] | undefined, { probes = false }: { probes?: boolean } = {}): string {
  const value = Array.isArray(header) ? header[0] : header;
  return value && ACCEPTABLE_ID.test(value) && (probes || !isProbeRequest(value)) ? value : randomUUID();
}

// The scope travels with the request: in its GraphQL context and beside it, never in async context. On Node 20
// one AsyncLocalStorage.run() turns promise hooks on for every promise of the process, for good: measured,
// that was a sixth of a subgraph's CPU per request.
const REQUEST_SCOPE = Symbol('requestScope');

/** `context` carrying `scope`, for the plugins, data sources and formatters that read it back. */
export const withRequestScope = <T extends object>(context: T, scope: RequestScope | undefined): T =>
  scope ? Object.assign(context, { [REQUEST_SCOPE]: scope }) : context;

/** The scope of the request a GraphQL context (or an error of that request) belongs to. */
export const requestScopeOf = (carrier: unknown): RequestScope | undefined =>
  typeof carrier === 'object' && carrier !== null ? (carrier as { [REQUEST_SCOPE]?: RequestScope })[REQUEST_SCOPE] : undefined;

/**
 * Marks a request's errors with its scope: Apollo hands `formatError` the error alone, and the line that logs a
 * masked error must still name its request.
 */
export function markErrors(errors: readonly object[], scope: RequestScope | undefined): void {
  if (scope) for (const error of errors) withRequestScope(error, scope);
}

/** `{ requestId }` for a log line about `carrier`'s request (a context, a marked error), or nothing. */
export const requestFields = (carrier: unknown): { requestId?: string } => {
  const requestId = requestScopeOf(carrier)?.requestId;
  return requestId ? { requestId } : {};
};

// A service's own probes of another (the gateway asking a subgraph `{ __typename }`) carry ids with this
// prefix: logs put them at debug, and tests that count a request's subgraph calls leave them out.
const PROBE_PREFIX = 'probe:';

export const probeRequestId = (): string => `${PROBE_PREFIX}${randomUUID()}`;

export const isProbeRequest = (requestId: string | string[] | undefined): boolean =>
  typeof requestId === 'string' && requestId.startsWith(PROBE_PREFIX);
