import {
  assertAdmin,
  assertSelfOrAdmin,
  isAdmin,
  decodeCursor,
  GRAPHQL_MAX_INT,
  parseFirst,
  parseId,
  publicError,
  toConnection,
  tryParseId,
} from '@fed/platform';
import type { OrdersContext } from '../context.ts';
import { ErrorCode } from '../errors.ts';
import type { Resolvers } from '../generated/resolvers.ts';
import type { OrderConnectionModel } from '../graphql/models.ts';
import { selectsPath } from '../graphql/selection.ts';
import type { OrderRow } from './repository.ts';

const CURSOR_KIND = 'order';

// A user's page reads its orders' items with it when the query selects them (the gateway's nested fetches do).
const selectsItems = selectsPath('edges', 'node', 'items');

/** A page of orders with its deferred count, in one object (no spread of a connection into another). */
function orderPage(rows: readonly OrderRow[], size: number, countTotal: () => Promise<number>): OrderConnectionModel {
  const { edges, pageInfo } = toConnection(CURSOR_KIND, rows, size);
  return { edges, pageInfo, countTotal };
}

/**
 * An order the viewer may act on. Only admins learn that an id does not exist; anyone else gets the same
 * FORBIDDEN for an unknown order as for someone else's, so order ids cannot be probed.
 */
async function ownedOrder(orderId: number, { viewer, loaders }: OrdersContext, action: string): Promise<OrderRow> {
  const row = await loaders.byId.load(orderId);
  if (!row && isAdmin(viewer)) throw publicError(ErrorCode.NotFound, `No order with id ${orderId}`, 'id');
  assertSelfOrAdmin(viewer, row?.userId ?? 0, action);
  if (!row) throw publicError(ErrorCode.NotFound, `No order with id ${orderId}`, 'id');
  return row;
}

export const orderResolvers = {
  Query: {
    order: (_parent, { id }, context) => ownedOrder(parseId(id), context, 'read this order'),

    orders: async (_parent, { first, after, status }, { viewer, orders, loaders }) => {
      assertAdmin(viewer, "list every user's orders");
      const size = parseFirst(first);
      const filter = status ?? undefined;
      const rows = await orders.list({ after: decodeCursor(CURSOR_KIND, after), limit: size + 1, status: filter });
      loaders.remember(rows);
      return orderPage(rows, size, () => orders.count({ status: filter }));
    },
  },

  Mutation: {
    placeOrder: async (_parent, { input }, { viewer, orderService, loaders }) => {
      assertSelfOrAdmin(viewer, parseId(input.userId, 'input.userId'), 'place an order for this user');
      const { order, items } = await orderService.place(input);
      loaders.itemsByOrderId.prime(order.id, items);
      return order;
    },
    cancelOrder: async (_parent, { id }, context) => {
      const orderId = parseId(id);
      // The owner never changes, so checking before the (atomic) cancel leaves no window.
      await ownedOrder(orderId, context, 'cancel this order');
      return context.orderService.cancel(orderId);
    },
  },

  Order: {
    // Another subgraph holding an order id is no licence to read the order.
    __resolveReference: async ({ id }, context) => {
      const parsed = tryParseId(id);
      if (parsed === undefined) return null;
      return isAdmin(context.viewer) ? context.loaders.byId.load(parsed) : ownedOrder(parsed, context, 'read this order');
    },
    // Read with the order's page when there was one: no load, no promise.
    items: (order, _args, { loaders }) => loaders.itemsOf(order.id) ?? loaders.itemsByOrderId.load(order.id),
    // A reference only: the gateway asks the users subgraph for the rest.
    user: (order) => ({ id: String(order.userId) }),
  },

  User: {
    orders: async (user, { first, after, status }, { viewer, loaders }, info) => {
      assertSelfOrAdmin(viewer, user.id, "read this user's orders");
      const size = parseFirst(first);
      const cursor = decodeCursor(CURSOR_KIND, after);
      const userId = tryParseId(user.id);
      if (userId === undefined) return null;
      const filter = status ?? undefined;
      const rows = await loaders.pageByUser.load({ userId, limit: size + 1, after: cursor, status: filter, withItems: selectsItems(info) });
      return orderPage(rows, size, () => loaders.countByUser.load({ userId, status: filter }));
    },
    orderCount: async (user, _args, { viewer, loaders }) => {
      assertSelfOrAdmin(viewer, user.id, "read this user's orders");
      const userId = tryParseId(user.id);
      return userId === undefined ? null : (await loaders.statsByUser.load(userId)).orderCount;
    },
    totalSpentCents: async (user, _args, { viewer, loaders }) => {
      assertSelfOrAdmin(viewer, user.id, "read this user's orders");
      const userId = tryParseId(user.id);
      if (userId === undefined) return null;
      const { spentCents } = await loaders.statsByUser.load(userId);
      if (spentCents > GRAPHQL_MAX_INT) {
        throw publicError(ErrorCode.ValueOutOfRange, 'This total is larger than a GraphQL Int can carry');
      }
      return spentCents;
    },
  },

  OrderConnection: {
    totalCount: (connection) => connection.countTotal(),
  },
} satisfies Resolvers;
