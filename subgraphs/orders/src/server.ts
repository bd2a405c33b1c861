import {
  createSubgraphApp,
  createUnitOfWork,
  DateTimeScalar,
  loadTypeDefs,
  type EventStream,
  type GraphQLApp,
  type Logger,
  type OutboxRelay,
  type RateLimiter,
  type SubgraphExecution,
  type Telemetry,
  createTelemetry,
  pingDatabase,
} from '@fed/platform';
import type { OrdersContext } from './context.ts';
import type { OrdersDatabase } from './db/index.ts';
import { ErrorCode } from './errors.ts';
import { createOrderLoaders } from './order/loaders.ts';
import { createOrderRepository } from './order/repository.ts';
import type { Resolvers } from './generated/resolvers.ts';
import { orderResolvers } from './order/resolvers.ts';
import { createOrderService } from './order/service.ts';
import { createUserProjection, type UserProjection } from './user-projection/projector.ts';
import type { UserSnapshot } from './user-projection/snapshot.ts';

export { ErrorCode } from './errors.ts';
export { createHttpUserSnapshot, type UserSnapshot } from './user-projection/snapshot.ts';
export { USER_PROJECTION, type UserProjection } from './user-projection/projector.ts';

export interface OrdersServerDeps {
  db: OrdersDatabase;
  /**
   * Where queries read (a read replica's handle; default `db`). Requests the gateway marks as writing, or as
   * acting on a fresh event, read from `db`: a replica may not have their write yet.
   */
  reader?: OrdersDatabase;
  /**
   * Where order events go: each write puts them in this database's outbox and `relay` moves them to `stream`,
   * which also feeds the projection of which users exist.
   */
  events: { stream: EventStream; relay: Pick<OutboxRelay, 'flush' | 'serve'> };
  /** Every user id that exists now, asked once, when a new deployment builds its projection. */
  userSnapshot: UserSnapshot;
  logger: Logger;
  /** What the gateway signs its requests with; no other service calls orders. */
  secrets: { gateway: string };
  /** The rate-limit edge, where signatures that ran a write are remembered. */
  replayStore: RateLimiter;
  introspection?: boolean;
  /** Its metrics registry and, when tracing is on, its tracer. */
  telemetry?: Telemetry;
  /** On stop: how long /readyz says draining before the listener closes, and the grace for requests in flight. */
  drain?: { delayMs?: number; graceMs?: number };
  /** `compiled` (the default) or `graphql-js`: how operations execute. */
  execution?: SubgraphExecution;
}

export interface OrdersServer extends GraphQLApp {
  /** The consumer that keeps orders' view of users; the composition root starts and stops it. */
  userProjection: UserProjection;
}

/** The orders subgraph as an app: it neither reads the environment nor listens, nor starts its consumer. */
export async function createOrdersServer({ db, reader = db, events, userSnapshot, logger, secrets, replayStore, introspection, drain, execution, ...deps }: OrdersServerDeps): Promise<OrdersServer> {
  const telemetry = deps.telemetry ?? createTelemetry({ service: 'orders' });
  const repositories = { primary: createOrderRepository(db), replica: createOrderRepository(reader) };
  const unitOfWork = createUnitOfWork({ db, source: 'orders', relay: events.relay });
  const userProjection = createUserProjection({ db, stream: events.stream, transact: unitOfWork(), snapshot: userSnapshot, logger, metrics: telemetry.metrics });

  const app = await createSubgraphApp<OrdersContext>({
    name: 'orders',
    typeDefs: loadTypeDefs(new URL('../schema.graphql', import.meta.url)),
    resolvers: { DateTime: DateTimeScalar, ...orderResolvers } satisfies Resolvers,
    context: async ({ viewer, readPrimary, idempotency }, writes) => {
      const orders = readPrimary ? repositories.primary : repositories.replica;
      return {
        viewer,
        loaders: createOrderLoaders(orders),
        orders,
        // The signed idempotency key (if any) makes each mutation field's write run once per key.
        orderService: createOrderService(unitOfWork(writes, { viewer, idempotency }), userProjection),
      };
    },
    callers: { gateway: { secret: secrets.gateway, actsForViewers: true } },
    replayStore,
    logger,
    knownCodes: Object.values(ErrorCode),
    introspection,
    telemetry,
    healthCheck: () => pingDatabase(db),
    drain,
    execution,
  });
  return { ...app, userProjection };
}
