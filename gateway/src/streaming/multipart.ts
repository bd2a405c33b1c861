import type { IncomingMessage } from 'node:http';
import { GraphQLError, type ExecutionResult } from 'graphql';
import type { Viewer } from '@fed/platform';
import { ErrorCode } from '../errors/codes.ts';
import { acceptedTypes, serveHttpStreams, writeResponse, type HttpStreamOptions } from './http-stream.ts';

export interface MultipartOptions<TAdmission extends { viewer: Viewer | null }> extends HttpStreamOptions<TAdmission> {
  /** Heartbeat parts (`{}`) that keep an idle stream open through proxies (ms; Apollo Router's 5 000 by default). */
  heartbeatMs?: number;
}

export const MULTIPART_SUBSCRIPTION_CONTENT_TYPE = 'multipart/mixed; boundary="graphql"; subscriptionSpec="1.0"';
const BOUNDARY = '\r\n--graphql';
/**
 * One part, with the boundary after it: Apollo Client reads a part once the next boundary arrives, so a part
 * must not wait for the next event to be seen.
 */
const part = (body: unknown) => `\r\ncontent-type: application/json; charset=utf-8\r\n\r\n${JSON.stringify(body)}${BOUNDARY}`;
/** The closing boundary, after the last part's boundary. */
const CLOSE = '--\r\n';

/**
 * The client asks for Apollo's multipart subscriptions: a `multipart/mixed` range with `subscriptionSpec=1.0`
 * (Apollo Client 4 sends `multipart/mixed;boundary=graphql;subscriptionSpec=1.0,…`; Apollo's docs quote it).
 */
export const acceptsMultipartSubscription = (req: IncomingMessage) =>
  acceptedTypes(req).some(({ type, params }) => type === 'multipart/mixed' && params.subscriptionspec === '1.0');

/**
 * An event in Apollo's wrapper. A result with data is `{ payload: { data, errors? } }`, and the stream goes on; a
 * result without data is the stream's last word (FORBIDDEN, CURSOR_EXPIRED, STREAM_UNAVAILABLE,
 * EVENTS_OVERFLOW…: see the README), a transport-level error: `{ payload: null, errors }`, after which the
 * protocol allows no more parts: the stream ends there, whatever the engine would send next.
 */
const withoutData = (result: ExecutionResult) => result.data === undefined || result.data === null;
const eventPart = (result: ExecutionResult) => part(withoutData(result) ? { payload: null, errors: result.errors ?? [] } : { payload: result });

const CUT = {
  draining: new GraphQLError('The server is shutting down: subscribe again (resumable subscriptions with `after` set to the id of the last event received).', {
    extensions: { code: ErrorCode.StreamUnavailable },
  }),
  'token-expired': new GraphQLError('The token expired: subscribe again with a fresh one.', { extensions: { code: ErrorCode.Unauthenticated } }),
} as const;

/**
 * Subscriptions over Apollo's multipart HTTP protocol (`subscriptionSpec=1.0`), as Apollo Client's HttpLink and
 * Apollo Router speak it: `POST /graphql` (or GET) with `Accept: multipart/mixed;subscriptionSpec=1.0, …`, one
 * subscription per response, `multipart/mixed; boundary="graphql"; subscriptionSpec="1.0"`. Each event is a
 * part `{"payload": {"data": …, "errors"?: …}}`, a heartbeat part `{}` comes every `heartbeatMs`, an error
 * that ends the subscription is `{"payload": null, "errors": […]}`, and the closing boundary ends the stream.
 * The same token, rate limit, budgets (counted with graphql-ws and server-sent events), checks, shared
 * upstreams and masking as the other transports; refusals before the stream starts are JSON with HTTP's status
 * and code. A stream the server cuts (the token expired: UNAUTHENTICATED; the gateway drains:
 * STREAM_UNAVAILABLE) ends with that error, so the client subscribes again. Queries and mutations sent with
 * this Accept header are answered as over HTTP.
 */
export function serveMultipartSubscriptions<TAdmission extends { viewer: Viewer | null }>(options: MultipartOptions<TAdmission>) {
  return serveHttpStreams(options, {
    name: 'multipart HTTP',
    accepts: acceptsMultipartSubscription,
    contentType: MULTIPART_SUBSCRIPTION_CONTENT_TYPE,
    opening: BOUNDARY,
    event: eventPart,
    isLast: withoutData,
    keepAlive: part({}),
    keepAliveMs: options.heartbeatMs ?? 5_000,
    complete: CLOSE,
    cut: (why, format) => `${part({ payload: null, errors: [format(CUT[why])] })}${CLOSE}`,
    // Apollo's HTTP path answers as it would any request with this Accept header (JSON, or @defer's parts).
    plain: async (res, request, run) => writeResponse(res, await run(request)),
  });
}

export type MultipartSubscriptions = ReturnType<typeof serveMultipartSubscriptions>;
