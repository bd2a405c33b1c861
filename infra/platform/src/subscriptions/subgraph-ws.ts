import type { Server } from 'node:http';
import { getOperationAST, GraphQLError, parse, type GraphQLFormattedError, type GraphQLSchema } from 'graphql';
import type { Context } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import { IDENTITY_HEADER, InvalidIdentityError, type CallerIdentity, type IdentityVerifier } from '../identity/internal-token.ts';
import type { Logger } from '../logger.ts';

/** What a caller signs to open a subscription connection to a subgraph (the connection carries no body). */
export const SUBSCRIPTION_CONNECTION_BODY = 'graphql-ws';

/**
 * What a caller signs for one subscription: the operation exactly as sent, under a prefix no HTTP body has, so
 * a signature captured from an HTTP request can never open a subscription (nor the reverse).
 */
export const subscriptionBody = (query: string, variables: Record<string, unknown> | null | undefined) =>
  `graphql-ws:subscribe\n${JSON.stringify({ query, variables: variables ?? {} })}`;

export interface SubgraphSubscriptionsOptions<TContext> {
  httpServer: Server;
  schema: GraphQLSchema;
  verify: IdentityVerifier;
  /** Per-subscription state, from the identity the caller signed for it. */
  context: (identity: CallerIdentity) => Promise<TContext>;
  /** The subgraph's error formatter (Apollo's signature): masks what HTTP masks. */
  formatError: (formatted: GraphQLFormattedError, error: unknown) => GraphQLFormattedError;
  logger: Logger;
}

const identityOf = (params: unknown): string | undefined => {
  const value = (params as Record<string, unknown> | null | undefined)?.[IDENTITY_HEADER];
  return typeof value === 'string' ? value : undefined;
};

/**
 * graphql-ws on a subgraph's own HTTP server and path. Only its callers may connect: the connection is
 * signed, and each subscription is signed again over its exact operation, with the viewer it acts for. Errors
 * are masked exactly as over HTTP.
 */
export function serveSubgraphSubscriptions<TContext extends object>(options: SubgraphSubscriptionsOptions<TContext>) {
  const { httpServer, schema, verify, logger } = options;
  const wsServer = new WebSocketServer({ server: httpServer, path: '/graphql', maxPayload: 1024 * 1024 });
  // Per connection, per subscription id: who signed it.
  const identities = new WeakMap<Context, Map<string, CallerIdentity>>();
  const refuse = (reason: string) => logger.warn({ reason }, 'refused a subscription without a valid identity signature');
  const stats = { active: 0 };
  const running = new WeakMap<Context, Set<string>>();

  const server = useServer<Record<string, unknown>>(
    {
      schema,
      onConnect: (ctx) => {
        try {
          verify(identityOf(ctx.connectionParams), SUBSCRIPTION_CONNECTION_BODY);
          identities.set(ctx, new Map());
          return true;
        } catch (error) {
          if (!(error instanceof InvalidIdentityError)) throw error;
          refuse(error.message);
          return false;
        }
      },
      onSubscribe: (ctx, id, payload) => {
        // Only subscriptions: a write must take the HTTP path, where each signature runs it at most once.
        let operation;
        try {
          operation = getOperationAST(parse(payload.query, { noLocation: true }), payload.operationName);
        } catch {
          operation = undefined;
        }
        if (operation?.operation !== 'subscription') {
          return [new GraphQLError('Only subscriptions are served here', { extensions: { code: 'BAD_REQUEST' } })];
        }
        try {
          const identity = verify(identityOf(payload.extensions), subscriptionBody(payload.query, payload.variables));
          identities.get(ctx)?.set(id, identity);
          return undefined;
        } catch (error) {
          if (!(error instanceof InvalidIdentityError)) throw error;
          refuse(error.message);
          return [new GraphQLError('This service only answers subscriptions signed by the gateway', { extensions: { code: 'UNAUTHENTICATED' } })];
        }
      },
      context: async (ctx, id) => {
        const identity = identities.get(ctx)?.get(id);
        if (!identity) throw new Error('subscription without a verified identity');
        return options.context(identity);
      },
      onOperation: (ctx, id) => {
        const ids = running.get(ctx) ?? new Set<string>();
        running.set(ctx, ids);
        ids.add(id);
        stats.active += 1;
        return undefined;
      },
      onNext: (_ctx, _id, _payload, _args, result) =>
        result.errors ? { ...result, errors: result.errors.map((error) => options.formatError(error.toJSON(), error) as GraphQLError) } : result,
      // Refused by validation after onSubscribe: it never runs, so onComplete never comes.
      onError: (ctx, id) => {
        identities.get(ctx)?.delete(id);
      },
      onComplete: (ctx, id) => {
        identities.get(ctx)?.delete(id);
        if (running.get(ctx)?.delete(id)) stats.active -= 1;
      },
      onClose: (ctx) => {
        stats.active -= running.get(ctx)?.size ?? 0;
        running.delete(ctx);
      },
    },
    wsServer,
  );

  return {
    /** Subscriptions running now: what callers cost this subgraph. */
    stats,
    /** Closes every socket (1001, going away) and stops accepting new ones. */
    async dispose(): Promise<void> {
      await server.dispose();
      await new Promise<void>((resolve) => wsServer.close(() => resolve()));
    },
  };
}
