import {
  createSubgraphApp,
  DateTimeScalar,
  loadTypeDefs,
  type GraphQLApp,
  type Logger,
  type PubSub,
  type RateLimiter,
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
  /** Where user events go (after each commit): in-memory in the embedded default, Redis when scaled out. */
  pubsub: PubSub;
  logger: Logger;
  /** What each caller signs with: the gateway (acting for end users) and orders (acting as itself). */
  secrets: { gateway: string; orders: string };
  /** The rate-limit edge, where signatures that ran a write are remembered. */
  replayStore: RateLimiter;
  introspection?: boolean;
}

/** The users subgraph as an app: it neither reads the environment nor listens. */
export async function createUsersServer({ db, pubsub, logger, secrets, replayStore, introspection }: UsersServerDeps): Promise<GraphQLApp> {
  const users = createUserRepository(db);

  return createSubgraphApp<UsersContext>({
    name: 'users',
    typeDefs: loadTypeDefs(new URL('../schema.graphql', import.meta.url)),
    resolvers: { DateTime: DateTimeScalar, ...userResolvers, ...userEventResolvers } satisfies Resolvers,
    context: async ({ viewer }, publish) => ({
      viewer,
      loaders: createUserLoaders(users),
      users,
      userService: createUserService(users, publish),
      pubsub,
    }),
    pubsub,
    callers: { gateway: { secret: secrets.gateway, actsForViewers: true }, orders: { secret: secrets.orders, actsForViewers: false } },
    replayStore,
    logger,
    knownCodes: Object.values(ErrorCode),
    introspection,
  });
}
