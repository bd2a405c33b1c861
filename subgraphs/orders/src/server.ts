import { createSubgraphApp, DateTimeScalar, loadTypeDefs, type GraphQLApp, type Logger, type PubSub, type RateLimiter } from '@fed/platform';
import type { OrdersContext } from './context.ts';
import type { OrdersDatabase } from './db/index.ts';
import { ErrorCode } from './errors.ts';
import { createOrderLoaders } from './order/loaders.ts';
import { createOrderRepository } from './order/repository.ts';
import type { Resolvers } from './generated/resolvers.ts';
import { orderResolvers } from './order/resolvers.ts';
import { createOrderService } from './order/service.ts';
import type { UserDirectory } from './user/directory.ts';

export { ErrorCode } from './errors.ts';
export { createHttpUserDirectory, type UserDirectory } from './user/directory.ts';

export interface OrdersServerDeps {
  db: OrdersDatabase;
  /** How placeOrder learns whether a user exists (the users subgraph owns that fact). */
  users: UserDirectory;
  /** Where order events go (after each commit): in-memory in the embedded default, Redis when scaled out. */
  pubsub: PubSub;
  logger: Logger;
  /** What the gateway signs its requests with; no other service calls orders. */
  secrets: { gateway: string };
  /** The rate-limit edge, where signatures that ran a write are remembered. */
  replayStore: RateLimiter;
  introspection?: boolean;
}

/** The orders subgraph as an app: it neither reads the environment nor listens. */
export async function createOrdersServer({ db, users, pubsub, logger, secrets, replayStore, introspection }: OrdersServerDeps): Promise<GraphQLApp> {
  const orders = createOrderRepository(db);

  return createSubgraphApp<OrdersContext>({
    name: 'orders',
    typeDefs: loadTypeDefs(new URL('../schema.graphql', import.meta.url)),
    resolvers: { DateTime: DateTimeScalar, ...orderResolvers } satisfies Resolvers,
    context: async ({ viewer }, publish) => ({
      viewer,
      loaders: createOrderLoaders(orders),
      orders,
      orderService: createOrderService(orders, users, publish),
    }),
    pubsub,
    callers: { gateway: { secret: secrets.gateway, actsForViewers: true } },
    replayStore,
    logger,
    knownCodes: Object.values(ErrorCode),
    introspection,
  });
}
