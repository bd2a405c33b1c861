import {
  createSubgraphApp,
  createUnitOfWork,
  DateTimeScalar,
  loadTypeDefs,
  type EventStream,
  type GraphQLApp,
  type Logger,
  type OutboxRelay,
  type PubSub,
  type RateLimiter,
  type SubgraphExecution,
  type Telemetry,
  createTelemetry,
  pingDatabase,
} from '@fed/platform';
import type { UsersContext } from './context.ts';
import type { UsersDatabase } from './db/index.ts';
import { ErrorCode } from './errors.ts';
import { createUserLoaders } from './user/loaders.ts';
import { createUserRepository } from './user/repository.ts';
import type { Resolvers } from './generated/resolvers.ts';
import { userEventResolvers } from './user-event/resolvers.ts';
import { userResolvers } from './user/resolvers.ts';
import { createUserService } from './user/service.ts';

export { ErrorCode } from './errors.ts';

export interface UsersServerDeps {
  db: UsersDatabase;
  /**
   * Where queries read (a read replica's handle; default `db`). Requests the gateway marks as writing, or as
   * acting on a fresh event, read from `db`: a replica may not have their write yet.
   */
  reader?: UsersDatabase;
  /**
   * Where user events go: each write puts them in this database's outbox, and `relay` moves them to `stream`
   * (Redis Streams when scaled out, in memory in the embedded default). Subscriptions read `stream` and hear
   * new events on `pubsub`.
   */
  events: { stream: EventStream; pubsub: PubSub; relay: Pick<OutboxRelay, 'flush' | 'serve'> };
  logger: Logger;
  /** What each caller signs with: the gateway (acting for end users) and orders (acting as itself). */
  secrets: { gateway: string; orders: string };
  /** The rate-limit edge, where signatures that ran a write are remembered. */
  replayStore: RateLimiter;
  introspection?: boolean;
  /** Its metrics registry and, when tracing is on, its tracer. */
  telemetry?: Telemetry;
  /** On stop: how long /readyz says draining before the listener closes, and the grace for requests in flight. */
  drain?: { delayMs?: number; graceMs?: number };
  /** `compiled` (the default) or `graphql-js`: how operations execute. */
  execution?: SubgraphExecution;
  /** How long one signed subscription runs before the gateway renews it (default 5 minutes). */
  subscriptionLifetimeMs?: number;
}

/** The users subgraph as an app: it neither reads the environment nor listens. */
export async function createUsersServer({ db, reader = db, events, logger, secrets, replayStore, introspection, drain, subscriptionLifetimeMs, execution, ...deps }: UsersServerDeps): Promise<GraphQLApp> {
  const telemetry = deps.telemetry ?? createTelemetry({ service: 'users' });
  const repositories = { primary: createUserRepository(db), replica: createUserRepository(reader) };
  const unitOfWork = createUnitOfWork({ db, source: 'users', relay: events.relay });

  return createSubgraphApp<UsersContext>({
    name: 'users',
    typeDefs: loadTypeDefs(new URL('../schema.graphql', import.meta.url)),
    resolvers: { DateTime: DateTimeScalar, ...userResolvers, ...userEventResolvers } satisfies Resolvers,
    context: async ({ viewer, readPrimary, idempotency }, writes) => {
      const users = readPrimary ? repositories.primary : repositories.replica;
      return {
        viewer,
        loaders: createUserLoaders(users),
        users,
        // The signed idempotency key (if any) makes each mutation field's write run once per key.
        userService: createUserService(unitOfWork(writes, { viewer, idempotency })),
        events: { stream: events.stream, pubsub: events.pubsub },
      };
    },
    callers: { gateway: { secret: secrets.gateway, actsForViewers: true }, orders: { secret: secrets.orders, actsForViewers: false } },
    replayStore,
    logger,
    knownCodes: Object.values(ErrorCode),
    introspection,
    telemetry,
    healthCheck: () => pingDatabase(db),
    drain,
    execution,
    subscriptionLifetimeMs,
  });
}
