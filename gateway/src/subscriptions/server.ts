import type { IncomingMessage, Server } from 'node:http';
import { createHash, randomUUID } from 'node:crypto';
import { execute, GraphQLError, parse, type ExecutionArgs, type ExecutionResult, type GraphQLFormattedError } from 'graphql';
import type { Context, FormattedExecutionResult } from 'graphql-ws';
import { useServer, type Extra } from 'graphql-ws/use/ws';
import { WebSocketServer, type WebSocket } from 'ws';
import type { HTTPGraphQLResponse } from '@apollo/server';
import { HttpError, withRequestScope, type Logger, type RawHttpResponse, type RequestScope, type Viewer } from '@fed/platform';
import type { Authenticator } from '../auth/authenticate.ts';
import { ErrorCode } from '../errors/codes.ts';
import { addressKey, clientAddress } from '../limits/rate-limit.ts';
import { addressClient, TOO_MANY_CLOSE_CODE, viewerClient, type SocketRegistry } from './admission.ts';
import type { SubscriptionEngine } from './engine.ts';
import { maskResult, tokenExpiry, type OperationAdmission } from './operation.ts';

export interface SubscriptionServerOptions {
  httpServer: Server;
  path?: string;
  engine: SubscriptionEngine;
  authenticate: Authenticator;
  maxPayloadBytes: number;
  /** The gateway's error formatter: subscription errors are masked exactly as HTTP ones. */
  formatError: (formatted: GraphQLFormattedError, error: unknown) => GraphQLFormattedError;
  /** Keep-alive pings to every client (ms). */
  keepAliveMs?: number;
  /** What every subscription passes before it starts, shared with the SSE transport (parse, validation, limits). */
  operations: OperationAdmission;
  /** Sockets and subscriptions per socket, viewer and address (see SubscriptionLimits), shared with SSE streams. */
  registry: SocketRegistry;
  /**
   * The HTTP path's rate limit (same limiter, policy and keys): each socket's sign-in and each subscribe message
   * count as one request. It throws an HttpError 429 to refuse; unset: no rate limit.
   */
  rateLimit?: (req: IncomingMessage, viewer: Viewer | null) => Promise<void>;
  /** Proxies in front whose X-Forwarded-For entry names the client (as for HTTP). */
  trustedProxyHops: number;
  /**
   * A query or mutation sent over the socket, run exactly as the HTTP front runs a POST of `body` (persisted
   * documents, limits, the response cache, @defer's parts for an `accept` that takes them, error codes).
   */
  runOperation?: (operation: SocketOperation) => Promise<HTTPGraphQLResponse | RawHttpResponse | LiveAnswer>;
  logger: Logger;
}

/** A live query's answers, as they come: the first, then each one that changed, until the client completes it. */
export interface LiveAnswer {
  live: AsyncGenerator<FormattedExecutionResult>;
}

/** What `runOperation` is given: the subscribe message's payload and who the socket signed in as. */
export interface SocketOperation {
  body: Record<string, unknown>;
  viewer: Viewer | null;
  /** The Accept header the HTTP front would see (multipart for @defer's parts); unset: application/json. */
  accept?: string;
  /** The operation's own id and access-line fields, as each HTTP request has. */
  scope: RequestScope;
}

/** Closes the socket when the token it was opened with expires; the client reconnects with a fresh one. */
export const TOKEN_EXPIRED_CLOSE_CODE = 4401;

const bearer = (params: Record<string, unknown> | undefined) => {
  const value = params?.authorization ?? params?.Authorization;
  return typeof value === 'string' ? value : undefined;
};

const badRequest = (message: string) => new GraphQLError(message, { extensions: { code: ErrorCode.BadRequest } });

// ---------------------------------------------------------------------------------------------------------------
// Queries and mutations over the socket (issue 22)

/** What Apollo Client sends for @defer over HTTP: the HTTP front then answers a deferred query in parts. */
const ACCEPT_PARTS = 'multipart/mixed;deferSpec=20220824, application/json';

/**
 * graphql-ws runs an operation once `onSubscribe` hands it a document: a query or mutation, already answered by
 * the HTTP path, is handed on with this stand-in, whose `execute` gives graphql-ws that answer (see `answered`).
 */
const ANSWERED_DOCUMENT = parse('query SocketOperation { __typename }', { noLocation: true });

/** The context of an operation the HTTP path answered: the answer's results, already formatted as HTTP's. */
interface AnsweredContext {
  viewer: Viewer | null;
  answer: FormattedExecutionResult | AsyncGenerator<FormattedExecutionResult>;
}

const isAnswered = (contextValue: unknown): contextValue is AnsweredContext =>
  typeof contextValue === 'object' && contextValue !== null && 'answer' in contextValue;

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * The parts of a multipart answer to a deferred query, as gateway/src/incremental/multipart.ts writes them (Apollo's
 * framing for deferSpec=20220824): the body opens with the delimiter `\r\n---`; each part is a header block, a
 * blank line and the part's JSON, followed by the next delimiter; the body ends with `\r\n-----\r\n`. The
 * HTTP front hands the socket only bytes (gateway.ts's runOperation wraps the engine's parts in that framing
 * before this file sees them), so they are read back here. JSON text never holds a raw CR or LF, so a delimiter
 * never occurs inside a part; a part is complete once the delimiter after it has arrived, whatever the chunking.
 */
export function createPartReader() {
  const DELIMITER = '\r\n---';
  let buffer = '';
  let opened = false;
  return {
    /** The parts completed by `text`, in order. */
    push(text: string): FormattedExecutionResult[] {
      buffer += text;
      const parts: FormattedExecutionResult[] = [];
      for (let at = buffer.indexOf(DELIMITER); at >= 0; at = buffer.indexOf(DELIMITER)) {
        const segment = buffer.slice(0, at);
        buffer = buffer.slice(at + DELIMITER.length);
        // What precedes the first delimiter is the (empty) preamble.
        if (!opened) {
          opened = true;
          continue;
        }
        const body = segment.indexOf('\r\n\r\n');
        if (body < 0) throw new Error('A multipart part has no header block');
        parts.push(JSON.parse(segment.slice(body + 4)) as FormattedExecutionResult);
      }
      return parts;
    },
    /** Throws unless the body ended with the closing delimiter. */
    end(): void {
      if (!opened || buffer !== '--\r\n') throw new Error('A multipart answer ended before its closing delimiter');
    },
  };
}

/** Parts as they arrive; returning it (the client completed the operation, the socket closed) ends the HTTP stream too. */
function partsOf(chunks: AsyncIterator<string>): AsyncGenerator<FormattedExecutionResult> {
  const reader = createPartReader();
  // Not awaited: graphql-ws awaits every operation's return() before it finishes closing a socket, and the
  // HTTP stream ends only once the part it is computing is out.
  const closeStream = () => void Promise.resolve(chunks.return?.()).catch(() => undefined);
  const generator = (async function* () {
    try {
      for (let chunk = await chunks.next(); !chunk.done; chunk = await chunks.next()) yield* reader.push(chunk.value);
      reader.end();
    } finally {
      closeStream();
    }
  })();
  // A generator returned before it started never runs its `finally`: the stream is closed here as well.
  const returnGenerator = generator.return.bind(generator);
  generator.return = (value) => {
    closeStream();
    return returnGenerator(value);
  };
  return generator;
}

/** A one-part answer (a cache hit): its results, as graphql-ws iterates them. */
async function* onlyThese(results: FormattedExecutionResult[]): AsyncGenerator<FormattedExecutionResult> {
  yield* results;
}

type HttpAnswer =
  /** A request error: no `data`, only `errors` (what HTTP answers with a 4xx status). */
  | { refused: GraphQLFormattedError[] }
  | { answer: AnsweredContext['answer'] };

/** The HTTP path's answer, read as graphql-ws messages: one result, parts as they come, or a refusal. */
function readHttpAnswer(response: HTTPGraphQLResponse | RawHttpResponse | LiveAnswer): HttpAnswer {
  if ('live' in response) return { answer: response.live };
  const multipart = response.headers.get('content-type')?.startsWith('multipart/mixed') ?? false;
  let text: string;
  if ('bytes' in response) text = Buffer.from(response.bytes).toString('utf8');
  else if (response.body.kind === 'chunked') return { answer: partsOf(response.body.asyncIterator) };
  else text = response.body.string;
  if (multipart) {
    const reader = createPartReader();
    const parts = reader.push(text);
    reader.end();
    return { answer: onlyThese(parts) };
  }
  const body = JSON.parse(text) as unknown;
  if (!isRecord(body)) throw new Error(`The HTTP path answered ${response.status ?? 200} without a JSON object`);
  const errors = body.errors;
  if (!('data' in body) && Array.isArray(errors) && errors.length > 0) return { refused: errors as GraphQLFormattedError[] };
  return { answer: body as FormattedExecutionResult };
}

/**
 * The POST body the HTTP front would run for a subscribe payload (as the transport's checks edited it: a trusted
 * document's text, undeclared variables gone). graphql-ws requires a query string, so a hash-only persisted
 * query comes with an empty one: it goes without, as over HTTP.
 */
function postBodyOf(payload: Record<string, unknown>): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(payload)) if (value !== undefined && !(name === 'query' && value === '')) body[name] = value;
  return body;
}

/** The rate limit's refusal, or undefined when the request may go on; anything else is not ours to catch. */
async function rateLimited(limit: SubscriptionServerOptions['rateLimit'], req: IncomingMessage, viewer: Viewer | null): Promise<string | undefined> {
  try {
    await limit?.(req, viewer);
    return undefined;
  } catch (error) {
    if (error instanceof HttpError && error.status === 429) return error.message;
    throw error;
  }
}

/** Identical subscribe payloads: the same document, operation, variables and extensions, as sent. */
const payloadKey = ({ query, operationName, variables, extensions }: { query: string; operationName?: string | null; variables?: unknown; extensions?: unknown }) =>
  createHash('sha256')
    .update(JSON.stringify([query, operationName ?? null, variables ?? {}, extensions ?? {}]))
    .digest('base64url');

/**
 * graphql-ws on the gateway's own HTTP server and path. The client's token comes in `connection_init`
 * (`{ authorization: "Bearer …" }`); a bad one closes the socket with 4403. Subscriptions run here, after the
 * same parse, validation and operation limits as HTTP; queries and mutations are answered by the HTTP path
 * (`runOperation`), so that one socket serves an app's every operation with HTTP's answers.
 */
export function serveSubscriptions(options: SubscriptionServerOptions) {
  const { engine, logger } = options;
  // Messages as large as an HTTP body at most (ws allows 100 MiB by default).
  const wsServer = new WebSocketServer({ server: options.httpServer, path: options.path ?? '/graphql', maxPayload: options.maxPayloadBytes });
  const viewers = new WeakMap<Context, Viewer | null>();
  const expiries = new WeakMap<Context, NodeJS.Timeout>();
  const connections = new Set<Context>();
  const { registry } = options;
  // Per socket: which subscription id runs each distinct payload, and the reverse, to replace a repeat; and the
  // bytes of query text each holds.
  const byPayload = new WeakMap<Context, { ids: Map<string, string>; keys: Map<string, string>; bytes: Map<string, number> }>();
  const forget = (ctx: Context, id: string) => {
    const running = byPayload.get(ctx);
    const key = running?.keys.get(id);
    running?.bytes.delete(id);
    if (!running || key === undefined) return;
    running.keys.delete(id);
    if (running.ids.get(key) === id) running.ids.delete(key);
  };

  // Before graphql-ws sees the socket: until it signs in, it counts against its address, so sockets that never
  // send connection_init cannot pile up either.
  wsServer.on('connection', (socket: WebSocket, request: IncomingMessage) => {
    if (!registry.join(socket, addressClient(addressKey(clientAddress(request, options.trustedProxyHops))))) {
      socket.close(TOO_MANY_CLOSE_CODE, 'Too many connections from this address');
      return;
    }
    socket.once('close', () => registry.leave(socket));
  });

  // Errors the HTTP path answered with, already formatted there: sent as they are, never formatted twice.
  const answeredErrors = new WeakMap<GraphQLError, GraphQLFormattedError>();

  /**
   * A query or mutation, run by the HTTP path as a POST of the payload by the socket's viewer: persisted
   * documents, validation, limits, the response cache and @defer's parts as over HTTP. The rate limit was
   * counted for the subscribe message already; the HTTP path counts nothing more.
   *
   * Its request errors (no `data`: an HTTP 4xx such as validation, a limit, an unknown persisted document) come
   * as a graphql-ws `error` message, with HTTP's messages and codes, not as a `next` with errors then `complete`.
   * That is what graphql-ws's own server does for the same failures (validation, no operation to run), what this
   * socket already does for a refused subscription, and what both clients surface as a failure of the operation:
   * graphql-ws's client calls the sink's `error` (and `iterate()` throws), Apollo's GraphQLWsLink raises
   * CombinedGraphQLErrors, as Apollo Client does for HTTP's 400. Everything else (data, with errors or without)
   * is one `next` per result: one for a plain answer, one per part for a deferred query, then `complete`.
   */
  async function runOnSocket(run: NonNullable<SubscriptionServerOptions['runOperation']>, viewer: Viewer | null, payload: Record<string, unknown>) {
    const body = postBodyOf(payload);
    // Multipart only where @defer may be: anything else is the plain POST it would be over HTTP (the same
    // content negotiation, so the same response-cache entries).
    const accept = typeof body.query === 'string' && body.query.includes('@defer') ? ACCEPT_PARTS : undefined;
    // A scope of its own, as each HTTP request has: subgraph fetches carry its id, log lines name it.
    const scope: RequestScope = { requestId: randomUUID(), errorCodes: new Set() };
    if (typeof body.operationName === 'string') scope.operationName = body.operationName.slice(0, 100);
    const started = performance.now();
    let answer: HttpAnswer | undefined;
    try {
      answer = readHttpAnswer(await run({ body, viewer, accept, scope }));
    } catch (error) {
      logger.error({ requestId: scope.requestId, err: error }, 'a query or mutation over graphql-ws could not be answered');
      scope.errorCodes.add('INTERNAL_SERVER_ERROR');
      return [new GraphQLError('Internal server error', { extensions: { code: 'INTERNAL_SERVER_ERROR' } })];
    } finally {
      for (const error of answer && 'refused' in answer ? answer.refused : []) if (typeof error.extensions?.code === 'string') scope.errorCodes.add(error.extensions.code);
      // One line per operation, like the HTTP front's access log (until its answer, or its first part, is ready).
      logger.info(
        {
          requestId: scope.requestId,
          transport: 'graphql-ws',
          operationName: scope.operationName,
          durationMs: Math.round(performance.now() - started),
          errorCodes: scope.errorCodes.size > 0 ? [...scope.errorCodes] : undefined,
        },
        'socket operation',
      );
    }
    if ('refused' in answer) {
      return answer.refused.map((formatted) => {
        const error = new GraphQLError(typeof formatted.message === 'string' ? formatted.message : 'Request refused', { extensions: formatted.extensions });
        answeredErrors.set(error, formatted);
        return error;
      });
    }
    const contextValue: AnsweredContext = { viewer, answer: answer.answer };
    return { schema: engine.schema(), document: ANSWERED_DOCUMENT, operationName: 'SocketOperation', contextValue };
  }

  const server = useServer<Record<string, unknown>>(
    {
      schema: engine.schema(),
      onConnect: async (ctx) => {
        const authorization = bearer(ctx.connectionParams);
        let viewer: Viewer | null;
        try {
          viewer = await options.authenticate(authorization);
        } catch (error) {
          // Keys that cannot be fetched say nothing about the token: "try again later", not "forbidden".
          if (error instanceof HttpError && error.status === 503) ctx.extra.socket.close(1013, 'Tokens cannot be verified right now');
          return false;
        }
        // Gone while the token was checked: nothing to time out.
        if (ctx.extra.socket.readyState !== ctx.extra.socket.OPEN) return false;
        const expiresAt = authorization ? tokenExpiry(authorization) : undefined;
        // A signed-in socket lives no longer than its token: one whose expiry cannot be read is refused.
        if (viewer && expiresAt === undefined) return false;
        const limited = await rateLimited(options.rateLimit, ctx.extra.request, viewer);
        if (limited) {
          ctx.extra.socket.close(TOO_MANY_CLOSE_CODE, limited);
          return false;
        }
        if (viewer && !registry.move(ctx.extra.socket, viewerClient(viewer.userId))) {
          ctx.extra.socket.close(TOO_MANY_CLOSE_CODE, 'Too many connections for this user');
          return false;
        }
        if (ctx.extra.socket.readyState !== ctx.extra.socket.OPEN) return false;
        const running = { ids: new Map<string, string>(), keys: new Map<string, string>(), bytes: new Map<string, number>() };
        byPayload.set(ctx, running);
        registry.track(ctx.extra.socket, {
          count: () => Object.keys(ctx.subscriptions).length,
          bytes: () => [...running.bytes.values()].reduce((sum, bytes) => sum + bytes, 0),
        });
        viewers.set(ctx, viewer);
        connections.add(ctx);
        if (expiresAt !== undefined) {
          // Capped so a far-future expiry cannot overflow the timer.
          const timer = setTimeout(() => ctx.extra.socket.close(TOKEN_EXPIRED_CLOSE_CODE, 'Token expired'), Math.min(expiresAt - Date.now(), 2 ** 31 - 1));
          timer.unref();
          expiries.set(ctx, timer);
        }
        return true;
      },
      onClose: (ctx) => {
        connections.delete(ctx);
        clearTimeout(expiries.get(ctx));
      },
      onSubscribe: async (ctx, id, payload) => {
        // Before anything is awaited, so subscribes that arrive together are counted in the order they came.
        // The same subscription again on one socket (a client that resubscribes without ending the one it runs)
        // replaces it: the earlier one completes, so a socket never gets each event twice from one operation.
        const running = byPayload.get(ctx);
        const key = payloadKey(payload);
        const previous = running?.ids.get(key);
        const replacing = previous !== undefined && previous !== id && previous in ctx.subscriptions;
        // Each subscription costs an upstream stream: caps per socket, and per client on this replica.
        // graphql-ws has already reserved this one's id in ctx.subscriptions.
        const bytes = Buffer.byteLength(payload.query, 'utf8');
        const refusal = registry.refusal(ctx.extra.socket, { bytes, replacing: replacing ? { bytes: running?.bytes.get(previous) ?? 0 } : undefined });
        if (refusal) return [new GraphQLError(refusal, { extensions: { code: ErrorCode.TooManySubscriptions } })];
        // Claimed now: the next identical one, even in the same burst, replaces this one.
        running?.ids.set(key, id);
        running?.keys.set(id, key);
        running?.bytes.set(id, bytes);
        // Refused, or not a subscription, it replaces nothing: the one running stays, and stays the one to replace.
        const unclaim = () => {
          running?.keys.delete(id);
          if (running?.ids.get(key) === id) {
            if (replacing && previous in ctx.subscriptions) running.ids.set(key, previous);
            else running.ids.delete(key);
          }
        };
        // Each subscribe message costs what a request costs (parse, validation, a plan, an upstream stream).
        const viewer = viewers.get(ctx) ?? null;
        const limited = await rateLimited(options.rateLimit, ctx.extra.request, viewer);
        if (limited) {
          unclaim();
          running?.bytes.delete(id);
          return [new GraphQLError(limited, { extensions: { code: ErrorCode.RateLimited } })];
        }
        const verdict = options.operations.admit(payload);
        if ('errors' in verdict && (verdict.notSubscription || verdict.unresolved || verdict.noDocument) && options.runOperation) {
          // A query or mutation: answered as over HTTP. Identical ones may run side by side (a refetch), so it
          // neither replaces nor is replaced; while it runs it counts against the caps, as any operation does.
          unclaim();
          const outcome = await runOnSocket(options.runOperation, viewer, payload as unknown as Record<string, unknown>);
          // Completed by the client meanwhile: graphql-ws drops a refusal without a word, and without onError.
          if (Array.isArray(outcome) && !(id in ctx.subscriptions)) forget(ctx, id);
          return outcome;
        }
        if (replacing && previous in ctx.subscriptions) end(ctx, previous);
        if ('errors' in verdict) {
          return verdict.notSubscription ? [badRequest('Only subscriptions are served over graphql-ws; send queries and mutations over HTTP')] : [...verdict.errors];
        }
        const { document, variables } = verdict.admitted;
        return { schema: engine.schema(), document, operationName: payload.operationName, variableValues: variables, contextValue: withRequestScope({ viewer: viewers.get(ctx) ?? null }, { requestId: randomUUID(), errorCodes: new Set() }) };
      },
      subscribe: (args) => {
        const contextValue = args.contextValue as { viewer: Viewer | null };
        return engine.subscribe({
          document: args.document,
          operationName: args.operationName,
          variables: args.variableValues as Record<string, unknown> | undefined,
          viewer: contextValue.viewer,
          contextValue,
        });
      },
      // Only the operations runOnSocket handed on: their answer is ready, and graphql-ws sends it.
      execute: (args: ExecutionArgs) => (isAnswered(args.contextValue) ? (args.contextValue.answer as unknown as ExecutionResult) : execute(args)),
      onNext: (_ctx, _id, _payload, args, result) =>
        // The HTTP path's results are formatted there already.
        isAnswered(args.contextValue) ? (result as FormattedExecutionResult) : maskResult(result as ExecutionResult, options.formatError),
      onError: (ctx, id, _payload, errors) => {
        forget(ctx, id);
        return errors.map((error) => answeredErrors.get(error) ?? (options.formatError(error.toJSON(), error) as GraphQLError));
      },
      onComplete: (ctx, id) => forget(ctx, id),
    },
    wsServer,
    options.keepAliveMs ?? 12_000,
  );

  /** Ends a subscription from the server's side; the client is told `complete`, as when its stream ends. */
  function end(ctx: Context<Record<string, unknown>, Extra>, id: string) {
    const subscription = ctx.subscriptions[id];
    forget(ctx, id);
    if (subscription && 'return' in subscription) {
      // graphql-ws's loop over it ends, and it sends the `complete`.
      void subscription.return(undefined);
      return;
    }
    // Still starting: graphql-ws drops it once started (its id is gone), without a word to the client.
    delete ctx.subscriptions[id];
    if (ctx.extra.socket.readyState === ctx.extra.socket.OPEN) ctx.extra.socket.send(JSON.stringify({ id, type: 'complete' }));
  }

  logger.debug({ path: options.path ?? '/graphql' }, 'serving subscriptions over graphql-ws');
  return {
    /** Open sockets, and the subscriptions running on them (read at scrape time, not kept as counters). */
    stats: () => ({
      sockets: wsServer.clients.size,
      subscriptions: [...connections].reduce((sum, ctx) => sum + Object.keys(ctx.subscriptions).length, 0),
      documentCache: options.operations.documentCache(),
    }),
    /** Closes every socket with 1001 (going away), so clients reconnect to another replica. */
    async dispose(): Promise<void> {
      for (const client of wsServer.clients) client.close(1001, 'Server shutting down');
      await server.dispose();
      await new Promise<void>((resolve) => wsServer.close(() => resolve()));
    },
  };
}
