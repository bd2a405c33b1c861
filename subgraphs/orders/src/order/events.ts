import type { NewDomainEvent } from '@fed/platform';
import type { OrderRow } from './repository.ts';

/**
 * An order's change also changes what this subgraph says about its user (orders, orderCount, totalSpentCents)
 * and the list of all orders; `changed` says so, for caches.
 */
export const orderEvent = (kind: 'ORDER_PLACED' | 'ORDER_CANCELLED', order: OrderRow): NewDomainEvent => ({
  kind,
  userId: String(order.userId),
  orderId: String(order.id),
  changed: [`Order:${order.id}`, `User:${order.userId}`, 'Query.orders'],
});
