import type { Server } from 'node:http';
import { createHash } from 'node:crypto';
import {
  getOperationAST,
  getVariableValues,
  GraphQLError,
  NoSchemaIntrospectionCustomRule,
  parse,
  specifiedRules,
  validate,
  type DocumentNode,
  type ExecutionResult,
  type GraphQLFormattedError,
} from 'graphql';
import type { Context } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import { HttpError, type Logger, type Viewer } from '@fed/platform';
import type { Authenticator } from '../auth/authenticate.ts';
import { ErrorCode } from '../errors/codes.ts';
import type { ListSizes } from '../limits/measure.ts';
import { exceededLimit, type OperationLimits } from '../limits/operation-limits.ts';
import type { SubscriptionEngine } from './engine.ts';

export interface SubscriptionServerOptions {
  httpServer: Server;
  path?: string;
  engine: SubscriptionEngine;
  authenticate: Authenticator;
  limits: OperationLimits;
  listSizes: ListSizes;
  maxTokens: number;
  maxPayloadBytes: number;
  introspection: boolean;
  /** The gateway's error formatter: subscription errors are masked exactly as HTTP ones. */
  formatError: (formatted: GraphQLFormattedError, error: unknown) => GraphQLFormattedError;
  /** Keep-alive pings to every client (ms). */
  keepAliveMs?: number;
  /** HTTP's first look at a request (trusted documents, variable bounds): edits the payload, or returns errors. */
  admitOperation?: (payload: { query: string; variables?: Record<string, unknown> | null; extensions?: Record<string, unknown> | null }) => GraphQLError[] | undefined;
  logger: Logger;
}

const MAX_SUBSCRIPTIONS_PER_SOCKET = 200;

/** Closes the socket when the token it was opened with expires; the client reconnects with a fresh one. */
export const TOKEN_EXPIRED_CLOSE_CODE = 4401;

const bearer = (params: Record<string, unknown> | undefined) => {
  const value = params?.authorization ?? params?.Authorization;
  return typeof value === 'string' ? value : undefined;
};

/** The expiry (ms) of a token the authenticator accepted: read the way it reads the header. */
const expiryOf = (authorization: string): number | undefined => {
  const token = /^Bearer ([A-Za-z0-9\-_.]+)$/.exec(authorization.trim())?.[1];
  try {
    const payload = JSON.parse(Buffer.from(token?.split('.')[1] ?? '', 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof payload.exp === 'number' ? payload.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
};

const badRequest = (message: string) => new GraphQLError(message, { extensions: { code: ErrorCode.BadRequest } });

/** The code HTTP would give the same error; "did you mean" hints go, as over HTTP. */
const coded = (error: GraphQLError, code: string) =>
  new GraphQLError(error.message.replace(/ Did you mean .*$/, ''), { extensions: { ...error.extensions, code: error.extensions.code ?? code } });

/**
 * graphql-ws on the gateway's own HTTP server and path. The client's token comes in `connection_init`
 * (`{ authorization: "Bearer …" }`); a bad one closes the socket with 4403. Only subscriptions are served
 * here, after the same parse, validation and operation limits as HTTP.
 */
export function serveSubscriptions(options: SubscriptionServerOptions) {
  const { engine, logger } = options;
  // Messages as large as an HTTP body at most (ws allows 100 MiB by default).
  const wsServer = new WebSocketServer({ server: options.httpServer, path: options.path ?? '/graphql', maxPayload: options.maxPayloadBytes });
  const viewers = new WeakMap<Context, Viewer | null>();
  const expiries = new WeakMap<Context, NodeJS.Timeout>();
  const rules = options.introspection ? specifiedRules : [...specifiedRules, NoSchemaIntrospectionCustomRule];
  const documents = new Map<string, DocumentNode>();
  const connections = new Set<Context>();

  const server = useServer<Record<string, unknown>>(
    {
      schema: engine.schema,
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
        const expiresAt = authorization ? expiryOf(authorization) : undefined;
        // A signed-in socket lives no longer than its token: one whose expiry cannot be read is refused.
        if (viewer && expiresAt === undefined) return false;
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
      onSubscribe: (ctx, _id, payload) => {
        // One socket may not open subscriptions without end: each distinct one costs an upstream stream.
        // graphql-ws has already reserved this one's id in ctx.subscriptions.
        if (Object.keys(ctx.subscriptions).length > MAX_SUBSCRIPTIONS_PER_SOCKET) {
          return [badRequest(`At most ${MAX_SUBSCRIPTIONS_PER_SOCKET} subscriptions per connection`)];
        }
        const refused = options.admitOperation?.(payload);
        if (refused) return refused;
        const documentKey = createHash('sha256').update(payload.query).digest('base64url');
        let document = documents.get(documentKey);
        if (!document) {
          try {
            document = parse(payload.query, { maxTokens: options.maxTokens, noLocation: true });
          } catch (error) {
            return [coded(error instanceof GraphQLError ? error : badRequest('The query could not be parsed'), 'GRAPHQL_PARSE_FAILED')];
          }
          const errors = validate(engine.schema, document, rules);
          if (errors.length > 0) return errors.map((error) => coded(error, 'GRAPHQL_VALIDATION_FAILED'));
          // Thousands of clients send the same few documents: one parsed, validated copy serves them all.
          if (documents.size >= 1_000) documents.clear();
          documents.set(documentKey, document);
        }
        const operation = getOperationAST(document, payload.operationName);
        if (!operation) return [badRequest('The document names no single operation to run')];
        if (operation.operation !== 'subscription') {
          return [badRequest('Only subscriptions are served over graphql-ws; send queries and mutations over HTTP')];
        }
        // Variables are coerced to their declared types first, as over HTTP: what goes upstream is what was checked.
        const coerced = getVariableValues(engine.schema, operation.variableDefinitions ?? [], payload.variables ?? {}, { maxErrors: 20 });
        if (coerced.errors) return coerced.errors.map((error) => coded(error, 'BAD_USER_INPUT'));
        const exceeded = exceededLimit(options.limits, options.listSizes, engine.schema, document, operation, coerced.coerced);
        if (exceeded) return [exceeded];
        const viewer = viewers.get(ctx) ?? null;
        return { schema: engine.schema, document, operationName: payload.operationName, variableValues: coerced.coerced, contextValue: { viewer } };
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
      onNext: (_ctx, _id, _payload, _args, result) => mask(result as ExecutionResult),
      onError: (_ctx, _id, _payload, errors) => errors.map((error) => options.formatError(error.toJSON(), error) as GraphQLError),
    },
    wsServer,
    options.keepAliveMs ?? 12_000,
  );

  function mask(result: ExecutionResult): ExecutionResult {
    if (!result.errors?.length) return result;
    return { ...result, errors: result.errors.map((error) => options.formatError((error as GraphQLError).toJSON?.() ?? error, error) as GraphQLError) };
  }

  logger.debug({ path: options.path ?? '/graphql' }, 'serving subscriptions over graphql-ws');
  return {
    /** Open sockets, and the subscriptions running on them (read at scrape time, not kept as counters). */
    stats: () => ({
      sockets: wsServer.clients.size,
      subscriptions: [...connections].reduce((sum, ctx) => sum + Object.keys(ctx.subscriptions).length, 0),
    }),
    /** Closes every socket with 1001 (going away), so clients reconnect to another replica. */
    async dispose(): Promise<void> {
      for (const client of wsServer.clients) client.close(1001, 'Server shutting down');
      await server.dispose();
      await new Promise<void>((resolve) => wsServer.close(() => resolve()));
    },
  };
}
