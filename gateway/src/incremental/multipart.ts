import { HeaderMap, type HTTPGraphQLResponse } from '@apollo/server';
import type { GraphQLError, GraphQLFormattedError } from 'graphql';
import Negotiator from 'negotiator';
import { markErrors, type GraphQLExchange, type RequestScope, type Metrics, type RawHttpResponse } from '@fed/platform';
import type { AnswerInParts } from '../response-cache/response-cache.ts';
import type { IncrementalItem } from './defer.ts';
import type { IncrementalSlot } from './run.ts';

/** What Apollo Client sends and reads for @defer (the spec of 2022-08-24, as Apollo Server and Router write it). */
export const DEFER_MEDIA_TYPE = 'multipart/mixed; deferSpec=20220824';
const CONTENT_TYPE = 'multipart/mixed; boundary="-"; deferSpec=20220824';
const PART_HEAD = 'content-type: application/json; charset=utf-8\r\n\r\n';
/**
 * A serialised answer (Apollo's: one JSON object, a newline) with `hasNext` as its last key, without parsing it
 * again: a deferred answer's first part can be large.
 */
function withHasNext(json: string, hasNext = true): string {
  const body = json.trimEnd();
  if (!body.endsWith('}')) return JSON.stringify({ ...(JSON.parse(body) as object), hasNext });
  return `${body.slice(0, -1)}${body.length > 2 ? ',' : ''}"hasNext":${hasNext}}`;
}

// Apollo Client reads a part once the boundary after it arrives: each part is written with the boundary.
const part = (payload: unknown) => `\r\n${PART_HEAD}${JSON.stringify(payload)}\r\n---`;

type Around<TAdmission> = (exchange: GraphQLExchange<TAdmission>, execute: () => Promise<HTTPGraphQLResponse>) => Promise<HTTPGraphQLResponse | RawHttpResponse>;

/** Whether the client reads multipart answers for @defer (Apollo Client: `multipart/mixed;deferSpec=20220824,application/json`). */
export function acceptsDeferredParts(accept: string | undefined): boolean {
  if (!accept || !accept.includes('multipart/mixed')) return false;
  return new Negotiator({ headers: { accept } }).mediaType([DEFER_MEDIA_TYPE]) === DEFER_MEDIA_TYPE;
}

// A cheap look at the document, for answers that never reach the engine (cache hits): whether it defers.
function mentionsDefer(body: unknown, search: string): boolean {
  const query = typeof body === 'object' && body !== null ? (body as { query?: unknown }).query : new URLSearchParams(search).get('query');
  return typeof query === 'string' && query.includes('@defer');
}

/**
 * The HTTP side of @defer: for clients that take multipart answers, it lets the engine deliver an operation in
 * parts (through the admission's slot) and writes them as Apollo Client reads them. The response cache inside
 * stores the whole answer once every part ran; a hit for a deferred query is that answer, sent as one part. Errors in later parts are formatted as Apollo formats the
 * first part's (`formatError` after the same normalisation).
 */
export function createIncrementalDelivery<TAdmission extends { incremental?: IncrementalSlot }>(options: {
  formatError: (formatted: GraphQLFormattedError, error: unknown) => GraphQLFormattedError;
  /** The layer inside this one (the response cache), which sees the first part only and never stores it. */
  inner?: Around<TAdmission>;
  /** Errors of later parts count in `graphql_errors_total` as the first part's do. */
  metrics?: Metrics;
}): Around<TAdmission> {
  const { formatError, inner } = options;
  // The observability plugin's counter (the registry hands back the one already registered).
  const errorsTotal = options.metrics?.counter({ name: 'graphql_errors_total', help: 'Errors in GraphQL responses, by extensions.code', labelNames: ['code'] as const });

  // As Apollo Server formats the first part's errors; counted and added to the request's access-log line too.
  const formatErrors = (errors: readonly GraphQLError[], scope: RequestScope | undefined): GraphQLFormattedError[] => {
    // As Apollo's pipeline does before formatting: a masked error's log line names its request.
    markErrors(errors, scope);
    return errors.map((error) => {
      const { http: _http, ...extensions } = { ...error.extensions, code: error.extensions.code ?? 'INTERNAL_SERVER_ERROR' } as Record<string, unknown>;
      let formatted: GraphQLFormattedError;
      try {
        formatted = formatError({ ...error.toJSON(), extensions }, error);
      } catch {
        formatted = { message: 'Internal server error', extensions: { code: 'INTERNAL_SERVER_ERROR' } };
      }
      const code = typeof formatted.extensions?.code === 'string' ? formatted.extensions.code : 'UNKNOWN';
      errorsTotal?.inc({ code });
      scope?.errorCodes.add(code);
      return formatted;
    });
  };

  const formatItems = (items: IncrementalItem[], hasNext: boolean, scope: RequestScope | undefined) => ({
    incremental: items.map(({ errors, ...item }) => (errors ? { ...item, errors: formatErrors(errors, scope) } : item)),
    hasNext,
  });

  async function* parts(first: string, subsequent: AsyncIterable<IncrementalItem[]>, scope: RequestScope | undefined): AsyncGenerator<string> {
    yield `\r\n---\r\n${PART_HEAD}${withHasNext(first)}\r\n---`;
    for await (const items of subsequent) {
      if (items.length > 0) yield part(formatItems(items, true, scope));
    }
    // Whether a part is the last is known only once every part ran: a last part of its own says so.
    yield `${part({ hasNext: false }).slice(0, -'\r\n---'.length)}\r\n-----\r\n`;
  }

  const streamed = (response: HTTPGraphQLResponse, { subsequent, whole }: IncrementalSlot, scope: RequestScope | undefined): AnswerInParts => {
    if (response.body.kind !== 'complete' || !subsequent) return response;
    const headers = new HeaderMap(response.headers);
    headers.set('content-type', CONTENT_TYPE);
    // Parts of one answer, each incomplete on its own: no shared cache may keep them.
    headers.set('cache-control', 'no-store');
    return { status: response.status, headers, body: { kind: 'chunked', asyncIterator: parts(response.body.string, subsequent, scope) }, whole };
  };

  const onePart = (hit: RawHttpResponse): RawHttpResponse => {
    const headers = new HeaderMap(hit.headers);
    headers.set('content-type', CONTENT_TYPE);
    return { ...hit, headers, bytes: Buffer.from(`\r\n---\r\n${PART_HEAD}${withHasNext(Buffer.from(hit.bytes).toString('utf8'), false)}\r\n-----\r\n`) };
  };

  return async (exchange, execute) => {
    if (!acceptsDeferredParts(exchange.headers.get('accept'))) return inner ? inner(exchange, execute) : execute();
    const slot: IncrementalSlot = {};
    exchange.admission.incremental = slot;
    const run = async () => {
      const response = await execute();
      return slot.subsequent ? streamed(response, slot, exchange.scope) : response;
    };
    const response = inner ? await inner(exchange, run) : await run();
    if ('bytes' in response && response.status === 200 && mentionsDefer(exchange.body, exchange.search)) return onePart(response);
    return response;
  };
}
