import { AsyncLocalStorage } from 'node:async_hooks';
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

// Async context is a property of the process, like the event loop: every logger reads the same storage, and
// each request (gateway or subgraph, one process or several) runs in a scope of its own.
const scopes = new AsyncLocalStorage<RequestScope>();

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

export const runInRequestScope = <T>(scope: RequestScope, fn: () => T): T => scopes.run(scope, fn);

export const currentRequestScope = (): RequestScope | undefined => scopes.getStore();

/** The id to forward to the next service, when called on behalf of a request. */
export const currentRequestId = (): string | undefined => scopes.getStore()?.requestId;

// A service's own probes of another (the gateway asking a subgraph `{ __typename }`) carry ids with this
// prefix: logs put them at debug, and tests that count a request's subgraph calls leave them out.
const PROBE_PREFIX = 'probe:';

export const probeRequestId = (): string => `${PROBE_PREFIX}${randomUUID()}`;

export const isProbeRequest = (requestId: string | string[] | undefined): boolean =>
  typeof requestId === 'string' && requestId.startsWith(PROBE_PREFIX);
