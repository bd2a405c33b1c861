import type { Server } from 'node:http';
import { getOperationAST, GraphQLError, parse, subscribe, type ExecutionArgs, type ExecutionResult, type GraphQLFormattedError, type GraphQLSchema } from 'graphql';
import type { Context } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import { IDENTITY_HEADER, InvalidIdentityError, type CallerIdentity, type IdentityVerifier } from '../identity/internal-token.ts';
import type { Logger } from '../logger.ts';

/**
 * The last message of a subscription that outlived its lifetime (it then completes): the caller subscribes again,
 * signed afresh, after the last event it received, or after `extensions.after` when it received none.
 */
export const SUBSCRIPTION_EXPIRED = 'SUBSCRIPTION_EXPIRED';

/** How long one signed subscription may run; the caller renews it (SUBSCRIPTION_EXPIRED) without losing an event. */
export const DEFAULT_SUBSCRIPTION_LIFETIME_MS = 5 * 60_000;

const CURSOR = Symbol('subscriptionCursor');

/**
 * A resumable subscription's resolvers record where its stream stands (the position it started after, then each
 * event's as it is resolved), so that a subscription ended for its lifetime tells the caller where to resume.
 */
export function recordSubscriptionCursor(context: object, cursor: string): void {
  (context as { [CURSOR]?: string })[CURSOR] = cursor;
}

/** The resume point a SUBSCRIPTION_EXPIRED message carries: undefined when the message is not one. */
export function expiredSubscription(result: { data?: unknown; errors?: readonly { extensions?: Record<string, unknown> }[] }): { after: string | null } | undefined {
  const extensions = result.errors?.find((error) => error.extensions?.code === SUBSCRIPTION_EXPIRED)?.extensions;
  if (!extensions || result.data) return undefined;
  return { after: typeof extensions.after === 'string' ? extensions.after : null };
}

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
  /** True the first time a signature id is seen (the replay guard): each signature opens one thing, once. */
  firstUse: (tokenId: string) => Promise<boolean>;
  /** How long one signed subscription may run (default DEFAULT_SUBSCRIPTION_LIFETIME_MS, less up to a tenth). */
  lifetimeMs?: number;
  logger: Logger;
}

const identityOf = (params: unknown): string | undefined => {
  const value = (params as Record<string, unknown> | null | undefined)?.[IDENTITY_HEADER];
  return typeof value === 'string' ? value : undefined;
};

type Results = AsyncIterableIterator<ExecutionResult>;

/**
 * A subscription that ends itself after `lifetimeMs`: its last message is SUBSCRIPTION_EXPIRED with where it
 * stood (the cursor when its last event was handed on, so an event pulled but not handed on is not skipped).
 * It stops its source the moment it is returned, as graphql-ws needs.
 */
function withLifetime(source: Results, lifetimeMs: number, cursor: () => string | undefined, renewals: WeakSet<object>): Results {
  let delivered = cursor();
  let finished = false;
  let timer: NodeJS.Timeout | undefined;
  const expiry = new Promise<'expired'>((resolve) => {
    timer = setTimeout(() => resolve('expired'), lifetimeMs);
    timer.unref();
  });
  const stop = async () => {
    finished = true;
    clearTimeout(timer);
    await source.return?.();
  };
  const iterator: Results = {
    [Symbol.asyncIterator]: () => iterator,
    async next() {
      if (finished) return { value: undefined, done: true };
      const outcome = await Promise.race([source.next(), expiry]);
      if (outcome !== 'expired') {
        if (outcome.done) finished = true;
        else delivered = cursor();
        return outcome;
      }
      if (finished) return { value: undefined, done: true };
      await stop();
      const renewal: ExecutionResult = {
        errors: [
          new GraphQLError('This subscription reached the end of its signed lifetime; subscribe again, signed afresh, after the last event', {
            extensions: { code: SUBSCRIPTION_EXPIRED, ...(delivered === undefined ? {} : { after: delivered }) },
          }),
        ],
      };
      renewals.add(renewal);
      return { value: renewal, done: false };
    },
    async return() {
      await stop();
      return { value: undefined, done: true };
    },
    async throw(error?: unknown) {
      await stop();
      throw error;
    },
  };
  return iterator;
}

/**
 * graphql-ws on a subgraph's own HTTP server and path. Only its callers may connect: the connection is
 * signed, and each subscription is signed again over its exact operation, with the viewer it acts for. Each
 * signature is good once (a captured `connection_init` or `subscribe` replayed is refused), and a subscription
 * lives at most `lifetimeMs` on its signature: a captured one can never become an endless feed. Errors are
 * masked exactly as over HTTP.
 */
export function serveSubgraphSubscriptions<TContext extends object>(options: SubgraphSubscriptionsOptions<TContext>) {
  const { httpServer, schema, verify, firstUse, logger } = options;
  const lifetimeMs = options.lifetimeMs ?? DEFAULT_SUBSCRIPTION_LIFETIME_MS;
  const renewals = new WeakSet<object>();
  const wsServer = new WebSocketServer({ server: httpServer, path: '/graphql', maxPayload: 1024 * 1024 });
  // Per connection, per subscription id: who signed it.
  const identities = new WeakMap<Context, Map<string, CallerIdentity>>();
  const refuse = (reason: string) => logger.warn({ reason }, 'refused a subscription without a valid identity signature');
  const stats = { active: 0 };
  const running = new WeakMap<Context, Set<string>>();

  const server = useServer<Record<string, unknown>>(
    {
      schema,
      onConnect: async (ctx) => {
        try {
          const identity = verify(identityOf(ctx.connectionParams), SUBSCRIPTION_CONNECTION_BODY);
          if (!(await firstUse(identity.tokenId))) throw new InvalidIdentityError('connection signature used before');
          identities.set(ctx, new Map());
          return true;
        } catch (error) {
          if (!(error instanceof InvalidIdentityError)) throw error;
          refuse(error.message);
          return false;
        }
      },
      onSubscribe: async (ctx, id, payload) => {
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
          if (!(await firstUse(identity.tokenId))) throw new InvalidIdentityError('subscription signature used before');
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
      subscribe: async (args: ExecutionArgs) => {
        const result = await subscribe(args);
        if (!(Symbol.asyncIterator in result)) return result;
        // Renewals spread over the last tenth of the lifetime, so streams opened together do not all renew together.
        const lifetime = lifetimeMs * (1 - Math.random() / 10);
        const context = args.contextValue as { [CURSOR]?: string };
        return withLifetime(result, lifetime, () => context[CURSOR], renewals);
      },
      onOperation: (ctx, id) => {
        const ids = running.get(ctx) ?? new Set<string>();
        running.set(ctx, ids);
        ids.add(id);
        stats.active += 1;
        return undefined;
      },
      // The renewal is the platform's own message for its caller, with the cursor the formatter would strip.
      onNext: (_ctx, _id, _payload, _args, result) =>
        result.errors && !renewals.has(result)
          ? { ...result, errors: result.errors.map((error) => options.formatError(error.toJSON(), error) as GraphQLError) }
          : result,
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
