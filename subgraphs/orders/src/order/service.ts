import { GRAPHQL_MAX_INT, hasControlCharacters, parseId, publicError, type Transact } from '@fed/platform';
import type { OrdersDatabase } from '../db/index.ts';
import { ErrorCode } from '../errors.ts';
import type { UserProjection } from '../user-projection/projector.ts';
import { createKnownUserRepository } from '../user-projection/repository.ts';
import { orderEvent } from './events.ts';
import { createOrderRepository, type OrderItemRow, type OrderRow } from './repository.ts';

export const MAX_ITEMS = 100;
const MAX_QUANTITY = 10_000;
const MAX_SKU = 64;
export const MAX_TOTAL_CENTS = GRAPHQL_MAX_INT;
const CURRENCY = /^[A-Z]{3}$/;

export interface PlaceOrderInput {
  userId: string;
  items: { sku: string; quantity: number; unitPriceCents: number }[];
  currency?: string | null;
}

const bad = (message: string, field: string) => publicError(ErrorCode.BadUserInput, message, field);

function validateItems(items: PlaceOrderInput['items']) {
  if (items.length === 0) throw bad('An order needs at least one item', 'input.items');
  if (items.length > MAX_ITEMS) throw bad(`An order can have at most ${MAX_ITEMS} items`, 'input.items');
  return items.map((item, index) => {
    const field = `input.items[${index}]`;
    const sku = item.sku.trim();
    if (sku.length === 0 || sku.length > MAX_SKU) throw bad(`SKU must be 1 to ${MAX_SKU} characters`, `${field}.sku`);
    if (hasControlCharacters(sku)) throw bad('SKU must not contain control characters', `${field}.sku`);
    if (item.quantity < 1) throw bad('Quantity must be at least 1', `${field}.quantity`);
    if (item.quantity > MAX_QUANTITY) throw bad(`Quantity must be at most ${MAX_QUANTITY}`, `${field}.quantity`);
    if (item.unitPriceCents < 0) throw bad('Unit price must not be negative', `${field}.unitPriceCents`);
    return { sku, quantity: item.quantity, unitPriceCents: item.unitPriceCents };
  });
}

/**
 * Order writes: everything is validated before the one transaction that writes the order, its items and its
 * event. Whether the user exists is answered by orders' own projection of the users' events, inside that
 * transaction, so placing an order works while the users subgraph is down.
 */
export function createOrderService(transact: Transact<OrdersDatabase>, users: Pick<UserProjection, 'settle' | 'built'>) {
  return {
    async place(input: PlaceOrderInput): Promise<{ order: OrderRow; items: OrderItemRow[] }> {
      const userId = parseId(input.userId, 'input.userId');
      const items = validateItems(input.items);
      const currency = (input.currency ?? 'USD').trim().toUpperCase();
      if (!CURRENCY.test(currency)) throw bad('Currency must be a three-letter ISO 4217 code', 'input.currency');
      const totalCents = items.reduce((sum, item) => sum + item.quantity * item.unitPriceCents, 0);
      if (totalCents > MAX_TOTAL_CENTS) throw bad('Order total is too large', 'input.items');
      if (!users.built()) {
        throw publicError(ErrorCode.SubgraphUnavailable, 'Orders does not know its users yet (the users service has not answered); nothing was written. Try again.');
      }
      // A client that just created or deleted the user must see that here: wait until the projection has applied
      // every users event in the stream (two round trips when it has, which is nearly always).
      await users.settle();
      // Refusals throw inside the transaction, so that it rolls back whatever it recorded (an idempotency key).
      return transact(async (tx, emit) => {
        const user = await createKnownUserRepository(tx).findForShare(userId);
        if (!user || user.deleted) throw publicError(ErrorCode.UserNotFound, `No user with id ${userId}`, 'input.userId');
        const order = await createOrderRepository(tx).insert({ userId, currency, totalCents, items });
        emit(orderEvent('ORDER_PLACED', order.order));
        return order;
      });
    },

    async cancel(id: number): Promise<OrderRow> {
      return transact(async (tx, emit) => {
        const repository = createOrderRepository(tx);
        const row = await repository.cancel(id);
        if (row) {
          emit(orderEvent('ORDER_CANCELLED', row));
          return row;
        }
        // Refused inside the transaction, so that it rolls back whatever it recorded (an idempotency key).
        const [existing] = await repository.findByIds([id]);
        if (!existing) throw publicError(ErrorCode.NotFound, `No order with id ${id}`, 'id');
        throw publicError(ErrorCode.OrderNotCancellable, `Order ${id} is ${existing.status} and can no longer be cancelled`, 'id');
      });
    },
  };
}

export type OrderService = ReturnType<typeof createOrderService>;
