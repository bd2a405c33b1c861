import type { IncomingMessage, ServerResponse } from 'node:http';
import { GraphQLError, type ExecutionResult, type FormattedExecutionResult, type GraphQLFormattedError } from 'graphql';
import { HeaderMap, type HTTPGraphQLResponse } from '@apollo/server';
import { applyCors, BodyTooLarge, HttpError, readBody, withRequestScope, type Logger, type RawHttpResponse, type RequestScope, type Viewer } from '@fed/platform';
import { ErrorCode } from '../errors/codes.ts';
import { addressKey, clientAddress } from '../limits/rate-limit.ts';
import type { LiveOpening } from '../live/live-queries.ts';
import { addressClient, viewerClient, type SocketRegistry } from '../subscriptions/admission.ts';
import type { SubscriptionEngine } from '../subscriptions/engine.ts';
import { maskResult, tokenExpiry, type AdmittedOperation, type OperationAdmission, type OperationPayload } from '../subscriptions/operation.ts';

/** A GraphQL request over plain HTTP, as the gateway's HTTP path would run it (queries and mutations sent here). */
export interface PlainRequest {
  method: 'GET' | 'POST';
  headers: HeaderMap;
  search: string;
  body: unknown;
}

/** What every streaming transport over HTTP (server-sent events, Apollo's multipart subscriptions) is built from. */
export interface HttpStreamOptions<TAdmission extends { viewer: Viewer | null }> {
  /** Where GraphQL is served; streams share it. */
  path?: string;
  engine: SubscriptionEngine;
  /** The checks every subscription passes, shared with graphql-ws. */
  operations: OperationAdmission;
  /** The per-client budgets, shared with graphql-ws and the other streaming transports. */
  registry: SocketRegistry;
  /**
   * The HTTP path's own admission: the bearer token, then the rate limit (one request per stream). Throws an
   * HttpError to refuse.
   */
  admit: (req: IncomingMessage, body: string, scope?: RequestScope) => Promise<TAdmission>;
  /** Runs a query or mutation through the HTTP path, for clients that send those here too. */
  executePlain: (request: PlainRequest, admission: TAdmission) => Promise<HTTPGraphQLResponse | RawHttpResponse>;
  formatError: (formatted: GraphQLFormattedError, error: unknown) => GraphQLFormattedError;
  /**
   * Live queries (`query @live`), streamed as subscriptions are, with the same budgets: `is` tells one from a
   * plain query (answered once, by `executePlain`), `open` starts it. Unset: no live queries on this transport.
   */
  live?: { is(payload: OperationPayload): boolean; open(payload: OperationPayload, admission: TAdmission): Promise<LiveOpening> };
  maxBodyBytes: number;
  corsOrigins?: string[] | '*';
  trustedProxyHops: number;
  logger: Logger;
}

/** Why the server ends a stream for the client to subscribe again. */
export type Cut = 'draining' | 'token-expired';

/** How one protocol frames a subscription on an HTTP response. */
export interface StreamProtocol {
  /** For logs. */
  name: string;
  /** The request asks for this protocol (by its Accept header). */
  accepts(req: IncomingMessage): boolean;
  contentType: string;
  /** Written with the headers. */
  opening: string;
  /** One result of the subscription, masked; `cursor` is where a client resumes after it (resumable fields). */
  event(result: ExecutionResult | FormattedExecutionResult, cursor: string | undefined): string;
  /** A result after which this protocol allows nothing more: the stream then completes (and its upstream is let go). */
  isLast?(result: ExecutionResult | FormattedExecutionResult): boolean;
  /** What keeps an idle stream open through proxies, every `keepAliveMs`. */
  keepAlive: string;
  keepAliveMs: number;
  /** The end of a stream that ran its course. */
  complete: string;
  /** The end of a stream the server cuts so that the client subscribes again (elsewhere, with a fresh token). */
  cut(why: Cut, format: (error: GraphQLError) => GraphQLFormattedError): string;
  /** Where a reconnecting client resumes (SSE's Last-Event-ID): the admitted operation, resumed after it. */
  resume?(req: IncomingMessage, admitted: AdmittedOperation): AdmittedOperation;
  /**
   * Answers a query or mutation sent with this protocol's Accept header: `run` executes it on the HTTP path
   * (given the headers to run with).
   */
  plain(res: ServerResponse, request: PlainRequest, run: (request: PlainRequest) => Promise<HTTPGraphQLResponse | RawHttpResponse>): Promise<void>;
}

class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly errors: readonly GraphQLError[],
    readonly headers: Record<string, string> = {},
  ) {
    super(errors[0]?.message ?? 'refused');
  }
}

const refusal = (status: number, code: string, message: string, headers?: Record<string, string>) =>
  new Refusal(status, [new GraphQLError(message, { extensions: { code } })], headers);

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The media ranges of an Accept header: each type (lowercase) with its parameters (names lowercase, quotes gone). */
export function acceptedTypes(req: IncomingMessage): { type: string; params: Record<string, string> }[] {
  return (req.headers.accept ?? '').split(',').map((range) => {
    const [type = '', ...params] = range.split(';');
    return {
      type: type.trim().toLowerCase(),
      params: Object.fromEntries(
        params.map((param) => {
          const equals = param.indexOf('=');
          return [param.slice(0, equals).trim().toLowerCase(), param.slice(equals + 1).trim().replace(/^"(.*)"$/, '$1')];
        }),
      ),
    };
  });
}

/** Writes an answer of the HTTP path (a query or mutation) as it is. */
export async function writeResponse(res: ServerResponse, result: HTTPGraphQLResponse | RawHttpResponse): Promise<void> {
  for (const [name, value] of result.headers) res.setHeader(name, value);
  res.statusCode = result.status ?? 200;
  if ('bytes' in result) return void res.end(result.bytes);
  if (result.body.kind === 'complete') return void res.end(result.body.string);
  for await (const chunk of result.body.asyncIterator) res.write(chunk);
  res.end();
}

/** The headers of a stream, sent at once (a proxy must not wait for a first event to pass them on). */
export function startStream(res: ServerResponse, contentType: string): void {
  res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
  res.flushHeaders();
}

/** GET parameters or a POST body, as graphql-sse's distinct-connections mode and Apollo Client send them. */
function payloadOf(method: string, url: URL, raw: string, contentType: string): OperationPayload {
  const json = (text: string | null, what: string): Record<string, unknown> | undefined => {
    if (text === null || text === '') return undefined;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw refusal(400, ErrorCode.BadRequest, `${what} is not valid JSON`);
    }
    if (value !== null && !isRecord(value)) throw refusal(400, ErrorCode.BadRequest, `${what} must be a JSON object`);
    return value ?? undefined;
  };
  let fields: Record<string, unknown>;
  if (method === 'GET') {
    const params = url.searchParams;
    if (['query', 'variables', 'operationName', 'extensions'].some((name) => params.getAll(name).length > 1)) {
      throw refusal(400, ErrorCode.BadRequest, 'Each GraphQL parameter may appear once');
    }
    fields = { query: params.get('query') ?? undefined, operationName: params.get('operationName') ?? undefined, variables: json(params.get('variables'), 'variables'), extensions: json(params.get('extensions'), 'extensions') };
  } else {
    if (!contentType.includes('json')) throw refusal(400, ErrorCode.BadRequest, 'A POST must send a JSON body (content-type: application/json)');
    const body = json(raw, 'The request body');
    if (!body) throw refusal(400, ErrorCode.BadRequest, 'The request body must be a JSON object');
    fields = body;
  }
  const { query, operationName, variables, extensions } = fields;
  if (query !== undefined && typeof query !== 'string') throw refusal(400, ErrorCode.BadRequest, '`query` must be a string');
  if (operationName !== undefined && operationName !== null && typeof operationName !== 'string') throw refusal(400, ErrorCode.BadRequest, '`operationName` must be a string');
  if (variables !== undefined && variables !== null && !isRecord(variables)) throw refusal(400, ErrorCode.BadRequest, '`variables` must be an object');
  if (extensions !== undefined && extensions !== null && !isRecord(extensions)) throw refusal(400, ErrorCode.BadRequest, '`extensions` must be an object');
  if (!query && !isRecord(extensions?.persistedQuery)) {
    throw refusal(400, ErrorCode.BadRequest, 'GraphQL operations must contain a non-empty `query` or a `persistedQuery` extension.');
  }
  // graphql-ws's shape: a hash-only request has an empty query, which the persisted-document check fills in.
  return { query: query ?? '', operationName: operationName ?? null, variables: variables ?? null, extensions: extensions ?? null };
}

/**
 * Subscriptions streamed on an HTTP response, one per request, in `protocol`'s framing: the same token, rate
 * limit, budgets, checks, shared upstreams and masking as graphql-ws. Refusals before the stream starts are
 * JSON with the HTTP path's status and code. A stream the server ends for the client to subscribe again (its
 * token expired, the gateway drains) ends in the protocol's own way (`cut`), never as one that ran its course.
 */
export function serveHttpStreams<TAdmission extends { viewer: Viewer | null }>(options: HttpStreamOptions<TAdmission>, protocol: StreamProtocol) {
  const { engine, registry, logger } = options;
  const path = options.path ?? '/graphql';
  /** Ends an open stream as the server's cut, so the client subscribes again (elsewhere, when draining). */
  const open = new Map<ServerResponse, (why: Cut) => void>();
  let draining = false;
  const format = (error: GraphQLError) => options.formatError(error.toJSON(), error);
  // The clients of one shared upstream are handed the same result object: framed and encoded once per event
  // for all of them, not once per client (10 000 clients: 10 000 JSON.stringify calls for one event).
  const framed = new WeakMap<ExecutionResult, Buffer>();
  const frame = (value: ExecutionResult, result: ExecutionResult): Buffer | string => {
    if (result !== value) return protocol.event(result, engine.cursorOf(value));
    let bytes = framed.get(value);
    if (!bytes) {
      bytes = Buffer.from(protocol.event(result, engine.cursorOf(value)));
      framed.set(value, bytes);
    }
    return bytes;
  };

  const answer = (res: ServerResponse, status: number, errors: readonly GraphQLError[], headers: Record<string, string> = {}) => {
    for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify({ errors: errors.map(format) }));
  };

  async function stream(req: IncomingMessage, res: ServerResponse, url: URL, scope?: RequestScope) {
    const method = req.method === 'POST' ? 'POST' : 'GET';
    let raw = '';
    try {
      if (method === 'POST') raw = await readBody(req, options.maxBodyBytes);
    } catch (error) {
      if (error instanceof BodyTooLarge) throw refusal(413, 'PAYLOAD_TOO_LARGE', `Request body exceeds ${options.maxBodyBytes} bytes`, { connection: 'close' });
      throw error;
    }
    let admission: TAdmission;
    try {
      admission = await options.admit(req, raw, scope);
    } catch (error) {
      if (error instanceof HttpError) throw refusal(error.status, error.code, error.message, error.headers);
      throw error;
    }
    const { viewer } = admission;
    const payload = payloadOf(method, url, raw, req.headers['content-type'] ?? '');
    const verdict = options.operations.admit(payload);
    const live = 'errors' in verdict && verdict.notSubscription && options.live?.is(payload) ? options.live : undefined;
    if ('errors' in verdict && !live) {
      // Apollo answers these exactly as over HTTP (OPERATION_RESOLUTION_FAILURE, or the query's own answer).
      if (!verdict.notSubscription && !verdict.unresolved) throw new Refusal(400, verdict.errors);
      const headers = new HeaderMap();
      for (const [key, value] of Object.entries(req.headers)) if (value !== undefined) headers.set(key, Array.isArray(value) ? value.join(', ') : value);
      const params = new URLSearchParams();
      for (const [name, value] of Object.entries(payload)) {
        if (value !== null && value !== undefined && value !== '') params.set(name, typeof value === 'string' ? value : JSON.stringify(value));
      }
      const request: PlainRequest = { method, headers, search: method === 'GET' ? `?${params.toString()}` : '', body: method === 'POST' ? payload : undefined };
      return protocol.plain(res, request, (edited) => options.executePlain(edited, admission));
    }

    const authorization = req.headers.authorization;
    const expiresAt = viewer && authorization ? tokenExpiry(authorization) : undefined;
    // A stream lives no longer than its token: a signed-in one whose expiry cannot be read is refused (as over graphql-ws).
    if (viewer && expiresAt === undefined) throw refusal(401, ErrorCode.Unauthenticated, 'The token has no readable expiry');
    const client = viewer ? viewerClient(viewer.userId) : addressClient(addressKey(clientAddress(req, options.trustedProxyHops)));
    const member = {};
    const refused = registry.openStream(member, client, Buffer.byteLength(payload.query, 'utf8'));
    if (refused) throw refusal(429, ErrorCode.TooManySubscriptions, refused);
    // A subscription's results (masked here) or a live query's answers (formatted by the HTTP path already).
    let iterator: AsyncIterator<ExecutionResult> | undefined;
    let answers: AsyncGenerator<FormattedExecutionResult> | undefined;
    let expiry: NodeJS.Timeout | undefined;
    // Keep-alives only once the stream has started (the first is due long after the headers are out).
    const keepAlive = setInterval(() => res.headersSent && !res.writableEnded && res.write(protocol.keepAlive), protocol.keepAliveMs);
    keepAlive.unref();
    let ended = false;
    const cleanup = () => {
      if (ended) return;
      ended = true;
      registry.leave(member);
      open.delete(res);
      clearTimeout(expiry);
      clearInterval(keepAlive);
      // The engine releases the upstream at once when its last client leaves.
      void iterator?.return?.();
      void answers?.return(undefined);
    };
    res.once('close', cleanup);
    try {
      if (live) {
        const opening = await live.open(payload, admission);
        if ('refused' in opening) {
          cleanup();
          return writeResponse(res, opening.refused);
        }
        // The client left during the first run: cleanup ran before there was anything to end.
        if (ended) return void opening.answers.return(undefined);
        answers = opening.answers;
      } else if (!('errors' in verdict)) {
        const admitted = protocol.resume ? protocol.resume(req, verdict.admitted) : verdict.admitted;
        // The stream's request id goes with every fetch its events cause, as a query's does.
        const contextValue = withRequestScope({ viewer }, scope);
        iterator = engine.subscribe({ document: admitted.document, operationName: admitted.operationName, variables: admitted.variables, viewer, contextValue });
      }
    } catch (error) {
      cleanup();
      throw error;
    }
    if (res.destroyed) return cleanup();

    startStream(res, protocol.contentType);
    if (protocol.opening) res.write(protocol.opening);
    // The client went away, or the server ends the stream for the client to subscribe again.
    const cut = (why: Cut) => {
      if (!res.writableEnded) res.end(protocol.cut(why, format));
      cleanup();
    };
    open.set(res, cut);
    if (draining) return cut('draining');
    if (expiresAt !== undefined) expiry = setTimeout(() => cut('token-expired'), Math.min(Math.max(0, expiresAt - Date.now()), 2 ** 31 - 1));

    const source = iterator;
    /** The next thing to write and what it says, or undefined once the subscription or live query ended. */
    const nextEvent = async (): Promise<{ result: ExecutionResult | FormattedExecutionResult; bytes: Buffer | string } | undefined> => {
      if (answers) {
        const next = await answers.next();
        return next.done ? undefined : { result: next.value, bytes: protocol.event(next.value, undefined) };
      }
      const next = await source?.next();
      if (!next || next.done) return undefined;
      const result = maskResult(next.value, options.formatError);
      return { result, bytes: frame(next.value, result) };
    };
    for (;;) {
      const next = await nextEvent();
      if (!next || ended) break;
      const written = res.write(next.bytes);
      if (protocol.isLast?.(next.result)) break;
      // Backpressure: the engine keeps this client's queue (bounded: EVENTS_OVERFLOW), a live query the newest
      // answers (past 16, the newest only), while the socket drains.
      if (!written) {
        await new Promise<void>((resolve) => {
          const go = () => {
            res.off('drain', go);
            res.off('close', go);
            resolve();
          };
          res.once('drain', go);
          res.once('close', go);
        });
      }
    }
    if (!ended && !res.writableEnded) res.end(protocol.complete);
    cleanup();
  }

  logger.debug({ path, protocol: protocol.name }, 'serving subscriptions over HTTP streams');
  return {
    /** The `routes` hook of the HTTP front: answers GET and POST on GraphQL's path that ask for this protocol. */
    async handle(req: IncomingMessage, res: ServerResponse, url: URL, scope?: RequestScope): Promise<boolean> {
      if (url.pathname !== path || (req.method !== 'GET' && req.method !== 'POST') || !protocol.accepts(req)) return false;
      applyCors(req, res, options.corsOrigins);
      try {
        await stream(req, res, url, scope);
      } catch (error) {
        if (!(error instanceof Refusal)) throw error;
        if (res.headersSent) return true;
        answer(res, error.status, error.errors, error.headers);
        if (error.status === 413) res.once('finish', () => req.destroy());
      }
      return true;
    },
    /** Streams open now. */
    streams: () => open.size,
    /** Ends every stream as the server's cut: clients subscribe again on another replica and resume. */
    dispose(): void {
      draining = true;
      for (const cut of [...open.values()]) cut('draining');
    },
  };
}

export type HttpStreams = ReturnType<typeof serveHttpStreams>;
