import type { IncomingMessage, ServerResponse } from 'node:http';
import { GraphQLError, Kind, type ArgumentNode, type DocumentNode, type ExecutionResult, type FieldNode, type GraphQLFormattedError, type OperationDefinitionNode, type VariableNode } from 'graphql';
import { HeaderMap, type HTTPGraphQLResponse } from '@apollo/server';
import { applyCors, BodyTooLarge, HttpError, readBody, type Logger, type Viewer } from '@fed/platform';
import { ErrorCode } from '../errors/codes.ts';
import { addressKey, clientAddress } from '../limits/rate-limit.ts';
import { addressClient, viewerClient, type SocketRegistry } from '../subscriptions/admission.ts';
import { isResumableField, type SubscriptionEngine } from '../subscriptions/engine.ts';
import { maskResult, tokenExpiry, type AdmittedOperation, type OperationAdmission, type OperationPayload } from '../subscriptions/operation.ts';

/** A GraphQL request over plain HTTP, as the gateway's HTTP path would run it (queries and mutations sent here). */
export interface PlainRequest {
  method: 'GET' | 'POST';
  headers: HeaderMap;
  search: string;
  body: unknown;
}

export interface SseOptions<TAdmission extends { viewer: Viewer | null }> {
  /** Where GraphQL is served; event streams share it. */
  path?: string;
  engine: SubscriptionEngine;
  /** The checks every subscription passes, shared with graphql-ws. */
  operations: OperationAdmission;
  /** The per-client budgets, shared with graphql-ws. */
  registry: SocketRegistry;
  /**
   * The HTTP path's own admission: the bearer token, then the rate limit (one request per stream). Throws an
   * HttpError to refuse.
   */
  admit: (req: IncomingMessage) => Promise<TAdmission>;
  /** Runs a query or mutation through the HTTP path (Apollo), for clients that send those here too. */
  executePlain: (request: PlainRequest, admission: TAdmission) => Promise<HTTPGraphQLResponse>;
  formatError: (formatted: GraphQLFormattedError, error: unknown) => GraphQLFormattedError;
  maxBodyBytes: number;
  corsOrigins?: string[] | '*';
  trustedProxyHops: number;
  /** Comment lines that keep proxies from closing an idle stream (ms). */
  keepAliveMs?: number;
  logger: Logger;
}

/** Variable that carries a reconnecting client's Last-Event-ID into the root field's `after`. */
const LAST_EVENT_VARIABLE = '__sse_last_event_id';
/** Cursors are short stream ids; anything longer, or with control characters, is not one of ours. */
const CURSOR = /^[\x21-\x7e]{1,128}$/;

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

/** The client asks for an event stream (graphql-sse sends exactly `text/event-stream`). */
export const acceptsEventStream = (req: IncomingMessage) => (req.headers.accept ?? '').split(',').some((type) => type.trim().split(';')[0]?.trim() === 'text/event-stream');

/** GET parameters or a POST body, as graphql-sse's distinct-connections mode sends them. */
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
 * Resumes the root field after `cursor` (the client's Last-Event-ID), when it is resumable (`after: ID`, an
 * `id` on its events): its `after` is set to the cursor, through the variable it already uses or a new one. A
 * new document: the admitted one is shared through the document cache.
 */
function resumeAfter(engine: SubscriptionEngine, admitted: AdmittedOperation, cursor: string): AdmittedOperation {
  const { operation, document } = admitted;
  const root = operation.selectionSet.selections[0];
  if (operation.selectionSet.selections.length !== 1 || root?.kind !== Kind.FIELD || !isResumableField(engine.schema, root.name.value)) return admitted;
  const given = root.arguments?.find((argument) => argument.name.value === 'after')?.value;
  if (given?.kind === Kind.VARIABLE) return { ...admitted, variables: { ...admitted.variables, [given.name.value]: cursor } };
  const variable: VariableNode = { kind: Kind.VARIABLE, name: { kind: Kind.NAME, value: LAST_EVENT_VARIABLE } };
  const after: ArgumentNode = { kind: Kind.ARGUMENT, name: { kind: Kind.NAME, value: 'after' }, value: variable };
  const field: FieldNode = { ...root, arguments: [...(root.arguments ?? []).filter((argument) => argument.name.value !== 'after'), after] };
  const rewritten: OperationDefinitionNode = {
    ...operation,
    variableDefinitions: [
      ...(operation.variableDefinitions ?? []),
      { kind: Kind.VARIABLE_DEFINITION, variable, type: { kind: Kind.NAMED_TYPE, name: { kind: Kind.NAME, value: 'ID' } } },
    ],
    selectionSet: { ...operation.selectionSet, selections: [field] },
  };
  const resumed: DocumentNode = { ...document, definitions: document.definitions.map((definition) => (definition === operation ? rewritten : definition)) };
  return { ...admitted, document: resumed, operation: rewritten, variables: { ...admitted.variables, [LAST_EVENT_VARIABLE]: cursor } };
}

const eventLine = (result: ExecutionResult, cursor: string | undefined) =>
  `${cursor !== undefined && CURSOR.test(cursor) ? `id: ${cursor}\n` : ''}event: next\ndata: ${JSON.stringify(result)}\n\n`;
const COMPLETE = 'event: complete\ndata:\n\n';

/**
 * Subscriptions over Server-Sent Events, per graphql-sse's distinct-connections mode: `GET /graphql?query=…` or
 * `POST /graphql` (JSON) with `Accept: text/event-stream`, one subscription per response. Each result is
 * `event: next`, the end `event: complete`. Every event of a resumable subscription carries its cursor as the
 * SSE `id:`, and a reconnect with `Last-Event-ID` resumes after it. The same token, rate limit, budgets,
 * checks, shared upstreams and masking as graphql-ws. A stream the server ends for the client to reconnect
 * (its token expired, the gateway drains) ends without `complete`, which clients treat as a lost connection.
 */
export function serveEventStreams<TAdmission extends { viewer: Viewer | null }>(options: SseOptions<TAdmission>) {
  const { engine, registry, logger } = options;
  const path = options.path ?? '/graphql';
  const keepAliveMs = options.keepAliveMs ?? 12_000;
  /** Ends an open stream without `complete`, so the client reconnects (elsewhere, when draining). */
  const open = new Map<ServerResponse, (reason: string) => void>();
  let draining = false;

  const answer = (res: ServerResponse, status: number, errors: readonly GraphQLError[], headers: Record<string, string> = {}) => {
    for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify({ errors: errors.map((error) => options.formatError(error.toJSON(), error)) }));
  };

  const startStream = (res: ServerResponse) => {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
    res.flushHeaders();
  };

  async function plain(res: ServerResponse, request: PlainRequest, admission: TAdmission) {
    const result = await options.executePlain(request, admission);
    const status = result.status ?? 200;
    if (status === 200 && result.body.kind === 'complete') {
      // graphql-sse's answer to a query or mutation: one `next` and `complete`.
      startStream(res);
      res.end(`event: next\ndata: ${result.body.string}\n\n${COMPLETE}`);
      return;
    }
    for (const [name, value] of result.headers) res.setHeader(name, value);
    res.statusCode = status;
    if (result.body.kind === 'complete') return res.end(result.body.string);
    for await (const chunk of result.body.asyncIterator) res.write(chunk);
    res.end();
  }

  async function stream(req: IncomingMessage, res: ServerResponse, url: URL) {
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
      admission = await options.admit(req);
    } catch (error) {
      if (error instanceof HttpError) throw refusal(error.status, error.code, error.message, error.headers);
      throw error;
    }
    const { viewer } = admission;
    const payload = payloadOf(method, url, raw, req.headers['content-type'] ?? '');
    const verdict = options.operations.admit(payload);
    if ('errors' in verdict) {
      // Apollo answers these exactly as over HTTP (OPERATION_RESOLUTION_FAILURE, or the query's own answer).
      if (!verdict.notSubscription && !verdict.unresolved) throw new Refusal(400, verdict.errors);
      const headers = new HeaderMap();
      for (const [key, value] of Object.entries(req.headers)) if (value !== undefined) headers.set(key, Array.isArray(value) ? value.join(', ') : value);
      // Apollo answers in JSON; this transport wraps a success in one event.
      headers.set('accept', 'application/json');
      const params = new URLSearchParams();
      for (const [name, value] of Object.entries(payload)) {
        if (value !== null && value !== undefined && value !== '') params.set(name, typeof value === 'string' ? value : JSON.stringify(value));
      }
      return plain(res, { method, headers, search: method === 'GET' ? `?${params.toString()}` : '', body: method === 'POST' ? payload : undefined }, admission);
    }

    const authorization = req.headers.authorization;
    const expiresAt = viewer && authorization ? tokenExpiry(authorization) : undefined;
    // A stream lives no longer than its token: a signed-in one whose expiry cannot be read is refused (as over graphql-ws).
    if (viewer && expiresAt === undefined) throw refusal(401, ErrorCode.Unauthenticated, 'The token has no readable expiry');
    const client = viewer ? viewerClient(viewer.userId) : addressClient(addressKey(clientAddress(req, options.trustedProxyHops)));
    const member = {};
    const refused = registry.openStream(member, client, Buffer.byteLength(payload.query, 'utf8'));
    if (refused) throw refusal(429, ErrorCode.TooManySubscriptions, refused);
    let iterator: AsyncIterableIterator<ExecutionResult> | undefined;
    let expiry: NodeJS.Timeout | undefined;
    // Comments only once the stream has started (the first is due long after the headers are out).
    const keepAlive = setInterval(() => res.headersSent && !res.writableEnded && res.write(':\n\n'), keepAliveMs);
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
    };
    res.once('close', cleanup);
    try {
      const lastEventId = req.headers['last-event-id'];
      const admitted = typeof lastEventId === 'string' && CURSOR.test(lastEventId.trim()) ? resumeAfter(engine, verdict.admitted, lastEventId.trim()) : verdict.admitted;
      const contextValue = { viewer };
      iterator = engine.subscribe({ document: admitted.document, operationName: admitted.operationName, variables: admitted.variables, viewer, contextValue });
    } catch (error) {
      cleanup();
      throw error;
    }
    if (res.destroyed) return cleanup();

    startStream(res);
    // The client went away, or the server ends the stream: no `complete`, so the client reconnects.
    const hangUp = (reason: string) => {
      if (!res.writableEnded) res.end(`: ${reason}\n\n`);
      cleanup();
    };
    open.set(res, hangUp);
    if (draining) return hangUp('server shutting down; reconnect with Last-Event-ID');
    if (expiresAt !== undefined) expiry = setTimeout(() => hangUp('token expired; reconnect with a fresh token'), Math.min(Math.max(0, expiresAt - Date.now()), 2 ** 31 - 1));

    for (;;) {
      const next = await iterator.next();
      if (next.done || ended) break;
      const cursor = engine.cursorOf(next.value);
      // Backpressure: the engine keeps this client's queue (bounded: EVENTS_OVERFLOW) while the socket drains.
      if (!res.write(eventLine(maskResult(next.value, options.formatError), cursor))) {
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
    if (!ended && !res.writableEnded) res.end(COMPLETE);
    cleanup();
  }

  logger.debug({ path }, 'serving subscriptions over server-sent events');
  return {
    /** The `routes` hook of the HTTP front: answers GET and POST on GraphQL's path that ask for an event stream. */
    async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
      if (url.pathname !== path || (req.method !== 'GET' && req.method !== 'POST') || !acceptsEventStream(req)) return false;
      applyCors(req, res, options.corsOrigins);
      try {
        await stream(req, res, url);
      } catch (error) {
        if (!(error instanceof Refusal)) throw error;
        if (res.headersSent) return true;
        answer(res, error.status, error.errors, error.headers);
        if (error.status === 413) res.once('finish', () => req.destroy());
      }
      return true;
    },
    /** Event streams open now. */
    streams: () => open.size,
    /** Ends every stream without `complete`: clients reconnect to another replica and resume. */
    dispose(): void {
      draining = true;
      for (const hangUp of [...open.values()]) hangUp('server shutting down; reconnect with Last-Event-ID');
    },
  };
}

export type EventStreams = ReturnType<typeof serveEventStreams>;
