import { GRAPHQL_MAX_INT, hasControlCharacters, parseId, publicError, type PublishEvent } from '@fed/platform';
import { ErrorCode } from '../errors.ts';
import type { UserDirectory } from '../user/directory.ts';
import type { OrderItemRow, OrderRepository, OrderRow } from './repository.ts';

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
 * Order writes: everything is validated before the one transaction that writes the order and its items, and
 * the event follows the commit. An order's change also changes what this subgraph says about its user
 * (orders, orderCount, totalSpentCents) and the list of all orders.
 */
export function createOrderService(repository: OrderRepository, users: UserDirectory, publish: PublishEvent) {
  const announce = (kind: 'ORDER_PLACED' | 'ORDER_CANCELLED', order: OrderRow) =>
    publish({
      kind,
      userId: String(order.userId),
      orderId: String(order.id),
      changed: [`Order:${order.id}`, `User:${order.userId}`, 'Query.orders'],
    });

  return {
    async place(input: PlaceOrderInput): Promise<{ order: OrderRow; items: OrderItemRow[] }> {
      const userId = parseId(input.userId, 'input.userId');
      const items = validateItems(input.items);
      const currency = (input.currency ?? 'USD').trim().toUpperCase();
      if (!CURRENCY.test(currency)) throw bad('Currency must be a three-letter ISO 4217 code', 'input.currency');
      const totalCents = items.reduce((sum, item) => sum + item.quantity * item.unitPriceCents, 0);
      if (totalCents > MAX_TOTAL_CENTS) throw bad('Order total is too large', 'input.items');
      if (!(await users.exists(userId))) {
        throw publicError(ErrorCode.NotFound, `No user with id ${userId}`, 'input.userId');
      }
      const placed = await repository.insert({ userId, currency, totalCents, items });
      await announce('ORDER_PLACED', placed.order);
      return placed;
    },

    async cancel(id: number): Promise<OrderRow> {
      const cancelled = await repository.cancel(id);
      if (cancelled) {
        await announce('ORDER_CANCELLED', cancelled);
        return cancelled;
      }
      const [existing] = await repository.findByIds([id]);
      if (!existing) throw publicError(ErrorCode.NotFound, `No order with id ${id}`, 'id');
      throw publicError(
        ErrorCode.OrderNotCancellable,
        `Order ${id} is ${existing.status} and can no longer be cancelled`,
        'id',
      );
    },
  };
}

export type OrderService = ReturnType<typeof createOrderService>;
